//! Retreat/advance, list variants, NdisAdjustNetBufferCurrentMdl and NdisGetDataBuffer against the
//! worked cases of ndis-contract.md §2.3–2.4, through the ndis-sys imports (the link seam).

use ndis_sim::testkit::{NbLayout, TestNbl};
use ndis_sim::{rules, Sim, SimConfig};
use ndis_sys::*;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);
static ASKED: AtomicU32 = AtomicU32::new(0);
static ROUND_TO: AtomicU32 = AtomicU32::new(0);
static FAIL_CALL: AtomicUsize = AtomicUsize::new(0);
const TAG: u32 = u32::from_le_bytes(*b"TsMd");

fn start() -> ndis_sim::SimGuard {
    let g = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    ALLOCS.store(0, SeqCst);
    FREES.store(0, SeqCst);
    ASKED.store(0, SeqCst);
    ROUND_TO.store(0, SeqCst);
    FAIL_CALL.store(0, SeqCst);
    g
}

/// A NetAllocateMdl built like the driver's: one nonpaged block, MDL + PFNs + data, built.
unsafe extern "system" fn test_alloc(size: *mut u32) -> *mut MDL {
    let n = ALLOCS.fetch_add(1, SeqCst) + 1;
    if FAIL_CALL.load(SeqCst) == n {
        return std::ptr::null_mut();
    }
    // SAFETY: NDIS passes a valid in/out size.
    unsafe {
        let mut sz = *size;
        ASKED.store(sz, SeqCst);
        let r = ROUND_TO.load(SeqCst);
        if r > sz {
            sz = r;
            *size = r;
        }
        let hdr = (MmSizeOfMdl(0xFFF as *const _, sz as usize) + 7) & !7;
        let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, hdr + sz as usize, TAG) as *mut u8;
        if p.is_null() {
            return std::ptr::null_mut();
        }
        let mdl = p as *mut MDL;
        MmInitializeMdl(mdl, p.add(hdr) as PVOID, sz as usize);
        MmBuildMdlForNonPagedPool(mdl);
        mdl
    }
}

unsafe extern "system" fn test_free(mdl: *mut MDL) {
    FREES.fetch_add(1, SeqCst);
    // SAFETY: an MDL test_alloc made (single pool block at the MDL address).
    unsafe { ExFreePoolWithTag(mdl as PVOID, TAG) }
}

/// A free handler that refuses foreign MDLs (counts only).
unsafe extern "system" fn counting_free(_mdl: *mut MDL) {
    FREES.fetch_add(1, SeqCst);
}

fn fields(nb: *mut NET_BUFFER) -> (usize, u32, u32, usize, u32) {
    // SAFETY: a live test NB.
    unsafe {
        (
            (*nb).MdlChain as usize,
            (*nb).DataOffset,
            (*nb).DataLength(),
            (*nb).CurrentMdl as usize,
            (*nb).CurrentMdlOffset,
        )
    }
}

#[test]
fn fast_path_reduces_data_offset_without_allocating() {
    let sim = start();
    let t = TestNbl::single(&[100], 40, 60);
    let nb = t.nb(0);
    // SAFETY: a valid NB the test owns.
    let st = unsafe { NdisRetreatNetBufferDataStart(nb, 14, 0, Some(test_alloc)) };
    assert_eq!(st, NDIS_STATUS_SUCCESS);
    assert_eq!(
        fields(nb),
        (t.mdls()[0] as usize, 26, 74, t.mdls()[0] as usize, 26)
    );
    assert_eq!(ALLOCS.load(SeqCst), 0);
    // Equal: DataOffset == delta still takes the fast path (">=").
    // SAFETY: as above.
    let st = unsafe { NdisRetreatNetBufferDataStart(nb, 26, 64, Some(test_alloc)) };
    assert_eq!(st, NDIS_STATUS_SUCCESS);
    assert_eq!(fields(nb).1, 0);
    assert_eq!(ALLOCS.load(SeqCst), 0);
    // SAFETY: as above.
    unsafe { NdisAdvanceNetBufferDataStart(nb, 40, FALSE, None) };
    assert_eq!(
        fields(nb),
        (t.mdls()[0] as usize, 40, 60, t.mdls()[0] as usize, 40)
    );
    drop(t);
    sim.finish();
}

