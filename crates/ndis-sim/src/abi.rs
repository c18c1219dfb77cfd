//! The two calling conventions of the simulated kernel, and how an export is defined (the table
//! itself is `exports.rs`, at the top).
//!
//! Every routine ndis-sys imports is defined exactly once, inside a `sim_exports!` block. The macro
//! emits, for each routine:
//! - the `#[no_mangle] pub unsafe extern "system" fn` that the link seam resolves when a test binary
//!   links the driver's source against ndis-sim;
//! - on x86_64 hosts, an `extern "win64"` entry that forwards to it, for a driver image loaded from a
//!   real `.sys` (issue 8, `sysrun`), whose import table is bound through [`crate::exports()`];
//! - a row `(module, name, win64 entry)` that its file's `register_exports` appends to the table
//!   [`crate::exports()`] returns (the table itself lives in the top module, `exports.rs`).
//!
//! While a win64 entry runs, [`caller_abi`] answers [`Abi::Win64`]; routines that record driver
//! callbacks (filter registration, the NetAllocateMdl/NetFreeMdl handlers of retreat/advance, timers)
//! store that convention with the pointer and call back through [`Callback::invoke`], so the same
//! simulator serves both the linked source and a loaded image.
//!
//! Layer 1 (the bottom, beside the CPUs and the verifier): this module owns no simulator state and imports no other module of the
//! crate; it must not call back into the driver itself.

use std::cell::Cell;

/// The calling convention of a driver-supplied function pointer (or of the caller of an export).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Abi {
    /// `extern "system"`: the driver's source linked into the test binary (SysV on a Linux host).
    System,
    /// `extern "win64"`: a real Windows x64 image loaded by `sysrun`.
    #[cfg(target_arch = "x86_64")]
    Win64,
}

thread_local! {
    static CALLER_ABI: Cell<Abi> = const { Cell::new(Abi::System) };
}

/// The convention the current export was entered through ([`Abi::System`] outside any win64 entry).
pub fn caller_abi() -> Abi {
    CALLER_ABI.with(|c| c.get())
}

/// Sets the caller convention for the lifetime of the scope and restores the previous one on drop.
#[doc(hidden)]
pub struct AbiScope(Abi);

impl AbiScope {
    /// Marks the current thread as running inside an export entered with `abi`.
    pub fn enter(abi: Abi) -> Self {
        AbiScope(CALLER_ABI.with(|c| c.replace(abi)))
    }
}

impl Drop for AbiScope {
    fn drop(&mut self) {
        let prev = self.0;
        CALLER_ABI.with(|c| c.set(prev));
    }
}

/// One exported routine: the module a driver imports it from, its name, and its win64 entry.
#[derive(Clone, Copy, Debug)]
pub struct Export {
    /// `ndis.sys`, `ntoskrnl.exe` or `hal.dll`, as in the driver's import table.
    pub module: &'static str,
    /// The exported name.
    pub name: &'static str,
    /// Address of the `extern "win64"` entry (x86_64 hosts), to store into an image's IAT.
    #[cfg(target_arch = "x86_64")]
    pub win64: usize,
    /// Address of the `extern "system"` entry.
    pub system: usize,
}

/// Runs an export's body; a panic inside the simulator must not unwind into driver frames, so it
/// prints the routine and message and aborts the process.
#[doc(hidden)]
pub fn shield<R>(routine: &'static str, body: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "<non-string panic>".into());
            eprintln!("ndis-sim: panic inside {routine} (called by the driver): {msg}; aborting");
            std::process::abort();
        }
    }
}

