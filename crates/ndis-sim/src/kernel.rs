//! The kernel routines: processor numbers, IRQL (the driver's view of [`crate::cpu`]), spin locks,
//! bug checks, DbgPrintEx and the CRT helpers.
//!
//! A routine of layer 3 (see the crate doc). The virtual CPUs and their IRQL live in
//! [`crate::cpu`] (re-exported here under their old paths, e.g. `kernel::at_irql`); the IRQL checks
//! that report findings in [`crate::verifier`].
//!
//! This module owns the spin-lock words' protocol and DbgPrintEx's formatting; it calls no driver
//! code.

use crate::verifier::{self, rules};
use ndis_sys::*;

use std::sync::atomic::{AtomicUsize, Ordering};

pub use crate::cpu::{
    at_irql, bind_thread_to_cpu, cpu_count, current_cpu, current_irql, on_other_cpu, set_irql,
    MAX_CPUS,
};
pub(crate) use crate::cpu::{configure, cpus_per_group, deterministic};
pub(crate) use crate::verifier::{check_dispatch_flag, check_irql};

fn lock_word<'a>(lock: *mut KSPIN_LOCK) -> &'a std::sync::atomic::AtomicUsize {
    // SAFETY: a KSPIN_LOCK is a pointer-sized, pointer-aligned word that the driver gave us for the
    // duration of the call and only ever touches through these routines.
    unsafe { AtomicUsize::from_ptr(lock) }
}

fn spin_acquire(routine: &str, lock: *mut KSPIN_LOCK) {
    let word = lock_word(lock);
    let me = current_cpu() + 1;
    if word.load(Ordering::Relaxed) == me {
        verifier::report(
            rules::SPIN_LOCK_MISUSE,
            lock as usize,
            format!("{routine}: spin lock already held by this CPU (recursive acquire deadlocks)"),
        );
        eprintln!("ndis-sim: recursive spin lock acquire at {lock:p} would deadlock; aborting");
        std::process::abort();
    }
    while word
        .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        if deterministic() {
            eprintln!("ndis-sim: spin lock {lock:p} held by CPU {} in deterministic mode (lost release); aborting", word.load(Ordering::Relaxed).wrapping_sub(1));
            std::process::abort();
        }
        std::hint::spin_loop();
        std::thread::yield_now();
    }
}

fn spin_release(routine: &str, lock: *mut KSPIN_LOCK) {
    let word = lock_word(lock);
    let me = current_cpu() + 1;
    let held = word.load(Ordering::Relaxed);
    if held != me {
        verifier::report(
            rules::SPIN_LOCK_MISUSE,
            lock as usize,
            format!(
                "{routine}: released by CPU {} but held by {}",
                me - 1,
                held as isize - 1
            ),
        );
        return;
    }
    word.store(0, Ordering::Release);
}

/// `KeBugCheckEx`: records a BUGCHECK finding, prints it and aborts the process (it cannot return).
///
/// # Safety
/// None beyond the documented contract; it never returns.
#[no_mangle]
pub unsafe extern "system" fn KeBugCheckEx(
    code: u32,
    p1: ULONG_PTR,
    p2: ULONG_PTR,
    p3: ULONG_PTR,
    p4: ULONG_PTR,
) -> ! {
    let msg = format!("KeBugCheckEx({code:#x}, {p1:#x}, {p2:#x}, {p3:#x}, {p4:#x})");
    verifier::report(rules::BUGCHECK, p1, msg.clone());
    eprintln!("ndis-sim: the driver bugchecked: {msg}; log so far:");
    for l in verifier::log_lines().iter().rev().take(40).rev() {
        eprintln!("  {l}");
    }
    std::process::abort();
}

#[cfg(target_arch = "x86_64")]
unsafe extern "win64" fn ke_bug_check_ex_win64(
    code: u32,
    p1: ULONG_PTR,
    p2: ULONG_PTR,
    p3: ULONG_PTR,
    p4: ULONG_PTR,
) -> ! {
    // SAFETY: forwards the same arguments.
    unsafe { KeBugCheckEx(code, p1, p2, p3, p4) }
}

