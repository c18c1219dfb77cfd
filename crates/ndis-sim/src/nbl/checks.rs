//! The checks over NBLs: NB consistency, seals over NBLs given away, snapshots at hand-out and the
//! restore-exact comparison at completion and return.

#[allow(unused_imports)]
use super::*;
use crate::verifier::{self, rules};

/// Checks that CurrentMdl/CurrentMdlOffset locate DataOffset and the chain holds the data.
///
/// # Safety
/// `nb` must be a valid NB whose chain consists of valid MDLs.
pub(crate) unsafe fn check_nb_consistent(context: &str, nb: *const NET_BUFFER) -> bool {
    // SAFETY: the caller guarantees a valid NB.
    let n = unsafe { &*nb };
    let mut pos: u64 = 0;
    let mut mdl = n.MdlChain as *const MDL;
    let mut total: u64 = 0;
    let mut found = n.CurrentMdl.is_null();
    let mut hops = 0;
    while !mdl.is_null() {
        hops += 1;
        if hops > MAX_CHAIN {
            verifier::report(
                rules::NB_INCONSISTENT,
                nb as usize,
                format!("{context}: MDL chain longer than {MAX_CHAIN} (cycle?)"),
            );
            return false;
        }
        if std::ptr::eq(mdl, n.CurrentMdl) && !found {
            found = true;
            pos = total + n.CurrentMdlOffset as u64;
        }
        // SAFETY: valid chain (caller's guarantee).
        unsafe {
            total += (*mdl).ByteCount as u64;
            mdl = (*mdl).Next;
        }
    }
    if n.CurrentMdl.is_null() {
        pos = total + n.CurrentMdlOffset as u64;
    }
    let mut ok = true;
    if !found {
        verifier::report(
            rules::NB_INCONSISTENT,
            nb as usize,
            format!(
                "{context}: CurrentMdl {:p} is not in the MDL chain",
                n.CurrentMdl
            ),
        );
        ok = false;
    } else if pos != n.DataOffset as u64 {
        verifier::report(
            rules::NB_INCONSISTENT,
            nb as usize,
            format!(
                "{context}: CurrentMdl+CurrentMdlOffset is chain offset {pos}, DataOffset is {}",
                n.DataOffset
            ),
        );
        ok = false;
    }
    if (n.DataOffset as u64 + n.DataLength() as u64) > total {
        verifier::report(
            rules::NB_INCONSISTENT,
            nb as usize,
            format!(
                "{context}: DataOffset {} + DataLength {} exceeds the chain's {total} bytes",
                n.DataOffset,
                n.DataLength()
            ),
        );
        ok = false;
    }
    ok
}

/// A checksum over everything a holder must not change of an NBL it gave away: the NBL (except
/// `Next`), its NBs, their MDL headers, and the frame bytes.
///
/// # Safety
/// `nbl` must be a valid NBL with valid NBs and chains.
pub(crate) unsafe fn seal_of(nbl: *const NET_BUFFER_LIST) -> u64 {
    // SAFETY: the NBL allocation is at least NBL_DRIVER_SIZE bytes (all NBLs come from this module).
    let bytes =
        unsafe { std::slice::from_raw_parts((nbl as *const u8).add(8), NBL_DRIVER_SIZE - 8) };
    let mut h = fnv(FNV_INIT, bytes);
    // SAFETY: caller's guarantee for NBs and chains.
    unsafe {
        for nb in nbs_of(nbl) {
            h = fnv(h, std::slice::from_raw_parts(nb as *const u8, NB_SIZE));
            let mut m = (*nb).MdlChain as *const MDL;
            let mut hops = 0;
            while !m.is_null() && hops < MAX_CHAIN {
                h = fnv(
                    h,
                    std::slice::from_raw_parts(m as *const u8, std::mem::size_of::<MDL>()),
                );
                m = (*m).Next;
                hops += 1;
            }
            if let Some(f) = nb_frame(nb) {
                h = fnv(h, &f);
            }
        }
    }
    h
}

