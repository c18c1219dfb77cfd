//! Driver fixes the simulator's rules demand: FilterAttach fails only with the statuses its
//! documentation lists (ATTACH_STATUS_UNDOCUMENTED), DriverUnload is set before
//! NdisFRegisterFilterDriver (UNLOAD_NOT_SET_AT_REGISTER, checked by every test that loads the
//! driver), and a forwarded OID clone carries its original's RequestId (OID_CLONE_REQUEST_ID).
mod filter_common;
use filter_common::*;
use ndis_sim::{AdapterConfig, LifecycleError};
use ndis_sys::*;

#[test]
fn attach_on_a_medium_the_filter_does_not_handle_fails_with_a_documented_status() {
    let (sim, drv) = start(1);
    let nic = sim.add_adapter(AdapterConfig {
        medium: 1, // NdisMedium802_5: the transforms assume Ethernet frames
        ..AdapterConfig::default()
    });
    let r = nic.attach();
    sim.unload(drv);
    sim.finish();
    assert_eq!(r, Err(LifecycleError::Failed(NDIS_STATUS_FAILURE)));
}

#[test]
fn forwarded_oids_keep_the_request_id() {
    let (sim, drv) = start(1);
    let nic = running_adapter(&sim, &[]);
    let mut buf = [0u8; 4];
    let (st, _) = nic.oid_request(NdisRequestQueryInformation, 0x0001_0106, &mut buf);
    assert_eq!(st, NDIS_STATUS_SUCCESS);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}
