//! The simulated protocol/miniport flows (layer 4): everything that calls INTO the driver under
//! test on NDIS's behalf — sends and their completions, indications and their returns, the
//! lifecycle (attach, restart, pause, detach), OIDs, status and PnP, the background work of "the
//! rest of the machine" and the other CPUs' events of the deterministic schedule.
//!
//! The routines below (NdisF*, the kernel, configuration, timers) reach the simulated miniport and
//! protocol only through what [`install`] registers ([`crate::stack::Upcalls`],
//! [`crate::race::Events`]), as NDIS reaches real ones through their registered handlers; nothing
//! below imports this module.

use crate::kernel::{current_irql, set_irql};
use crate::nbl;
use crate::verifier::{self, rules};
use ndis_sys::*;

/// Registers the simulated miniport and protocol with the stack and the other CPUs' events with the
/// schedule (at every [`crate::Sim::start`]; the same functions each time).
pub(crate) fn install() {
    crate::stack::install_upcalls(crate::stack::Upcalls {
        miniport_send: send::miniport_accept,
        protocol_send_complete: send::protocol_complete,
        protocol_receive: receive::protocol_receive,
        miniport_return: receive::miniport_take_back,
        miniport_complete_sends: send::complete_sends,
        pause_and_detach: pause::pause_and_detach,
    });
    crate::race::install_events(crate::race::Events {
        background: schedule::background_event,
        pause_call: pause::pause_call,
    });
}

/// Calls driver code and checks it returns at the IRQL it was called at (fixing it up if not).
pub(super) fn checked<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let irql = current_irql();
    let r = f();
    let now = current_irql();
    if now != irql {
        verifier::report(
            rules::IRQL_NOT_RESTORED,
            0,
            format!("{what} returned at IRQL {now}, called at {irql}"),
        );
        set_irql(irql);
    }
    r
}

macro_rules! handler {
    ($id:expr, $field:ident) => {{
        let s = stack();
        let a = &s.adapters[$id];
        let d = s.driver.as_ref();
        match d {
            Some(d) if a.filter_handle != 0 && a.state != ModuleState::Detached => d
                .chars
                .$field
                .map(|h| (h, d.abi, a.module_ctx as NDIS_HANDLE)),
            _ => None,
        }
    }};
}

pub(super) fn digest_add(d: u64, frame: &[u8]) -> u64 {
    d.wrapping_add(nbl::fnv(0xCBF2_9CE4_8422_2325, frame))
}

pub(super) fn link(list: &[*mut NET_BUFFER_LIST]) -> *mut NET_BUFFER_LIST {
    for (i, &n) in list.iter().enumerate() {
        // SAFETY: NBLs the simulator holds right now.
        unsafe { (*n).Next = list.get(i + 1).copied().unwrap_or(std::ptr::null_mut()) };
    }
    list.first().copied().unwrap_or(std::ptr::null_mut())
}

pub(crate) mod build;
pub(crate) mod lifecycle;
pub(crate) mod oid;
pub(crate) mod pause;
pub(crate) mod pump;
pub(crate) mod receive;
pub(crate) mod schedule;
pub(crate) mod send;

pub(crate) use pump::{advance_clock_ms, pump, wait_until};
pub(crate) use receive::{
    miniport_indicate, miniport_indicate_frames, protocol_return, return_some,
};
pub(crate) use send::{
    protocol_send, protocol_send_frames, pump_sends, pump_sends_at_current_irql,
};
