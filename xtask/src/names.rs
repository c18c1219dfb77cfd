//! The names and numbers that the driver, its INF and the package verifier must
//! agree on. They are fixed by the project (issue 2); `src/lib.rs` registers the
//! filter with exactly these strings, `driver.inx` carries them, and the
//! verifier checks both against this one table.

/// Service name: `AddService`, `DelService`, `HKR,Ndi,Service` and the
/// `ServiceName` the driver passes to NdisFRegisterFilterDriver.
pub const SERVICE_NAME: &str = "mdlpool";
/// Filter UniqueName = INF `NetCfgInstanceId`.
pub const UNIQUE_NAME: &str = "{6f1c3e2a-9b4d-4c7e-8a51-2d0f7b93c4e1}";
/// Filter FriendlyName (also the INF model description).
pub const FRIENDLY_NAME: &str = "mdlpool NetAllocateMdl Pool Filter";
/// netcfg component id (`netcfg -l mdlpool.inf -c s -i mp_mdlpool`).
pub const COMPONENT_ID: &str = "mp_mdlpool";
/// `HKR,Ndi,FilterClass`.
pub const FILTER_CLASS: &str = "custom";
/// `HKR,Ndi,FilterType`: 2 = modifying.
pub const FILTER_TYPE: u32 = 2;
/// `HKR,Ndi,FilterRunType`: 2 = optional.
pub const FILTER_RUN_TYPE: u32 = 2;
/// `HKR,Ndi\Interfaces,FilterMediaTypes`.
pub const FILTER_MEDIA_TYPES: &str = "ethernet";
/// Pool tag, as the u32 the kernel sees (`u32::from_le_bytes(*b"MdlP")`).
pub const POOL_TAG: u32 = u32::from_le_bytes(*b"MdlP");
/// The image file name inside the package.
pub const SYS_FILE: &str = "mdlpool.sys";
/// The PDB file name inside the package (and in the image's CodeView record).
pub const PDB_FILE: &str = "mdlpool.pdb";
/// The stamped INF file name inside the package.
pub const INF_FILE: &str = "mdlpool.inf";
/// The catalog the INF names (`CatalogFile=`); written by `xtask::sign` (or inf2cat in the WDK flow).
pub const CAT_FILE: &str = "mdlpool.cat";

/// NetService setup class GUID (Class = NetService).
pub const NETSERVICE_CLASS_GUID: &str = "{4D36E974-E325-11CE-BFC1-08002BE10318}";
/// NCF_LW_FILTER.
pub const NCF_LW_FILTER: u32 = 0x4_0000;
/// NCF_FILTER (legacy intermediate filter; a lightweight filter must not set it).
pub const NCF_FILTER: u32 = 0x400;

/// What kind of value a configuration key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigKind {
    /// A REG_SZ chosen from a fixed set.
    Enum(&'static [&'static str]),
    /// A DWORD in `min..=max`.
    Int { min: u32, max: u32 },
}

/// One configuration key the INF writes as a default under the filter
/// module's (per-adapter instance) parameters, and that the filter reads at
/// attach/restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigKey {
    pub name: &'static str,
    pub kind: ConfigKind,
    /// The default, as the INF writes it.
    pub default: &'static str,
    /// One-line description (INF `ParamDesc`).
    pub desc: &'static str,
}

const fn int(
    name: &'static str,
    default: &'static str,
    min: u32,
    max: u32,
    desc: &'static str,
) -> ConfigKey {
    ConfigKey {
        name,
        kind: ConfigKind::Int { min, max },
        default,
        desc,
    }
}

/// Every configuration key, with its default and range.
pub const CONFIG_KEYS: &[ConfigKey] = &[
    ConfigKey {
        name: "Mode",
        kind: ConfigKind::Enum(&["exercise", "vlan", "passthrough"]),
        default: "exercise",
        desc: "Data path mode",
    },
    int(
        "ExerciseBytes",
        "14",
        1,
        256,
        "Bytes retreated past DataOffset in exercise mode",
    ),
    int(
        "ExerciseBackfill",
        "0",
        0,
        256,
        "DataBackFill requested in exercise mode",
    ),
    int("VlanId", "0", 0, 4094, "802.1Q VLAN id inserted on send"),
    int(
        "VlanPriority",
        "0",
        0,
        7,
        "802.1Q priority inserted on send",
    ),
    int(
        "VlanReceiveInline",
        "0",
        0,
        1,
        "Re-insert NIC-stripped tags inline on receive",
    ),
    int(
        "PoolMagazineSize",
        "32",
        4,
        256,
        "Blocks per per-CPU magazine",
    ),
    int(
        "PoolDepotLimit",
        "64",
        0,
        4096,
        "Full magazines kept in each depot",
    ),
    int(
        "PoolTrimIntervalMs",
        "1000",
        100,
        60000,
        "Pool trim interval in milliseconds",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_inside_their_ranges() {
        for key in CONFIG_KEYS {
            match key.kind {
                ConfigKind::Enum(values) => assert!(values.contains(&key.default), "{}", key.name),
                ConfigKind::Int { min, max } => {
                    let v: u32 = key.default.parse().unwrap();
                    assert!((min..=max).contains(&v), "{}", key.name);
                }
            }
        }
    }

    #[test]
    fn pool_tag_is_mdlp_little_endian() {
        assert_eq!(POOL_TAG, 0x506c_644d);
    }
}
