//! The simulated clock: time moves only when the harness, the traffic runners or a lifecycle flow
//! advance it.
//!
//! Layer 2 (beside memory and faults): it owns the time and nothing else. Advancing it returns the
//! new time; the caller above then fires the timers due ([`crate::timers`]) and has the stack judge
//! the NBLs held too long (`outstanding::check_held_timeouts`) — the clock calls neither.

use std::sync::atomic::{AtomicU64, Ordering};

/// Simulated time in 100 ns units.
static CLOCK: AtomicU64 = AtomicU64::new(0);

pub(crate) fn reset() {
    CLOCK.store(0, Ordering::SeqCst);
}

/// Current simulated time in milliseconds.
pub fn now_ms() -> u64 {
    CLOCK.load(Ordering::SeqCst) / 10_000
}

/// Current simulated time in 100 ns units.
pub(crate) fn now_100ns() -> u64 {
    CLOCK.load(Ordering::SeqCst)
}

/// Advances the clock by `ms`; returns the new time in 100 ns units.
pub(crate) fn advance_ms(ms: u64) -> u64 {
    CLOCK.fetch_add(ms * 10_000, Ordering::SeqCst) + ms * 10_000
}
