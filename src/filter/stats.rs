//! Per-module data-path statistics (DESIGN §5, issue 5 item 6): a `#[repr(C)]` block of relaxed atomic
//! counters inside each module context, next to the pool's statistics, which a later issue exports to
//! WinDbg (natvis / JS) by its field names. Every hot-path caller accumulates into a local
//! [`Tally`] and adds it once per call, so each counter costs at most one relaxed RMW per callback.
//!
//! Owns only the counters; must not decide anything from them.

use core::sync::atomic::{AtomicU64, Ordering};

/// Version of the layout below, for the debugger scripts.
pub const FILTER_STATS_VERSION: u32 = 1;

/// Statistics of one filter module. All counters only grow (until the module detaches).
#[repr(C)]
pub struct FilterStats {
    /// NBLs transformed and forwarded on send / indicated on receive.
    pub send_nbls_transformed: AtomicU64,
    pub send_nbs_transformed: AtomicU64,
    pub recv_nbls_transformed: AtomicU64,
    pub recv_nbs_transformed: AtomicU64,
    /// Bytes the transforms wrote into retreated space (pattern bytes, tags).
    pub bytes_written: AtomicU64,
    /// NdisRetreatNetBufferDataStart failures (NetAllocateMdl returned NULL).
    pub retreat_failures: AtomicU64,
    /// NdisAllocateNetBufferListContext failures.
    pub context_failures: AtomicU64,
    /// Send NBLs completed with NDIS_STATUS_RESOURCES (one of their NBs failed).
    pub send_nbls_failed: AtomicU64,
    /// Send NBLs completed with NDIS_STATUS_PAUSED (not Running).
    pub send_nbls_paused: AtomicU64,
    /// Receive NBLs dropped (one of their NBs failed).
    pub recv_nbls_dropped: AtomicU64,
    /// Restores done with Advance(FreeMdl = TRUE, NetFreeMdl).
    pub restores_advanced: AtomicU64,
    /// Restores done by hand (a foreign wholly-unused leading MDL was in the caller's chain).
    pub restores_manual: AtomicU64,
    /// Restores refused because the NB was not as the retreat left it (nothing freed; a lower driver bug).
    pub restores_inconsistent: AtomicU64,
    /// Exercise patterns that did not read back (never expected).
    pub pattern_mismatches: AtomicU64,
    /// VLAN: frames already tagged (or shorter than an Ethernet header), left alone.
    pub vlan_already_tagged: AtomicU64,
    /// VLAN: NBLs passed through untouched (no tag to insert, read-only data, frame too short).
    pub vlan_untouched_nbls: AtomicU64,
    /// NBLs passed through because the module was not Running (receive) or in passthrough mode.
    pub passthrough_nbls: AtomicU64,
    /// Registry values that were malformed or out of range (defaults used).
    pub config_bad_values: AtomicU64,
    /// NdisOpenConfigurationEx failures (defaults used).
    pub config_open_failures: AtomicU64,
    /// OID requests forwarded (cloned) / clone failures.
    pub oids_forwarded: AtomicU64,
    pub oid_clone_failures: AtomicU64,
    /// Pauses that had to pend until the last outstanding NBL came back.
    pub pauses_pended: AtomicU64,
}

impl FilterStats {
    /// All counters zero (usable in a `static`).
    pub const fn new_const() -> Self {
        Self {
            send_nbls_transformed: AtomicU64::new(0),
            send_nbs_transformed: AtomicU64::new(0),
            recv_nbls_transformed: AtomicU64::new(0),
            recv_nbs_transformed: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            retreat_failures: AtomicU64::new(0),
            context_failures: AtomicU64::new(0),
            send_nbls_failed: AtomicU64::new(0),
            send_nbls_paused: AtomicU64::new(0),
            recv_nbls_dropped: AtomicU64::new(0),
            restores_advanced: AtomicU64::new(0),
            restores_manual: AtomicU64::new(0),
            restores_inconsistent: AtomicU64::new(0),
            pattern_mismatches: AtomicU64::new(0),
            vlan_already_tagged: AtomicU64::new(0),
            vlan_untouched_nbls: AtomicU64::new(0),
            passthrough_nbls: AtomicU64::new(0),
            config_bad_values: AtomicU64::new(0),
            config_open_failures: AtomicU64::new(0),
            oids_forwarded: AtomicU64::new(0),
            oid_clone_failures: AtomicU64::new(0),
            pauses_pended: AtomicU64::new(0),
        }
    }
}

/// A local accumulator for one callback; [`Tally::commit`] adds the non-zero fields.
#[derive(Default, Clone, Copy, Debug)]
pub struct Tally {
    pub nbls_transformed: u64,
    pub nbs_transformed: u64,
    pub bytes_written: u64,
    pub retreat_failures: u64,
    pub context_failures: u64,
    pub nbls_failed: u64,
    pub restores_advanced: u64,
    pub restores_manual: u64,
    pub restores_inconsistent: u64,
    pub pattern_mismatches: u64,
    pub vlan_already_tagged: u64,
    pub vlan_untouched_nbls: u64,
    pub passthrough_nbls: u64,
}

#[inline]
fn add(c: &AtomicU64, v: u64) {
    if v != 0 {
        c.fetch_add(v, Ordering::Relaxed);
    }
}

/// Which direction a tally belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Send,
    Receive,
}

