//! The simulator's special pool: what happens to a block after it is freed, and the pattern after its end.
//!
//! **As far as a host process can have it** (Driver Verifier's Special Pool option,
//! learn.microsoft.com devtest/special-pool and debugger bug checks 0xC1 / 0xD5, DOCUMENTED): the real
//! option puts each block at the end of its own page with a guard page behind it and keeps freed pages
//! unmapped, so an overrun or an access to freed pool faults at once (0xD5
//! DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL), and bytes written in the slack after a block are found when
//! it is freed (0xC1 SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, parameter 4 = 0x24). A host process cannot
//! unmap single blocks, so the simulator finds the same writes afterwards, by pattern:
//! - every block has [`TAIL_BYTES`] of [`TAIL_PATTERN`] after its end, checked when it is freed
//!   (POOL_OVERRUN);
//! - a freed block is not given back to the host allocator at once: it is filled with
//!   [`FREED_POISON`] and held in a quarantine (the most recent [`QUARANTINE_BLOCKS`] frees, at most
//!   [`QUARANTINE_BYTES`]), and checked when it leaves it and at `finish` (FREED_POOL_MODIFIED).
//!   While a block is held, its address cannot be handed out again, so a stale second free of it is a
//!   BAD_POOL_FREE instead of freeing another CPU's new block, and a read through a stale pointer
//!   sees the poison instead of another block's data.
//!
//! What it cannot do is name the writer or catch a read whose value goes nowhere (the real option faults
//! on the access itself). Under Miri a freed block is given back at once instead (tail still checked):
//! Miri reports any access to freed memory itself, at the access.
//!
//! Owns: the tail pattern's check, the freed fill, the quarantine and its checks. Must not: track live
//! blocks (that is `mem`'s table) or call driver code.

use super::Block;
use crate::verifier::{self, rules};
use std::alloc::Layout;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Bytes of [`TAIL_PATTERN`] after every block.
pub(crate) const TAIL_BYTES: usize = 16;
/// What fills the bytes after a block's end.
pub(crate) const TAIL_PATTERN: u8 = 0x7E;
/// What fills a freed block while it is held in the quarantine.
pub(crate) const FREED_POISON: u8 = 0xDF;
/// Most freed blocks held at once (none under Miri: see [`retire`]).
pub(crate) const QUARANTINE_BLOCKS: usize = 16384;
/// Most freed bytes held at once.
pub(crate) const QUARANTINE_BYTES: usize = 16 << 20;

/// A freed block held back from the host allocator.
#[derive(Clone, Copy, Debug)]
struct Freed {
    addr: usize,
    block: Block,
}

#[derive(Default)]
struct Quarantine {
    /// Oldest first.
    held: VecDeque<Freed>,
    /// Bytes `held` holds.
    bytes: usize,
}

static QUARANTINE: Mutex<Quarantine> = Mutex::new(Quarantine {
    held: VecDeque::new(),
    bytes: 0,
});

fn quarantine() -> std::sync::MutexGuard<'static, Quarantine> {
    QUARANTINE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The host layout of a block of `size` bytes: the block, then its tail pattern.
pub(crate) fn host_layout(size: usize, align: usize) -> Option<Layout> {
    Layout::from_size_align(size.max(1) + TAIL_BYTES, align).ok()
}

/// Offset of the first byte in `bytes` that is not `want`.
fn first_differing(bytes: &[u8], want: u8) -> Option<usize> {
    // Eight bytes at a time.
    let word = u64::from_ne_bytes([want; 8]);
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for c in chunks.by_ref() {
        if u64::from_ne_bytes(c.try_into().expect("chunk of 8")) != word {
            break;
        }
        at += 8;
    }
    bytes[at..].iter().position(|&b| b != want).map(|i| at + i)
}

/// The bytes of a block's host allocation (block + tail).
///
/// # Safety
/// `addr` is the start of a host allocation `mem::raw_alloc` made for `block`, not yet deallocated; the
/// slice is only read (a buggy writer's bytes are what is looked for).
unsafe fn host_bytes<'a>(addr: usize, block: &Block) -> &'a [u8] {
    // SAFETY: the caller's guarantee; the allocation holds `size.max(1) + TAIL_BYTES` bytes.
    unsafe { std::slice::from_raw_parts(addr as *const u8, block.size.max(1) + TAIL_BYTES) }
}

fn tag_text(tag: u32) -> String {
    String::from_utf8_lossy(&tag.to_le_bytes()).into_owned()
}

