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

/// Pool tag of every allocation the driver makes ("MdlP").
pub const POOL_TAG: u32 = ndis_sys::rt::POOL_TAG;

#[cfg(test)]
mod tests {
    use super::*;

    fn narrow(w: &[u16]) -> std::string::String {
        std::string::String::from_utf16(&w[..w.len() - 1]).unwrap()
    }

    #[test]
    fn utf16_names_match_the_str_names() {
        assert_eq!(narrow(SERVICE_NAME_W), SERVICE_NAME);
        assert_eq!(narrow(UNIQUE_NAME_W), UNIQUE_NAME);
        assert_eq!(narrow(FRIENDLY_NAME_W), FRIENDLY_NAME);
    }
}
