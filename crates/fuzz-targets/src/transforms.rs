//! Target `transforms`: the exercise transform, vlan tag insertion as the send path uses it (tag
//! from the NBL's 802.1Q info or the configured VlanId/priority) and as the receive-inline path uses
//! it (the NIC-stripped tag from the indication's 802.1Q info), each over an arbitrary frame (0 to
//! 9018 bytes: jumbo frames included) laid over an arbitrary MDL chain, with the pool's handler pair
//! or NDIS's default allocator.
//!
//! Model (`chain::vlan_model`, 802.1Q's wire format; exercise: the frame unchanged): the bytes the
//! next driver sees are read by walking the MDLs directly and compared with it; every byte of the
//! caller's chain the transform may not touch is compared before/after; the undo (vlan
//! `remove_inserted`) and `nb::restore` must give back the caller's exact NB and bytes and every
//! block.

use crate::chain;
use crate::run::Run;
use arbitrary::{Result, Unstructured};
use mdlpool::nb::{self, MdlHandlers, RetreatRecord};
use mdlpool::transform::{exercise, vlan, vlan::VlanTag, TransformError};
use ndis_sim::kernel::at_irql;
use ndis_sim::testkit::TestNbl;
use ndis_sys::*;

/// Runs the target on one input.
pub fn transforms(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let run = Run::begin(&mut u);
    let (handlers, use_pool) = (run.handlers, run.use_pool);
    for _ in 0..u.int_in_range(1..=3u8).unwrap_or(1) {
        if one(&mut u, handlers, use_pool).is_err() {
            break;
        }
    }
    run.end();
}

/// An arbitrary frame: a length (jumbo sizes included), the first bytes from the input (so a fuzzer
/// controls the addresses, the EtherType/TPID and more), the rest a pattern.
pub(crate) fn frame(u: &mut Unstructured) -> Result<Vec<u8>> {
    let len = match u.int_in_range(0..=4u8)? {
        0 => u.int_in_range(0..=20usize)?,
        1 | 2 => u.int_in_range(14..=1518usize)?,
        3 => u.int_in_range(1519..=9018usize)?,
        _ => 60,
    };
    let head_len = u.int_in_range(0..=len.min(32))?;
    let mut f = u.bytes(head_len)?.to_vec();
    if f.len() >= 14 && u.ratio(1u8, 4u8)? {
        // Make "already tagged" frames frequent.
        let tpid = *u.choose(&[[0x81u8, 0x00], [0x88, 0xA8], [0x08, 0x00]])?;
        f[12..14].copy_from_slice(&tpid);
    }
    let seed = u.arbitrary::<u8>()?;
    while f.len() < len {
        f.push((f.len() as u8).wrapping_mul(7) ^ seed);
    }
    Ok(f)
}