/// A block just freed: its tail checked (POOL_OVERRUN), filled with [`FREED_POISON`] and held; what it
/// pushes out of the quarantine is checked and given back to the host.
///
/// # Safety
/// `p` is a block `mem::raw_alloc` made for `b`, just taken out of the live table by its only free.
pub(super) unsafe fn retire(p: *mut u8, b: Block) {
    // SAFETY: the caller's guarantee.
    let tail = unsafe { &host_bytes(p as usize, &b)[b.size.max(1)..] };
    if let Some(at) = first_differing(tail, TAIL_PATTERN) {
        verifier::report(
            rules::POOL_OVERRUN,
            p as usize,
            format!(
                "pool block {p:p} ({} bytes, tag {:?}): byte {at} after its end was written (found at free; bug check 0xC1, parameter 4 = 0x24, under special pool)",
                b.size,
                tag_text(b.tag),
            ),
        );
    }
    if cfg!(miri) {
        // Under Miri the block goes straight back: Miri itself reports any later access to it as
        // undefined behaviour, at the access and naming it, which the fill can only find afterwards; and
        // interpreting the fill's checks made the Miri runs of the filter tests about six times slower
        // (filter_smoke: 105 s with them, 16.5 s without).
        // SAFETY: `p` was allocated by `raw_alloc` with this layout and is freed once (the caller's
        // guarantee).
        unsafe {
            std::alloc::dealloc(
                p,
                host_layout(b.size, b.align).expect("valid at allocation"),
            )
        };
        return;
    }
    // SAFETY: as above; the whole host allocation (block + tail) is poisoned.
    unsafe { std::ptr::write_bytes(p, FREED_POISON, b.size.max(1) + TAIL_BYTES) };
    let evicted: Vec<Freed> = {
        let mut q = quarantine();
        q.held.push_back(Freed {
            addr: p as usize,
            block: b,
        });
        q.bytes += b.size;
        let mut out = Vec::new();
        while q.held.len() > QUARANTINE_BLOCKS || q.bytes > QUARANTINE_BYTES {
            let Some(f) = q.held.pop_front() else {
                break;
            };
            q.bytes -= f.block.size;
            out.push(f);
        }
        out
    };
    for f in evicted {
        release(f);
    }
}

/// Checks one block leaving the quarantine (FREED_POOL_MODIFIED) and gives it back to the host.
fn release(f: Freed) {
    // SAFETY: a held block is still allocated; it is only read.
    let bytes = unsafe { host_bytes(f.addr, &f.block) };
    if let Some(at) = first_differing(bytes, FREED_POISON) {
        let last = bytes.iter().rposition(|&b| b != FREED_POISON).unwrap_or(at);
        verifier::report(
            rules::FREED_POOL_MODIFIED,
            f.addr,
            format!(
                "pool block {:#x} ({} bytes, tag {:?}, {:?}) was written after it was freed: bytes {at}..={last} differ from the freed fill {FREED_POISON:#04x} (first is {:#04x}); Driver Verifier's special pool faults on the write itself (bug check 0xD5)",
                f.addr,
                f.block.size,
                tag_text(f.block.tag),
                f.block.owner,
                bytes[at],
            ),
        );
    }
    let layout = host_layout(f.block.size, f.block.align).expect("layout was valid at allocation");
    // SAFETY: `f.addr` was allocated by `raw_alloc` with exactly this layout; it left the live table when
    // it was freed and the quarantine now, so it is deallocated once.
    unsafe { std::alloc::dealloc(f.addr as *mut u8, layout) };
}

/// Checks every held block and gives it back to the host.
pub(super) fn drain() {
    let held: Vec<Freed> = {
        let mut q = quarantine();
        q.bytes = 0;
        q.held.drain(..).collect()
    };
    for f in held {
        release(f);
    }
}

/// Whether `p` is a freed block still held (for the detail of BAD_POOL_FREE).
pub(super) fn recently_freed(p: usize) -> bool {
    quarantine().held.iter().any(|f| f.addr == p)
}

/// The work of one free (see `bench_only`) on a dummy 128-byte buffer and a dummy quarantine entry at
/// `key`, an address no allocation can have: the tail check, the poison, the push and pop, the check of
/// the poison.
pub(super) fn bookkeeping_round(key: usize, block: Block) {
    let mut dummy = [FREED_POISON; 128];
    std::hint::black_box(first_differing(
        std::hint::black_box(&dummy[112..]),
        TAIL_PATTERN,
    ));
    dummy.fill(std::hint::black_box(FREED_POISON));
    {
        let mut q = quarantine();
        q.held.push_back(Freed { addr: key, block });
        q.held.pop_back();
    }
    std::hint::black_box(first_differing(std::hint::black_box(&dummy), FREED_POISON));
}
