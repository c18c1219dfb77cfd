//! The lightweight filter: registration (the characteristics NDIS copies), the module state machine,
//! the send and receive paths, OID forwarding, status/PnP pass-through and configuration.
//! Owns the filter driver handle and every module context; must not touch the pool's internals (the
//! driver installs and removes it; the data path only names its handler pair).

mod config;
pub mod context;
mod datapath;
pub mod module;
mod oid;
mod receive;
mod register;
mod restart;
mod send;
pub mod stats;
mod status;

pub use config::{
    parse as parse_config, Config, ConfigReport, DataPathSettings, Source as ConfigSource,
    Value as ConfigValue, KEYS as CONFIG_KEYS,
};
pub use module::{
    for_each_module, stats_totals, use_ndis_default_allocator, FilterModule, ModuleState,
};
pub use register::{deregister, driver_handle, ndis_version_for, register};
pub use stats::{FilterStats, FilterStatsSnapshot};

/// Entry points for the data-path benchmark (`benches/datapath.rs`). Not part of the driver's
/// interface.
#[doc(hidden)]
pub mod bench {
    use super::config::DataPathSettings;
    use super::datapath::{restore_nbl, transform_nbl, Outcome, Path};
    use super::module::{handler_pair, DataPathConfig};
    use super::stats::Tally;
    use crate::transform::Mode;
    use ndis_sys::NET_BUFFER_LIST;

    /// Transforms `nbl` exactly as the send path does in exercise mode (NBL context, record, retreat
    /// by `DataOffset + bytes` through the pool's pair or, with `ndis_default`, NDIS's default
    /// allocator, fill, check, advance), then restores it exactly as send-complete does. Returns
    /// false if the transform failed. IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// `nbl` must be a valid NBL owned by the caller with mapped MDLs.
    pub unsafe fn exercise_round_trip(
        nbl: *mut NET_BUFFER_LIST,
        bytes: u32,
        backfill: u32,
        ndis_default: bool,
    ) -> bool {
        let cfg = DataPathConfig {
            settings: DataPathSettings {
                mode: Mode::Exercise,
                exercise_bytes: bytes,
                exercise_backfill: backfill,
                vlan_id: 0,
                vlan_priority: 0,
                vlan_receive_inline: false,
            },
            nic: crate::transform::offload::NicCaps::default(),
        };
        let handlers = handler_pair(ndis_default);
        let mut tally = Tally::default();
        // SAFETY: the caller's NBL.
        let ok = unsafe { transform_nbl(nbl, &cfg, Path::Send, handlers, &mut tally) }
            == Outcome::Transformed;
        if ok {
            // SAFETY: as above; it carries our context now.
            unsafe { restore_nbl(nbl, &mut tally) };
        }
        ok
    }
}