/// Defines simulator exports; see the module docs. One invocation per source file.
#[macro_export]
#[doc(hidden)]
macro_rules! sim_exports {
    (
        module = $module:literal;
        $(
            $(#[$meta:meta])*
            fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)? $body:block
        )*
    ) => {
        $(
            $(#[$meta])*
            ///
            /// # Safety
            /// Called by the driver under test through the ndis-sys import of the same name; pointer
            /// arguments must satisfy that routine's documented contract.
            #[no_mangle]
            #[allow(non_snake_case, clippy::missing_safety_doc)]
            pub unsafe extern "system" fn $name($($arg: $ty),*) $(-> $ret)? {
                $crate::abi::shield(stringify!($name), move || $body)
            }
        )*

        #[cfg(target_arch = "x86_64")]
        #[allow(non_snake_case, unused_imports)]
        pub(crate) mod win64 {
            use super::*;
            $(
                pub(crate) unsafe extern "win64" fn $name($($arg: $ty),*) $(-> $ret)? {
                    let _scope = $crate::abi::AbiScope::enter($crate::abi::Abi::Win64);
                    // SAFETY: the same contract as the system entry; only the convention differs.
                    unsafe { super::$name($($arg),*) }
                }
            )*
        }

        /// Appends this file's exports to the table.
        pub(crate) fn register_exports(table: &mut Vec<$crate::abi::Export>) {
            $(
                table.push($crate::abi::Export {
                    module: $module,
                    name: stringify!($name),
                    #[cfg(target_arch = "x86_64")]
                    win64: win64::$name as *const () as usize,
                    system: $name as *const () as usize,
                });
            )*
        }
    };
}

/// A driver-supplied function pointer that the simulator calls back, in the convention it was
/// registered with. Implemented for `unsafe extern "system" fn` pointers of up to six arguments;
/// for [`Abi::Win64`] the same address is called as `extern "win64"` with the same signature.
pub trait Callback<Args> {
    /// What the callback returns.
    type Output;
    /// Calls the pointer.
    ///
    /// # Safety
    /// The pointer must be a function of this signature in convention `abi`, and the arguments must
    /// satisfy its contract.
    unsafe fn invoke(self, abi: Abi, args: Args) -> Self::Output;
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// Win64 driver callbacks running on this thread, innermost last.
    static WIN64_CALLBACKS: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The innermost win64 driver callback (code of a loaded image) that [`Callback::invoke`] is running
/// on this thread. A loader uses it to name the image function behind a finding when that function
/// reached the simulator by a tail call (its own return address is then not on the stack).
#[cfg(target_arch = "x86_64")]
pub fn innermost_win64_callback() -> Option<usize> {
    WIN64_CALLBACKS.with(|s| s.borrow().last().copied())
}

macro_rules! impl_callback {
    ($($a:ident),*) => {
        #[allow(non_snake_case)]
        impl<R, $($a),*> Callback<($($a,)*)> for unsafe extern "system" fn($($a),*) -> R {
            type Output = R;
            unsafe fn invoke(self, abi: Abi, args: ($($a,)*)) -> R {
                let ($($a,)*) = args;
                match abi {
                    // SAFETY: the caller guarantees the pointer has this signature and convention.
                    Abi::System => unsafe { self($($a),*) },
                    #[cfg(target_arch = "x86_64")]
                    Abi::Win64 => {
                        // SAFETY: same address, same signature, registered as win64 code (caller's
                        // guarantee); function pointers of both conventions have the same size.
                        let f: unsafe extern "win64" fn($($a),*) -> R = unsafe { std::mem::transmute(self) };
                        WIN64_CALLBACKS.with(|s| s.borrow_mut().push(self as *const () as usize));
                        // SAFETY: as above.
                        let r = unsafe { f($($a),*) };
                        WIN64_CALLBACKS.with(|s| s.borrow_mut().pop());
                        r
                    }
                }
            }
        }
    };
}
impl_callback!();
impl_callback!(A1);
impl_callback!(A1, A2);
impl_callback!(A1, A2, A3);
impl_callback!(A1, A2, A3, A4);
impl_callback!(A1, A2, A3, A4, A5);
impl_callback!(A1, A2, A3, A4, A5, A6);