#[test]
fn fast_path_moves_data_start_into_an_earlier_mdl() {
    let sim = start();
    let t = TestNbl::single(&[10, 90], 20, 80);
    let nb = t.nb(0);
    let (m0, m1) = (t.mdls()[0] as usize, t.mdls()[1] as usize);
    assert_eq!(fields(nb), (m0, 20, 80, m1, 10));
    assert_eq!(
        // SAFETY: valid NB.
        unsafe { NdisRetreatNetBufferDataStart(nb, 14, 0, None) },
        NDIS_STATUS_SUCCESS
    );
    assert_eq!(fields(nb), (m0, 6, 94, m0, 6));
    // The header now spans both MDLs: not contiguous.
    // SAFETY: valid NB.
    assert!(unsafe { NdisGetDataBuffer(nb, 14, std::ptr::null_mut(), 1, 0) }.is_null());
    let mut storage = [0u8; 14];
    // SAFETY: valid NB; storage is 14 bytes.
    let p = unsafe { NdisGetDataBuffer(nb, 14, storage.as_mut_ptr() as PVOID, 1, 0) };
    assert_eq!(p as usize, storage.as_ptr() as usize);
    assert_eq!(storage.to_vec(), (6u8..20).collect::<Vec<_>>());
    // Advance with FreeMdl=FALSE walks forward from CurrentMdl; a boundary lands in the next MDL.
    // SAFETY: valid NB.
    unsafe { NdisAdvanceNetBufferDataStart(nb, 4, FALSE, None) };
    assert_eq!(fields(nb), (m0, 10, 90, m1, 0));
    drop(t);
    sim.finish();
}

#[test]
fn allocating_path_with_data_offset_zero_asks_delta_plus_backfill() {
    let sim = start();
    let t = TestNbl::single(&[60], 0, 60);
    let nb = t.nb(0);
    let before = fields(nb);
    assert_eq!(
        // SAFETY: valid NB.
        unsafe { NdisRetreatNetBufferDataStart(nb, 14, 32, Some(test_alloc)) },
        NDIS_STATUS_SUCCESS
    );
    assert_eq!(ASKED.load(SeqCst), 46);
    let (chain, off, len, cur, cur_off) = fields(nb);
    assert_ne!(chain, before.0);
    assert_eq!((off, len, cur, cur_off), (32, 74, chain, 32));
    // SAFETY: the new MDL heads the chain and links the old one.
    unsafe {
        assert_eq!((*(chain as *mut MDL)).Next as usize, before.0);
        assert_eq!((*(chain as *mut MDL)).ByteCount, 46);
        // The whole header lies in the new MDL: contiguous.
        assert!(!NdisGetDataBuffer(nb, 14, std::ptr::null_mut(), 1, 0).is_null());
    }
    // Advance exactly what was retreated with FreeMdl=TRUE: our MDL goes to our free routine.
    // SAFETY: valid NB.
    unsafe { NdisAdvanceNetBufferDataStart(nb, 14, TRUE, Some(test_free)) };
    assert_eq!(FREES.load(SeqCst), 1);
    assert_eq!(fields(nb), before);
    drop(t);
    sim.finish();
}

