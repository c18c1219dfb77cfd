//! The per-CPU lookaside pool behind NetAllocateMdl / NetFreeMdl (DESIGN §3).
//!
//! Owns: size classes, the per-CPU magazine layer, the depot, bounded retention (magazine size, depot
//! limit, working-set trim), flush and destroy, statistics and the fault-injection knob. It is generic
//! over [`Platform`], so the same code runs in the kernel ([`KernelPlatform`]), under loom, under Miri and
//! in benchmarks. It must not know about NDIS beyond the `MDL` it hands out, and must never panic on a
//! kernel path: every failure is a NULL return or a counted, reported value.
//!
//! Tiers (Bonwick & Adams 2001): each CPU has, per size class, a *loaded* and a *previous* magazine (a
//! bounded LIFO array of block pointers). Allocation pops from *loaded*; when it is empty and *previous*
//! is not, the two swap; when both are empty the CPU trades its empty *previous* for a full magazine from
//! the depot; when the depot has none, a block is constructed from the system. Frees mirror this, trading
//! a full *previous* for an empty depot magazine and returning the block to the system when the depot
//! already holds its limit of full magazines. A free on another CPU is an ordinary push onto the freeing
//! CPU's magazine. The per-CPU access runs at DISPATCH_LEVEL and is a plain load/store; the depot is a
//! spin lock touched once per M operations.
//!
//! Every block is at all times in exactly one of: in flight, a per-CPU magazine, a depot magazine, or
//! returned to the system. Memory retained per class is at most `(2 * cpus + depot_limit) * M` blocks.
//!
//! Runtime limits ([`Pool::set_limits`]): the magazine fill M, the depot limit and the trim interval can
//! be changed while the pool runs, within the room allocated at creation (`magazine_capacity`,
//! `depot_capacity`). They are read once per magazine exchange (the slow path), never per allocation or
//! free. The retention bound above holds with the allocated room in place of the limits at all times;
//! with the limits in force, for what is cached after the change (a magazine filled before it keeps
//! its blocks until it is next used, trimmed or flushed).
//!
//! Size rule (DESIGN §3/§4): the pool never rounds a request up. The MDL's `ByteCount` is set to the
//! requested size exactly and `*BufferSize` is left as requested, so the two always agree; the block's
//! extra capacity beyond the request is simply unused.

mod block;
mod platform;
mod stats;
mod sync;

mod kernel;

#[cfg(test)]
mod host;
#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(test)]
mod tests;

pub use block::{class_block_bytes, Rejected, HEADER_BYTES};
pub use kernel::KernelPlatform;
pub use platform::Platform;
pub use stats::{ClassCounters, ClassSnapshot, PoolSnapshot};

use block::{BlockHeader, OVERSIZE_CLASS};
use core::fmt;
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{
    AtomicBool as CoreAtomicBool, AtomicU32, AtomicU64, Ordering as CoreOrdering,
};
use ndis_sys::{MDL, PAGE_SIZE};
use sync::{SpinLocked, UnsafeCell};

/// Most size classes a pool can have.
pub const MAX_CLASSES: usize = 8;
/// Largest magazine size accepted.
pub const MAX_MAGAZINE: u32 = 1024;
/// Largest depot limit accepted (magazines per class).
pub const MAX_DEPOT_LIMIT: u32 = 4096;
/// Largest request served (oversize blocks above the largest class, up to this).
pub const MAX_REQUEST_LIMIT: u32 = 1 << 20;
/// The default size classes: header + backfill sizes, each block below a page.
pub const DEFAULT_CLASSES: [u32; 6] = [64, 128, 256, 512, 1024, 2048];

const LUT_LEN: usize = PAGE_SIZE / 16 + 1;
/// `class_lut` value for a size no class serves.
const NO_CLASS: u8 = 0xFF;

/// Fault injection for tests of the callers' failure paths. Off by default; when off it costs one
/// predictable branch per allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultConfig {
    /// Fail every Nth allocation request (counted over the whole pool), 0 = never.
    pub fail_every_nth: u32,
    /// Fail allocations with this probability in parts per million, drawn from a hash of `seed` and the
    /// request number (deterministic for a given order of requests), 0 = never.
    pub fail_rate_ppm: u32,
    /// Seed of the `fail_rate_ppm` draw.
    pub seed: u64,
}

impl FaultConfig {
    /// Whether any injection is enabled.
    pub fn armed(&self) -> bool {
        self.fail_every_nth != 0 || self.fail_rate_ppm != 0
    }
}

/// Pool configuration (DESIGN §3). The registry values of the same names map onto these fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// M: blocks per magazine, 1..=[`MAX_MAGAZINE`].
    pub magazine_size: u32,
    /// Magazines the depot keeps per class (full or empty), 0..=[`MAX_DEPOT_LIMIT`]. Bounds the full
    /// magazines the depot can hold.
    pub depot_limit: u32,
    /// How often the owner should call [`Pool::trim`], in milliseconds (10..=600000). The pool does not
    /// run a timer itself. Runtime-adjustable ([`Pool::set_limits`]).
    pub trim_interval_ms: u32,
    /// Block slots allocated per magazine: the most `magazine_size` can be raised to at run time
    /// ([`Pool::set_limits`]). 0 = `magazine_size`; otherwise `magazine_size..=`[`MAX_MAGAZINE`].
    pub magazine_capacity: u32,
    /// Spare magazines allocated per class for the depot: the most `depot_limit` can be raised to at
    /// run time. 0 = `depot_limit`; otherwise `depot_limit..=`[`MAX_DEPOT_LIMIT`].
    pub depot_capacity: u32,
    /// Data sizes of the classes, ascending, multiples of 16, each block below a page; the first
    /// `class_count` entries are used.
    pub classes: [u32; MAX_CLASSES],
    /// Number of classes in use, 1..=[`MAX_CLASSES`].
    pub class_count: u8,
    /// Largest request served (oversize above the largest class), largest class..=[`MAX_REQUEST_LIMIT`].
    pub max_request: u32,
    /// Fault injection (off by default).
    pub fault: FaultConfig,
}

impl Default for PoolConfig {
    fn default() -> Self {
        let mut classes = [0; MAX_CLASSES];
        classes[..DEFAULT_CLASSES.len()].copy_from_slice(&DEFAULT_CLASSES);
        Self {
            magazine_size: 32,
            depot_limit: 16,
            trim_interval_ms: 1000,
            magazine_capacity: 0,
            depot_capacity: 0,
            classes,
            class_count: DEFAULT_CLASSES.len() as u8,
            max_request: 64 * 1024,
            fault: FaultConfig::default(),
        }
    }
}

impl PoolConfig {
    /// The classes in use.
    pub fn class_sizes(&self) -> &[u32] {
        &self.classes[..(self.class_count as usize).min(MAX_CLASSES)]
    }

    /// Replaces the classes. Fails if more than [`MAX_CLASSES`] are given.
    pub fn with_classes(mut self, sizes: &[u32]) -> Result<Self, PoolError> {
        if sizes.is_empty() || sizes.len() > MAX_CLASSES {
            return Err(PoolError::InvalidConfig("class count"));
        }
        self.classes = [0; MAX_CLASSES];
        self.classes[..sizes.len()].copy_from_slice(sizes);
        self.class_count = sizes.len() as u8;
        Ok(self)
    }

