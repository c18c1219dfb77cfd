//! The other CPUs' events of the deterministic schedule ([`crate::race`]): what "another CPU" does
//! at a preemption point or between the ticks of a lifecycle wait.

use crate::kernel;
use crate::race::{claim_ctl, claim_indicate, release, release_ctl};
use ndis_sys::*;

/// One event of "another CPU" (deterministic schedule): a miniport indication, send completions,
/// protocol returns, a status indication or a clock tick (timer DPCs). Never a new protocol send
/// (the protocol is paused whenever lifecycle work is in progress).
pub(crate) fn background_event(id: usize, r: u64) {
    let shape = crate::stack::NblShape {
        nbls: 1 + (r >> 40) as usize % 2,
        ..crate::stack::NblShape::default()
    };
    match r % 6 {
        0 | 1 => {
            if claim_indicate(id) {
                let flags = if (r >> 8).is_multiple_of(3) {
                    NDIS_RECEIVE_FLAGS_RESOURCES
                } else {
                    0
                };
                kernel::at_irql(DISPATCH_LEVEL, || {
                    crate::flows::miniport_indicate(id, &shape, flags)
                });
                release(id);
            }
        }
        2 => {
            let mut seed = r >> 16;
            crate::flows::pump_sends(id, 1 + (r >> 20) as usize % 3, &mut seed);
        }
        3 => {
            kernel::at_irql(DISPATCH_LEVEL, || {
                crate::flows::return_some(id, 1 + (r >> 20) as usize % 3)
            });
        }
        4 => {
            if claim_ctl(id) {
                kernel::at_irql(DISPATCH_LEVEL, || {
                    crate::flows::oid::miniport_status(id, NDIS_STATUS_LINK_STATE, true)
                });
                release_ctl(id);
            }
        }
        _ => {
            crate::flows::advance_clock_ms(1 + (r >> 12) % 20);
        }
    }
}