#[test]
fn allocating_path_with_data_offset_above_zero_asks_only_the_shortfall() {
    let sim = start();
    let t = TestNbl::single(&[66], 6, 60);
    let nb = t.nb(0);
    let before = fields(nb);
    assert_eq!(
        // SAFETY: valid NB.
        unsafe { NdisRetreatNetBufferDataStart(nb, 14, 0, Some(test_alloc)) },
        NDIS_STATUS_SUCCESS
    );
    assert_eq!(ASKED.load(SeqCst), 8, "shortfall 14 - 6, no backfill");
    let (chain, off, len, cur, cur_off) = fields(nb);
    assert_eq!((off, len, cur, cur_off), (0, 74, chain, 0));
    // Header = 8 new bytes + the old 6 unused bytes: not contiguous.
    // SAFETY: valid NB.
    assert!(unsafe { NdisGetDataBuffer(nb, 14, std::ptr::null_mut(), 1, 0) }.is_null());
    // A rounding allocator writes the larger size back: the extra becomes backfill at the front.
    // SAFETY: valid NB.
    unsafe { NdisAdvanceNetBufferDataStart(nb, 14, TRUE, Some(test_free)) };
    assert_eq!(fields(nb), before);
    ROUND_TO.store(64, SeqCst);
    assert_eq!(
        // SAFETY: valid NB.
        unsafe { NdisRetreatNetBufferDataStart(nb, 14, 0, Some(test_alloc)) },
        NDIS_STATUS_SUCCESS
    );
    let (chain, off, len, cur, cur_off) = fields(nb);
    assert_eq!((off, len, cur, cur_off), (6 + 64 - 14, 74, chain, 56));
    // SAFETY: valid NB.
    unsafe { NdisAdvanceNetBufferDataStart(nb, 14, TRUE, Some(test_free)) };
    assert_eq!(fields(nb), before);
    assert_eq!(FREES.load(SeqCst), 2);
    drop(t);
    sim.finish();
}

#[test]
fn failed_allocation_leaves_the_nb_untouched() {
    let sim = start();
    let t = TestNbl::single(&[60], 0, 60);
    let nb = t.nb(0);
    let before = fields(nb);
    FAIL_CALL.store(1, SeqCst);
    assert_eq!(
        // SAFETY: valid NB.
        unsafe { NdisRetreatNetBufferDataStart(nb, 14, 0, Some(test_alloc)) },
        NDIS_STATUS_RESOURCES
    );
    assert_eq!(fields(nb), before);
    drop(t);
    sim.finish();
}

#[test]
fn default_allocator_is_one_nonpaged_block_freed_by_the_default_free() {
    let sim = start();
    let t = TestNbl::single(&[60], 0, 60);
    let nb = t.nb(0);
    let before = fields(nb);
    assert_eq!(
        // SAFETY: valid NB.
        unsafe { NdisRetreatNetBufferDataStart(nb, 14, 18, None) },
        NDIS_STATUS_SUCCESS
    );
    let head = fields(nb).0 as *mut MDL;
    // SAFETY: the default allocator's MDL.
    unsafe {
        assert_eq!((*head).ByteCount, 32);
        assert_ne!((*head).MdlFlags & MDL_SOURCE_IS_NONPAGED_POOL, 0);
        assert_eq!(
            (*head).MappedSystemVa as usize,
            (*head).StartVa as usize + (*head).ByteOffset as usize
        );
        NdisAdvanceNetBufferDataStart(nb, 14, TRUE, None);
    }
    assert_eq!(fields(nb), before);
    drop(t);
    sim.finish();
}

#[test]
fn free_mdl_true_frees_a_foreign_leading_mdl_by_geometry() {
    let sim = start();
    sim.expect_finding(rules::FOREIGN_MDL_FREED);
    // The upper layer's first MDL lies wholly in unused space (DataOffset 30 > 20).
    let t = TestNbl::single(&[20, 80], 30, 70);
    let nb = t.nb(0);
    // Fast-path retreat by 14, then an advance by 14 with FreeMdl=TRUE: NDIS unlinks the foreign
    // 20-byte MDL and hands it to our free routine.
    // SAFETY: valid NB.
    unsafe {
        assert_eq!(
            NdisRetreatNetBufferDataStart(nb, 14, 0, Some(test_alloc)),
            NDIS_STATUS_SUCCESS
        );
        NdisAdvanceNetBufferDataStart(nb, 14, TRUE, Some(counting_free));
    }
    assert_eq!(FREES.load(SeqCst), 1);
    let (chain, off, _, cur, cur_off) = fields(nb);
    assert_eq!(
        (chain, off, cur, cur_off),
        (t.mdls()[1] as usize, 10, t.mdls()[1] as usize, 10)
    );
    assert_eq!(sim.finding_count(rules::FOREIGN_MDL_FREED), 1);
    drop(t);
    sim.finish();
}

