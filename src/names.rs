//! Names that must agree between the driver and `driver.inx` (the package verifier checks them
//! against the built image). They are written once, in the `mdlpool-names` crate (shared with xtask
//! and sysrun); this module re-exports them and holds the UTF-16 forms NDIS_STRINGs point at. Owns
//! nothing else.

use ndis_sys::utf16;

pub use mdlpool_names::{tags, COMPONENT_ID, FRIENDLY_NAME, POOL_TAG, SERVICE_NAME, UNIQUE_NAME};

pub(crate) static SERVICE_NAME_W: &[u16] = utf16!(SERVICE_NAME);
pub(crate) static UNIQUE_NAME_W: &[u16] = utf16!(UNIQUE_NAME);
pub(crate) static FRIENDLY_NAME_W: &[u16] = utf16!(FRIENDLY_NAME);

#[cfg(test)]
mod tests {
    use super::*;

    fn narrow(w: &[u16]) -> std::string::String {
        std::string::String::from_utf16(&w[..w.len() - 1]).unwrap()
    }

    #[test]
    fn the_runtime_allocator_uses_the_block_tag() {
        assert_eq!(ndis_sys::rt::POOL_TAG, tags::MDL_BLOCK);
    }

    #[test]
    fn utf16_names_match_the_str_names() {
        assert_eq!(narrow(SERVICE_NAME_W), SERVICE_NAME);
        assert_eq!(narrow(UNIQUE_NAME_W), UNIQUE_NAME);
        assert_eq!(narrow(FRIENDLY_NAME_W), FRIENDLY_NAME);
    }
}
