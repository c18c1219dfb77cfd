//! How the simulated protocol and miniport build the NBLs they send and indicate.

use super::digest_add;
use crate::nbl::{self, Creator};
use crate::stack::{self, make_frame, stack, NblShape};
use ndis_sys::*;

fn build_chain(shape: &NblShape, frame: &[u8]) -> *mut MDL {
    let need = shape.data_offset as usize + frame.len();
    let mut lens: Vec<u32> = if shape.mdl_lengths.is_empty() {
        vec![need as u32]
    } else {
        shape.mdl_lengths.clone()
    };
    let sum: usize = lens.iter().map(|&l| l as usize).sum();
    if sum < need {
        *lens.last_mut().expect("non-empty") += (need - sum) as u32;
    }
    let mut head: *mut MDL = std::ptr::null_mut();
    let mut tail: *mut MDL = std::ptr::null_mut();
    let mut pos = 0usize;
    for &l in &lens {
        let m = nbl::sim_mdl(l, 0xEE);
        // SAFETY: `m` is a fresh simulator MDL over `l` bytes; bytes of the frame that fall into it
        // are copied within its buffer.
        unsafe {
            let va = nbl::mdl_va(m);
            for i in 0..l as usize {
                let p = pos + i;
                if p >= shape.data_offset as usize && p < need {
                    *va.add(i) = frame[p - shape.data_offset as usize];
                } else {
                    // Unused bytes carry a position-dependent pattern, so that HEADROOM_CORRUPTED
                    // sees any byte a filter leaves changed there (a constant fill would hide a
                    // write of that constant).
                    *va.add(i) = 0xE5 ^ (p as u8).wrapping_mul(29);
                }
            }
            if shape.locked_unmapped {
                crate::mapping::make_locked_unmapped(m);
            }
            if head.is_null() {
                head = m;
            } else {
                (*tail).Next = m;
            }
        }
        tail = m;
        pos += l as usize;
    }
    head
}

/// The frames of a chain, in NB order, each with the offload info the first NB of an NBL gives its
/// NBL: the frames given (no info), or one made per NB numbered by the stack's sequence — the
/// pattern frame of [`make_frame`], or with `shape.offload` a frame with real headers and its
/// info ([`crate::wire::offload_frame`]). Made frames are drawn one at a time, as the chain is built.
fn frame_source<'a>(
    shape: &'a NblShape,
    given: Option<&'a [Vec<u8>]>,
) -> Box<dyn Iterator<Item = (Vec<u8>, [usize; 3])> + 'a> {
    match given {
        Some(frames) => Box::new(frames.iter().map(|f| (f.clone(), [0; 3]))),
        None => Box::new(std::iter::repeat_with(move || {
            let seq = {
                let mut s = stack();
                s.seq += 1;
                s.seq
            };
            match &shape.offload {
                Some(o) => crate::wire::offload_frame(seq, shape.frame_len, o),
                None => (make_frame(seq, shape.frame_len), [0; 3]),
            }
        })),
    }
}

/// Builds a simulator NBL chain of `shape` from `pool`; returns (chain head, list, frames digest, nbs).
/// With `frames`, NB k (in chain order) carries `frames[k]` instead of a [`make_frame`] frame, and the
/// chain has `frames.len().div_ceil(nbs_per_nbl)` NBLs (the last may have fewer NBs).
pub(super) fn build_nbls(
    id: usize,
    pool: usize,
    creator: Creator,
    shape: &NblShape,
    source: usize,
    frames: Option<&[Vec<u8>]>,
) -> (Vec<*mut NET_BUFFER_LIST>, u64, u64) {
    let (used, backfill) = stack::nbl_context(id, creator);
    let mut list = Vec::new();
    let mut digest = 0u64;
    let mut nbs = 0u64;
    let per = shape.nbs_per_nbl.max(1);
    let nbl_count = frames.map_or(shape.nbls, |f| f.len().div_ceil(per));
    let mut frames = frame_source(shape, frames);
    for i in 0..nbl_count {
        let nbl = nbl::alloc_nbl(pool, used, backfill, creator, id);
        assert!(!nbl.is_null(), "simulator NBL allocation failed");
        nbl::fill_owner_context(nbl, i as u8);
        for j in 0..per {
            let Some((frame, infos)) = frames.next() else {
                break;
            };
            if j == 0 {
                for (slot, v) in crate::wire::OFFLOAD_INFO_SLOTS.iter().zip(infos) {
                    // SAFETY: fresh simulator NBL.
                    unsafe { (*nbl).NetBufferListInfo[*slot] = v as PVOID };
                }
            }
            digest = digest_add(digest, &frame);
            nbs += 1;
            let chain = build_chain(shape, &frame);
            if j == 0 {
                nbl::set_prealloc_nb(nbl, chain, shape.data_offset, frame.len() as u32);
            } else {
                nbl::sim_append_nb(nbl, chain, shape.data_offset, frame.len() as u32);
            }
        }
        // SAFETY: fresh simulator NBL.
        unsafe {
            (*nbl).NetBufferListInfo[info::Ieee8021QNetBufferListInfo] = shape.ieee8021q as PVOID;
            (*nbl).SourceHandle = source as NDIS_HANDLE;
        }
        list.push(nbl);
    }
    for w in list.windows(2) {
        // SAFETY: fresh simulator NBLs.
        unsafe { (*w[0]).Next = w[1] };
    }
    (list, digest, nbs)
}