#[test]
fn list_retreat_rolls_back_earlier_nbs_through_the_free_handler() {
    let sim = start();
    let lay = NbLayout {
        mdl_lengths: vec![60],
        data_offset: 0,
        data_length: 60,
    };
    let t = TestNbl::new(&[lay.clone(), lay.clone(), lay]);
    let before: Vec<_> = (0..3).map(|i| fields(t.nb(i))).collect();
    FAIL_CALL.store(3, SeqCst);
    // SAFETY: valid NBL.
    let st = unsafe {
        NdisRetreatNetBufferListDataStart(t.nbl(), 14, 0, Some(test_alloc), Some(test_free))
    };
    assert_eq!(st, NDIS_STATUS_RESOURCES);
    assert_eq!(ALLOCS.load(SeqCst), 3);
    assert_eq!(
        FREES.load(SeqCst),
        2,
        "the two NBs already retreated were advanced with FreeMdl=TRUE"
    );
    let after: Vec<_> = (0..3).map(|i| fields(t.nb(i))).collect();
    assert_eq!(after, before);
    // Success path and the list advance.
    FAIL_CALL.store(0, SeqCst);
    // SAFETY: valid NBL.
    unsafe {
        assert_eq!(
            NdisRetreatNetBufferListDataStart(t.nbl(), 14, 0, Some(test_alloc), Some(test_free)),
            NDIS_STATUS_SUCCESS
        );
        NdisAdvanceNetBufferListDataStart(t.nbl(), 14, TRUE, Some(test_free));
    }
    assert_eq!(FREES.load(SeqCst), 5);
    let after: Vec<_> = (0..3).map(|i| fields(t.nb(i))).collect();
    assert_eq!(after, before);
    drop(t);
    sim.finish();
}

#[test]
fn list_retreat_with_one_handler_is_invalid_parameter() {
    let sim = start();
    let t = TestNbl::single(&[60], 0, 60);
    let before = fields(t.nb(0));
    // SAFETY: valid NBL.
    unsafe {
        assert_eq!(
            NdisRetreatNetBufferListDataStart(t.nbl(), 14, 0, Some(test_alloc), None),
            NDIS_STATUS_INVALID_PARAMETER
        );
        assert_eq!(
            NdisRetreatNetBufferListDataStart(t.nbl(), 14, 0, None, Some(test_free)),
            NDIS_STATUS_INVALID_PARAMETER
        );
    }
    assert_eq!(fields(t.nb(0)), before);
    assert_eq!(ALLOCS.load(SeqCst), 0);
    drop(t);
    sim.finish();
}

#[test]
fn adjust_current_mdl_recomputes_from_data_offset() {
    let sim = start();
    let t = TestNbl::single(&[10, 0, 20, 70], 30, 70);
    let nb = t.nb(0);
    // SAFETY: valid NB.
    unsafe {
        (*nb).CurrentMdl = t.mdls()[0];
        (*nb).CurrentMdlOffset = 0;
        NdisAdjustNetBufferCurrentMdl(nb);
    }
    // 30 = 10 + 0 + 20 exactly: the walk skips MDLs ending at the offset.
    assert_eq!((fields(nb).3, fields(nb).4), (t.mdls()[3] as usize, 0));
    drop(t);
    sim.finish();
}

#[test]
fn get_data_buffer_honours_alignment_and_length() {
    let sim = start();
    let t = TestNbl::single(&[64], 3, 61);
    let nb = t.nb(0);
    // SAFETY: valid NB.
    unsafe {
        let p = NdisGetDataBuffer(nb, 8, std::ptr::null_mut(), 1, 0) as *const u8;
        assert_eq!(*p, 3);
        // The buffer is 64-aligned, so +3 is not 4-aligned: no zero-copy, no storage → NULL.
        assert!(NdisGetDataBuffer(nb, 8, std::ptr::null_mut(), 4, 0).is_null());
        assert!(NdisGetDataBuffer(nb, 62, std::ptr::null_mut(), 1, 0).is_null());
        assert!(NdisGetDataBuffer(nb, 0, std::ptr::null_mut(), 1, 0).is_null());
    }
    drop(t);
    sim.finish();
}