    /// Slots allocated per magazine (`magazine_capacity`, or `magazine_size` when 0).
    pub fn magazine_slots(&self) -> u32 {
        self.magazine_capacity.max(self.magazine_size)
    }

    /// Depot magazines allocated per class (`depot_capacity`, or `depot_limit` when 0).
    pub fn depot_magazines(&self) -> u32 {
        self.depot_capacity.max(self.depot_limit)
    }

    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<(), PoolError> {
        if self.magazine_size == 0 || self.magazine_size > MAX_MAGAZINE {
            return Err(PoolError::InvalidConfig("magazine_size"));
        }
        if self.depot_limit > MAX_DEPOT_LIMIT {
            return Err(PoolError::InvalidConfig("depot_limit"));
        }
        if self.magazine_capacity != 0
            && !(self.magazine_size..=MAX_MAGAZINE).contains(&self.magazine_capacity)
        {
            return Err(PoolError::InvalidConfig("magazine_capacity"));
        }
        if self.depot_capacity != 0
            && !(self.depot_limit..=MAX_DEPOT_LIMIT).contains(&self.depot_capacity)
        {
            return Err(PoolError::InvalidConfig("depot_capacity"));
        }
        if !(10..=600_000).contains(&self.trim_interval_ms) {
            return Err(PoolError::InvalidConfig("trim_interval_ms"));
        }
        let n = self.class_count as usize;
        if n == 0 || n > MAX_CLASSES {
            return Err(PoolError::InvalidConfig("class_count"));
        }
        let mut prev = 0;
        for &c in self.class_sizes() {
            if c < 16 || c % 16 != 0 || c <= prev || class_block_bytes(c as usize) > PAGE_SIZE {
                return Err(PoolError::InvalidConfig("classes"));
            }
            prev = c;
        }
        if self.max_request < prev || self.max_request > MAX_REQUEST_LIMIT {
            return Err(PoolError::InvalidConfig("max_request"));
        }
        if self.fault.fail_rate_ppm > 1_000_000 {
            return Err(PoolError::InvalidConfig("fail_rate_ppm"));
        }
        Ok(())
    }
}

/// Why a pool could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// A configuration field is out of range (its name).
    InvalidConfig(&'static str),
    /// The platform reported no processors.
    NoProcessors,
    /// The platform had no memory for the pool's own structures.
    NoMemory,
    /// A pool is already installed (handlers).
    AlreadyInstalled,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::InvalidConfig(field) => write!(f, "invalid pool configuration: {field}"),
            PoolError::NoProcessors => f.write_str("no processors reported"),
            PoolError::NoMemory => f.write_str("no memory for the pool"),
            PoolError::AlreadyInstalled => f.write_str("a pool is already installed"),
        }
    }
}

/// What [`Pool::destroy`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeakReport {
    /// Blocks still in flight; they were NOT freed (their memory is leaked, never reused).
    pub in_flight_blocks: u64,
    /// Bytes of those blocks.
    pub in_flight_bytes: u64,
    /// In-flight blocks per row (classes, then the oversize row at index `class_count`).
    pub in_flight_by_class: [u64; MAX_CLASSES + 1],
    /// Blocks that existed after the final flush; equals `in_flight_blocks` unless a block was lost.
    pub live_blocks: u64,
    /// Foreign MDLs that were handed to free over the pool's life.
    pub foreign_frees: u64,
    /// Double frees over the pool's life.
    pub double_frees: u64,
}

impl LeakReport {
    /// No block in flight and no block unaccounted for.
    pub fn is_clean(&self) -> bool {
        self.in_flight_blocks == 0 && self.live_blocks == 0
    }
}

/// The runtime-adjustable retention limits ([`Pool::set_limits`], [`Pool::limits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Blocks a magazine is filled to, 1..=the allocated slots (`PoolConfig::magazine_slots`).
    pub magazine_fill: u32,
    /// Full magazines the depot keeps per class, 0..=the allocated depot magazines
    /// (`PoolConfig::depot_magazines`).
    pub depot_limit: u32,
    /// How often the owner should call [`Pool::trim`], 10..=600000 ms (the pool runs no timer).
    pub trim_interval_ms: u32,
}

/// What one trim or flush released.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Released {
    pub blocks: u64,
    pub bytes: u64,
}

/// A magazine: header, then `capacity` block pointers. Lives in the pool's magazine region.
#[repr(C)]
struct Magazine {
    /// Link in a depot list.
    next: *mut Magazine,
    count: u32,
    capacity: u32,
}

const MAG_HEADER: usize = core::mem::size_of::<Magazine>();

impl Magazine {
    #[inline(always)]
    fn slots(this: *mut Magazine) -> *mut *mut BlockHeader {
        this.cast::<u8>().wrapping_add(MAG_HEADER).cast()
    }
}

/// One CPU's magazines for one class, with the loaded magazine's fill and capacity kept here, beside the
/// pointer, so that the fast path reads and writes one line for its magazine state (the slot it pops or
/// pushes is the only magazine memory it touches). While a magazine is loaded, `count`/`capacity` here
/// are its true values and its own header's are stale; every exchange (`pop_slow`, `push_slow`) and every
/// drain writes them back first ([`ClassCache::stash`]) and reloads them after ([`ClassCache::reload`]).
#[repr(C)]
#[derive(Clone, Copy)]
struct ClassCache {
    loaded: *mut Magazine,
    previous: *mut Magazine,
    count: u32,
    capacity: u32,
}

impl ClassCache {
    /// Writes the loaded magazine's fill and capacity back into its header.
    ///
    /// # Safety
    /// `loaded` is a real magazine owned by this cache.
    #[inline(always)]
    unsafe fn stash(&mut self) {
        // SAFETY: (caller) the loaded magazine is ours.
        unsafe {
            (*self.loaded).count = self.count;
            (*self.loaded).capacity = self.capacity;
        }
    }

    /// Takes the loaded magazine's fill and capacity from its header.
    ///
    /// # Safety
    /// As [`ClassCache::stash`].
    #[inline(always)]
    unsafe fn reload(&mut self) {
        // SAFETY: (caller) the loaded magazine is ours.
        unsafe {
            self.count = (*self.loaded).count;
            self.capacity = (*self.loaded).capacity;
        }
    }
}

/// One CPU's magazines for every class, on their own cache lines.
#[repr(C, align(64))]
struct CpuCache {
    classes: UnsafeCell<[ClassCache; MAX_CLASSES]>,
}

/// One CPU's counters: one [`ClassCounters`] per class, then the oversize row (index `class_count`; rows
/// past it are zero). Cache-line aligned; the array of these, one per CPU, is what the debugger reads.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct CpuCounters {
    pub classes: [ClassCounters; MAX_CLASSES + 1],
}

