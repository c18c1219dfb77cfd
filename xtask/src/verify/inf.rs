//! The NDIS lightweight-filter INF rules (`inf.*`) for a stamped INF, and the lowest Windows build
//! the INF targets against the image's imports (`inf.min_build`).

use std::collections::BTreeSet;

use super::report::Report;
use crate::arch::Arch;
use crate::inf::{Inf, Section};
use crate::known::KnownExports;
use crate::names;

/// The NDIS lightweight-filter INF rules, for the stamped INF of `arch`.
pub fn verify_inf(arch: Arch, text: &str, report: &mut Report) {
    let inf = match Inf::parse(text) {
        Ok(i) => i,
        Err(e) => return report.fail("inf.parse", format!("INF syntax: {e}")),
    };
    report.check("inf.parse", true, "INF syntax");
    // Without a BOM Setup reads an INF in the system's ANSI code page: keep it ASCII.
    let non_ascii: Vec<char> = text.chars().filter(|c| !c.is_ascii()).take(5).collect();
    report.check(
        "inf.ascii",
        non_ascii.is_empty(),
        format!("non-ASCII characters in the INF: {non_ascii:?}"),
    );
    if text.contains("$ARCH$") {
        report.fail("inf.stamped", "the INF still contains $ARCH$ (not stamped)");
    }

    // [Version]
    let Some(version) = inf.section("Version") else {
        return report.fail("inf.version", "no [Version] section");
    };
    let v = |k: &str| version.entry(k).map(|l| l.value(0).to_string());
    expect_eq_ci(
        report,
        "inf.version.signature",
        "[Version] Signature",
        v("Signature"),
        "$Windows NT$",
    );
    expect_eq_ci(
        report,
        "inf.version.class",
        "[Version] Class",
        v("Class"),
        "NetService",
    );
    expect_eq_ci(
        report,
        "inf.version.classguid",
        "[Version] ClassGUID",
        v("ClassGUID"),
        names::NETSERVICE_CLASS_GUID,
    );
    expect_eq_ci(
        report,
        "inf.version.catalog",
        "[Version] CatalogFile",
        v("CatalogFile"),
        names::CAT_FILE,
    );
    expect_eq_ci(
        report,
        "inf.version.pnplockdown",
        "[Version] PnpLockdown",
        v("PnpLockdown"),
        "1",
    );
    report.check(
        "inf.version.provider",
        v("Provider").is_some_and(|p| !p.is_empty()),
        "[Version] Provider must be set",
    );
    let dv = version
        .entry("DriverVer")
        .map(|l| l.values.clone())
        .unwrap_or_default();
    report.check(
        "inf.version.driverver",
        dv.len() == 2 && valid_driver_ver_date(&dv[0]) && valid_driver_ver_version(&dv[1]),
        format!("[Version] DriverVer {dv:?}, expected MM/DD/YYYY,w.x.y.z"),
    );

    // [Manufacturer] -> models sections for this arch: one for builds 25319 and
    // later (driver store), one for the older builds the driver supports.
    let new_dec = format!("nt{}.10.0...25319", arch.name());
    let models = manufacturer_models(&inf, arch);
    if inf.section("Manufacturer").is_none() {
        report.fail("inf.manufacturer", "no [Manufacturer] section");
    }
    let new_models = models
        .iter()
        .find(|(d, _, _)| *d == new_dec)
        .map(|(_, s, _)| s.clone());
    let old_models = models
        .iter()
        .filter(|(d, _, _)| *d != new_dec)
        .min_by_key(|(_, _, b)| *b)
        .map(|(_, s, _)| s.clone());
    report.check(
        "inf.manufacturer.targets",
        new_models.is_some() && old_models.is_some(),
        format!(
            "[Manufacturer] must target {new_dec} and an older NT{} decoration (found {:?})",
            arch.name(),
            models.iter().map(|m| &m.0).collect::<Vec<_>>()
        ),
    );

    let mut ndi_services = BTreeSet::new();
    let mut add_services = BTreeSet::new();
    let mut del_services = BTreeSet::new();
    let mut instance_ids = BTreeSet::new();
    for (models_name, dirid, tag) in [
        (new_models, "13", "10.0...25319"),
        (old_models, "12", "pre-25319"),
    ] {
        let Some(models_name) = models_name else {
            continue;
        };
        let Some(models) = inf.section(&models_name) else {
            report.fail(
                "inf.models",
                format!("[Manufacturer] names [{models_name}] but it does not exist"),
            );
            continue;
        };
        let Some(model) = models
            .lines
            .iter()
            .find(|l| l.value(1).eq_ignore_ascii_case(names::COMPONENT_ID))
        else {
            report.fail(
                "inf.models",
                format!(
                    "[{models_name}] has no model with component id {}",
                    names::COMPONENT_ID
                ),
            );
            continue;
        };
        report.check(
            "inf.models.description",
            model.key.as_deref() == Some(names::FRIENDLY_NAME),
            format!(
                "[{models_name}] description {:?}, expected {:?}",
                model.key,
                names::FRIENDLY_NAME
            ),
        );
        let install = model.value(0).to_string();
        verify_install(
            &inf,
            &install,
            dirid,
            tag,
            report,
            &mut ndi_services,
            &mut add_services,
            &mut del_services,
            &mut instance_ids,
        );
    }

    let expected = names::SERVICE_NAME.to_ascii_lowercase();
    report.check(
        "inf.service_names_agree",
        !ndi_services.is_empty()
            && ndi_services.iter().all(|s| *s == expected)
            && !add_services.is_empty()
            && add_services == ndi_services
            && del_services == ndi_services,
        format!(
            "Ndi\\Service {ndi_services:?}, AddService {add_services:?}, DelService {del_services:?}: all must be {:?}",
            names::SERVICE_NAME
        ),
    );
    let unique = names::UNIQUE_NAME.to_ascii_lowercase();
    report.check(
        "inf.netcfginstanceid",
        !instance_ids.is_empty() && instance_ids.iter().all(|i| *i == unique),
        format!(
            "NetCfgInstanceId {instance_ids:?}, expected {}",
            names::UNIQUE_NAME
        ),
    );
}

