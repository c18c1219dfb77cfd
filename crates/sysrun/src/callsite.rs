//! Call sites: which instruction of the image called the simulated kernel routine that is running.
//!
//! Each import slot of a loaded image is bound not to the routine itself but to a small generated
//! thunk (win64 in, win64 out) that pushes its return address — an address inside the image — onto
//! a per-thread stack, calls the routine with the same register and stack arguments, pops the entry
//! and returns the routine's result. So while a simulated routine runs, [`innermost`] is the image
//! instruction after the `call` that reached it, even across nested calls (a routine that calls back
//! into the driver, which calls another routine). The verifier uses it to name the driver function
//! behind a finding.
//!
//! The thunk copies 8 stack argument slots, more than any kernel or NDIS routine the driver can
//! import takes (the most is 7 arguments, 3 on the stack). Float arguments are not preserved across
//! the bookkeeping call; kernel routines take none.
//!
//! This module owns the thunk pages and the per-thread stack; nothing here allocates on a call.

use std::cell::Cell;

/// Deepest nesting recorded per thread; deeper entries are counted but not stored.
const MAX_DEPTH: usize = 64;

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    static SITES: [Cell<usize>; MAX_DEPTH] = const { [const { Cell::new(0) }; MAX_DEPTH] };
}

unsafe extern "win64" fn enter(return_address: usize) {
    let d = DEPTH.with(|d| d.get());
    if d < MAX_DEPTH {
        SITES.with(|s| s[d].set(return_address));
    }
    DEPTH.with(|c| c.set(d + 1));
}

unsafe extern "win64" fn leave() {
    DEPTH.with(|c| c.set(c.get().saturating_sub(1)));
}

/// The return address (inside a loaded image) of the innermost import call running on this thread.
pub fn innermost() -> Option<usize> {
    let d = DEPTH.with(|d| d.get());
    if d == 0 {
        return None;
    }
    Some(SITES.with(|s| s[(d - 1).min(MAX_DEPTH - 1)].get()))
}

/// Every recorded import call site of this thread, innermost first.
pub fn stack() -> Vec<usize> {
    let d = DEPTH.with(|d| d.get()).min(MAX_DEPTH);
    SITES.with(|s| (0..d).rev().map(|i| s[i].get()).collect())
}

/// Size of one generated thunk, padded to 16 bytes.
pub(crate) const THUNK_SIZE: usize = 176;

/// Writes the thunk for `target` into `out` (at least [`THUNK_SIZE`] bytes). See the module docs.
pub(crate) fn write_thunk(out: &mut [u8], target: usize) {
    let mut c: Vec<u8> = Vec::with_capacity(THUNK_SIZE);
    let imm64 = |c: &mut Vec<u8>, v: usize| c.extend_from_slice(&(v as u64).to_le_bytes());
    // Entry: rsp ≡ 8 (mod 16).
    c.extend_from_slice(&[0x55]); // push rbp              ; ≡ 0
    c.extend_from_slice(&[0x48, 0x89, 0xE5]); // mov rbp, rsp
    c.extend_from_slice(&[0x51, 0x52, 0x41, 0x50, 0x41, 0x51]); // push rcx, rdx, r8, r9 ; ≡ 0
    c.extend_from_slice(&[0x48, 0x83, 0xEC, 0x20]); // sub rsp, 0x20 (shadow)
    c.extend_from_slice(&[0x48, 0x8B, 0x4D, 0x08]); // mov rcx, [rbp+8]  (return address)
    c.extend_from_slice(&[0x48, 0xB8]); // mov rax, enter
    imm64(&mut c, enter as *const () as usize);
    c.extend_from_slice(&[0xFF, 0xD0]); // call rax
    c.extend_from_slice(&[0x48, 0x83, 0xC4, 0x20]); // add rsp, 0x20
    c.extend_from_slice(&[0x41, 0x59, 0x41, 0x58, 0x5A, 0x59]); // pop r9, r8, rdx, rcx
    c.extend_from_slice(&[0x48, 0x83, 0xEC, 0x60]); // sub rsp, 0x60 (shadow + 8 stack args) ; ≡ 0
    for i in 0..8u8 {
        c.extend_from_slice(&[0x48, 0x8B, 0x45, 0x30 + 8 * i]); // mov rax, [rbp+0x30+8i]
        c.extend_from_slice(&[0x48, 0x89, 0x44, 0x24, 0x20 + 8 * i]); // mov [rsp+0x20+8i], rax
    }
    c.extend_from_slice(&[0x48, 0xB8]); // mov rax, target
    imm64(&mut c, target);
    c.extend_from_slice(&[0xFF, 0xD0]); // call rax
    c.extend_from_slice(&[0x50]); // push rax (result)       ; ≡ 8
    c.extend_from_slice(&[0x48, 0x83, 0xEC, 0x28]); // sub rsp, 0x28     ; ≡ 0
    c.extend_from_slice(&[0x48, 0xB8]); // mov rax, leave
    imm64(&mut c, leave as *const () as usize);
    c.extend_from_slice(&[0xFF, 0xD0]); // call rax
    c.extend_from_slice(&[0x48, 0x83, 0xC4, 0x28]); // add rsp, 0x28
    c.extend_from_slice(&[0x58]); // pop rax
    c.extend_from_slice(&[0xC9, 0xC3]); // leave ; ret
    assert!(c.len() <= THUNK_SIZE, "thunk is {} bytes", c.len());
    c.resize(THUNK_SIZE, 0xCC); // int3 padding
    out[..THUNK_SIZE].copy_from_slice(&c);
}

/// A page-aligned block of thunks, written once and then mapped read + execute.
pub(crate) struct Thunks {
    base: usize,
    len: usize,
}

impl Thunks {
    /// Generates one thunk per target; returns the block and each thunk's address.
    pub(crate) fn build(targets: &[usize]) -> Result<(Thunks, Vec<usize>), String> {
        let len = ((targets.len().max(1) * THUNK_SIZE) + 0xFFF) & !0xFFF;
        // SAFETY: a fresh private anonymous mapping.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!(
                "mmap for import thunks: {}",
                std::io::Error::last_os_error()
            ));
        }
        let base = base as usize;
        // SAFETY: the mapping above is `len` writable bytes that nothing else references.
        let block = unsafe { std::slice::from_raw_parts_mut(base as *mut u8, len) };
        let mut addrs = Vec::with_capacity(targets.len());
        for (i, &t) in targets.iter().enumerate() {
            write_thunk(&mut block[i * THUNK_SIZE..], t);
            addrs.push(base + i * THUNK_SIZE);
        }
        let thunks = Thunks { base, len };
        // SAFETY: our own mapping; from now on it is code, never written again (W^X).
        if unsafe {
            libc::mprotect(
                base as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_EXEC,
            )
        } != 0
        {
            return Err(format!(
                "mprotect of import thunks: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok((thunks, addrs))
    }
}

impl Drop for Thunks {
    fn drop(&mut self) {
        // SAFETY: our own mapping; dropped with the image, when no code of it runs any more.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}