/// What one NB looked like when its owner handed it out.
#[derive(Clone, Debug)]
pub(crate) struct NbSnap {
    pub nb: usize,
    pub mdl_chain: usize,
    pub data_offset: u32,
    pub data_length: u32,
    pub current_mdl: usize,
    pub current_mdl_offset: u32,
    /// (address, ByteCount, Next, va) of each MDL of the original chain.
    pub mdls: Vec<(usize, u32, usize, usize)>,
    pub frame: Vec<u8>,
    /// The chain's bytes in front of the data start (`[0, DataOffset)`), compared by the
    /// HEADROOM_CORRUPTED check.
    pub headroom: Vec<u8>,
    /// Whether its MAC header lay in the MDL holding the data start (MAC_HEADER_SPLIT judges only
    /// frames handed out that way).
    pub mac_contiguous: bool,
}

/// What one NBL looked like when its owner handed it out.
#[derive(Clone, Debug)]
pub(crate) struct NblSnap {
    pub nbs: Vec<NbSnap>,
    pub context: usize,
    pub context_offset: u16,
    pub context_size: u16,
    /// The owner's used context bytes (`[DATA_START, DATA_START + Size - Offset)`) at hand-out.
    pub context_bytes: Vec<u8>,
    pub source_handle: usize,
    pub nbl_flags: u32,
    pub info: [usize; MaxNetBufferListInfo],
}

/// Snapshots an NBL for a later restore check.
///
/// # Safety
/// `nbl` must be a valid NBL with valid NBs and chains.
pub(crate) unsafe fn snapshot(nbl: *const NET_BUFFER_LIST) -> NblSnap {
    // SAFETY: caller's guarantee.
    unsafe {
        let l = &*nbl;
        let nbs = nbs_of(nbl)
            .into_iter()
            .map(|nb| {
                let n = &*nb;
                let mut mdls = Vec::new();
                let mut m = n.MdlChain;
                while !m.is_null() && mdls.len() < MAX_CHAIN {
                    mdls.push((
                        m as usize,
                        (*m).ByteCount,
                        (*m).Next as usize,
                        mdl_va(m) as usize,
                    ));
                    m = (*m).Next;
                }
                NbSnap {
                    nb: nb as usize,
                    mdl_chain: n.MdlChain as usize,
                    data_offset: n.DataOffset,
                    data_length: n.DataLength(),
                    current_mdl: n.CurrentMdl as usize,
                    current_mdl_offset: n.CurrentMdlOffset,
                    mdls,
                    frame: nb_frame(nb).unwrap_or_default(),
                    headroom: nb_headroom(nb).unwrap_or_default(),
                    mac_contiguous: {
                        let f = nb_frame(nb).unwrap_or_default();
                        head_contiguous(nb, mac_header_len(&f))
                    },
                }
            })
            .collect();
        let (co, cs) = if l.Context.is_null() {
            (0, 0)
        } else {
            ((*l.Context).Offset, (*l.Context).Size)
        };
        let context_bytes = context_used_bytes(l.Context);
        let mut info = [0usize; MaxNetBufferListInfo];
        for (i, v) in l.NetBufferListInfo.iter().enumerate() {
            info[i] = *v as usize;
        }
        NblSnap {
            nbs,
            context: l.Context as usize,
            context_offset: co,
            context_size: cs,
            context_bytes,
            source_handle: l.SourceHandle as usize,
            nbl_flags: l.NblFlags,
            info,
        }
    }
}

