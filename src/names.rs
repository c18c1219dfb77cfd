//! Names that must agree between the driver and `driver.inx` (the package verifier checks them
//! against the built image). Owns nothing else.

use ndis_sys::utf16;

/// Service name: INF `AddService` / `Ndi\Service`, and the filter's `ServiceName`.
pub const SERVICE_NAME: &str = "mdlpool";
/// Filter `UniqueName` = INF `NetCfgInstanceId`.
pub const UNIQUE_NAME: &str = "{6f1c3e2a-9b4d-4c7e-8a51-2d0f7b93c4e1}";
/// Filter `FriendlyName`.
pub const FRIENDLY_NAME: &str = "mdlpool NetAllocateMdl Pool Filter";
/// Component id for `netcfg -l mdlpool.inf -c s -i mp_mdlpool`.
pub const COMPONENT_ID: &str = "mp_mdlpool";

pub(crate) static SERVICE_NAME_W: &[u16] = utf16!("mdlpool");
pub(crate) static UNIQUE_NAME_W: &[u16] = utf16!("{6f1c3e2a-9b4d-4c7e-8a51-2d0f7b93c4e1}");
pub(crate) static FRIENDLY_NAME_W: &[u16] = utf16!("mdlpool NetAllocateMdl Pool Filter");

/// Pool tag of the MDL blocks the pool hands NDIS ("MdlP"; also the runtime allocator's in ndis-sys).
pub const POOL_TAG: u32 = ndis_sys::rt::POOL_TAG;
/// Pool tags, one per kind of allocation, so `!poolused` tells them apart (README "Pool tags";
/// `cargo xtask package` checks each is in the image and all differ).
pub mod tags {
    /// MDL blocks of the pool (`[header | MDL | data]`) and the pool's own arrays: "MdlP".
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
    /// Every tag, for checks that they differ.
    pub const ALL: [u32; 5] = [MDL_BLOCK, MODULE, NBL_CONTEXT, OID_CLONE, TIMER];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn narrow(w: &[u16]) -> std::string::String {
        std::string::String::from_utf16(&w[..w.len() - 1]).unwrap()
    }

    #[test]
    fn pool_tags_differ_and_the_block_tag_is_the_runtime_one() {
        for (i, a) in tags::ALL.iter().enumerate() {
            for b in &tags::ALL[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(tags::MDL_BLOCK, POOL_TAG);
    }

    #[test]
    fn utf16_names_match_the_str_names() {
        assert_eq!(narrow(SERVICE_NAME_W), SERVICE_NAME);
        assert_eq!(narrow(UNIQUE_NAME_W), UNIQUE_NAME);
        assert_eq!(narrow(FRIENDLY_NAME_W), FRIENDLY_NAME);
    }
}
