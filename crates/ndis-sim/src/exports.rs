//! The export table: the name → routine table of every routine ndis-sim exports.
//!
//! The top layer: it names every file's `register_exports` (each emitted by one `sim_exports!`
//! block, [`crate::abi`]); nothing below imports this module.

use crate::abi::Export;
use std::sync::OnceLock;

/// The name → routine table of every routine ndis-sim exports (each appears once).
pub fn exports() -> &'static [Export] {
    static TABLE: OnceLock<Vec<Export>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Vec::new();
        crate::kernel::register_exports(&mut t);
        crate::kernel::register_extra_exports(&mut t);
        crate::mem::register_exports(&mut t);
        crate::mem::ndis_mem::register_exports(&mut t);
        crate::nbl::register_exports(&mut t);
        crate::ndisf::register_exports(&mut t);
        crate::ndisf::register_oid_exports(&mut t);
        crate::timers::register_exports(&mut t);
        crate::configuration::register_exports(&mut t);
        crate::mapping::register_exports(&mut t);
        t.sort_by(|a, b| (a.module, a.name).cmp(&(b.module, b.name)));
        t
    })
}

/// Looks up an export by name (module names are matched case-insensitively when given).
pub fn find_export(module: Option<&str>, name: &str) -> Option<&'static Export> {
    exports()
        .iter()
        .find(|e| e.name == name && module.is_none_or(|m| m.eq_ignore_ascii_case(e.module)))
}