/// The used bytes of a context block laid out as documented (ns-nbl-net_buffer_list_context): `Size`
/// is the whole context space, `Offset` the unused part in front, the used data runs from
/// `ContextData + Offset` to the end. Empty for a NULL or inconsistent block.
///
/// # Safety
/// `ctx` must be NULL or a valid context block with `Size` bytes of data space.
pub(super) unsafe fn context_used_bytes(ctx: *const NET_BUFFER_LIST_CONTEXT) -> Vec<u8> {
    if ctx.is_null() {
        return Vec::new();
    }
    // SAFETY: caller's guarantee.
    unsafe {
        let (size, offset) = ((*ctx).Size as usize, (*ctx).Offset as usize);
        if offset > size {
            return Vec::new();
        }
        let data = (ctx as *const u8).add(std::mem::size_of::<NET_BUFFER_LIST_CONTEXT>() + offset);
        std::slice::from_raw_parts(data, size - offset).to_vec()
    }
}

/// Whether an NBL differs from its hand-out snapshot in what a filter changes (NBL context, NB
/// list, each NB's MDL chain / offsets / length, OOB info); frame bytes are not compared. Reports
/// nothing.
///
/// # Safety
/// `nbl` must be a valid NBL with valid NBs.
pub(crate) unsafe fn carries_changes(nbl: *const NET_BUFFER_LIST, snap: &NblSnap) -> bool {
    // SAFETY: caller's guarantee.
    let now = unsafe { snapshot(nbl) };
    now.context != snap.context
        || now.context_offset != snap.context_offset
        || now.context_size != snap.context_size
        || now.info != snap.info
        || now.nbs.len() != snap.nbs.len()
        || now.nbs.iter().zip(&snap.nbs).any(|(a, b)| {
            a.nb != b.nb
                || a.mdl_chain != b.mdl_chain
                || a.data_offset != b.data_offset
                || a.data_length != b.data_length
                || a.current_mdl != b.current_mdl
                || a.current_mdl_offset != b.current_mdl_offset
        })
}

