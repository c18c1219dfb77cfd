//! BENCHMARKS ONLY: helpers that let a benchmark charge the simulator's own costs to both sides of a
//! comparison. Nothing here changes what the simulator checks; every function refuses to run outside
//! `cargo bench` (the process must have been started with the `--bench` argument, which `cargo bench`
//! passes to every bench target and `cargo test` never passes), so a test cannot use it by accident.
//!
//! Why: with NULL allocate/free handlers, every retreat/advance goes through NDIS's default allocator,
//! which in ndis-sim is `ExAllocatePool2` + `ExFreePool` with the verifier's per-block bookkeeping (a
//! block table and an MDL-origin table behind one lock). A real kernel's pool has no such tables, so a
//! data-path A/B between a handler pair that never calls the system allocator on its fast path and the
//! NULL handlers charges that bookkeeping to one side only; the handler side in turn pays the
//! simulator's checks of a handler's MDL (a nonpaged check of the returned MDL, the retreat-MDL
//! registry). [`charge_default_mdl_bookkeeping`] and [`charge_handler_mdl_bookkeeping`] perform each
//! side's table work on a dummy entry, so a benchmark can charge each side the other's and both pay
//! the same.

use crate::mem;

/// Panics unless this process runs as a `cargo bench` target.
fn require_bench() {
    assert!(
        std::env::args().any(|a| a == "--bench"),
        "ndis_sim::bench_only is for `cargo bench` targets only (the process has no --bench argument)"
    );
}

/// Performs, on a dummy table entry that no real block can have, the bookkeeping one default-allocator
/// retreat plus its advance do in ndis-sim: the block-table insert of `ExAllocatePool2`, the MDL-origin
/// insert, the two nonpaged-pool lookups of `MmBuildMdlForNonPagedPool`, the default free's origin
/// lookup and forget, and the block's removal from both tables (`mem::default_allocate_mdl` /
/// `mem::default_free_mdl`). No memory is allocated, nothing is checked,
/// no finding can result. Panics outside `cargo bench`.
pub fn charge_default_mdl_bookkeeping() {
    require_bench();
    mem::bookkeeping_round();
}

/// Performs, on a dummy key, the simulator's own work around one handler retreat + advance: the two
/// nonpaged lookups of the check of the MDL `NetAllocateMdl` returned and the retreat-MDL registry
/// insert and removal (`nbl::retreat` / `nbl::call_free`). No finding can result. Panics outside
/// `cargo bench`.
pub fn charge_handler_mdl_bookkeeping() {
    require_bench();
    crate::nbl::handler_bookkeeping_round();
}