impl Tally {
    /// Adds the tally into `stats`. Any IRQL.
    pub fn commit(&self, stats: &FilterStats, dir: Direction) {
        let (nbls, nbs, failed) = match dir {
            Direction::Send => (
                &stats.send_nbls_transformed,
                &stats.send_nbs_transformed,
                &stats.send_nbls_failed,
            ),
            Direction::Receive => (
                &stats.recv_nbls_transformed,
                &stats.recv_nbs_transformed,
                &stats.recv_nbls_dropped,
            ),
        };
        add(nbls, self.nbls_transformed);
        add(nbs, self.nbs_transformed);
        add(failed, self.nbls_failed);
        add(&stats.bytes_written, self.bytes_written);
        add(&stats.retreat_failures, self.retreat_failures);
        add(&stats.context_failures, self.context_failures);
        add(&stats.restores_advanced, self.restores_advanced);
        add(&stats.restores_manual, self.restores_manual);
        add(&stats.restores_inconsistent, self.restores_inconsistent);
        add(&stats.pattern_mismatches, self.pattern_mismatches);
        add(&stats.vlan_already_tagged, self.vlan_already_tagged);
        add(&stats.vlan_untouched_nbls, self.vlan_untouched_nbls);
        add(&stats.passthrough_nbls, self.passthrough_nbls);
    }
}

/// A plain copy of [`FilterStats`] for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterStatsSnapshot {
    pub send_nbls_transformed: u64,
    pub send_nbs_transformed: u64,
    pub recv_nbls_transformed: u64,
    pub recv_nbs_transformed: u64,
    pub bytes_written: u64,
    pub retreat_failures: u64,
    pub context_failures: u64,
    pub send_nbls_failed: u64,
    pub send_nbls_paused: u64,
    pub recv_nbls_dropped: u64,
    pub restores_advanced: u64,
    pub restores_manual: u64,
    pub restores_inconsistent: u64,
    pub pattern_mismatches: u64,
    pub vlan_already_tagged: u64,
    pub vlan_untouched_nbls: u64,
    pub passthrough_nbls: u64,
    pub config_bad_values: u64,
    pub config_open_failures: u64,
    pub oids_forwarded: u64,
    pub oid_clone_failures: u64,
    pub pauses_pended: u64,
}

impl FilterStats {
    /// Reads every counter (relaxed). Any IRQL.
    pub fn snapshot(&self) -> FilterStatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FilterStatsSnapshot {
            send_nbls_transformed: r(&self.send_nbls_transformed),
            send_nbs_transformed: r(&self.send_nbs_transformed),
            recv_nbls_transformed: r(&self.recv_nbls_transformed),
            recv_nbs_transformed: r(&self.recv_nbs_transformed),
            bytes_written: r(&self.bytes_written),
            retreat_failures: r(&self.retreat_failures),
            context_failures: r(&self.context_failures),
            send_nbls_failed: r(&self.send_nbls_failed),
            send_nbls_paused: r(&self.send_nbls_paused),
            recv_nbls_dropped: r(&self.recv_nbls_dropped),
            restores_advanced: r(&self.restores_advanced),
            restores_manual: r(&self.restores_manual),
            restores_inconsistent: r(&self.restores_inconsistent),
            pattern_mismatches: r(&self.pattern_mismatches),
            vlan_already_tagged: r(&self.vlan_already_tagged),
            vlan_untouched_nbls: r(&self.vlan_untouched_nbls),
            passthrough_nbls: r(&self.passthrough_nbls),
            config_bad_values: r(&self.config_bad_values),
            config_open_failures: r(&self.config_open_failures),
            oids_forwarded: r(&self.oids_forwarded),
            oid_clone_failures: r(&self.oid_clone_failures),
            pauses_pended: r(&self.pauses_pended),
        }
    }

    /// Adds another snapshot (used to keep driver-wide totals across detach). Any IRQL.
    pub fn accumulate_into(&self, total: &FilterStats) {
        let s = self.snapshot();
        let pairs: [(&AtomicU64, u64); 22] = [
            (&total.send_nbls_transformed, s.send_nbls_transformed),
            (&total.send_nbs_transformed, s.send_nbs_transformed),
            (&total.recv_nbls_transformed, s.recv_nbls_transformed),
            (&total.recv_nbs_transformed, s.recv_nbs_transformed),
            (&total.bytes_written, s.bytes_written),
            (&total.retreat_failures, s.retreat_failures),
            (&total.context_failures, s.context_failures),
            (&total.send_nbls_failed, s.send_nbls_failed),
            (&total.send_nbls_paused, s.send_nbls_paused),
            (&total.recv_nbls_dropped, s.recv_nbls_dropped),
            (&total.restores_advanced, s.restores_advanced),
            (&total.restores_manual, s.restores_manual),
            (&total.restores_inconsistent, s.restores_inconsistent),
            (&total.pattern_mismatches, s.pattern_mismatches),
            (&total.vlan_already_tagged, s.vlan_already_tagged),
            (&total.vlan_untouched_nbls, s.vlan_untouched_nbls),
            (&total.passthrough_nbls, s.passthrough_nbls),
            (&total.config_bad_values, s.config_bad_values),
            (&total.config_open_failures, s.config_open_failures),
            (&total.oids_forwarded, s.oids_forwarded),
            (&total.oid_clone_failures, s.oid_clone_failures),
            (&total.pauses_pended, s.pauses_pended),
        ];
        for (c, v) in pairs {
            add(c, v);
        }
    }
}
