//! The names and lists that the driver, its INF (`driver.inx`), the package verifier (`xtask`) and
//! `sysrun` must agree on, written once.
//!
//! Owns: the service, unique and friendly names and the component id; the pool tags; the
//! configuration keys with their kind, default and range ([`config`]); the counter lists of the
//! statistics blocks the debugger reads ([`counters`], with the macro that generates each block).
//! Must not: hold driver logic, depend on any crate, or allocate. It is `no_std` so every Windows
//! target of the driver links it; xtask and sysrun link it without linking the driver.
//!
//! What checks the copies this crate cannot replace: `cargo xtask package` checks the INF's names and
//! `FilterAdapterParams` against this crate and the built image's strings and pool tags; the WinDbg
//! script and NatVis keep their own field names, checked against the PDB by the same command.

#![no_std]

pub mod config;
pub mod counters;

/// Service name: INF `AddService` / `DelService` / `HKR,Ndi,Service`, and the `ServiceName` the
/// driver passes to NdisFRegisterFilterDriver.
pub const SERVICE_NAME: &str = "mdlpool";
/// Filter `UniqueName` = INF `NetCfgInstanceId`.
pub const UNIQUE_NAME: &str = "{6f1c3e2a-9b4d-4c7e-8a51-2d0f7b93c4e1}";
/// Filter `FriendlyName` (also the INF model description).
pub const FRIENDLY_NAME: &str = "mdlpool NetAllocateMdl Pool Filter";
/// netcfg component id (`netcfg -l mdlpool.inf -c s -i mp_mdlpool`).
pub const COMPONENT_ID: &str = "mp_mdlpool";

/// Pool tags, one per kind of allocation, so `!poolused` tells them apart (README "Pool tags";
/// `cargo xtask package` checks each is in the image and all differ).
pub mod tags {
    /// MDL blocks of the pool (`[header | MDL | data]`) and the pool's own arrays; also the tag of
    /// the driver runtime's allocator: "MdlP".
    pub const MDL_BLOCK: u32 = u32::from_le_bytes(*b"MdlP");
    /// Filter module contexts (one per attached adapter): "MdlM".
    pub const MODULE: u32 = u32::from_le_bytes(*b"MdlM");
    /// NBL context blocks NDIS allocates for the filter's retreat records when an NBL has no room
    /// (NdisAllocateNetBufferListContext's PoolTag): "MdlN".
    pub const NBL_CONTEXT: u32 = u32::from_le_bytes(*b"MdlN");
    /// Cloned OID requests (NdisAllocateCloneOidRequest's PoolTag): "MdlO".
    pub const OID_CLONE: u32 = u32::from_le_bytes(*b"MdlO");
    /// The trim timer object (NDIS_TIMER_CHARACTERISTICS.AllocationTag): "MdlT".
    pub const TIMER: u32 = u32::from_le_bytes(*b"MdlT");
    /// Every tag with what it marks (README "Pool tags"), for the checks that they differ and
    /// that the image uses each.
    pub const ALL: [(u32, &str); 5] = [
        (
            MDL_BLOCK,
            "MDL blocks of the pool (and its magazine arrays)",
        ),
        (MODULE, "filter module contexts"),
        (
            NBL_CONTEXT,
            "NBL context blocks NDIS allocates for the filter",
        ),
        (OID_CLONE, "cloned OID requests"),
        (TIMER, "the trim timer object"),
    ];
}

/// Pool tag of the MDL blocks the pool hands NDIS and of the runtime allocator ("MdlP").
pub const POOL_TAG: u32 = tags::MDL_BLOCK;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_tags_differ_and_spell_mdl_something() {
        for (i, (a, _)) in tags::ALL.iter().enumerate() {
            assert_eq!(&a.to_le_bytes()[..3], b"Mdl");
            for (b, _) in &tags::ALL[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(POOL_TAG, 0x506c_644d);
    }

    #[test]
    fn names_are_ascii() {
        // The driver widens them to UTF-16 byte by byte (ndis-sys `utf16!`).
        for n in [SERVICE_NAME, UNIQUE_NAME, FRIENDLY_NAME, COMPONENT_ID] {
            assert!(n.is_ascii(), "{n}");
        }
    }
}
