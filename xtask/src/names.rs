//! The names and numbers that the driver, its INF and the package verifier must
//! agree on. They are fixed by the project (issue 2). What the driver uses is
//! written once, in the `mdlpool-names` crate (re-exported here): the filter's
//! names, the pool tag and the configuration keys; this module adds what only the
//! package has (file names, Ndi values) and compares driver.inx's configuration
//! parameters with the driver's key table ([`config_mismatches`]).

use crate::inf::{ndi_params, NdiParam, Section};
use crate::verify::{Check, Report};
use mdlpool_names::config::{Kind, KEYS};

pub use mdlpool_names::{COMPONENT_ID, FRIENDLY_NAME, POOL_TAG, SERVICE_NAME, UNIQUE_NAME};

/// The Ndi parameter key the configuration lives under (`HKR, FilterAdapterParams\<key>`).
pub const CONFIG_PARAMS: &str = "FilterAdapterParams";

/// `HKR,Ndi,FilterClass`.
pub const FILTER_CLASS: &str = "custom";
/// `HKR,Ndi,FilterType`: 2 = modifying.
pub const FILTER_TYPE: u32 = 2;
/// `HKR,Ndi,FilterRunType`: 2 = optional.
pub const FILTER_RUN_TYPE: u32 = 2;
/// `HKR,Ndi\Interfaces,FilterMediaTypes`.
pub const FILTER_MEDIA_TYPES: &str = "ethernet";
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

/// One disagreement between driver.inx's configuration parameters and the driver's key table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigMismatch {
    /// The key (or the INF's spelling of a key the driver does not read).
    pub key: String,
    /// Which part disagrees: `default`, or `param` (presence, type, range, enum values, description).
    pub part: &'static str,
    /// What the INF says and what the driver's table says.
    pub inf: String,
    pub driver: String,
}

impl std::fmt::Display for ConfigMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: INF {}, driver {}",
            self.key, self.part, self.inf, self.driver
        )
    }
}

/// Compares driver.inx's Ndi parameters (`params`, from [`crate::inf::ndi_params`] under
/// [`CONFIG_PARAMS`]) with the key table the driver parses the registry by
/// (`mdlpool_names::config::KEYS`): every key present, of its kind, with its default, range (dword)
/// or value names (enum, in any order and case) and description; no parameter the driver does not
/// read. Empty when they agree.
pub fn config_mismatches(params: &[NdiParam]) -> Vec<ConfigMismatch> {
    let mut out = Vec::new();
    let mut miss = |key: &str, part: &'static str, inf: String, driver: String| {
        out.push(ConfigMismatch {
            key: key.to_string(),
            part,
            inf,
            driver,
        })
    };
    for key in &KEYS {
        let Some(p) = params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(key.name))
        else {
            miss(key.name, "param", "none".into(), "reads it".into());
            continue;
        };
        let (ty, default, min, max, values): (_, String, _, _, &[&str]) = match key.kind {
            Kind::Enum { values, default } => (
                "enum",
                values
                    .get(default as usize)
                    .copied()
                    .unwrap_or("")
                    .to_string(),
                None,
                None,
                values,
            ),
            Kind::Dword { min, max, default } => (
                "dword",
                default.to_string(),
                Some(min.to_string()),
                Some(max.to_string()),
                &[],
            ),
        };
        if p.ty != ty {
            miss(
                key.name,
                "param",
                format!("type {:?}", p.ty),
                format!("type {ty:?}"),
            );
        }
        let same_default = match key.kind {
            Kind::Enum { .. } => p.default.eq_ignore_ascii_case(&default),
            Kind::Dword { .. } => p.default == default,
        };
        if !same_default {
            miss(
                key.name,
                "default",
                format!("{:?}", p.default),
                format!("{default:?}"),
            );
        }
        if (p.min.clone(), p.max.clone()) != (min.clone(), max.clone()) {
            miss(
                key.name,
                "param",
                format!("range {:?}..={:?}", p.min, p.max),
                format!("range {min:?}..={max:?}"),
            );
        }
        let mut inf_values: Vec<String> = p.enums.iter().map(|v| v.to_ascii_lowercase()).collect();
        let mut want: Vec<String> = values.iter().map(|v| v.to_ascii_lowercase()).collect();
        inf_values.sort();
        want.sort();
        if inf_values != want {
            miss(
                key.name,
                "param",
                format!("enum values {inf_values:?}"),
                format!("enum values {want:?}"),
            );
        }
        if p.desc != key.desc {
            miss(
                key.name,
                "param",
                format!("ParamDesc {:?}", p.desc),
                format!("{:?}", key.desc),
            );
        }
    }
    for p in params {
        if !KEYS.iter().any(|k| k.name.eq_ignore_ascii_case(&p.name)) {
            miss(
                &p.name,
                "param",
                "declares it".into(),
                "does not read it".into(),
            );
        }
    }
    out
}

