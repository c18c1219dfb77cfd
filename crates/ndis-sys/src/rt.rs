//! Runtime pieces for kernel builds without the `wdk` feature: the global allocator over
//! ExAllocatePool2 (nonpaged, NX, the driver's pool tag) and a panic handler that bugchecks.
//! Also the one logging entry point, `log`, which formats into a stack buffer and hands DbgPrintEx
//! a single `"%s"` argument (so no variadic formatting happens on the kernel side).

use core::fmt::{self, Write};

/// Pool tag of the runtime allocator's allocations ("MdlP" as shown by `!pool` / `!poolused`; the
/// driver's MDL-block tag, `mdlpool_names::tags::MDL_BLOCK`).
pub const POOL_TAG: u32 = mdlpool_names::tags::MDL_BLOCK;

/// Maximum length of one log line (including the trailing NUL); longer lines are cut.
pub const LOG_LINE_MAX: usize = 240;

struct LineBuf {
    buf: [u8; LOG_LINE_MAX],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            // Keep room for the NUL; drop interior NULs so the C string stays whole.
            if self.len + 1 >= LOG_LINE_MAX {
                break;
            }
            if b != 0 {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Logs one line through `DbgPrintEx(DPFLTR_IHVNETWORK_ID, level, "%s", line)`. Any IRQL
/// (DbgPrintEx is callable at any IRQL for non-Unicode format strings). Never allocates.
pub fn log(level: u32, args: fmt::Arguments<'_>) {
    let mut line = LineBuf {
        buf: [0; LOG_LINE_MAX],
        len: 0,
    };
    let _ = line.write_str("mdlpool: ");
    let _ = line.write_fmt(args);
    let _ = line.write_str("\n");
    let end = line.len.min(LOG_LINE_MAX - 1);
    line.buf[end] = 0;
    // SAFETY: both strings are NUL-terminated and live across the call; "%s" consumes exactly one
    // pointer argument, which is what is passed.
    unsafe {
        crate::ffi::DbgPrintEx(
            crate::types::DPFLTR_IHVNETWORK_ID,
            level,
            c"%s".as_ptr().cast(),
            line.buf.as_ptr(),
        );
    }
}

#[cfg(all(target_os = "windows", not(feature = "wdk")))]
mod kernel_rt {
    use core::alloc::{GlobalAlloc, Layout};

    /// Global allocator over nonpaged NX pool. Alignment up to 16 is what the pool gives for every
    /// block; larger alignments are served by over-allocating and storing the base just before the
    /// returned pointer.
    pub struct PoolAllocator;

    const POOL_ALIGN: usize = 16;

    // SAFETY: ExAllocatePool2 returns distinct live blocks of at least the requested size, or NULL;
    // dealloc receives exactly the pointer alloc produced for the same layout.
    unsafe impl GlobalAlloc for PoolAllocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let size = layout.size().max(1);
            if layout.align() <= POOL_ALIGN {
                // SAFETY: plain pool allocation with a non-zero tag.
                return unsafe {
                    crate::ffi::ExAllocatePool2(
                        crate::types::POOL_FLAG_NON_PAGED,
                        size,
                        super::POOL_TAG,
                    )
                } as *mut u8;
            }
            let total = match size.checked_add(layout.align() + core::mem::size_of::<usize>()) {
                Some(t) => t,
                None => return core::ptr::null_mut(),
            };
            // SAFETY: as above.
            let base = unsafe {
                crate::ffi::ExAllocatePool2(
                    crate::types::POOL_FLAG_NON_PAGED,
                    total,
                    super::POOL_TAG,
                )
            } as *mut u8;
            if base.is_null() {
                return base;
            }
            let start = base as usize + core::mem::size_of::<usize>();
            let aligned = (start + layout.align() - 1) & !(layout.align() - 1);
            let user = aligned as *mut u8;
            // SAFETY: `aligned - 8 >= base` and `aligned + size <= base + total`, so both the slot
            // before `user` and the user range lie inside the block.
            unsafe { (user as *mut usize).sub(1).write_unaligned(base as usize) };
            user
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            let base = if layout.align() <= POOL_ALIGN {
                ptr
            } else {
                // SAFETY: `alloc` stored the block base right before the pointer it returned.
                unsafe { (ptr as *const usize).sub(1).read_unaligned() as *mut u8 }
            };
            // SAFETY: `base` came from ExAllocatePool2 with this tag.
            unsafe { crate::ffi::ExFreePoolWithTag(base as _, super::POOL_TAG) }
        }
    }

    #[global_allocator]
    static GLOBAL: PoolAllocator = PoolAllocator;

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let (line, col) = info
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        super::log(
            crate::types::DPFLTR_ERROR_LEVEL,
            format_args!("panic at line {line} column {col}"),
        );
        // SAFETY: KeBugCheckEx never returns and is callable at any IRQL; a panic on a kernel path is
        // a broken invariant that must stop the machine with a named code rather than corrupt it.
        unsafe {
            crate::ffi::KeBugCheckEx(
                crate::ffi::MDLPOOL_BUGCHECK,
                0x50414E43,
                line as usize,
                col as usize,
                0,
            )
        }
    }
}

#[cfg(all(target_os = "windows", not(feature = "wdk")))]
pub use kernel_rt::PoolAllocator;

/// Logs a formatted line at the given DbgPrintEx level: `ndis_sys::log!(DPFLTR_WARNING_LEVEL, "x={}", x)`.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)*) => { $crate::rt::log($level, format_args!($($arg)*)) };
}