fn one(u: &mut Unstructured, handlers: MdlHandlers, use_pool: bool) -> Result<()> {
    let f = frame(u)?;
    // MDL layout: up to 5 MDLs (zero-length ones too), unused bytes in front and behind.
    let data_offset = match u.int_in_range(0..=3u8)? {
        0 => 0,
        1 => u.int_in_range(1..=8u32)?,
        _ => u.int_in_range(0..=300u32)?,
    };
    let tail = u.int_in_range(0..=16u32)?;
    let total = data_offset + f.len() as u32 + tail;
    let mut lens = Vec::new();
    let mut left = total;
    for _ in 0..u.int_in_range(0..=4u8)? {
        let l = u.int_in_range(0..=left.min(400))?;
        lens.push(l);
        left -= l;
    }
    lens.push(left);
    let t = TestNbl::single(&lens, data_offset, f.len() as u32);
    let nbp = t.nb(0);
    // SAFETY: (fuzz) the simulator's valid NB; the chain holds `total` bytes.
    unsafe { chain::write(nbp, data_offset as usize, &f) };
    // SAFETY: as above.
    let (before, mdls0, bytes0) = unsafe {
        let m = chain::mdls(nbp);
        (chain::fields(nbp), m.clone(), chain::snapshot(&m).concat())
    };
    // SAFETY: as above.
    let mut rec = unsafe { RetreatRecord::capture(nbp) };
    let irql = if u.arbitrary::<bool>()? {
        DISPATCH_LEVEL
    } else {
        PASSIVE_LEVEL
    };
    match u.int_in_range(0..=2u8)? {
        0 => {
            let bytes = u.int_in_range(1..=256u32)?;
            let backfill = u.int_in_range(0..=256u32)?;
            // SAFETY: (fuzz) valid, owned, mapped NB; `rec` freshly captured.
            let r = at_irql(irql, || unsafe {
                exercise::apply(nbp, &mut rec, bytes, backfill, handlers)
            });
            assert_eq!(r, Ok(bytes), "exercise failed");
            // The NB goes on with the caller's exact geometry, and the wire sees the frame.
            // SAFETY: as above.
            unsafe {
                assert_eq!(chain::fields(nbp), before, "exercise: NB geometry changed");
                assert_eq!(chain::data(nbp), f, "exercise: the wire frame differs");
                // Its pattern went into the new block only: the caller's bytes are all unchanged.
                assert_eq!(chain::snapshot(&mdls0).concat(), bytes0);
            }
            assert!(
                !rec.parked.is_null(),
                "exercise always allocates: the block is parked"
            );
        }
        mode => {
            // 1: send (tag from the NBL's info, else the configured one); 2: receive-inline (the
            // NIC-stripped tag from the indication's info).
            let info = NDIS_NET_BUFFER_LIST_8021Q_INFO::new(
                u.int_in_range(0..=7u8)?,
                u.int_in_range(0..=1u8)?,
                u.int_in_range(0..=4095u16)?,
            );
            let configured =
                VlanTag::configured(u.int_in_range(0..=4094u16)?, u.int_in_range(0..=7u8)?);
            let tag = if mode == 1 {
                VlanTag::from_info(info).or(configured)
            } else {
                VlanTag::from_info(info)
            };
            let Some(tag) = tag else {
                return Ok(());
            };
            let want = chain::vlan_model(&f, Some(tag.tci()));
            // SAFETY: (fuzz) as above.
            let r = at_irql(irql, || unsafe {
                vlan::insert(nbp, &mut rec, tag, handlers)
            });
            let inserted = match r {
                Ok(did) => did,
                Err(TransformError::Retreat(_)) if !use_pool => return Ok(()),
                Err(e) => panic!("vlan insert failed: {e:?}"),
            };
            assert_eq!(
                inserted,
                want.len() != f.len(),
                "vlan: tagged or not against the model"
            );
            // SAFETY: as above.
            unsafe {
                assert_eq!(
                    chain::data(nbp),
                    want,
                    "vlan: the wire frame differs from 802.1Q"
                );
                assert!(chain::current_is_consistent(nbp));
                // The caller's own MDLs, whichever of them the tagged chain still links (a new
                // head relinks past the ones it copied).
                let old = chain::snapshot(&mdls0).concat();
                // Writes only in the 4 retreated bytes and over the 12 address bytes it moves (in
                // place), or none at all (new head).
                let lo = (before.data_offset as usize).saturating_sub(4);
                let hi = before.data_offset as usize + 12;
                for (i, (a, b)) in bytes0.iter().zip(&old).enumerate() {
                    if !inserted || i < lo || i >= hi {
                        assert_eq!(a, b, "vlan: byte {i} of the caller's chain changed");
                    }
                }
                if inserted {
                    vlan::remove_inserted(nbp, &rec).expect("vlan undo");
                }
            }
        }
    }
    // SAFETY: (fuzz) the NB carries exactly the retreats in `rec`, made with `handlers`.
    let r = at_irql(irql, || unsafe { nb::restore(nbp, &rec, handlers) });
    assert!(r.is_ok(), "restore failed: {r:?}");
    // SAFETY: as above.
    unsafe {
        assert_eq!(chain::fields(nbp), before, "restore is not exact");
        assert_eq!(chain::mdls(nbp), mdls0);
        // Every byte of the caller's chain, the unused space in front of the data start included
        // (ndis-sim's HEADROOM_CORRUPTED): the undo is exact.
        assert_eq!(
            chain::snapshot(&mdls0).concat(),
            bytes0,
            "the caller's chain (frame, headroom or bytes behind it) differs after the undo"
        );
    }
    if use_pool {
        let in_flight = mdlpool::mdl_handlers::snapshot()
            .map(|s| s.total.in_flight)
            .unwrap_or(0);
        assert_eq!(
            in_flight, 0,
            "a pool block is still in flight after restore"
        );
    }
    drop(t);
    Ok(())
}
