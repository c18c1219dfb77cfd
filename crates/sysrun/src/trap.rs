//! Kernel intrinsics for a loaded image: the fault handler that emulates `mov r64, cr8` and
//! `mov cr8, r64` (how x64 kernel code reads and writes IRQL) and stops the run, naming the driver
//! function, on any other fault inside an image.
//!
//! In user mode a CR8 move raises #GP, which Linux delivers as SIGSEGV. The handler decodes the
//! instruction at RIP (any general register, REX.B for r8–r15, REX.R selecting CR8, and the LOCK
//! alternative encoding), applies it to the current virtual CPU's IRQL through ndis-sim's IRQL
//! hooks, and steps RIP over it. A fault whose RIP is outside every loaded image goes to the handler
//! that was installed before (Rust's stack-overflow handler, or the default action).
//!
//! The handler never allocates and takes no lock: the image table is a fixed array of atomics, and
//! the symbol tables it reads were built before the image ran and are never freed (they are leaked
//! when registered, a few KiB per load). The signal is synchronous (raised by the faulting
//! instruction of this thread), so calling the simulator's IRQL hooks from it is calling them from
//! the driver's own frame, as the kernel's CR8 semantics require.
//!
//! This module owns the process's SIGSEGV/SIGILL/SIGBUS/SIGFPE/SIGTRAP dispositions while any image
//! is loaded; nothing else in the workspace installs them.

use crate::symbols::Symbols;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;

extern "system" {
    /// ndis-sim's hook: the calling thread's virtual CPU's IRQL.
    fn MdlpoolSimGetIrql() -> u8;
    /// ndis-sim's hook: sets the calling thread's virtual CPU's IRQL.
    fn MdlpoolSimSetIrql(new_irql: u8);
}

/// Most images loaded at once.
const MAX_IMAGES: usize = 32;

struct Slot {
    /// 0 = free, 1 = being filled, 2 = live.
    state: AtomicUsize,
    start: AtomicUsize,
    end: AtomicUsize,
    symbols: AtomicPtr<Symbols>,
    name: AtomicPtr<String>,
}

static SLOTS: [Slot; MAX_IMAGES] = [const {
    Slot {
        state: AtomicUsize::new(0),
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        symbols: AtomicPtr::new(std::ptr::null_mut()),
        name: AtomicPtr::new(std::ptr::null_mut()),
    }
}; MAX_IMAGES];

/// Number of CR8 accesses emulated (all threads), for tests and the demo's diagnostics.
static CR8_READS: AtomicUsize = AtomicUsize::new(0);
static CR8_WRITES: AtomicUsize = AtomicUsize::new(0);

/// CR8 reads and writes emulated so far in this process.
pub fn cr8_counts() -> (usize, usize) {
    (
        CR8_READS.load(Ordering::Relaxed),
        CR8_WRITES.load(Ordering::Relaxed),
    )
}

const SIGNALS: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGILL,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGTRAP,
];

