//! Target `nb_cursor`: the retreat record, retreat, cursor, advance, park and restore of `mdlpool::nb`
//! over arbitrary MDL chains (any MDL count, zero-length MDLs, ByteCount and DataOffset anywhere,
//! CurrentMdl in any equivalent valid normalisation, foreign leading MDLs wholly in unused space),
//! against ndis-sim's NdisRetreat/AdvanceNetBufferDataStart, with the pool's handler pair or NDIS's
//! default allocator.
//!
//! Properties: a failed retreat leaves the NB untouched; a retreat leaves CurrentMdl consistent and
//! exactly `delta` more data bytes; the cursor reads what the chain holds (independent walk) and
//! every byte it writes lies inside the retreated range; park hands the NB on with exactly the
//! recorded fields; restore puts all five fields back exactly, leaves the caller's MDLs linked as
//! they were and every byte outside the retreated range unchanged, and gives the retreat's MDL back
//! (nothing in flight in the pool; ndis-sim's leak, foreign-free and double-free checks at finish).

use crate::chain;
use crate::run::Run;
use arbitrary::{Result, Unstructured};
use mdlpool::nb::{self, MdlHandlers, RetreatRecord, Retreated};
use mdlpool::ndis::NetBuffer;
use ndis_sim::kernel::at_irql;
use ndis_sim::testkit::{NbLayout, TestNbl};
use ndis_sys::*;

/// Runs the target on one input.
pub fn nb_cursor(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let run = Run::begin(&mut u);
    let (handlers, use_pool) = (run.handlers, run.use_pool);
    let layouts = layouts(&mut u).unwrap_or_else(|_| {
        vec![NbLayout {
            mdl_lengths: vec![64],
            data_offset: 0,
            data_length: 64,
        }]
    });
    let t = TestNbl::new(&layouts);
    for i in 0..layouts.len() {
        // Errors only mean the input ran out: the scenario stops where it is, after restoring.
        let _ = scenario(&mut u, t.nb(i), handlers, use_pool);
    }
    drop(t);
    run.end();
}

fn layouts(u: &mut Unstructured) -> Result<Vec<NbLayout>> {
    let n = u.int_in_range(1..=3usize)?;
    let mut v = Vec::new();
    for _ in 0..n {
        let count = u.int_in_range(1..=6usize)?;
        let mut lens = Vec::new();
        for _ in 0..count {
            // Zero-length MDLs are common in the input space on purpose.
            lens.push(match u.int_in_range(0..=3u8)? {
                0 => 0,
                1 => u.int_in_range(1..=16u32)?,
                _ => u.int_in_range(0..=300u32)?,
            });
        }
        let total: u32 = lens.iter().sum();
        let data_offset = u.int_in_range(0..=total)?;
        let data_length = u.int_in_range(0..=total - data_offset)?;
        v.push(NbLayout {
            mdl_lengths: lens,
            data_offset,
            data_length,
        });
    }
    Ok(v)
}

/// The chain offsets `[lo, hi)` of the original chain a retreat of `delta` over an NB whose data
/// started at `data_offset` may write: the old unused bytes in front of the data start that became
/// data (all of them when the retreat allocated).
fn retreated_range(data_offset: u32, delta: u32) -> (usize, usize) {
    (
        data_offset.saturating_sub(delta) as usize,
        data_offset as usize,
    )
}

