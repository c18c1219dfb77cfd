//! The counter lists of the statistics blocks the debugger reads, each written once, and the macro
//! that generates a block from a list.
//!
//! [`filter_counters!`](crate::filter_counters) lists the 22 per-module data-path counters (the driver's `FilterStats`),
//! [`pool_counters!`](crate::pool_counters) the 14 per-CPU × class pool counters (the driver's `ClassCounters`, followed by
//! two reserved words). Each list macro hands its list to [`counter_block!`](crate::counter_block), which generates either
//! the name list ([`FILTER`], [`POOL`]: what sysrun and the statistics dump use) or the block itself:
//! a `#[repr(C)]` struct of `AtomicU64` fields in list order (the layout the WinDbg script, NatVis and
//! the PDB check read), its zero value, its values as an array, and the copy and sum code.
//!
//! Owns the lists and the generated code's shape; the driver owns where the blocks live and who
//! writes them (single-writer or shared, see its modules).

/// Generates a counter block or its name list from a counter list. Called through
/// [`filter_counters!`](crate::filter_counters) / [`pool_counters!`](crate::pool_counters), which append the list.
///
/// - `[names $vis const NAME]`: `$vis const NAME: [&str; N]`, the field names in layout order.
/// - `[$(#[attr])* $vis struct Name $(reserved(r0, r1))? $(snapshot Snap)? $(sum_into Sum)?]`: the
///   `#[repr(C)]` struct (the counters, then the reserved words, every field `AtomicU64`) with
///   `Name::NAMES`, `Name::COUNT`, `new_const`, `values`, `store_values`, `accumulate_into`, and
///   optionally a plain copy `Snap` (`snapshot()`) and `add_to(&mut Sum)` for a struct `Sum` that has
///   a `u64` field of every counter's name.
#[macro_export]
macro_rules! counter_block {
    ([names $vis:vis const $list:ident] { $( $(#[$fm:meta])* $field:ident, )* }) => {
        $vis const $list: [&str; [$(stringify!($field)),*].len()] = [$(stringify!($field)),*];
    };
    (
        [
            $(#[$attr:meta])*
            $vis:vis struct $name:ident
            $( reserved( $($res:ident),* ) )?
            $( snapshot $snap:ident )?
            $( sum_into $sum:ident )?
        ]
        $fields:tt
    ) => {
        $crate::counter_block! {
            @block [$(#[$attr])* $vis struct $name $( reserved( $($res),* ) )?] $fields
        }
        $( $crate::counter_block! { @snapshot $name $snap $fields } )?
        $( $crate::counter_block! { @sum $name $sum $fields } )?
    };
    (
        @block [$(#[$attr:meta])* $vis:vis struct $name:ident $( reserved( $($res:ident),* ) )?]
        { $( $(#[$fm:meta])* $field:ident, )* }
    ) => {
        $(#[$attr])*
        #[repr(C)]
        $vis struct $name {
            $( $(#[$fm])* pub $field: ::core::sync::atomic::AtomicU64, )*
            $($(
                /// Reserved, zero.
                pub $res: ::core::sync::atomic::AtomicU64,
            )*)?
        }

        impl $name {
            /// The counters' field names, in layout order.
            pub const NAMES: [&'static str; [$(stringify!($field)),*].len()] =
                [$(stringify!($field)),*];
            /// Number of counters (reserved words excluded).
            pub const COUNT: usize = Self::NAMES.len();

            /// All counters zero (usable in a `static`).
            pub const fn new_const() -> Self {
                Self {
                    $( $field: ::core::sync::atomic::AtomicU64::new(0), )*
                    $($( $res: ::core::sync::atomic::AtomicU64::new(0), )*)?
                }
            }

            /// Every counter (relaxed loads), in layout order. Any IRQL.
            pub fn values(&self) -> [u64; Self::COUNT] {
                [$( self.$field.load(::core::sync::atomic::Ordering::Relaxed) ),*]
            }

            /// Sets every counter to `v` (relaxed stores), in layout order. Any IRQL.
            pub fn store_values(&self, v: &[u64; Self::COUNT]) {
                let mut it = v.iter();
                $( self.$field.store(
                    it.next().copied().unwrap_or(0),
                    ::core::sync::atomic::Ordering::Relaxed,
                ); )*
            }

            /// Adds every counter into `total` (relaxed RMW, skipping zeros). Any IRQL.
            pub fn accumulate_into(&self, total: &Self) {
                let v = self.values();
                let mut it = v.iter();
                $(
                    let n = it.next().copied().unwrap_or(0);
                    if n != 0 {
                        total.$field.fetch_add(n, ::core::sync::atomic::Ordering::Relaxed);
                    }
                )*
            }
        }
    };
    (@snapshot $name:ident $snap:ident { $( $(#[$fm:meta])* $field:ident, )* }) => {
        impl $name {
            /// Reads every counter (relaxed). Any IRQL.
            pub fn snapshot(&self) -> $snap {
                $snap {
                    $( $field: self.$field.load(::core::sync::atomic::Ordering::Relaxed), )*
                }
            }
        }

        #[doc = concat!("A plain copy of [`", stringify!($name), "`] for tests and reports.")]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $snap {
            $( $(#[$fm])* pub $field: u64, )*
        }
    };
    (@sum $name:ident $sum:ident { $( $(#[$fm:meta])* $field:ident, )* }) => {
        impl $name {
            /// Adds every counter (relaxed loads, wrapping) into the fields of the same name.
            pub fn add_to(&self, s: &mut $sum) {
                $( s.$field = s.$field.wrapping_add(
                    self.$field.load(::core::sync::atomic::Ordering::Relaxed),
                ); )*
            }
        }
    };
}

/// The per-module data-path counters (the driver's `FilterStats`), in layout order; appends the
/// list to the [`counter_block!`](crate::counter_block) head it is given.
#[macro_export]
macro_rules! filter_counters {
    ($($head:tt)*) => {
        $crate::counter_block! {
            [$($head)*] {
            /// NBLs transformed and forwarded on send.
            send_nbls_transformed,
            /// NBs transformed on send.
            send_nbs_transformed,
            /// NBLs transformed and indicated on receive.
            recv_nbls_transformed,
            /// NBs transformed on receive.
            recv_nbs_transformed,
            /// Bytes the transforms wrote into retreated space (pattern bytes, tags).
            bytes_written,
            /// NdisRetreatNetBufferDataStart failures (NetAllocateMdl returned NULL).
            retreat_failures,
            /// NdisAllocateNetBufferListContext failures.
            context_failures,
            /// Send NBLs completed with NDIS_STATUS_RESOURCES (one of their NBs failed).
            send_nbls_failed,
            /// Send NBLs completed with NDIS_STATUS_PAUSED (not Running).
            send_nbls_paused,
            /// Receive NBLs dropped (one of their NBs failed).
            recv_nbls_dropped,
            /// Restores done with Advance(FreeMdl = TRUE, NetFreeMdl).
            restores_advanced,
            /// Restores done by hand (a foreign wholly-unused leading MDL was in the caller's chain).
            restores_manual,
            /// Restores refused because the NB was not as the retreat left it (nothing freed; a lower
            /// driver bug).
            restores_inconsistent,
            /// Exercise patterns that did not read back (never expected).
            pattern_mismatches,
            /// VLAN: frames already tagged (or shorter than an Ethernet header), left alone.
            vlan_already_tagged,
            /// VLAN: NBLs passed through untouched (no tag to insert, read-only data, frame too short).
            vlan_untouched_nbls,
            /// NBLs passed through because the module was not Running (receive) or in passthrough mode.
            passthrough_nbls,
            /// Registry values that were malformed or out of range (defaults used).
            config_bad_values,
            /// NdisOpenConfigurationEx failures (defaults used).
            config_open_failures,
            /// OID requests forwarded (cloned).
            oids_forwarded,
            /// OID clone failures.
            oid_clone_failures,
            /// Pauses that had to pend until the last outstanding NBL came back.
            pauses_pended,
        } }
    };
}

/// The pool's counters of one (CPU, class) row (the driver's `ClassCounters`), in layout order;
/// appends the list to the [`counter_block!`](crate::counter_block) head it is given.
#[macro_export]
macro_rules! pool_counters {
    ($($head:tt)*) => {
        $crate::counter_block! {
            [$($head)*] {
            /// Allocation requests served or attempted on this CPU (`!lookaside` TotalAllocates).
            total_allocates,
            /// Allocations that found no cached block and went to the system.
            allocate_misses,
            /// Frees performed on this CPU (of blocks from any CPU).
            total_frees,
            /// Frees that found every cache full and returned the block to the system.
            free_misses,
            /// Blocks held in this CPU's two magazines of the class (`!lookaside` Depth; summed as a
            /// wrapping, signed value).
            depth,
            /// Full magazines taken from the depot (allocation-side exchanges).
            depot_gets,
            /// Full magazines given to the depot (free-side exchanges).
            depot_puts,
            /// Blocks constructed (allocated from the system) by this CPU.
            system_allocs,
            /// Blocks returned to the system by this CPU (free misses, trim, flush).
            system_frees,
            /// Oversize allocations (uncached).
            oversize,
            /// Allocations that returned NULL (no memory, bad size, injected fault).
            failures,
            /// Of `failures`, those injected by the fault knob.
            injected,
            /// Blocks released by trim on this CPU.
            trimmed,
            /// Blocks released by flush on this CPU.
            flushed,
        } }
    };
}

filter_counters!(names pub const FILTER);
pool_counters!(names pub const POOL);

/// Index of `depth` in [`POOL`]: the one counter readers sum and show as signed.
pub const POOL_DEPTH: usize = 4;
/// Index of `total_allocates` in [`POOL`].
pub const POOL_TOTAL_ALLOCATES: usize = 0;
/// Index of `allocate_misses` in [`POOL`].
pub const POOL_ALLOCATE_MISSES: usize = 1;
/// Index of `total_frees` in [`POOL`].
pub const POOL_TOTAL_FREES: usize = 2;
/// Index of `failures` in [`POOL`].
pub const POOL_FAILURES: usize = 10;

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering;

    pool_counters!(struct Block reserved(r0, r1) snapshot BlockSnap sum_into Sum);
    #[derive(Default)]
    struct Sum {
        depth: u64,
        total_allocates: u64,
        allocate_misses: u64,
        total_frees: u64,
        free_misses: u64,
        depot_gets: u64,
        depot_puts: u64,
        system_allocs: u64,
        system_frees: u64,
        oversize: u64,
        failures: u64,
        injected: u64,
        trimmed: u64,
        flushed: u64,
    }

    #[test]
    fn lists_have_their_lengths_and_indices() {
        assert_eq!(FILTER.len(), 22);
        assert_eq!(POOL.len(), 14);
        assert_eq!(POOL[POOL_DEPTH], "depth");
        assert_eq!(POOL[POOL_TOTAL_ALLOCATES], "total_allocates");
        assert_eq!(POOL[POOL_ALLOCATE_MISSES], "allocate_misses");
        assert_eq!(POOL[POOL_TOTAL_FREES], "total_frees");
        assert_eq!(POOL[POOL_FAILURES], "failures");
        assert_eq!(Block::NAMES, POOL);
    }

    #[test]
    fn the_block_is_its_list_in_order_then_reserved() {
        assert_eq!(core::mem::size_of::<Block>(), 16 * 8);
        assert_eq!(core::mem::offset_of!(Block, total_allocates), 0);
        assert_eq!(core::mem::offset_of!(Block, depth), POOL_DEPTH * 8);
        assert_eq!(core::mem::offset_of!(Block, flushed), 13 * 8);
        assert_eq!(core::mem::offset_of!(Block, r1), 15 * 8);
    }

    #[test]
    fn values_store_accumulate_snapshot_and_sum() {
        let a = Block::new_const();
        let mut v = [0u64; 14];
        for (i, x) in v.iter_mut().enumerate() {
            *x = i as u64 * 3;
        }
        a.store_values(&v);
        assert_eq!(a.values(), v);
        assert_eq!(a.depth.load(Ordering::Relaxed), 12);
        let b = Block::new_const();
        a.accumulate_into(&b);
        a.accumulate_into(&b);
        assert_eq!(b.values().map(|x| x / 2), v);
        let s = a.snapshot();
        assert_eq!((s.total_allocates, s.flushed), (0, 39));
        let mut sum = Sum::default();
        a.add_to(&mut sum);
        a.add_to(&mut sum);
        assert_eq!((sum.depth, sum.flushed), (24, 78));
        assert_eq!(a.r0.load(Ordering::Relaxed), 0);
    }
}