/// The models sections `[Manufacturer]` names for `arch`: (decoration
/// lowercased, section name, lowest Windows build it targets).
fn manufacturer_models(inf: &Inf, arch: Arch) -> Vec<(String, String, u32)> {
    let mut models = Vec::new();
    if let Some(m) = inf.section("Manufacturer") {
        for line in &m.lines {
            let Some(base) = line.values.first() else {
                continue;
            };
            for dec in line.values.iter().skip(1) {
                if let Some(build) = crate::inf::target_os_min_build(dec, arch.name()) {
                    models.push((dec.to_ascii_lowercase(), format!("{base}.{dec}"), build));
                }
            }
        }
    }
    models
}

/// The INF must not install the driver where it cannot load: its lowest
/// target build for `arch` (the TargetOSVersion decorations in
/// `[Manufacturer]`) must not be below the first build that exports every
/// routine the image imports (`min=` in the known-exports lists).
pub fn verify_min_build(arch: Arch, inf_text: &str, known: &KnownExports, report: &mut Report) {
    let need = report
        .facts
        .imports
        .iter()
        .filter_map(|(m, n)| known.min_build(m, n).map(|b| (b, format!("{m}!{n}"))))
        .max();
    let Ok(inf) = Inf::parse(inf_text) else {
        return report.fail("inf.min_build", "INF syntax error (see inf.parse)");
    };
    let lowest = manufacturer_models(&inf, arch)
        .into_iter()
        .min_by_key(|(_, _, b)| *b);
    match (lowest, need) {
        (None, _) => report.fail(
            "inf.min_build",
            format!("[Manufacturer] has no models decoration for {}", arch.name()),
        ),
        (Some((dec, _, low)), Some((need, import))) => report.check(
            "inf.min_build",
            low >= need,
            format!(
                "lowest target NT{} build {low} ([Manufacturer] {dec}); the image imports {import}, exported from build {need} on: the INF must not target older builds",
                arch.name()
            ),
        ),
        (Some((dec, _, low)), None) => report.check(
            "inf.min_build",
            true,
            format!("lowest target build {low} ({dec}); no import names a minimum build"),
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn verify_install(
    inf: &Inf,
    install: &str,
    dirid: &str,
    tag: &str,
    report: &mut Report,
    ndi_services: &mut BTreeSet<String>,
    add_services: &mut BTreeSet<String>,
    del_services: &mut BTreeSet<String>,
    instance_ids: &mut BTreeSet<String>,
) {
    let Some(sec) = inf.section(install) else {
        return report.fail(
            "inf.install",
            format!("install section [{install}] ({tag}) does not exist"),
        );
    };
    // Characteristics = NCF_LW_FILTER, never NCF_FILTER.
    match sec.entry("Characteristics").map(|l| parse_number(l.value(0))) {
        Some(Some(c)) => report.check(
            "inf.characteristics",
            c & names::NCF_LW_FILTER != 0 && c & names::NCF_FILTER == 0,
            format!("[{install}] Characteristics 0x{c:x}: must include NCF_LW_FILTER 0x40000 and not NCF_FILTER 0x400"),
        ),
        Some(None) => report.fail("inf.characteristics", format!("[{install}] Characteristics is not a number")),
        None => report.fail("inf.characteristics", format!("[{install}] has no Characteristics entry (expected 0x40000)")),
    }
    match sec.entry("NetCfgInstanceId") {
        Some(l) => {
            instance_ids.insert(l.value(0).to_ascii_lowercase());
        }
        None => report.fail(
            "inf.netcfginstanceid",
            format!("[{install}] has no NetCfgInstanceId"),
        ),
    }

    // AddReg: the Ndi keys.
    let addreg: Vec<Section> = sec
        .list("AddReg")
        .iter()
        .filter_map(|n| inf.section(n))
        .collect();
    let reg = |subkey: &str, value: &str| -> Option<(String, String)> {
        addreg.iter().flat_map(|s| s.lines.iter()).find_map(|l| {
            (l.value(0).eq_ignore_ascii_case("HKR")
                && l.value(1).eq_ignore_ascii_case(subkey)
                && l.value(2).eq_ignore_ascii_case(value))
            .then(|| (l.value(3).to_string(), l.value(4).to_string()))
        })
    };
    match reg("Ndi", "Service") {
        Some((_, s)) => {
            ndi_services.insert(s.to_ascii_lowercase());
        }
        None => report.fail(
            "inf.ndi.service",
            format!("[{install}] AddReg has no HKR,Ndi,Service"),
        ),
    }
    let dword = |subkey: &str, value: &str| {
        reg(subkey, value).and_then(|(flags, v)| {
            (parse_number(&flags) == Some(0x0001_0001))
                .then(|| parse_number(&v))
                .flatten()
        })
    };
    let ft = dword("Ndi", "FilterType");
    report.check(
        "inf.ndi.filtertype",
        ft == Some(names::FILTER_TYPE),
        format!(
            "[{install}] Ndi FilterType {ft:?} (REG_DWORD), expected {} (modifying)",
            names::FILTER_TYPE
        ),
    );
    let fc = reg("Ndi", "FilterClass").map(|r| r.1);
    report.check(
        "inf.ndi.filterclass",
        fc.as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(names::FILTER_CLASS)),
        format!(
            "[{install}] Ndi FilterClass {fc:?}: a modifying filter must have one ({})",
            names::FILTER_CLASS
        ),
    );
    let frt = dword("Ndi", "FilterRunType");
    report.check(
        "inf.ndi.filterruntype",
        frt == Some(names::FILTER_RUN_TYPE),
        format!(
            "[{install}] Ndi FilterRunType {frt:?} (REG_DWORD), expected {} (optional)",
            names::FILTER_RUN_TYPE
        ),
    );
    for (id, value, want) in [
        ("inf.ndi.upperrange", "UpperRange", "noupper"),
        ("inf.ndi.lowerrange", "LowerRange", "nolower"),
        (
            "inf.ndi.filtermediatypes",
            "FilterMediaTypes",
            names::FILTER_MEDIA_TYPES,
        ),
    ] {
        let got = reg("Ndi\\Interfaces", value).map(|r| r.1);
        report.check(
            id,
            got.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(want)),
            format!("[{install}] Ndi\\Interfaces {value} {got:?}, expected {want:?}"),
        );
    }
    // Configuration keys: the FilterAdapterParams Ndi params against the driver's key table.
    names::verify_config_params(&addreg, install, report);

    // CopyFiles -> DestinationDirs DIRID.
    let copy = sec.list("CopyFiles");
    let dest = inf.section("DestinationDirs");
    let dirs: Vec<String> = copy
        .iter()
        .map(|c| {
            dest.as_ref()
                .and_then(|d| d.entry(c).or_else(|| d.entry("DefaultDestDir")))
                .map(|l| l.value(0).to_string())
                .unwrap_or_default()
        })
        .collect();
    report.check(
        if dirid == "13" {
            "inf.dirid13"
        } else {
            "inf.dirid12"
        },
        !dirs.is_empty() && dirs.iter().all(|d| d == dirid),
        format!("[{install}] ({tag}) CopyFiles {copy:?} go to DIRIDs {dirs:?}, expected {dirid}"),
    );

    // Services.
    let services = inf.section(&format!("{install}.Services"));
    let add = services
        .as_ref()
        .and_then(|s| s.entry("AddService"))
        .cloned();
    match add {
        Some(l) => {
            add_services.insert(l.value(0).to_ascii_lowercase());
            let svc_section = l.value(2).to_string();
            match inf.section(&svc_section) {
                Some(svc) => {
                    let get = |k: &str| {
                        svc.entry(k)
                            .map(|l| l.value(0).to_string())
                            .unwrap_or_default()
                    };
                    let binary = get("ServiceBinary");
                    let want_binary = format!("%{dirid}%\\{}", names::SYS_FILE);
                    report.check(
                        "inf.service.binary",
                        binary.eq_ignore_ascii_case(&want_binary),
                        format!(
                            "[{svc_section}] ServiceBinary {binary:?}, expected {want_binary:?}"
                        ),
                    );
                    report.check(
                        "inf.service.type",
                        parse_number(&get("ServiceType")) == Some(1),
                        format!(
                            "[{svc_section}] ServiceType {:?}, expected 1 (kernel driver)",
                            get("ServiceType")
                        ),
                    );
                    let start = parse_number(&get("StartType"));
                    report.check(
                        "inf.service.start",
                        matches!(start, Some(1) | Some(3)),
                        format!("[{svc_section}] StartType {start:?}, expected 1 (system) or 3 (demand)"),
                    );
                    report.check(
                        "inf.service.group",
                        get("LoadOrderGroup").eq_ignore_ascii_case("NDIS"),
                        format!(
                            "[{svc_section}] LoadOrderGroup {:?}, expected NDIS",
                            get("LoadOrderGroup")
                        ),
                    );
                }
                None => report.fail(
                    "inf.service",
                    format!("[{install}.Services] names [{svc_section}] but it does not exist"),
                ),
            }
        }
        None => report.fail(
            "inf.addservice",
            format!("[{install}.Services] has no AddService"),
        ),
    }
    match inf
        .section(&format!("{install}.Remove.Services"))
        .and_then(|s| s.entry("DelService").cloned())
    {
        Some(l) => {
            del_services.insert(l.value(0).to_ascii_lowercase());
        }
        None => report.fail(
            "inf.delservice",
            format!("[{install}.Remove.Services] has no DelService"),
        ),
    }
}

fn expect_eq_ci(
    report: &mut Report,
    id: &'static str,
    what: &str,
    got: Option<String>,
    want: &str,
) {
    report.check(
        id,
        got.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(want)),
        format!("{what} {got:?}, expected {want:?}"),
    );
}

fn parse_number(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn valid_driver_ver_date(s: &str) -> bool {
    let p: Vec<&str> = s.split('/').collect();
    p.len() == 3
        && p[0].len() == 2
        && p[1].len() == 2
        && p[2].len() == 4
        && p.iter().all(|x| x.chars().all(|c| c.is_ascii_digit()))
        && (1..=12).contains(&p[0].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&p[1].parse::<u32>().unwrap_or(0))
}

fn valid_driver_ver_version(s: &str) -> bool {
    let p: Vec<&str> = s.split('.').collect();
    p.len() == 4 && p.iter().all(|x| x.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_driver_ver_formats() {
        assert_eq!(parse_number("0x40000"), Some(0x40000));
        assert_eq!(parse_number("2"), Some(2));
        assert_eq!(parse_number("x"), None);
        assert!(valid_driver_ver_date("11/27/2026"));
        assert!(!valid_driver_ver_date("2026/11/27"));
        assert!(valid_driver_ver_version("0.1.0.0"));
        assert!(!valid_driver_ver_version("0.1.0"));
    }
}