/// The dispositions in force before ours, per entry of [`SIGNALS`], to chain faults outside images.
static PREVIOUS: [OnceLock<libc::sigaction>; 5] = [const { OnceLock::new() }; 5];
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// Installs the fault handler (once per process).
pub(crate) fn install() -> Result<(), String> {
    INSTALLED
        .get_or_init(|| {
            for (i, &sig) in SIGNALS.iter().enumerate() {
                // SAFETY: a zeroed sigaction is a valid "no handler" value to be filled in.
                let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
                sa.sa_sigaction = on_fault as *const () as usize;
                // Not SA_ONSTACK: the handler runs on the faulting thread's own stack (the driver's
                // stack, which has room), not on the small alternate stack Rust's runtime installs.
                sa.sa_flags = libc::SA_SIGINFO;
                // SAFETY: sa_mask is a valid sigset to initialise.
                unsafe { libc::sigemptyset(&mut sa.sa_mask) };
                // SAFETY: as above; filled by sigaction.
                let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
                // SAFETY: valid pointers to initialised sigaction values; `on_fault` has the
                // SA_SIGINFO signature.
                if unsafe { libc::sigaction(sig, &sa, &mut old) } != 0 {
                    return Err(format!(
                        "sigaction({sig}) failed: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                let _ = PREVIOUS[i].set(old);
            }
            Ok(())
        })
        .clone()
}

/// Registers `[start, end)` as a loaded image named `name` with optional symbols; returns its slot.
pub(crate) fn register(
    start: usize,
    end: usize,
    name: String,
    symbols: Option<Symbols>,
) -> Option<usize> {
    for (i, s) in SLOTS.iter().enumerate() {
        if s.state
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            // Leaked on purpose: the signal handler may read them at any time; see the module docs.
            let syms = symbols
                .map(|s| Box::into_raw(Box::new(s)))
                .unwrap_or(std::ptr::null_mut());
            s.symbols.store(syms, Ordering::Relaxed);
            s.name
                .store(Box::into_raw(Box::new(name)), Ordering::Relaxed);
            s.start.store(start, Ordering::Relaxed);
            s.end.store(end, Ordering::Relaxed);
            s.state.store(2, Ordering::Release);
            return Some(i);
        }
    }
    None
}

/// Removes a registration (the image is about to be unmapped; no code of it runs any more).
pub(crate) fn unregister(slot: usize) {
    let s = &SLOTS[slot];
    s.state.store(1, Ordering::Release);
    s.start.store(0, Ordering::Relaxed);
    s.end.store(0, Ordering::Relaxed);
    s.state.store(0, Ordering::Release);
}

/// The registered image containing `addr`: (slot, image start).
fn image_at(addr: usize) -> Option<(&'static Slot, usize)> {
    for s in SLOTS.iter() {
        if s.state.load(Ordering::Acquire) != 2 {
            continue;
        }
        let (start, end) = (
            s.start.load(Ordering::Relaxed),
            s.end.load(Ordering::Relaxed),
        );
        if addr >= start && addr < end {
            return Some((s, start));
        }
    }
    None
}

/// Describes `addr` as `file!function+0xoff (rva 0x…)` when it lies in a loaded image.
pub fn describe_address(addr: usize) -> Option<String> {
    let (slot, start) = image_at(addr)?;
    let mut out = String::new();
    write_location(&mut out, slot, start, addr);
    Some(out)
}

fn write_location(out: &mut impl std::fmt::Write, slot: &Slot, start: usize, addr: usize) {
    let rva = (addr - start) as u32;
    let name_ptr = slot.name.load(Ordering::Relaxed);
    let name = if name_ptr.is_null() {
        "image"
    } else {
        // SAFETY: registered names are leaked Strings, never freed.
        unsafe { (*name_ptr).as_str() }
    };
    let syms = slot.symbols.load(Ordering::Relaxed);
    let found = if syms.is_null() {
        None
    } else {
        // SAFETY: registered symbol tables are leaked, never freed or mutated.
        unsafe { (*syms).lookup(rva) }
    };
    let _ = match found {
        Some((f, off)) => write!(out, "{name}!{f}+{off:#x} (rva {rva:#x})"),
        None => write!(out, "{name}+{rva:#x} (no symbol)"),
    };
}

/// Index into `gregs` of x86 register number 0..15 (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15).
const GREG_OF: [libc::c_int; 16] = [
    libc::REG_RAX,
    libc::REG_RCX,
    libc::REG_RDX,
    libc::REG_RBX,
    libc::REG_RSP,
    libc::REG_RBP,
    libc::REG_RSI,
    libc::REG_RDI,
    libc::REG_R8,
    libc::REG_R9,
    libc::REG_R10,
    libc::REG_R11,
    libc::REG_R12,
    libc::REG_R13,
    libc::REG_R14,
    libc::REG_R15,
];

/// Register names for diagnostics, by x86 register number.
const REG_NAME: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// A decoded CR8 move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cr8Move {
    /// `mov cr8, reg` (a write) rather than `mov reg, cr8`.
    pub write: bool,
    /// The general register, x86 numbering (0 = rax … 15 = r15).
    pub reg: u8,
    /// Instruction length in bytes.
    pub len: usize,
}

/// Decodes `code` as a CR8 move: `[F0] [REX] 0F 20|22 modrm` where the control register (ModRM.reg,
/// extended by REX.R, or by LOCK in AMD's alternative encoding) is 8. The mod bits are ignored, as
/// the processor ignores them for control-register moves.
pub fn decode_cr8(code: &[u8]) -> Option<Cr8Move> {
    let mut i = 0;
    let mut lock = false;
    let mut rex = 0u8;
    if *code.get(i)? == 0xF0 {
        lock = true;
        i += 1;
    }
    if code.get(i)? & 0xF0 == 0x40 {
        rex = code[i];
        i += 1;
    }
    if *code.get(i)? != 0x0F {
        return None;
    }
    let op = *code.get(i + 1)?;
    if op != 0x20 && op != 0x22 {
        return None;
    }
    let modrm = *code.get(i + 2)?;
    let mut cr = ((rex >> 2) & 1) << 3 | ((modrm >> 3) & 7);
    if lock {
        cr |= 8;
    }
    if cr != 8 {
        return None;
    }
    Some(Cr8Move {
        write: op == 0x22,
        reg: ((rex & 1) << 3) | (modrm & 7),
        len: i + 3,
    })
}

/// A fixed buffer for composing a diagnostic without allocating.
struct StackText {
    buf: [u8; 1024],
    len: usize,
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn signal_name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGILL => "SIGILL",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTRAP => "SIGTRAP",
        _ => "signal",
    }
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: with SA_SIGINFO the kernel passes a valid ucontext_t for the interrupted thread.
    let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
    let gregs = &mut uc.uc_mcontext.gregs;
    let rip = gregs[libc::REG_RIP as usize] as usize;

    let Some((slot, start)) = image_at(rip) else {
        // Not image code. If this thread is inside a routine an image called (ndis-sim serving an
        // import, e.g. with a bad pointer from the driver), say which image call led here first.
        report_outside_image(sig, info, rip);
        chain(sig, info, ctx);
        return;
    };
    let end = slot.end.load(Ordering::Relaxed);
    let avail = (end - rip).min(16);
    // SAFETY: [rip, rip+avail) lies inside the registered image, whose code pages are mapped
    // readable and executable for as long as it is registered.
    let code = unsafe { std::slice::from_raw_parts(rip as *const u8, avail) };

    let mut text = StackText {
        buf: [0; 1024],
        len: 0,
    };
    if sig == libc::SIGSEGV {
        if let Some(m) = decode_cr8(code) {
            let greg = GREG_OF[m.reg as usize] as usize;
            if m.write {
                let value = gregs[greg] as u64;
                if value <= 15 {
                    // SAFETY: ndis-sim's hook; no preconditions.
                    unsafe { MdlpoolSimSetIrql(value as u8) };
                    CR8_WRITES.fetch_add(1, Ordering::Relaxed);
                    gregs[libc::REG_RIP as usize] += m.len as i64;
                    return;
                }
                let _ = write!(
                    text,
                    "sysrun: mov cr8, {} with reserved bits set ({value:#x}) would #GP in the kernel",
                    REG_NAME[m.reg as usize]
                );
            } else {
                // SAFETY: ndis-sim's hook; no preconditions.
                let irql = unsafe { MdlpoolSimGetIrql() };
                // In 64-bit mode a move from a control register writes all 64 bits.
                gregs[greg] = irql as i64;
                CR8_READS.fetch_add(1, Ordering::Relaxed);
                gregs[libc::REG_RIP as usize] += m.len as i64;
                return;
            }
        }
    }

    // Anything else stops the run, naming the instruction and the function.
    if text.len == 0 {
        let _ = write!(
            text,
            "sysrun: {} in the loaded driver image",
            signal_name(sig)
        );
    }
    let _ = write!(text, "\n  at {rip:#x} ");
    write_location(&mut text, slot, start, rip);
    let _ = write!(text, "\n  instruction bytes:");
    for b in code {
        let _ = write!(text, " {b:02x}");
    }
    // SAFETY: the kernel filled `info` for this signal.
    let fault_addr = unsafe { (*info).si_addr() } as usize;
    let _ = write!(text, "\n  fault address {fault_addr:#x}");
    if code.first() == Some(&0x65) || (code.len() > 1 && code[0] & 0xF0 == 0x40 && code[1] == 0x65)
    {
        let _ = write!(text, " (a GS-relative access: the image reads per-processor data, which sysrun does not provide)");
    } else if sig == libc::SIGSEGV
        && code.len() >= 2
        && code[0] == 0x0F
        && matches!(code[1], 0x01 | 0x20..=0x23 | 0x30 | 0x32)
    {
        let _ = write!(text, " (a privileged instruction sysrun does not emulate)");
    }
    let _ = writeln!(text);
    // SAFETY: writing an initialised buffer to stderr; async-signal-safe.
    unsafe { libc::write(2, text.buf.as_ptr().cast(), text.len) };
    // SAFETY: ends the process; async-signal-safe.
    unsafe { libc::abort() };
}

