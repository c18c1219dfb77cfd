//! Distinct pool tags, so `!poolused` tells the driver's memory apart (README "Pool tags"): MDL
//! blocks, module contexts, NBL context blocks NDIS allocates for the filter, cloned OID requests
//! and the trim timer object each carry their own tag. ndis-sim's `mem::poolused` groups its live
//! blocks by tag the same way.
mod filter_common;
use filter_common::*;
use ndis_sim::mem::poolused;
use ndis_sim::{AdapterConfig, NblShape};
use ndis_sys::*;

fn live(tag: &[u8; 4]) -> usize {
    poolused().get(tag).map_or(0, |t| t.0)
}

fn allocs(tag: &[u8; 4]) -> usize {
    poolused().get(tag).map_or(0, |t| t.1)
}

#[test]
fn each_kind_of_allocation_has_its_own_tag() {
    let (sim, drv) = start(2);
    let nic = sim.add_adapter(AdapterConfig {
        pend_oids: true,
        ..AdapterConfig::default()
    });
    nic.attach().unwrap();
    nic.restart().unwrap();
    assert_eq!(live(b"MdlM"), 1, "one module context: {:?}", poolused());
    assert_eq!(live(b"MdlT"), 1, "the trim timer object");
    // Two NBs per NBL: the NBL context does not fit the backfill, so NDIS allocates a block with the
    // filter's NBL-context tag; the exercise retreat holds one pool block per NB.
    nic.send(&NblShape {
        nbls: 3,
        nbs_per_nbl: 2,
        ..NblShape::default()
    });
    assert_eq!(live(b"MdlN"), 3, "{:?}", poolused());
    assert!(live(b"MdlP") >= 6, "MDL blocks in flight: {:?}", poolused());
    // An OID (the miniport pends it): its clone is allocated with the filter's OID tag.
    let mut buf = [0u8; 4];
    let oid = nic.oid_request(NdisRequestQueryInformation, 0x0001_0106, &mut buf);
    assert_eq!(oid.0, NDIS_STATUS_SUCCESS);
    assert_eq!(allocs(b"MdlO"), 1, "{:?}", poolused());
    nic.drain();
    assert_eq!(live(b"MdlN"), 0);
    assert_eq!(live(b"MdlO"), 0);
    nic.pause().unwrap();
    nic.detach();
    assert_eq!(live(b"MdlM"), 0);
    sim.unload(drv);
    sim.finish();
}