struct DepotLists {
    full: *mut Magazine,
    empty: *mut Magazine,
    nfull: u32,
    nempty: u32,
    /// Fewest full magazines seen since the last trim (Bonwick's working-set low-water mark).
    min_full: u32,
}

/// Per-class depot: lists of full and empty magazines behind a spin lock taken at DISPATCH_LEVEL.
#[repr(C, align(64))]
struct Depot {
    lists: SpinLocked<DepotLists>,
}

/// Slow-path counters shared by all CPUs of one row: changed only when a block is constructed or returned
/// to the system.
#[derive(Default)]
struct Shared {
    live: AtomicU64,
    high_water: AtomicU64,
}

static POOL_SERIAL: AtomicU64 = AtomicU64::new(1);

/// The pool. Created by [`Pool::create`], which places it in platform memory and returns a [`PoolHandle`].
///
/// `#[repr(C)]` with the fields every allocation and free reads first, so the hot path touches one line
/// of this structure (plus the class table's first line for small requests).
#[repr(C)]
pub struct Pool<P: Platform> {
    caches: *mut CpuCache,
    counters: *mut CpuCounters,
    ncpu: usize,
    nclass: usize,
    /// Magic of this pool's blocks (differs per pool instance, so a stale block of an earlier pool at the
    /// same address is not taken for ours).
    magic: u32,
    /// Allocated slots per magazine (the hard bound of every magazine's fill limit).
    magazine_size: u32,
    max_request: u32,
    fault_armed: bool,
    /// Current [`Limits`]: read once per magazine exchange (slow path), never per allocation/free.
    fill_limit: AtomicU32,
    depot_limit_now: AtomicU32,
    trim_interval_now: AtomicU32,
    /// Allocated depot magazines per class (the hard bound of `depot_limit_now`).
    depot_magazines: u32,
    platform: P,
    class_lut: [u8; LUT_LEN],
    class_size: [u32; MAX_CLASSES],
    block_bytes: [u32; MAX_CLASSES],
    config: PoolConfig,
    caches_region: (*mut u8, usize),
    counters_region: (*mut u8, usize),
    mags_region: (*mut u8, usize),
    self_region: (*mut u8, usize),
    depots: [Depot; MAX_CLASSES],
    shared: [Shared; MAX_CLASSES + 1],
    foreign_frees: AtomicU64,
    double_frees: AtomicU64,
    bad_cpu: AtomicU64,
    reported_foreign: CoreAtomicBool,
    reported_double: CoreAtomicBool,
    fault_counter: AtomicU64,
}

// SAFETY: the raw pointers are owned regions of platform memory; all shared mutation goes through the
// depot lock, per-CPU exclusivity (Platform contract) or atomics.
unsafe impl<P: Platform> Send for Pool<P> {}
// SAFETY: as above.
unsafe impl<P: Platform> Sync for Pool<P> {}

/// Owning handle of a pool placed in platform memory. Dropping it destroys the pool (discarding the leak
/// report); call [`PoolHandle::destroy`] to get the report.
pub struct PoolHandle<P: Platform> {
    pool: NonNull<Pool<P>>,
}

// SAFETY: the handle is a unique owner of a `Pool`, which is Send + Sync.
unsafe impl<P: Platform> Send for PoolHandle<P> {}
// SAFETY: as above.
unsafe impl<P: Platform> Sync for PoolHandle<P> {}

impl<P: Platform> core::ops::Deref for PoolHandle<P> {
    type Target = Pool<P>;
    fn deref(&self) -> &Pool<P> {
        // SAFETY: the handle keeps the pool alive until it is destroyed.
        unsafe { self.pool.as_ref() }
    }
}

impl<P: Platform> PoolHandle<P> {
    /// Gives up ownership; pair with [`PoolHandle::from_raw`].
    pub fn into_raw(self) -> *mut Pool<P> {
        let p = self.pool.as_ptr();
        core::mem::forget(self);
        p
    }

    /// Takes ownership back.
    ///
    /// # Safety
    /// `pool` came from [`PoolHandle::into_raw`] and is not owned by anything else.
    pub unsafe fn from_raw(pool: *mut Pool<P>) -> Option<Self> {
        NonNull::new(pool).map(|pool| Self { pool })
    }

    /// Flushes every tier, reports blocks still in flight (without freeing them) and frees the pool.
    /// PASSIVE_LEVEL or DISPATCH_LEVEL; no other call on this pool may run concurrently or follow.
    pub fn destroy(self) -> LeakReport {
        let p = self.into_raw();
        // SAFETY: we own the pool uniquely (the handle was consumed).
        unsafe { Pool::destroy_raw(p) }
    }
}

impl<P: Platform> Drop for PoolHandle<P> {
    fn drop(&mut self) {
        // SAFETY: the handle owns the pool uniquely and is going away.
        unsafe { Pool::destroy_raw(self.pool.as_ptr()) };
    }
}