fn scenario(
    u: &mut Unstructured,
    nbp: *mut NET_BUFFER,
    handlers: MdlHandlers,
    use_pool: bool,
) -> Result<()> {
    // Hand the NB over in any equivalent CurrentMdl normalisation.
    // SAFETY: (fuzz) the simulator's valid NB.
    let choices = unsafe { chain::current_choices(nbp) };
    if !choices.is_empty() {
        let (m, o) = *u.choose(&choices).unwrap_or(&choices[0]);
        // SAFETY: as above; an equivalent position of the data start.
        unsafe {
            (*nbp).CurrentMdl = m;
            (*nbp).CurrentMdlOffset = o;
        }
    }
    // SAFETY: as above.
    let (before, mdls0, bytes0) = unsafe {
        let f = chain::fields(nbp);
        let m = chain::mdls(nbp);
        let b = chain::snapshot(&m);
        (f, m, b)
    };
    // SAFETY: as above.
    let mut rec = unsafe { RetreatRecord::capture(nbp) };
    let delta = u.int_in_range(0..=before.data_offset.saturating_add(300))?;
    let backfill = u.int_in_range(0..=256u32)?;
    let dispatch = u.arbitrary::<bool>()?;
    let irql = if dispatch {
        DISPATCH_LEVEL
    } else {
        PASSIVE_LEVEL
    };
    // SAFETY: (fuzz) valid NB we own; the record was just captured from it.
    let r = at_irql(irql, || unsafe {
        nb::retreat(nbp, &mut rec, delta, backfill, handlers)
    });
    let kind = match r {
        Err(_) => {
            // SAFETY: as above.
            unsafe {
                assert_eq!(chain::fields(nbp), before, "failed retreat changed the NB");
                assert_eq!(chain::snapshot(&mdls0), bytes0);
            }
            return Ok(());
        }
        Ok(k) => k,
    };
    // SAFETY: as above.
    let after = unsafe { chain::fields(nbp) };
    assert_eq!(after.data_length, before.data_length + delta);
    assert_eq!(rec.outstanding, delta);
    // SAFETY: as above.
    assert!(unsafe { chain::current_is_consistent(nbp) });
    match kind {
        Retreated::InPlace => {
            assert_eq!(after.mdl_chain, before.mdl_chain);
            assert_eq!(after.data_offset, before.data_offset - delta);
        }
        Retreated::Allocated => {
            assert!(delta > before.data_offset);
            // SAFETY: the new head, linked in front of the caller's chain.
            unsafe {
                let head = (*nbp).MdlChain;
                assert_eq!((*head).Next as usize, before.mdl_chain);
                assert!((*head).ByteCount >= delta - before.data_offset);
            }
        }
    }
    let (lo, hi) = retreated_range(before.data_offset, delta);
    // The head MDL a retreat allocated (not part of the caller's chain).
    let extra = if kind == Retreated::Allocated { 1 } else { 0 };

    // Cursor writes: a pattern over the retreated bytes, then reads anywhere in the data.
    let seed = u.arbitrary::<u8>()?;
    let pat = |i: usize| (i as u8).wrapping_mul(31) ^ seed;
    // SAFETY: (fuzz) the NB is ours, valid and mapped for the rest of the run.
    let net = unsafe { NetBuffer::new_unchecked(nbp) };
    // Our retreated space.
    nb::fill_at(net, 0, delta as usize, pat).expect("fill of the retreated range");
    // SAFETY: as above.
    let data_now = unsafe { chain::data(nbp) };
    for (i, &b) in data_now[..delta as usize].iter().enumerate() {
        assert_eq!(b, pat(i), "retreated byte {i} reads back wrong");
    }
    assert_eq!(
        &data_now[delta as usize..],
        &chain_bytes(&bytes0)
            [before.data_offset as usize..(before.data_offset + before.data_length) as usize],
        "the caller's data changed"
    );
    // SAFETY: as above.
    let now = unsafe { chain::mdls(nbp) };
    // SAFETY: as above.
    check_outside(&bytes0, unsafe { &chain::snapshot(&now[extra..]) }, lo, hi);
    for _ in 0..u.int_in_range(0..=3u8)? {
        let len_total = after.data_length;
        let off = u.int_in_range(0..=len_total)?;
        let len = u.int_in_range(0..=len_total - off)? as usize;
        let mut buf = vec![0u8; len];
        nb::read_at(net, off, &mut buf).expect("read inside the data");
        assert_eq!(buf, data_now[off as usize..off as usize + len]);
        // A write of the same bytes back, and one past the end that must be refused untouched.
        // The bytes written are those already there.
        nb::write_at(net, off, &buf).expect("write inside the data");
        let too_far = vec![0xEEu8; len + 1];
        // Refused before writing.
        let r = nb::write_at(net, len_total - len as u32, &too_far);
        assert_eq!(r, Err(nb::NbError::TooShort));
        // SAFETY: as above.
        let after_writes = unsafe { chain::data(nbp) };
        assert_eq!(after_writes, data_now, "a cursor write changed bytes");
    }

    // Advance back some or all of it, maybe park, then restore.
    let mut left = delta;
    for _ in 0..u.int_in_range(0..=2u8)? {
        let a = u.int_in_range(0..=left)?;
        // SAFETY: (fuzz) `a <= rec.outstanding` bytes of ours in front of the data.
        at_irql(irql, || unsafe { nb::advance_keep(nbp, &mut rec, a) });
        left -= a;
        // SAFETY: as above.
        assert!(unsafe { chain::current_is_consistent(nbp) });
    }
    if left == 0 && u.arbitrary::<bool>()? {
        // SAFETY: as above; the data start is back where recorded.
        unsafe { nb::park(nbp, &mut rec) }.expect("park at the recorded data start");
        // SAFETY: as above.
        let parked = unsafe { chain::fields(nbp) };
        assert_eq!(parked.mdl_chain, before.mdl_chain);
        assert_eq!(parked.data_offset, before.data_offset);
        assert_eq!(parked.data_length, before.data_length);
        assert_eq!(parked.current_mdl, before.current_mdl);
        assert_eq!(parked.current_mdl_offset, before.current_mdl_offset);
        assert_eq!(rec.parked.is_null(), kind == Retreated::InPlace);
    }
    // SAFETY: (fuzz) the NB carries exactly the retreats recorded in `rec`, made with `handlers`.
    let r = at_irql(irql, || unsafe { nb::restore(nbp, &rec, handlers) });
    assert!(r.is_ok(), "restore failed: {r:?} (record {rec:?})");
    // SAFETY: as above.
    unsafe {
        assert_eq!(chain::fields(nbp), before, "restore is not exact");
        assert_eq!(chain::mdls(nbp), mdls0, "the caller's chain changed");
        check_outside(&bytes0, &chain::snapshot(&mdls0), lo, hi);
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
    Ok(())
}

fn chain_bytes(per_mdl: &[Vec<u8>]) -> Vec<u8> {
    per_mdl.concat()
}

/// Every byte of the caller's chain outside chain offsets `[lo, hi)` is as it was.
fn check_outside(before: &[Vec<u8>], now: &[Vec<u8>], lo: usize, hi: usize) {
    let a = chain_bytes(before);
    let b = chain_bytes(now);
    assert_eq!(a.len(), b.len(), "the caller's MDLs changed size");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if i < lo || i >= hi {
            assert_eq!(
                x, y,
                "byte {i} outside the retreated range [{lo}, {hi}) changed"
            );
        }
    }
}