/// The conversions of a DbgPrintEx format, in order: (conversion character, 64-bit modifier).
fn dbgprint_conversions(fmt: &[u8]) -> Vec<(u8, bool)> {
    let mut v = Vec::new();
    let mut i = 0;
    while i + 1 < fmt.len() {
        if fmt[i] != b'%' {
            i += 1;
            continue;
        }
        if fmt[i + 1] == b'%' {
            i += 2;
            continue;
        }
        let mut j = i + 1;
        while j < fmt.len() && b"-+ #0123456789.hlIzL".contains(&fmt[j]) {
            j += 1;
        }
        let mods = &fmt[i + 1..j];
        let wide = mods.windows(2).any(|w| w == b"ll")
            || mods.windows(3).any(|w| w == b"I64")
            || mods.contains(&b'z');
        v.push((fmt.get(j).copied().unwrap_or(b'd'), wide));
        i = j + 1;
    }
    v
}

/// Formats a DbgPrintEx message: the subset `%s %d %i %u %x %X %p %c %%` (with `l`, `ll`, `I64`, `z`
/// and width/flags accepted) over the arguments that follow the format, one per conversion. The
/// driver itself only ever uses `"%s"`; a loaded image (sysrun) may pass more.
///
/// # Safety
/// `format` must be NUL-terminated; each `%s` argument must be NUL-terminated or NULL.
unsafe fn format_dbgprint(format: *const u8, args: &[usize]) -> String {
    if format.is_null() {
        return String::new();
    }
    // SAFETY: the caller guarantees a NUL-terminated format string.
    let fmt = unsafe { std::ffi::CStr::from_ptr(format.cast()) }.to_bytes();
    let mut out = String::new();
    let mut next = args.iter().copied();
    let mut i = 0;
    while i < fmt.len() {
        let c = fmt[i];
        if c != b'%' || i + 1 >= fmt.len() {
            out.push(c as char);
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < fmt.len() && b"-+ #0123456789.hlIzL".contains(&fmt[j]) {
            j += 1;
        }
        let mods = &fmt[i + 1..j];
        let wide = mods.windows(2).any(|w| w == b"ll")
            || mods.windows(3).any(|w| w == b"I64")
            || mods.contains(&b'z');
        let conv = fmt.get(j).copied().unwrap_or(b'%');
        if conv == b'%' {
            out.push('%');
            i = j + 1;
            continue;
        }
        let Some(arg) = next.next() else {
            out.push_str(&format!("<arg?{}>", conv as char));
            i = j + 1;
            continue;
        };
        let n = if wide { arg as u64 } else { arg as u32 as u64 };
        let piece = match conv {
            b's' if arg == 0 => "(null)".to_string(),
            // SAFETY: "%s" takes a NUL-terminated string (the caller's guarantee).
            b's' => unsafe { std::ffi::CStr::from_ptr(arg as *const std::ffi::c_char) }
                .to_string_lossy()
                .into_owned(),
            b'd' | b'i' if wide => (n as i64).to_string(),
            b'd' | b'i' => (n as u32 as i32).to_string(),
            b'u' => n.to_string(),
            b'x' => format!("{n:x}"),
            b'X' => format!("{n:X}"),
            b'p' => format!("{arg:016X}"),
            b'c' => ((arg as u8) as char).to_string(),
            other => format!("%{}", other as char),
        };
        out.push_str(&piece);
        i = j + 1;
    }
    out
}

crate::sim_exports! {
    module = "ntoskrnl.exe";

    /// ndis-sys hook behind `KeGetCurrentIrql` on non-Windows hosts: the current virtual CPU's IRQL.
    fn MdlpoolSimGetIrql() -> KIRQL {
        current_irql()
    }

    /// ndis-sys hook behind `KeRaiseIrql`/`KeLowerIrql`: sets the current virtual CPU's IRQL.
    fn MdlpoolSimSetIrql(new_irql: KIRQL) {
        set_irql(new_irql)
    }

    /// `KeGetCurrentProcessorNumberEx`: the system-wide index of the current virtual CPU, and its
    /// group-relative number. Any IRQL.
    fn KeGetCurrentProcessorNumberEx(proc_number: *mut PROCESSOR_NUMBER) -> u32 {
        let cpu = current_cpu();
        if !proc_number.is_null() {
            let per = cpus_per_group();
            // SAFETY: the caller passes a writable PROCESSOR_NUMBER or NULL.
            unsafe {
                proc_number.write(PROCESSOR_NUMBER { Group: (cpu / per) as u16, Number: (cpu % per) as u8, Reserved: 0 })
            };
        }
        cpu as u32
    }

    /// `KeQueryMaximumProcessorCountEx`: CPUs in `group`, or in all groups for ALL_PROCESSOR_GROUPS.
    fn KeQueryMaximumProcessorCountEx(group: u16) -> u32 {
        processors_in(group)
    }

    /// `KeQueryActiveProcessorCountEx`: every virtual CPU is active.
    fn KeQueryActiveProcessorCountEx(group: u16) -> u32 {
        processors_in(group)
    }

    /// `KeFlushQueuedDpcs`: PASSIVE_LEVEL. Timer callbacks run inside the clock advance that fires
    /// them, on the advancing thread; this returns once those in flight on other threads (concurrent
    /// mode: traffic threads advance the clock too) have returned.
    fn KeFlushQueuedDpcs() {
        check_irql("KeFlushQueuedDpcs", PASSIVE_LEVEL, 0);
        crate::timers::flush_queued_dpcs();
    }

    /// `KeAcquireSpinLockRaiseToDpc`: IRQL <= DISPATCH_LEVEL; raises to DISPATCH_LEVEL.
    fn KeAcquireSpinLockRaiseToDpc(lock: *mut KSPIN_LOCK) -> KIRQL {
        check_irql("KeAcquireSpinLockRaiseToDpc", DISPATCH_LEVEL, lock as usize);
        let old = current_irql();
        if old < DISPATCH_LEVEL {
            set_irql(DISPATCH_LEVEL);
        }
        spin_acquire("KeAcquireSpinLockRaiseToDpc", lock);
        old
    }

    /// `KeReleaseSpinLock`: DISPATCH_LEVEL; lowers to `new_irql`.
    fn KeReleaseSpinLock(lock: *mut KSPIN_LOCK, new_irql: KIRQL) {
        spin_release("KeReleaseSpinLock", lock);
        set_irql(new_irql);
    }

    /// `KeAcquireSpinLockAtDpcLevel`: the caller must already be at DISPATCH_LEVEL.
    fn KeAcquireSpinLockAtDpcLevel(lock: *mut KSPIN_LOCK) {
        if current_irql() != DISPATCH_LEVEL {
            verifier::report(rules::IRQL_TOO_HIGH, lock as usize,
                format!("KeAcquireSpinLockAtDpcLevel at IRQL {} (must be DISPATCH_LEVEL)", current_irql()));
        }
        spin_acquire("KeAcquireSpinLockAtDpcLevel", lock);
    }

    /// `KeReleaseSpinLockFromDpcLevel`.
    fn KeReleaseSpinLockFromDpcLevel(lock: *mut KSPIN_LOCK) {
        spin_release("KeReleaseSpinLockFromDpcLevel", lock);
    }

}

fn dbgprint(component: u32, level: u32, format: *const u8, args: &[usize]) -> u32 {
    // SAFETY: the driver passes a NUL-terminated format and, for %s, a NUL-terminated string.
    let text = unsafe { format_dbgprint(format, args) };
    verifier::log(format!(
        "[dbg {component}/{level} cpu{}] {}",
        current_cpu(),
        text.trim_end_matches('\n')
    ));
    0
}

/// `DbgPrintEx`, defined with four fixed arguments: stable Rust cannot define a C-variadic
/// function, and the driver only ever passes `"%s"` and one string, which a variadic caller passes
/// exactly like this on x86_64 and aarch64. The message goes to the per-test log.
///
/// # Safety
/// `format` must be NUL-terminated; a `%s` argument must be a NUL-terminated string.
#[cfg(not(miri))]
#[no_mangle]
pub unsafe extern "C" fn DbgPrintEx(
    component: u32,
    level: u32,
    format: *const u8,
    arg: usize,
) -> u32 {
    crate::abi::shield("DbgPrintEx", || dbgprint(component, level, format, &[arg]))
}

/// `DbgPrintEx` under Miri, which checks that caller and callee agree on C-variadic-ness: a real
/// variadic definition (nightly `c_variadic`, which Miri always has) reading the one argument a
/// conversion in the format asks for.
///
/// # Safety
/// `format` must be NUL-terminated and followed by one argument per conversion.
#[cfg(miri)]
#[no_mangle]
pub unsafe extern "C" fn DbgPrintEx(
    component: u32,
    level: u32,
    format: *const u8,
    mut args: ...
) -> u32 {
    // SAFETY: the caller guarantees a NUL-terminated format.
    let fmt = if format.is_null() {
        &[][..]
    } else {
        unsafe { std::ffi::CStr::from_ptr(format.cast()) }.to_bytes()
    };
    // Miri checks the type of every argument read: pointers for %s/%p, 64-bit for ll/I64/z
    // integers, int otherwise.
    let mut vals = Vec::new();
    for (conv, wide) in dbgprint_conversions(fmt) {
        // SAFETY: each conversion in the format has a matching argument (the caller's guarantee).
        let v = unsafe {
            match (conv, wide) {
                (b's' | b'p', _) => args.next_arg::<*const u8>() as usize,
                (_, true) => args.next_arg::<u64>() as usize,
                _ => args.next_arg::<u32>() as usize,
            }
        };
        vals.push(v);
    }
    dbgprint(component, level, format, &vals)
}

/// The win64 entry for a loaded image: up to eight arguments after the format are taken (Win64
/// variadic calls pass them exactly like fixed ones: RCX, RDX, R8, R9, then the stack), and only as
/// many are used as the format has conversions.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe extern "win64" fn dbg_print_ex_win64(
    component: u32,
    level: u32,
    format: *const u8,
    a0: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
    a6: usize,
    a7: usize,
) -> u32 {
    let _scope = crate::abi::AbiScope::enter(crate::abi::Abi::Win64);
    crate::abi::shield("DbgPrintEx", || {
        let n = if format.is_null() {
            0
        } else {
            // SAFETY: the image passes a NUL-terminated format.
            dbgprint_conversions(unsafe { std::ffi::CStr::from_ptr(format.cast()) }.to_bytes())
                .len()
        };
        let all = [a0, a1, a2, a3, a4, a5, a6, a7];
        dbgprint(component, level, format, &all[..n.min(8)])
    })
}

