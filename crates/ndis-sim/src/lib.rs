//! ndis-sim: a strict simulated NDIS 6 + Windows kernel (being built; see issue 3).