/// Allocates `bytes` (plus slack) from the platform and returns (aligned pointer, (base, total)).
fn alloc_aligned<P: Platform>(
    platform: &P,
    bytes: usize,
    align: usize,
) -> Option<(*mut u8, (*mut u8, usize))> {
    let total = bytes.checked_add(align)?;
    let base = platform.alloc_block(total);
    if base.is_null() {
        return None;
    }
    let pad = base.align_offset(align);
    if pad >= align {
        // SAFETY: `base` came from alloc_block(total).
        unsafe { platform.free_block(base, total) };
        return None;
    }
    // SAFETY: pad < align, so the aligned pointer and `bytes` after it stay inside `total`.
    Some((unsafe { base.add(pad) }, (base, total)))
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl<P: Platform> Pool<P> {
    /// Creates a pool sized for `platform.max_cpus()` processors. PASSIVE_LEVEL (or DISPATCH_LEVEL: it
    /// only allocates nonpaged memory). No block is constructed until the first allocation.
    pub fn create(platform: P, config: &PoolConfig) -> Result<PoolHandle<P>, PoolError> {
        config.validate()?;
        let ncpu = platform.max_cpus();
        if ncpu == 0 || ncpu > 1 << 16 {
            return Err(PoolError::NoProcessors);
        }
        let nclass = config.class_count as usize;
        let m = config.magazine_slots() as usize;
        // Whole cache lines per magazine: a magazine moves between CPUs through the depot, and two CPUs'
        // magazines must never share a line (one CPU's pushes would invalidate the other's pops).
        let mag_bytes =
            (MAG_HEADER + m * core::mem::size_of::<*mut BlockHeader>()).next_multiple_of(64);
        let mags_per_class = 2 * ncpu + config.depot_magazines() as usize;

        let mut class_lut = [NO_CLASS; LUT_LEN];
        let mut class_size = [0u32; MAX_CLASSES];
        let mut block_bytes = [0u32; MAX_CLASSES];
        let mut lo = 1usize;
        for (i, &c) in config.class_sizes().iter().enumerate() {
            class_size[i] = c;
            block_bytes[i] = class_block_bytes(c as usize) as u32;
            let hi = c as usize / 16;
            for slot in class_lut.iter_mut().take(hi + 1).skip(lo) {
                *slot = i as u8;
            }
            lo = hi + 1;
        }

        let (self_ptr, self_region) = alloc_aligned(&platform, core::mem::size_of::<Pool<P>>(), 64)
            .ok_or(PoolError::NoMemory)?;
        let caches = alloc_aligned(&platform, ncpu * core::mem::size_of::<CpuCache>(), 64);
        let counters = alloc_aligned(&platform, ncpu * core::mem::size_of::<CpuCounters>(), 64);
        let mags = alloc_aligned(&platform, nclass * mags_per_class * mag_bytes, 64);
        let (
            Some((caches, caches_region)),
            Some((counters, counters_region)),
            Some((mags, mags_region)),
        ) = (caches, counters, mags)
        else {
            for (_, (base, total)) in [Some((self_ptr, self_region)), caches, counters, mags]
                .into_iter()
                .flatten()
            {
                // SAFETY: each region came from alloc_block(total) and was never used.
                unsafe { platform.free_block(base, total) };
            }
            return Err(PoolError::NoMemory);
        };
        let caches = caches.cast::<CpuCache>();
        let counters = counters.cast::<CpuCounters>();

        // Magazines: class c owns `mags_per_class` consecutive magazines: the first 2*ncpu are the CPUs'
        // loaded/previous pairs, the rest start on the depot's empty list.
        let mag_at = |class: usize, i: usize| -> *mut Magazine {
            // SAFETY (of the arithmetic): the index is below nclass * mags_per_class.
            mags.wrapping_add((class * mags_per_class + i) * mag_bytes)
                .cast::<Magazine>()
        };
        for class in 0..nclass {
            for i in 0..mags_per_class {
                // SAFETY: the magazine lies inside the fresh magazine region, 8-aligned.
                unsafe {
                    mag_at(class, i).write(Magazine {
                        next: null_mut(),
                        count: 0,
                        capacity: config.magazine_size,
                    })
                };
            }
        }
        for cpu in 0..ncpu {
            let mut cc = [ClassCache {
                loaded: null_mut(),
                previous: null_mut(),
                count: 0,
                capacity: 0,
            }; MAX_CLASSES];
            for (class, c) in cc.iter_mut().enumerate().take(nclass) {
                c.loaded = mag_at(class, 2 * cpu);
                c.previous = mag_at(class, 2 * cpu + 1);
                c.capacity = config.magazine_size;
            }
            // SAFETY: `caches` holds ncpu CpuCache slots, 64-aligned, fresh.
            unsafe {
                caches.add(cpu).write(CpuCache {
                    classes: UnsafeCell::new(cc),
                })
            };
            // SAFETY: as above for the counters array.
            unsafe { counters.add(cpu).write(CpuCounters::default()) };
        }
        let depots: [Depot; MAX_CLASSES] = core::array::from_fn(|class| {
            let mut empty = null_mut();
            let mut nempty = 0;
            if class < nclass {
                for i in (2 * ncpu..mags_per_class).rev() {
                    let mg = mag_at(class, i);
                    // SAFETY: initialised above; not yet shared.
                    unsafe { (*mg).next = empty };
                    empty = mg;
                    nempty += 1;
                }
            }
            Depot {
                lists: SpinLocked::new(DepotLists {
                    full: null_mut(),
                    empty,
                    nfull: 0,
                    nempty,
                    min_full: 0,
                }),
            }
        });
        let serial = POOL_SERIAL.fetch_add(1, CoreOrdering::Relaxed);
        let magic = block::BLOCK_MAGIC ^ ((splitmix64(serial) as u32) & 0xFFFF_0000);
        let pool = self_ptr.cast::<Pool<P>>();
        // SAFETY: `self_ptr` is a fresh 64-aligned region of size_of::<Pool<P>>() bytes.
        unsafe {
            pool.write(Pool {
                platform,
                config: *config,
                max_request: config.max_request,
                magic,
                ncpu,
                nclass,
                magazine_size: m as u32,
                fault_armed: config.fault.armed(),
                fill_limit: AtomicU32::new(config.magazine_size),
                depot_limit_now: AtomicU32::new(config.depot_limit),
                trim_interval_now: AtomicU32::new(config.trim_interval_ms),
                depot_magazines: config.depot_magazines(),
                class_lut,
                class_size,
                block_bytes,
                caches,
                caches_region,
                counters,
                counters_region,
                mags_region,
                self_region,
                depots,
                shared: Default::default(),
                foreign_frees: AtomicU64::new(0),
                double_frees: AtomicU64::new(0),
                bad_cpu: AtomicU64::new(0),
                reported_foreign: CoreAtomicBool::new(false),
                reported_double: CoreAtomicBool::new(false),
                fault_counter: AtomicU64::new(0),
            })
        };
        Ok(PoolHandle {
            // SAFETY: just written, non-null.
            pool: unsafe { NonNull::new_unchecked(pool) },
        })
    }

    /// The platform the pool runs on.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The configuration the pool was created with (the limits in force now: [`Pool::limits`]).
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// The retention limits in force now. Any IRQL.
    pub fn limits(&self) -> Limits {
        Limits {
            magazine_fill: self.fill_limit.load(CoreOrdering::Relaxed),
            depot_limit: self.depot_limit_now.load(CoreOrdering::Relaxed),
            trim_interval_ms: self.trim_interval_now.load(CoreOrdering::Relaxed),
        }
    }

    /// Changes the retention limits at run time; each is clamped to what the pool allocated
    /// (`magazine_fill` to 1..=allocated slots, `depot_limit` to 0..=allocated depot magazines,
    /// `trim_interval_ms` to 10..=600000). Returns the limits applied.
    ///
    /// When they take effect: the depot limit at once (full magazines above a lowered limit are
    /// released to the system now, counted as trimmed; a free that would put a full magazine above it
    /// returns its block to the system); the magazine fill at each CPU's next magazine exchange (a
    /// CPU's own pair is touched only by that CPU) and for every magazine taken from the depot after
    /// now; the trim interval is only stored (the owner's timer reads it). The allocation and free
    /// fast paths do not read the limits. IRQL <= DISPATCH_LEVEL, any CPU.
    pub fn set_limits(&self, want: Limits) -> Limits {
        let applied = Limits {
            magazine_fill: want.magazine_fill.clamp(1, self.magazine_size),
            depot_limit: want.depot_limit.min(self.depot_magazines),
            trim_interval_ms: want.trim_interval_ms.clamp(10, 600_000),
        };
        self.fill_limit
            .store(applied.magazine_fill, CoreOrdering::Relaxed);
        self.depot_limit_now
            .store(applied.depot_limit, CoreOrdering::Relaxed);
        self.trim_interval_now
            .store(applied.trim_interval_ms, CoreOrdering::Relaxed);
        self.on_cpu(|cpu| {
            for class in 0..self.nclass {
                let excess =
                    self.with_depot(class, |d| d.nfull.saturating_sub(applied.depot_limit));
                if excess != 0 {
                    let n = self.release_depot(class, Some(excess));
                    let ctr = self.counters_of(cpu, class);
                    stats::add(&ctr.system_frees, n);
                    stats::add(&ctr.trimmed, n);
                }
            }
        });
        applied
    }

    /// CPUs the per-CPU arrays were sized for.
    pub fn cpus(&self) -> usize {
        self.ncpu
    }

    /// Whole-block size of class `class` (0 if out of range).
    pub fn block_bytes(&self, class: usize) -> usize {
        self.block_bytes.get(class).copied().unwrap_or(0) as usize
    }

    /// The most blocks the pool can ever retain for one class, whatever the limits: `(2 * cpus +
    /// allocated depot magazines) * allocated slots` (with no capacities configured, `(2 * cpus +
    /// depot_limit) * M`).
    pub fn retention_cap_blocks(&self) -> u64 {
        (2 * self.ncpu as u64 + self.depot_magazines as u64) * self.magazine_size as u64
    }

    /// The most bytes the pool can retain over all classes.
    pub fn retention_cap_bytes(&self) -> u64 {
        let per = self.retention_cap_blocks();
        self.block_bytes[..self.nclass]
            .iter()
            .map(|&b| per * b as u64)
            .sum()
    }

    /// What an idle pool retains after trim has released the depot: at most the per-CPU tier,
    /// `2 * cpus * M` blocks of each class.
    pub fn working_set_bound_bytes(&self) -> u64 {
        let per = 2 * self.ncpu as u64 * self.magazine_size as u64;
        self.block_bytes[..self.nclass]
            .iter()
            .map(|&b| per * b as u64)
            .sum()
    }

    #[inline(always)]
    fn counters_of(&self, cpu: usize, row: usize) -> &ClassCounters {
        // SAFETY: cpu < ncpu and row <= MAX_CLASSES are checked by every caller; the array lives as long as
        // the pool.
        unsafe { &(*self.counters.add(cpu)).classes[row] }
    }

    /// Class index for a request: `Some(class)`, `None` for an oversize request; `Err` if unservable.
    #[inline(always)]
    pub(crate) fn class_for(&self, size: u32) -> Result<Option<usize>, ()> {
        let idx = (size as usize).wrapping_add(15) >> 4;
        match self.class_lut.get(idx) {
            Some(&c) if size != 0 && c != NO_CLASS => Ok(Some(c as usize)),
            _ if size != 0 && size <= self.max_request => Ok(None),
            _ => Err(()),
        }
    }

    fn inject_fault(&self) -> bool {
        let n = self.fault_counter.fetch_add(1, CoreOrdering::Relaxed) + 1;
        let f = &self.config.fault;
        if f.fail_every_nth != 0 && n.is_multiple_of(f.fail_every_nth as u64) {
            return true;
        }
        f.fail_rate_ppm != 0 && splitmix64(f.seed ^ n) % 1_000_000 < f.fail_rate_ppm as u64
    }

    /// Runs `f(cpu)` at DISPATCH_LEVEL on the current CPU, or counts a bad CPU index and returns None.
    #[inline(always)]
    fn on_cpu<R>(&self, f: impl FnOnce(usize) -> R) -> Option<R> {
        let old = self.platform.raise_to_dispatch();
        let cpu = self.platform.current_cpu();
        let r = if cpu < self.ncpu {
            Some(f(cpu))
        } else {
            self.bad_cpu.fetch_add(1, CoreOrdering::Relaxed);
            None
        };
        self.platform.lower_irql(old);
        r
    }

    /// Allocates a block whose MDL describes `size` bytes: `ByteCount == size`, `Next == NULL`, built for
    /// nonpaged pool (MDL_SOURCE_IS_NONPAGED_POOL, MappedSystemVa = the data). Returns NULL on failure
    /// (size 0 or above `max_request`, no memory, injected fault). IRQL <= DISPATCH_LEVEL, any CPU.
    #[inline]
    pub fn allocate(&self, size: u32) -> *mut MDL {
        let class = match self.class_for(size) {
            Ok(c) => c,
            Err(()) => {
                self.on_cpu(|cpu| {
                    let c = self.counters_of(cpu, self.nclass);
                    stats::add(&c.total_allocates, 1);
                    stats::add(&c.failures, 1);
                });
                return null_mut();
            }
        };
        if self.fault_armed && self.inject_fault() {
            let row = class.unwrap_or(self.nclass);
            self.on_cpu(|cpu| {
                let c = self.counters_of(cpu, row);
                stats::add(&c.total_allocates, 1);
                stats::add(&c.failures, 1);
                stats::add(&c.injected, 1);
            });
            return null_mut();
        }
        let Some(class) = class else {
            return self.allocate_oversize(size);
        };
        let old = self.platform.raise_to_dispatch();
        let cpu = self.platform.current_cpu();
        let block = if cpu < self.ncpu {
            // SAFETY: at DISPATCH_LEVEL on `cpu` (Platform contract): we are the only user of its cache.
            unsafe { self.pop(cpu, class) }
        } else {
            self.bad_cpu.fetch_add(1, CoreOrdering::Relaxed);
            null_mut()
        };
        self.platform.lower_irql(old);
        if block.is_null() {
            return null_mut();
        }
        // SAFETY: the block came out of our caches (or was just constructed): live, cached, now ours;
        // size <= its class capacity by class_for.
        unsafe { block::hand_out(block, size) }
    }

    #[inline(always)]
    unsafe fn pop(&self, cpu: usize, class: usize) -> *mut BlockHeader {
        let ctr = self.counters_of(cpu, class);
        stats::add(&ctr.total_allocates, 1);
        // SAFETY: cpu < ncpu (caller).
        let cache = unsafe { &*self.caches.add(cpu) };
        cache.classes.with_mut(|cc| {
            // SAFETY: exclusive per-CPU access (caller); class < nclass so the magazines are real.
            unsafe {
                let cc = &mut (*cc)[class];
                let n = cc.count;
                if n != 0 {
                    cc.count = n - 1;
                    stats::sub(&ctr.depth, 1);
                    return *Magazine::slots(cc.loaded).add(n as usize - 1);
                }
                cc.stash();
                let b = self.pop_slow(class, cc, ctr);
                cc.reload();
                b
            }
        })
    }

    /// The allocation slow path. The caller has stashed `cc` (magazine headers are current) and reloads it
    /// after.
    #[cold]
    #[inline(never)]
    unsafe fn pop_slow(
        &self,
        class: usize,
        cc: &mut ClassCache,
        ctr: &ClassCounters,
    ) -> *mut BlockHeader {
        // SAFETY: (whole function) the caller gives exclusive access to this CPU's cache `cc`; magazines
        // reached through it or popped from the depot are exclusively ours.
        unsafe {
            if (*cc.previous).count == 0 {
                let previous = cc.previous;
                let full = self.with_depot(class, |d| {
                    let full = d.full;
                    if full.is_null() {
                        return full;
                    }
                    d.full = (*full).next;
                    d.nfull -= 1;
                    d.min_full = d.min_full.min(d.nfull);
                    (*previous).next = d.empty;
                    d.empty = previous;
                    d.nempty += 1;
                    full
                });
                if full.is_null() {
                    stats::add(&ctr.allocate_misses, 1);
                    let b = block::construct(
                        &self.platform,
                        self.magic,
                        class as u16,
                        self.class_size[class] as usize,
                    );
                    if b.is_null() {
                        stats::add(&ctr.failures, 1);
                    } else {
                        stats::add(&ctr.system_allocs, 1);
                        self.live_add(class);
                    }
                    return b;
                }
                (*full).next = null_mut();
                stats::add(&ctr.depot_gets, 1);
                stats::add(&ctr.depth, (*full).count as u64);
                cc.previous = cc.loaded;
                cc.loaded = full;
            } else {
                core::mem::swap(&mut cc.loaded, &mut cc.previous);
            }
            let mag = cc.loaded;
            let n = (*mag).count - 1;
            (*mag).count = n;
            stats::sub(&ctr.depth, 1);
            *Magazine::slots(mag).add(n as usize)
        }
    }

    fn allocate_oversize(&self, size: u32) -> *mut MDL {
        let row = self.nclass;
        let block = self
            .on_cpu(|cpu| {
                let ctr = self.counters_of(cpu, row);
                stats::add(&ctr.total_allocates, 1);
                stats::add(&ctr.oversize, 1);
                let b = block::construct(&self.platform, self.magic, OVERSIZE_CLASS, size as usize);
                if b.is_null() {
                    stats::add(&ctr.failures, 1);
                } else {
                    stats::add(&ctr.system_allocs, 1);
                    self.live_add(row);
                }
                b
            })
            .unwrap_or(null_mut());
        if block.is_null() {
            return null_mut();
        }
        // SAFETY: freshly constructed block, exclusively ours; size == capacity.
        unsafe { block::hand_out(block, size) }
    }

    fn live_add(&self, row: usize) {
        let s = &self.shared[row];
        let now = s.live.fetch_add(1, CoreOrdering::Relaxed) + 1;
        s.high_water.fetch_max(now, CoreOrdering::Relaxed);
    }

    fn live_sub(&self, row: usize, n: u64) {
        self.shared[row].live.fetch_sub(n, CoreOrdering::Relaxed);
    }

    /// Returns a block to the pool. `mdl` must be an MDL this pool handed out; anything else is refused
    /// and counted: a foreign MDL is never freed, a double free is ignored (both reported once).
    /// IRQL <= DISPATCH_LEVEL, any CPU.
    ///
    /// # Safety
    /// `mdl` points to a readable MDL in a page readable from its start (true of any MDL in kernel memory;
    /// see `block::lookup`), and if it is one of this pool's blocks, the caller owns it (it is not used
    /// after this call).
    #[inline]
    pub unsafe fn free(&self, mdl: *mut MDL) -> Result<(), Rejected> {
        // SAFETY: the caller's guarantee is lookup's precondition.
        let block = match unsafe { block::lookup(mdl, self.magic) } {
            Ok(b) => b,
            Err(e) => {
                self.note_foreign(mdl);
                return Err(e);
            }
        };
        // SAFETY: lookup found a live header of ours.
        let class = unsafe { (*block).class };
        if class != OVERSIZE_CLASS && class as usize >= self.nclass {
            self.note_foreign(mdl);
            return Err(Rejected::Foreign);
        }
        // SAFETY: as above.
        if let Err(e) = unsafe { block::take_back(block) } {
            self.note_double(mdl);
            return Err(e);
        }
        let old = self.platform.raise_to_dispatch();
        let cpu = self.platform.current_cpu();
        if cpu >= self.ncpu {
            self.bad_cpu.fetch_add(1, CoreOrdering::Relaxed);
            let row = if class == OVERSIZE_CLASS {
                self.nclass
            } else {
                class as usize
            };
            // SAFETY: the block is back in our hands; with no CPU slot to cache it in, return it.
            unsafe { block::destroy(&self.platform, block) };
            self.live_sub(row, 1);
        } else if class == OVERSIZE_CLASS {
            let ctr = self.counters_of(cpu, self.nclass);
            stats::add(&ctr.total_frees, 1);
            stats::add(&ctr.system_frees, 1);
            // SAFETY: the oversize block is ours again and never cached.
            unsafe { block::destroy(&self.platform, block) };
            self.live_sub(self.nclass, 1);
        } else {
            // SAFETY: DISPATCH_LEVEL on `cpu`: exclusive use of its cache; the block is ours.
            unsafe { self.push(cpu, class as usize, block) };
        }
        self.platform.lower_irql(old);
        Ok(())
    }

    /// Whether `mdl` is one of this pool's blocks, handed out and not yet freed. Reads only the MDL and
    /// (when the MDL looks like one of ours) the header in the same page; counts nothing. Used to find
    /// the filter's own block in a chain a neighbour has rearranged. Any IRQL.
    ///
    /// # Safety
    /// As [`Pool::free`]: `mdl` points to a readable MDL in a page readable from its start.
    pub unsafe fn owns_in_flight(&self, mdl: *mut MDL) -> bool {
        // SAFETY: the caller's guarantee is lookup's precondition.
        match unsafe { block::lookup(mdl, self.magic) } {
            // SAFETY: lookup found a live header of ours; the state is an atomic.
            Ok(b) => unsafe { (*b).state.load(CoreOrdering::Relaxed) == block::STATE_IN_FLIGHT },
            Err(_) => false,
        }
    }

    #[inline(always)]
    unsafe fn push(&self, cpu: usize, class: usize, block: *mut BlockHeader) {
        let ctr = self.counters_of(cpu, class);
        stats::add(&ctr.total_frees, 1);
        // SAFETY: cpu < ncpu (caller).
        let cache = unsafe { &*self.caches.add(cpu) };
        cache.classes.with_mut(|cc| {
            // SAFETY: exclusive per-CPU access (caller).
            unsafe {
                let cc = &mut (*cc)[class];
                let n = cc.count;
                if n < cc.capacity {
                    *Magazine::slots(cc.loaded).add(n as usize) = block;
                    cc.count = n + 1;
                    stats::add(&ctr.depth, 1);
                    return;
                }
                cc.stash();
                self.push_slow(class, cc, ctr, block);
                cc.reload();
            }
        })
    }

    /// The free slow path. The caller has stashed `cc` (magazine headers are current) and reloads it after.
    #[cold]
    #[inline(never)]
    unsafe fn push_slow(
        &self,
        class: usize,
        cc: &mut ClassCache,
        ctr: &ClassCounters,
        block: *mut BlockHeader,
    ) {
        // The limits, read once per exchange (never on the fast path); always within what was allocated.
        let fill = self.fill_limit.load(CoreOrdering::Relaxed);
        let depot_limit = self.depot_limit_now.load(CoreOrdering::Relaxed);
        // SAFETY: (whole function) exclusive access to this CPU's cache `cc` (caller); magazines reached
        // through it or popped from the depot are exclusively ours.
        unsafe {
            // This CPU's pair picks up the current fill limit (1..=allocated slots).
            (*cc.loaded).capacity = fill;
            (*cc.previous).capacity = fill;
            if (*cc.previous).count < (*cc.previous).capacity {
                core::mem::swap(&mut cc.loaded, &mut cc.previous);
            } else {
                let previous = cc.previous;
                let empty = self.with_depot(class, |d| {
                    let empty = d.empty;
                    if empty.is_null() || d.nfull >= depot_limit {
                        return null_mut();
                    }
                    d.empty = (*empty).next;
                    d.nempty -= 1;
                    (*previous).next = d.full;
                    d.full = previous;
                    d.nfull += 1;
                    empty
                });
                if empty.is_null() {
                    stats::add(&ctr.free_misses, 1);
                    block::destroy(&self.platform, block);
                    stats::add(&ctr.system_frees, 1);
                    self.live_sub(class, 1);
                    return;
                }
                (*empty).next = null_mut();
                (*empty).capacity = fill;
                stats::add(&ctr.depot_puts, 1);
                stats::sub(&ctr.depth, (*previous).count as u64);
                cc.previous = cc.loaded;
                cc.loaded = empty;
            }
            let mag = cc.loaded;
            let n = (*mag).count;
            *Magazine::slots(mag).add(n as usize) = block;
            (*mag).count = n + 1;
            stats::add(&ctr.depth, 1);
        }
    }

    /// Runs `f` on a class's depot lists under its spin lock. Callers are at DISPATCH_LEVEL.
    #[inline]
    fn with_depot<R>(&self, class: usize, f: impl FnOnce(&mut DepotLists) -> R) -> R {
        self.depots[class]
            .lists
            .with(|| self.platform.spin_wait(), f)
    }

    fn note_foreign(&self, mdl: *mut MDL) {
        self.foreign_frees.fetch_add(1, CoreOrdering::Relaxed);
        if !self.reported_foreign.swap(true, CoreOrdering::Relaxed) {
            self.platform.report(format_args!(
                "NetFreeMdl: MDL {mdl:p} is not a pool block; not freed (counted)"
            ));
        }
    }

    fn note_double(&self, mdl: *mut MDL) {
        self.double_frees.fetch_add(1, CoreOrdering::Relaxed);
        if !self.reported_double.swap(true, CoreOrdering::Relaxed) {
            self.platform.report(format_args!(
                "NetFreeMdl: MDL {mdl:p} freed twice; ignored (counted)"
            ));
        }
    }

    /// Returns every block of a magazine to the system; returns the count.
    ///
    /// # Safety
    /// The caller owns `mag` exclusively (taken off a depot list, or a quiescent CPU's cache).
    unsafe fn drain(&self, mag: *mut Magazine) -> u64 {
        // SAFETY: exclusive ownership of the magazine and of the cached blocks in it.
        unsafe {
            let n = (*mag).count;
            for i in 0..n as usize {
                block::destroy(&self.platform, *Magazine::slots(mag).add(i));
            }
            (*mag).count = 0;
            n as u64
        }
    }

    /// Takes up to `max` full magazines off a class's depot (all of them if `max` is None), returns their
    /// blocks to the system and puts the emptied magazines back on the empty list. Returns blocks released.
    fn release_depot(&self, class: usize, max: Option<u32>) -> u64 {
        let taken = self.with_depot(class, |d| {
            let n = max.unwrap_or(d.nfull).min(d.nfull);
            let head = d.full;
            let mut tail = null_mut();
            let mut cur = head;
            for _ in 0..n {
                tail = cur;
                // SAFETY: `cur` is one of the nfull magazines on the list (n <= nfull).
                cur = unsafe { (*cur).next };
            }
            d.full = cur;
            d.nfull -= n;
            d.min_full = d.nfull;
            if n == 0 {
                return (null_mut(), null_mut(), 0);
            }
            // SAFETY: `tail` is the n-th magazine; cut the list after it.
            unsafe { (*tail).next = null_mut() };
            (head, tail, n)
        });
        let (head, tail, n) = taken;
        if n == 0 {
            return 0;
        }
        let mut released = 0;
        let mut cur = head;
        while !cur.is_null() {
            // SAFETY: the detached list is ours alone.
            unsafe {
                released += self.drain(cur);
                cur = (*cur).next;
            }
        }
        self.live_sub(class, released);
        self.with_depot(class, |d| {
            // SAFETY: splice the detached (now empty) list onto the empty list.
            unsafe { (*tail).next = d.empty };
            d.empty = head;
            d.nempty += n;
        });
        released
    }

    /// Bonwick's working-set trim, for a timer tick every `trim_interval_ms`: releases, per class, the
    /// full depot magazines that were not needed since the previous trim (the low-water mark of the full
    /// list), then restarts the measurement. An idle pool therefore returns its depot to the system within
    /// two ticks and keeps at most the per-CPU tier. IRQL <= DISPATCH_LEVEL, any CPU.
    pub fn trim(&self) -> Released {
        self.on_cpu(|cpu| {
            let mut out = Released::default();
            for class in 0..self.nclass {
                let low = self.with_depot(class, |d| d.min_full);
                let n = self.release_depot(class, Some(low));
                let ctr = self.counters_of(cpu, class);
                stats::add(&ctr.system_frees, n);
                stats::add(&ctr.trimmed, n);
                out.blocks += n;
                out.bytes += n * self.block_bytes[class] as u64;
            }
            out
        })
        .unwrap_or_default()
    }

    /// Like `ExFlushLookasideListEx`: returns to the system every block in the depot and in the calling
    /// CPU's magazines. Other CPUs' magazines are theirs alone while traffic runs; see
    /// [`Pool::flush_all`]. IRQL <= DISPATCH_LEVEL.
    pub fn flush(&self) -> Released {
        self.on_cpu(|cpu| {
            let mut out = Released::default();
            for class in 0..self.nclass {
                // SAFETY: DISPATCH_LEVEL on `cpu`: its cache is ours.
                let n = unsafe { self.drain_cpu(cpu, class) } + self.release_depot(class, None);
                let ctr = self.counters_of(cpu, class);
                stats::add(&ctr.system_frees, n);
                stats::add(&ctr.flushed, n);
                out.blocks += n;
                out.bytes += n * self.block_bytes[class] as u64;
            }
            out
        })
        .unwrap_or_default()
    }

    /// Empties one CPU's two magazines of a class; adjusts its depth; returns blocks released.
    ///
    /// # Safety
    /// Nobody else uses CPU `cpu`'s cache during the call.
    unsafe fn drain_cpu(&self, cpu: usize, class: usize) -> u64 {
        // SAFETY: cpu < ncpu (callers); exclusive access (caller).
        let cache = unsafe { &*self.caches.add(cpu) };
        let n = cache.classes.with_mut(|cc| {
            // SAFETY: exclusive access to the cache and its magazines.
            unsafe {
                let cc = &mut (*cc)[class];
                cc.stash();
                let n = self.drain(cc.loaded) + self.drain(cc.previous);
                cc.reload();
                n
            }
        });
        stats::sub(&self.counters_of(cpu, class).depth, n);
        self.live_sub(class, n);
        n
    }

    /// Returns every cached block (all CPUs' magazines and the depot) to the system.
    ///
    /// # Safety
    /// The pool is quiescent: no allocate/free/trim/flush runs concurrently on any CPU.
    pub unsafe fn flush_all(&self) -> Released {
        let mut out = Released::default();
        for class in 0..self.nclass {
            let mut n = 0;
            for cpu in 0..self.ncpu {
                // SAFETY: quiescent pool (caller), so every CPU's cache is ours.
                let k = unsafe { self.drain_cpu(cpu, class) };
                let ctr = self.counters_of(cpu, class);
                stats::add(&ctr.system_frees, k);
                stats::add(&ctr.flushed, k);
                n += k;
            }
            let k = self.release_depot(class, None);
            let ctr = self.counters_of(0, class);
            stats::add(&ctr.system_frees, k);
            stats::add(&ctr.flushed, k);
            n += k;
            out.blocks += n;
            out.bytes += n * self.block_bytes[class] as u64;
        }
        out
    }

    /// Sums the counters into a snapshot (no allocation). Any CPU, IRQL <= DISPATCH_LEVEL. Under traffic
    /// each figure is a recent value; once traffic stops, `in_flight` and `retained_*` are exact.
    pub fn snapshot(&self) -> PoolSnapshot {
        let mut s = PoolSnapshot {
            class_count: self.nclass,
            foreign_frees: self.foreign_frees.load(CoreOrdering::Relaxed),
            double_frees: self.double_frees.load(CoreOrdering::Relaxed),
            bad_cpu: self.bad_cpu.load(CoreOrdering::Relaxed),
            magazine_size: self.fill_limit.load(CoreOrdering::Relaxed),
            depot_limit: self.depot_limit_now.load(CoreOrdering::Relaxed),
            trim_interval_ms: self.trim_interval_now.load(CoreOrdering::Relaxed),
            cpus: self.ncpu,
            ..Default::default()
        };
        for row in 0..=self.nclass {
            let r = &mut s.classes[row];
            if row < self.nclass {
                r.class_size = self.class_size[row];
                r.block_bytes = self.block_bytes[row];
            }
            for cpu in 0..self.ncpu {
                r.accumulate(self.counters_of(cpu, row));
            }
            r.live_blocks = self.shared[row].live.load(CoreOrdering::Relaxed);
            r.high_water = self.shared[row].high_water.load(CoreOrdering::Relaxed);
            let in_flight = r.served().wrapping_sub(r.total_frees);
            r.in_flight = if (in_flight as i64) < 0 { 0 } else { in_flight };
            r.retained_blocks = r.live_blocks.saturating_sub(r.in_flight);
            r.retained_bytes = r.retained_blocks * r.block_bytes as u64;
            if row < self.nclass {
                let (nfull, blocks) = self
                    .on_cpu(|_| {
                        self.with_depot(row, |d| {
                            // Full magazines hold what their fill limit was when they filled.
                            let mut blocks = 0u64;
                            let mut m = d.full;
                            while !m.is_null() {
                                // SAFETY: magazines on the full list, under the depot lock.
                                unsafe {
                                    blocks += (*m).count as u64;
                                    m = (*m).next;
                                }
                            }
                            (d.nfull as u64, blocks)
                        })
                    })
                    .unwrap_or((0, 0));
                r.depot_full = nfull;
                r.depot_blocks = blocks;
            }
        }
        let mut t = ClassSnapshot::default();
        for r in &s.classes[..=self.nclass] {
            t.total_allocates += r.total_allocates;
            t.allocate_misses += r.allocate_misses;
            t.total_frees += r.total_frees;
            t.free_misses += r.free_misses;
            t.depth = t.depth.wrapping_add(r.depth);
            t.depot_gets += r.depot_gets;
            t.depot_puts += r.depot_puts;
            t.system_allocs += r.system_allocs;
            t.system_frees += r.system_frees;
            t.oversize += r.oversize;
            t.failures += r.failures;
            t.injected += r.injected;
            t.trimmed += r.trimmed;
            t.flushed += r.flushed;
            t.in_flight += r.in_flight;
            t.live_blocks += r.live_blocks;
            t.high_water += r.high_water;
            t.retained_blocks += r.retained_blocks;
            t.retained_bytes += r.retained_bytes;
            t.depot_full += r.depot_full;
            t.depot_blocks += r.depot_blocks;
        }
        s.total = t;
        s
    }

    /// The per-CPU counter blocks (one [`CpuCounters`] per CPU), for the debugger-visible stats root.
    pub fn cpu_counters(&self) -> &[CpuCounters] {
        // SAFETY: `counters` holds ncpu initialised entries for the pool's lifetime.
        unsafe { core::slice::from_raw_parts(self.counters, self.ncpu) }
    }

    /// Destroys the pool in place.
    ///
    /// # Safety
    /// `pool` is a live pool created by [`Pool::create`], owned uniquely by the caller, quiescent, and
    /// never used again.
    unsafe fn destroy_raw(pool: *mut Pool<P>) -> LeakReport {
        // SAFETY: live and unique (caller).
        let this = unsafe { &*pool };
        // SAFETY: quiescent (caller).
        unsafe { this.flush_all() };
        let s = this.snapshot();
        let mut report = LeakReport {
            in_flight_blocks: s.total.in_flight,
            live_blocks: s.total.live_blocks,
            foreign_frees: s.foreign_frees,
            double_frees: s.double_frees,
            ..Default::default()
        };
        for (i, r) in s.classes[..=this.nclass].iter().enumerate() {
            report.in_flight_by_class[i] = r.in_flight;
            report.in_flight_bytes += if i < this.nclass {
                r.in_flight * r.block_bytes as u64
            } else {
                // Oversize blocks vary in size; count their live bytes as unknown-sized blocks of at least
                // the largest class.
                r.in_flight * this.block_bytes[this.nclass - 1] as u64
            };
        }
        if report.in_flight_blocks != 0 || report.live_blocks != report.in_flight_blocks {
            this.platform.report(format_args!(
                "pool destroyed with {} blocks in flight (about {} bytes), {} live: not freed",
                report.in_flight_blocks, report.in_flight_bytes, report.live_blocks
            ));
        }
        for cpu in 0..this.ncpu {
            // SAFETY: initialised in create; dropped once here (drops loom's cell state; no-op otherwise).
            unsafe { core::ptr::drop_in_place(this.caches.add(cpu)) };
        }
        let regions = [this.caches_region, this.counters_region, this.mags_region];
        let self_region = this.self_region;
        for (base, total) in regions {
            // SAFETY: each region came from alloc_block(total); nothing references it any more (the
            // per-CPU caches and counters hold no drop glue beyond loom's cells, dropped below).
            unsafe { this.platform.free_block(base, total) };
        }
        // SAFETY: the pool is ours; read the platform out to free the pool's own region with it, then drop
        // the remaining fields in place (depot cells/atomics) before releasing the memory.
        unsafe {
            let platform = core::ptr::read(&this.platform);
            core::ptr::drop_in_place(core::ptr::addr_of_mut!((*pool).depots));
            platform.free_block(self_region.0, self_region.1);
            drop(platform);
        }
        report
    }
}