/// Compares an NBL coming back with its snapshot; reports NB_NOT_RESTORED / NBL_NOT_RESTORED /
/// DATA_CORRUPTED. Returns true when identical.
///
/// # Safety
/// `nbl` must be a valid NBL; its NBs and chains are only followed within bounds.
pub(crate) unsafe fn check_restored(
    context: &str,
    nbl: *const NET_BUFFER_LIST,
    snap: &NblSnap,
) -> bool {
    let mut ok = true;
    // SAFETY: caller's guarantee.
    let l = unsafe { &*nbl };
    // SAFETY: caller's guarantee.
    let nbs = unsafe { nbs_of(nbl) };
    let addrs: Vec<usize> = nbs.iter().map(|p| *p as usize).collect();
    let want: Vec<usize> = snap.nbs.iter().map(|s| s.nb).collect();
    if addrs != want {
        verifier::report(
            rules::NBL_NOT_RESTORED,
            nbl as usize,
            format!("{context}: NB list {addrs:x?}, handed out {want:x?}"),
        );
        return false;
    }
    let (co, cs) = if l.Context.is_null() {
        (0, 0)
    } else {
        // SAFETY: a non-NULL context pointer of a valid NBL.
        unsafe { ((*l.Context).Offset, (*l.Context).Size) }
    };
    if l.Context as usize != snap.context || co != snap.context_offset || cs != snap.context_size {
        verifier::report(rules::NBL_NOT_RESTORED, nbl as usize,
            format!("{context}: Context {:p} (Offset {co}, Size {cs}), handed out {:#x} (Offset {}, Size {})",
                l.Context, snap.context, snap.context_offset, snap.context_size));
        ok = false;
    // SAFETY: the same block as at hand-out (checked above), still live.
    } else if unsafe { context_used_bytes(l.Context) } != snap.context_bytes {
        verifier::report(
            rules::DATA_CORRUPTED,
            nbl as usize,
            format!("{context}: the owner's context data (Offset {co}, Size {cs}) was overwritten"),
        );
        ok = false;
    }
    if l.SourceHandle as usize != snap.source_handle {
        verifier::report(
            rules::NBL_NOT_RESTORED,
            nbl as usize,
            format!("{context}: SourceHandle changed to {:p}", l.SourceHandle),
        );
        ok = false;
    }
    if l.NblFlags != snap.nbl_flags {
        verifier::report(
            rules::NBL_NOT_RESTORED,
            nbl as usize,
            format!(
                "{context}: NblFlags {:#x}, handed out {:#x}",
                l.NblFlags, snap.nbl_flags
            ),
        );
        ok = false;
    }
    for (i, v) in l.NetBufferListInfo.iter().enumerate() {
        if *v as usize != snap.info[i] {
            verifier::report(
                rules::NBL_NOT_RESTORED,
                nbl as usize,
                format!(
                    "{context}: NetBufferListInfo[{i}] = {:#x}, handed out {:#x}",
                    *v as usize, snap.info[i]
                ),
            );
            ok = false;
        }
    }
    for (nb, s) in nbs.iter().zip(&snap.nbs) {
        // SAFETY: a valid NB of the list.
        let n = unsafe { &**nb };
        let now = (
            n.MdlChain as usize,
            n.DataOffset,
            n.DataLength(),
            n.CurrentMdl as usize,
            n.CurrentMdlOffset,
        );
        let then = (
            s.mdl_chain,
            s.data_offset,
            s.data_length,
            s.current_mdl,
            s.current_mdl_offset,
        );
        if now != then {
            verifier::report(rules::NB_NOT_RESTORED, *nb as usize,
                format!("{context}: (MdlChain, DataOffset, DataLength, CurrentMdl, CurrentMdlOffset) = ({:#x}, {}, {}, {:#x}, {}), handed out ({:#x}, {}, {}, {:#x}, {})",
                    now.0, now.1, now.2, now.3, now.4, then.0, then.1, then.2, then.3, then.4));
            ok = false;
            continue;
        }
        for &(m, bc, next, va) in &s.mdls {
            let mp = m as *const MDL;
            // SAFETY: the original MDLs belong to the NB's owner, which kept them alive.
            let (bc2, next2, va2) =
                unsafe { ((*mp).ByteCount, (*mp).Next as usize, mdl_va(mp) as usize) };
            if (bc2, next2, va2) != (bc, next, va) {
                verifier::report(rules::NB_NOT_RESTORED, *nb as usize,
                    format!("{context}: MDL {m:#x} (ByteCount, Next, va) = ({bc2}, {next2:#x}, {va2:#x}), handed out ({bc}, {next:#x}, {va:#x})"));
                ok = false;
            }
        }
        // SAFETY: as above.
        match unsafe { nb_frame(*nb) } {
            Some(f) if f == s.frame => {}
            Some(f) => {
                let at = f
                    .iter()
                    .zip(&s.frame)
                    .position(|(a, b)| a != b)
                    .unwrap_or(f.len().min(s.frame.len()));
                verifier::report(
                    rules::DATA_CORRUPTED,
                    *nb as usize,
                    format!("{context}: frame bytes differ from byte {at}"),
                );
                ok = false;
            }
            None => {
                verifier::report(
                    rules::DATA_CORRUPTED,
                    *nb as usize,
                    format!("{context}: frame no longer readable"),
                );
                ok = false;
            }
        }
        // SAFETY: as above; the fields equal the snapshot, so the same bytes are read.
        match unsafe { nb_headroom(*nb) } {
            Some(h) if h == s.headroom => {}
            h => {
                let h = h.unwrap_or_default();
                let at = h
                    .iter()
                    .zip(&s.headroom)
                    .position(|(a, b)| a != b)
                    .unwrap_or(h.len().min(s.headroom.len()));
                verifier::report(
                    rules::HEADROOM_CORRUPTED,
                    *nb as usize,
                    format!(
                        "{context}: unused byte {at} of {} in front of the data start differs \
                         ({:#04x?}, handed out {:#04x?})",
                        s.headroom.len(),
                        h.get(at),
                        s.headroom.get(at)
                    ),
                );
                ok = false;
            }
        }
    }
    ok
}