fn processors_in(group: u16) -> u32 {
    let n = cpu_count();
    if group == ALL_PROCESSOR_GROUPS {
        return n as u32;
    }
    let per = cpus_per_group();
    let start = group as usize * per;
    n.saturating_sub(start).min(per) as u32
}

// __chkstk, the stack probe a /NODEFAULTLIB driver imports from ntoskrnl.exe for frames over 4 KiB,
// is table-only like the C runtime routines below. It probes the pages of a large frame (RAX = size)
// and must preserve every register but R10/R11; a user-mode Linux stack grows on demand, so a bare
// `ret` is the whole probe.
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod chkstk {
    std::arch::global_asm!(
        ".globl ndis_sim_chkstk_win64",
        "ndis_sim_chkstk_win64:",
        "ret"
    );

    extern "win64" {
        fn ndis_sim_chkstk_win64();
    }

    pub(super) fn entry() -> usize {
        ndis_sim_chkstk_win64 as *const () as usize
    }
}

/// Adds the exports that the macro cannot express (diverging routines, the C runtime imports).
pub(crate) fn register_extra_exports(table: &mut Vec<crate::abi::Export>) {
    table.push(crate::abi::Export {
        module: "ntoskrnl.exe",
        name: "DbgPrintEx",
        #[cfg(target_arch = "x86_64")]
        win64: dbg_print_ex_win64 as *const () as usize,
        system: DbgPrintEx as *const () as usize,
    });
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    table.push(crate::abi::Export {
        module: "ntoskrnl.exe",
        name: "__chkstk",
        win64: chkstk::entry(),
        system: chkstk::entry(),
    });
    table.push(crate::abi::Export {
        module: "ntoskrnl.exe",
        name: "KeBugCheckEx",
        #[cfg(target_arch = "x86_64")]
        win64: ke_bug_check_ex_win64 as *const () as usize,
        system: KeBugCheckEx as *const () as usize,
    });
    crt::register(table);
}

