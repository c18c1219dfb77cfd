//! The pool's configuration: the creation-time [`PoolConfig`] and its ranges, the runtime [`Limits`],
//! fault injection ([`FaultConfig`]) and [`PoolError`].
//!
//! Owns: the documented range of every field and its check ([`PoolConfig::validate`]). Must not touch
//! pool memory: it is plain data, read by `Pool::create` and `Pool::set_limits`. Any IRQL.

use super::block::class_block_bytes;
use core::fmt;
use ndis_sys::PAGE_SIZE;

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
    /// How often the owner should call [`Pool::trim`](super::Pool::trim), in milliseconds (10..=600000). The pool does not
    /// run a timer itself. Runtime-adjustable ([`Pool::set_limits`](super::Pool::set_limits)).
    pub trim_interval_ms: u32,
    /// Block slots allocated per magazine: the most `magazine_size` can be raised to at run time
    /// ([`Pool::set_limits`](super::Pool::set_limits)). 0 = `magazine_size`; otherwise `magazine_size..=`[`MAX_MAGAZINE`].
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

/// The runtime-adjustable retention limits ([`Pool::set_limits`](super::Pool::set_limits), [`Pool::limits`](super::Pool::limits)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Blocks a magazine is filled to, 1..=the allocated slots (`PoolConfig::magazine_slots`).
    pub magazine_fill: u32,
    /// Full magazines the depot keeps per class, 0..=the allocated depot magazines
    /// (`PoolConfig::depot_magazines`).
    pub depot_limit: u32,
    /// How often the owner should call [`Pool::trim`](super::Pool::trim), 10..=600000 ms (the pool runs no timer).
    pub trim_interval_ms: u32,
}
