//! Names that must agree between the INF and the image (`names.*`): the service, unique and friendly
//! names, as UTF-16LE in the image and in the INF.

use super::report::Report;
use crate::inf::Inf;
use crate::names;

/// The service name, unique name and friendly name the driver registers with
/// must be in the image (as UTF-16LE, as NDIS_STRINGs are) and must be what
/// the INF says.
pub fn verify_names(sys: &[u8], inf_text: &str, report: &mut Report) {
    let inf = Inf::parse(inf_text).ok();
    let inf_has = |pred: &dyn Fn(&crate::inf::Line) -> bool| -> bool {
        inf.as_ref()
            .is_some_and(|i| i.sections.iter().flat_map(|s| s.lines.iter()).any(pred))
    };
    for (id, name, what) in [
        ("names.service", names::SERVICE_NAME, "ServiceName"),
        ("names.unique", names::UNIQUE_NAME, "UniqueName"),
        ("names.friendly", names::FRIENDLY_NAME, "FriendlyName"),
    ] {
        let wide: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let in_image = sys.windows(wide.len()).any(|w| w == wide.as_slice());
        let in_inf = match id {
            "names.service" => inf_has(&|l| l.key_lower() == "addservice" && l.value(0) == name),
            "names.unique" => inf_has(&|l| {
                l.key_lower() == "netcfginstanceid" && l.value(0).eq_ignore_ascii_case(name)
            }),
            _ => inf_has(&|l| l.key.as_deref() == Some(name)),
        };
        report.check(
            id,
            in_image && in_inf,
            format!(
                "{what} {name:?}: {} the image (UTF-16LE), {} the INF",
                if in_image { "in" } else { "NOT in" },
                if in_inf { "in" } else { "NOT in" }
            ),
        );
    }
}