/// A fault outside every image: if this thread is inside a routine an image called (ndis-sim
/// serving an import, e.g. with a bad pointer from the driver), names the image call that led there.
#[inline(never)]
fn report_outside_image(sig: libc::c_int, info: *mut libc::siginfo_t, rip: usize) {
    let Some(ret) = crate::callsite::innermost() else {
        return;
    };
    let Some((s, st)) = image_at(ret.wrapping_sub(1)) else {
        return;
    };
    let mut text = StackText {
        buf: [0; 1024],
        len: 0,
    };
    // SAFETY: the kernel filled `info` for this signal.
    let fault_addr = unsafe { (*info).si_addr() } as usize;
    let _ = write!(
        text,
        "sysrun: {} at {rip:#x} (fault address {fault_addr:#x}) outside the image, inside a routine called from ",
        signal_name(sig)
    );
    write_location(&mut text, s, st, ret - 1);
    let _ = writeln!(text);
    // SAFETY: writing an initialised buffer to stderr; async-signal-safe.
    unsafe { libc::write(2, text.buf.as_ptr().cast(), text.len) };
}

/// Passes a fault outside every image to the disposition that was in force before ours.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let idx = SIGNALS.iter().position(|&s| s == sig).unwrap_or(0);
    let prev = PREVIOUS[idx].get();
    match prev {
        Some(p) if p.sa_sigaction != libc::SIG_DFL && p.sa_sigaction != libc::SIG_IGN => {
            if p.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this
                // signature; we pass it the kernel's own arguments.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(p.sa_sigaction) };
                f(sig, info, ctx);
            } else {
                // SAFETY: a plain handler takes only the signal number.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(p.sa_sigaction) };
                f(sig);
            }
        }
        _ => {
            // Restore the default action and return: the faulting instruction runs again and the
            // process ends the way it would have without us.
            // SAFETY: a zeroed sigaction with SIG_DFL is valid.
            let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
            dfl.sa_sigaction = libc::SIG_DFL;
            // SAFETY: valid pointer; sigaction is async-signal-safe.
            unsafe { libc::sigaction(sig, &dfl, std::ptr::null_mut()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_register_both_directions() {
        // mov rax, cr8 = 44 0f 20 c0 ; mov cr8, rax = 44 0f 22 c0
        assert_eq!(
            decode_cr8(&[0x44, 0x0f, 0x20, 0xc0]),
            Some(Cr8Move {
                write: false,
                reg: 0,
                len: 4
            })
        );
        assert_eq!(
            decode_cr8(&[0x44, 0x0f, 0x22, 0xc0]),
            Some(Cr8Move {
                write: true,
                reg: 0,
                len: 4
            })
        );
        for reg in 0u8..16 {
            let rex = 0x44 | (reg >> 3);
            let modrm = 0xc0 | (reg & 7);
            for (op, write) in [(0x20u8, false), (0x22, true)] {
                let d = decode_cr8(&[rex, 0x0f, op, modrm, 0x90]).unwrap();
                assert_eq!(d, Cr8Move { write, reg, len: 4 }, "reg {reg} op {op:#x}");
                // REX.W set as well (4c / 4d)
                let d = decode_cr8(&[rex | 8, 0x0f, op, modrm]).unwrap();
                assert_eq!(d.reg, reg);
            }
        }
        // AMD's LOCK alternative: f0 0f 20 c1 = mov rcx, cr8
        assert_eq!(
            decode_cr8(&[0xf0, 0x0f, 0x20, 0xc1]),
            Some(Cr8Move {
                write: false,
                reg: 1,
                len: 4
            })
        );
    }

    #[test]
    fn refuses_other_control_registers_and_instructions() {
        assert_eq!(decode_cr8(&[0x0f, 0x20, 0xc0]), None); // mov rax, cr0
        assert_eq!(decode_cr8(&[0x0f, 0x20, 0xd8]), None); // mov rax, cr3
        assert_eq!(decode_cr8(&[0x44, 0x0f, 0x20, 0xc8]), None); // mov rax, cr9
        assert_eq!(decode_cr8(&[0x0f, 0x01, 0xf8]), None); // swapgs
        assert_eq!(decode_cr8(&[0xfa]), None); // cli
        assert_eq!(decode_cr8(&[0x44, 0x0f]), None); // truncated
        assert_eq!(decode_cr8(&[]), None);
    }
}