/// The C runtime routines ntoskrnl exports (`memcpy`, `memmove`, `memset`, `memcmp`), which a driver
/// image built with /NODEFAULTLIB imports for the compiler's block moves. They appear only in the
/// export table, never as `#[no_mangle]` symbols: on the link seam the host C library provides them.
mod crt {
    macro_rules! both {
        ($sys:ident, $w64:ident, ($($a:ident: $t:ty),*) -> $r:ty, $body:block) => {
            unsafe extern "system" fn $sys($($a: $t),*) -> $r $body
            #[cfg(target_arch = "x86_64")]
            unsafe extern "win64" fn $w64($($a: $t),*) -> $r {
                // SAFETY: the same contract as the system entry; only the convention differs.
                unsafe { $sys($($a),*) }
            }
        };
    }
    both!(memcpy_sys, memcpy_w64, (d: *mut u8, s: *const u8, n: usize) -> *mut u8, {
        // SAFETY: the caller guarantees `n` valid, non-overlapping bytes at both pointers.
        unsafe { std::ptr::copy_nonoverlapping(s, d, n) };
        d
    });
    both!(memmove_sys, memmove_w64, (d: *mut u8, s: *const u8, n: usize) -> *mut u8, {
        // SAFETY: the caller guarantees `n` valid bytes at both pointers.
        unsafe { std::ptr::copy(s, d, n) };
        d
    });
    both!(memset_sys, memset_w64, (d: *mut u8, c: i32, n: usize) -> *mut u8, {
        // SAFETY: the caller guarantees `n` writable bytes at `d`.
        unsafe { std::ptr::write_bytes(d, c as u8, n) };
        d
    });
    both!(memcmp_sys, memcmp_w64, (a: *const u8, b: *const u8, n: usize) -> i32, {
        // SAFETY: the caller guarantees `n` readable bytes at both pointers.
        let (x, y) = unsafe { (std::slice::from_raw_parts(a, n), std::slice::from_raw_parts(b, n)) };
        x.iter().zip(y).find(|(p, q)| p != q).map_or(0, |(p, q)| *p as i32 - *q as i32)
    });

    macro_rules! row {
        ($name:literal, $sys:ident, $w64:ident) => {
            crate::abi::Export {
                module: "ntoskrnl.exe",
                name: $name,
                #[cfg(target_arch = "x86_64")]
                win64: $w64 as *const () as usize,
                system: $sys as *const () as usize,
            }
        };
    }

    pub(super) fn register(table: &mut Vec<crate::abi::Export>) {
        table.push(row!("memcpy", memcpy_sys, memcpy_w64));
        table.push(row!("memmove", memmove_sys, memmove_w64));
        table.push(row!("memset", memset_sys, memset_w64));
        table.push(row!("memcmp", memcmp_sys, memcmp_w64));
    }
}