/// The INF checks of the configuration keys over an install section's AddReg `sections`:
/// `inf.config_defaults` (every key's default as the driver's) and `inf.config_params` (everything
/// else [`config_mismatches`] compares).
pub fn verify_config_params(sections: &[Section], install: &str, report: &mut Report) {
    let (defaults, others): (Vec<_>, Vec<_>) =
        config_mismatches(&ndi_params(sections, CONFIG_PARAMS))
            .into_iter()
            .partition(|m| m.part == "default");
    for (id, what, wrong) in [
        ("inf.config_defaults", "configuration defaults", defaults),
        ("inf.config_params", "configuration parameters", others),
    ] {
        let wrong: Vec<String> = wrong.iter().map(ToString::to_string).collect();
        report.checks.push(Check {
            id,
            passed: wrong.is_empty(),
            detail: if wrong.is_empty() {
                format!("[{install}] {what} as the driver reads them")
            } else {
                format!("[{install}] {what} disagree with the driver: {wrong:?}")
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inf::Inf;

    fn driver_inx() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../driver.inx"))
            .expect("driver.inx")
    }

    fn mismatches(text: &str) -> Vec<String> {
        let inf = Inf::parse(text).expect("driver.inx parses");
        config_mismatches(&ndi_params(&inf.sections, CONFIG_PARAMS))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn driver_inx_declares_the_keys_the_driver_reads() {
        let got = mismatches(&driver_inx());
        assert!(
            got.is_empty(),
            "driver.inx and the driver's key table disagree: {got:#?}"
        );
    }

    #[test]
    fn a_changed_default_range_type_enum_or_key_is_found() {
        let inx = driver_inx();
        for (from, to, want) in [
            (
                "ExerciseBytes,           default,   0, \"14\"",
                "ExerciseBytes,           default,   0, \"15\"",
                "ExerciseBytes default: INF \"15\", driver \"14\"",
            ),
            (
                "VlanId,                  max,       0, \"4094\"",
                "VlanId,                  max,       0, \"4095\"",
                "VlanId param: INF range Some(\"0\")..=Some(\"4095\"), driver range Some(\"0\")..=Some(\"4094\")",
            ),
            (
                "PoolDepotLimit,          type,      0, \"dword\"",
                "PoolDepotLimit,          type,      0, \"int\"",
                "PoolDepotLimit param: INF type \"int\", driver type \"dword\"",
            ),
            (
                "Mode\\enum,               vlan,",
                "Mode\\enum,               bridge,",
                "Mode param: INF enum values [\"bridge\", \"exercise\", \"passthrough\"], driver enum values [\"exercise\", \"passthrough\", \"vlan\"]",
            ),
            (
                "FilterAdapterParams\\PoolTrimIntervalMs,      default",
                "FilterAdapterParams\\PoolTrimInterval,        default",
                "PoolTrimInterval param: INF declares it, driver does not read it",
            ),
        ] {
            assert!(inx.contains(from), "driver.inx no longer contains {from:?}");
            let got = mismatches(&inx.replacen(from, to, 1));
            assert!(got.iter().any(|m| m == want), "{from:?} -> {to:?}: {got:#?}");
        }
    }

    #[test]
    fn pool_tag_is_mdlp_little_endian() {
        assert_eq!(POOL_TAG, 0x506c_644d);
    }
}
