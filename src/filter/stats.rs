//! Per-module data-path statistics (DESIGN §5, issue 5 item 6): a `#[repr(C)]` block of relaxed atomic
//! counters inside each module context, next to the pool's statistics, which a later issue exports to
//! WinDbg (natvis / JS) by its field names. Every hot-path caller accumulates into a local
//! [`Tally`] and adds it once per call, so each counter costs at most one relaxed RMW per callback.
//!
//! The counter list (names, order, docs) is written once, in `mdlpool_names::filter_counters!`, which
//! also generates the block and its snapshot / accumulate code; this module adds the [`Tally`].
//!
//! Owns only the counters; must not decide anything from them.

use core::sync::atomic::{AtomicU64, Ordering};

/// Version of the layout below, for the debugger scripts.
pub const FILTER_STATS_VERSION: u32 = 1;

mdlpool_names::filter_counters!(
    /// Statistics of one filter module: the 22 counters of `mdlpool_names::filter_counters!`, each an
    /// `AtomicU64`, in that order (`#[repr(C)]`; the debugger reads them by name, src/stats/mod.rs pins the
    /// layout). All counters only grow (until the module detaches). The macro also generates
    /// `new_const`, `values`, `snapshot` (into [`FilterStatsSnapshot`]) and `accumulate_into`.
    pub struct FilterStats snapshot FilterStatsSnapshot
);

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
