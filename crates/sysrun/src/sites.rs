//! Naming the driver function behind a verifier finding: ndis-sim asks, when it records a finding,
//! for the current call site; sysrun answers with the innermost import call the loaded image made on
//! this thread ([`crate::callsite`]), named through the image's PDB:
//! `call returning to 0x… in mdlpool.sys!mdlpool::filter::send::…+0x4f (rva 0x1a2f)`.
//!
//! When that call's return address is not in any image, the image function reached the simulator by
//! a tail call (`jmp [IAT]`), so the function is the innermost driver callback ndis-sim is running on
//! this thread: `tail call from sysrun_bad_driver.sys!…::BadSendComplete+0x0 (rva …)`.
//!
//! Owns only the hook registration.

/// Registers the hook with ndis-sim (idempotent).
pub fn install() {
    ndis_sim::verifier::set_site_hook(current_site);
}

/// The innermost image call site of this thread, named, if the thread is inside an import call
/// made by a loaded image.
pub fn current_site() -> Option<String> {
    let ret = crate::callsite::innermost()?;
    // The return address follows the call; name the call instruction's function (ret - 1).
    if let Some(name) = crate::trap::describe_address(ret - 1) {
        return Some(format!("call returning to {ret:#x} in {name}"));
    }
    let callback = ndis_sim::abi::innermost_win64_callback()?;
    let name = crate::trap::describe_address(callback)?;
    Some(format!("tail call from {name}"))
}
