//! The pool's life: creation in platform memory ([`Pool::create`]), the owning [`PoolHandle`], the
//! runtime limits ([`Pool::set_limits`]) and destruction with its [`LeakReport`].
//!
//! Owns: the pool's regions (the pool itself, per-CPU caches, counters, magazines) and their layout,
//! the class table built from the configuration, the per-instance block magic. Must not run
//! concurrently with traffic when destroying. IRQL: create and destroy at PASSIVE_LEVEL (or
//! DISPATCH_LEVEL: they only allocate and free nonpaged memory); the limits at <= DISPATCH_LEVEL.

use super::block::{self, class_block_bytes, BlockHeader};
use super::depot::{Depot, DepotLists};
use super::magazine::{ClassCache, CpuCache, Magazine, MAG_HEADER};
use super::stats;
use super::sync::{SpinLocked, UnsafeCell};
use super::{
    splitmix64, CpuCounters, Limits, Platform, Pool, PoolConfig, PoolError, LUT_LEN, MAX_CLASSES,
    NO_CLASS,
};
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{
    AtomicBool as CoreAtomicBool, AtomicU32, AtomicU64, Ordering as CoreOrdering,
};

/// What [`PoolHandle::destroy`] found.
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

static POOL_SERIAL: AtomicU64 = AtomicU64::new(1);

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
                prev_count: 0,
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
