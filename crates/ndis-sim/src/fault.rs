//! Fault injection for the simulator's allocation routines.
//!
//! Every allocating routine asks `should_fail` with its [`AllocSite`] before allocating; a test arms
//! sites with [`FaultRule`]s through [`crate::SimGuard::inject`]. Rules are by count (fail the n-th
//! call, every n-th, all from the n-th), by seeded rate (deterministic per call index), or by
//! predicate over the request. The driver's own pool is not covered here: it injects into itself
//! through its configuration.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// An allocation routine of the simulated kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllocSite {
    /// ExAllocatePool2 / NdisAllocateMemoryWithTagPriority.
    Pool,
    /// NdisAllocateNetBufferListPool / NdisAllocateNetBufferPool.
    NblPool,
    /// NdisAllocateNetBufferList / NdisAllocateNetBufferAndNetBufferList.
    Nbl,
    /// NdisAllocateNetBuffer.
    Nb,
    /// NdisAllocateMdl.
    Mdl,
    /// NdisAllocateNetBufferListContext (when it must allocate).
    NblContext,
    /// NdisAllocateCloneOidRequest.
    CloneOid,
    /// NDIS's default retreat allocator (retreat with a NULL AllocateMdlHandler).
    DefaultRetreatMdl,
    /// NdisAllocateTimerObject.
    Timer,
    /// NdisOpenConfigurationEx.
    Config,
    /// MmMapLockedPagesSpecifyCache (a system-space mapping of a locked MDL).
    MapLockedPages,
}

/// What an allocation asked for, given to predicates.
#[derive(Clone, Copy, Debug)]
pub struct AllocRequest {
    /// The routine.
    pub site: AllocSite,
    /// Bytes requested (0 where not meaningful).
    pub size: usize,
    /// Pool tag (0 where not meaningful).
    pub tag: u32,
    /// Virtual CPU of the caller.
    pub cpu: usize,
    /// 0-based index of this call among the calls at this site since the simulation started.
    pub index: u64,
}

/// When an armed site fails.
#[derive(Clone)]
pub enum FaultRule {
    /// Fail only the call with this 0-based index.
    Nth(u64),
    /// Fail every call from this 0-based index on.
    From(u64),
    /// Fail calls whose index is a multiple of n (n >= 1), starting with index n-1.
    Every(u64),
    /// Fail each call with probability `per_million / 1e6`, decided by a hash of (seed, index).
    Rate {
        /// Failures per million calls.
        per_million: u32,
        /// Seed; the same seed and call order fail the same calls.
        seed: u64,
    },
    /// Fail when the predicate says so.
    When(Arc<dyn Fn(&AllocRequest) -> bool + Send + Sync>),
}

impl std::fmt::Debug for FaultRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FaultRule::Nth(n) => write!(f, "Nth({n})"),
            FaultRule::From(n) => write!(f, "From({n})"),
            FaultRule::Every(n) => write!(f, "Every({n})"),
            FaultRule::Rate { per_million, seed } => {
                write!(f, "Rate({per_million}/1e6, seed {seed})")
            }
            FaultRule::When(_) => write!(f, "When(<predicate>)"),
        }
    }
}

/// SplitMix64: the simulator's only source of pseudo-randomness (seeded, no global state).
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl FaultRule {
    fn fires(&self, req: &AllocRequest) -> bool {
        match self {
            FaultRule::Nth(n) => req.index == *n,
            FaultRule::From(n) => req.index >= *n,
            FaultRule::Every(n) => *n >= 1 && (req.index + 1).is_multiple_of(*n),
            FaultRule::Rate { per_million, seed } => {
                splitmix64(seed ^ splitmix64(req.index ^ ((req.site as u64) << 56))) % 1_000_000
                    < *per_million as u64
            }
            FaultRule::When(p) => p(req),
        }
    }
}

#[derive(Default)]
struct Table {
    rules: HashMap<AllocSite, Vec<FaultRule>>,
    calls: HashMap<AllocSite, u64>,
    failed: HashMap<AllocSite, u64>,
}

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(|| Mutex::new(Table::default()));

fn table() -> std::sync::MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn reset() {
    *table() = Table::default();
}

pub(crate) fn arm(site: AllocSite, rule: FaultRule) {
    table().rules.entry(site).or_default().push(rule);
}

pub(crate) fn disarm(site: AllocSite) {
    table().rules.remove(&site);
}

/// Decides whether this allocation fails, and counts it.
pub(crate) fn should_fail(site: AllocSite, size: usize, tag: u32) -> bool {
    let rules = {
        let mut t = table();
        let idx = *t.calls.get(&site).unwrap_or(&0);
        t.calls.insert(site, idx + 1);
        match t.rules.get(&site) {
            None => return false,
            Some(r) => (r.clone(), idx),
        }
    };
    let req = AllocRequest {
        site,
        size,
        tag,
        cpu: crate::cpu::current_cpu(),
        index: rules.1,
    };
    // The predicate runs without the table lock held.
    let fail = rules.0.iter().any(|r| r.fires(&req));
    if fail {
        *table().failed.entry(site).or_default() += 1;
        crate::verifier::log(format!(
            "[fault] injected failure at {site:?} call #{} (size {size}, tag {tag:#x})",
            req.index
        ));
    }
    fail
}

/// (calls, injected failures) at `site` so far.
pub(crate) fn stats(site: AllocSite) -> (u64, u64) {
    let t = table();
    (
        *t.calls.get(&site).unwrap_or(&0),
        *t.failed.get(&site).unwrap_or(&0),
    )
}
