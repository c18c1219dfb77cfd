//! Per-module configuration (DESIGN §5 "Configuration"): the registry keys under the filter module's
//! `FilterAdapterParams` (driver.inx), read at attach and at every restart through
//! NdisOpenConfigurationEx / NdisReadConfiguration.
//!
//! Owns: parsing by the key table, the [`Config`] the values become (the data path's
//! [`DataPathSettings`] and the pool keys as the pool's own `Limits`), and the once-only log of bad
//! values. The keys themselves (names, kind, default, range) are `mdlpool_names::config::KEYS`, the
//! table `cargo xtask package` also checks driver.inx's `FilterAdapterParams` against. Must not touch
//! module state: the caller stores the result. A key that is absent takes its default silently; a key
//! that is present but malformed or out of range takes its default, is counted in
//! `ConfigReport::bad_values`, and is logged the first time that key is bad (per driver load).
//!
//! `Mode` takes two forms here: the registry's UTF-16 name, matched against the table's names, and
//! the index of that name, which is the [`Mode`] discriminant (`Mode::from_u32`).

#![allow(non_upper_case_globals)] // NDIS constant names in patterns

use crate::pool::Limits;
use crate::transform::Mode;
use core::sync::atomic::{AtomicU32, Ordering};
use mdlpool_names::config::{self as key, Key, Kind};
use ndis_sys::*;

/// Every key the filter reads, in the order it reads them (the shared table).
pub use mdlpool_names::config::KEYS;

/// The data-path settings of one module (the keys the send and receive paths read): one struct for
/// the registry view ([`Config::data_path`]) and the data path's per-callback view
/// (`module::DataPathConfig::settings`), published between them by `module::AtomicConfig`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataPathSettings {
    pub mode: Mode,
    /// Bytes retreated past DataOffset in exercise mode.
    pub exercise_bytes: u32,
    /// DataBackFill of the exercise retreat.
    pub exercise_backfill: u32,
    /// VLAN id inserted on send when the NBL carries none (0 = none).
    pub vlan_id: u16,
    /// 802.1Q priority inserted on send when the NBL carries none.
    pub vlan_priority: u8,
    /// Re-insert NIC-stripped tags inline on receive.
    pub vlan_receive_inline: bool,
}

/// The configuration of one module: one field per key of [`KEYS`] (defaults and ranges there),
/// grouped by who uses them: the data path's settings, and the pool keys in the pool's own
/// [`Limits`] (PoolMagazineSize, PoolDepotLimit, PoolTrimIntervalMs; the pool clamps them to the
/// room it allocated when they are applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub data_path: DataPathSettings,
    pub pool: Limits,
}

impl Config {
    /// From one accepted value per key of [`KEYS`] (an enum's index, a dword's value). Any IRQL.
    fn from_values(v: &[u32; KEYS.len()]) -> Self {
        Self {
            data_path: DataPathSettings {
                mode: Mode::from_u32(v[key::MODE]).unwrap_or(Mode::Exercise),
                exercise_bytes: v[key::EXERCISE_BYTES],
                exercise_backfill: v[key::EXERCISE_BACKFILL],
                vlan_id: v[key::VLAN_ID] as u16,
                vlan_priority: v[key::VLAN_PRIORITY] as u8,
                vlan_receive_inline: v[key::VLAN_RECEIVE_INLINE] != 0,
            },
            pool: Limits {
                magazine_fill: v[key::POOL_MAGAZINE_SIZE],
                depot_limit: v[key::POOL_DEPOT_LIMIT],
                trim_interval_ms: v[key::POOL_TRIM_INTERVAL_MS],
            },
        }
    }
}

/// Every key's default.
const DEFAULTS: [u32; KEYS.len()] = {
    let mut d = [0; KEYS.len()];
    let mut i = 0;
    while i < KEYS.len() {
        d[i] = KEYS[i].default();
        i += 1;
    }
    d
};

impl Default for Config {
    fn default() -> Self {
        Self::from_values(&DEFAULTS)
    }
}

/// A registry value as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Integer(u32),
    /// UTF-16 string, without terminator.
    String(&'a [u16]),
    /// Present with a type the key does not accept.
    Other,
}

/// Where the values come from: the registry in the driver, a table in tests.
pub trait Source {
    /// Calls `f` with the value of `key` read as its kind declares (driver.inx's type), or `None` if
    /// it is absent.
    fn with_value(&mut self, key: &'static Key, f: &mut dyn FnMut(Option<Value<'_>>));
}

/// Bit `i` set: key `KEYS[i]` has been logged as bad once already (per driver load).
static LOGGED: AtomicU32 = AtomicU32::new(0);

/// What parsing found besides the values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfigReport {
    /// Keys present but malformed or out of range (each fell back to its default).
    pub bad_values: u32,
    /// Bit `i`: `KEYS[i]` was bad in this read.
    pub bad_keys: u32,
    /// NdisOpenConfigurationEx failed; every value is its default.
    pub open_failed: bool,
}

fn note_bad(report: &mut ConfigReport, index: usize) {
    report.bad_values += 1;
    report.bad_keys |= 1 << index;
    if LOGGED.fetch_or(1 << index, Ordering::Relaxed) & (1 << index) == 0 {
        log!(
            DPFLTR_WARNING_LEVEL,
            "registry value {} is malformed or out of range; using the default",
            KEYS[index].name
        );
    }
}

/// A string value without the terminating NULs NDIS may count in its `Length` (ReactOS's
/// NdisReadConfiguration hands on the registry data, NUL included: ndis-sim's `config_reads`).
fn without_nuls(s: &[u16]) -> &[u16] {
    let mut end = s.len();
    while end > 0 && s[end - 1] == 0 {
        end -= 1;
    }
    &s[..end]
}

/// Parses a decimal integer from a UTF-16 string value, with optional surrounding spaces: what an
/// integer read returns as a string when NDIS does not convert it itself (a REG_SZ that is not a bare
/// number, under the reading where the requested type is ignored).
fn parse_decimal(s: &[u16]) -> Option<u32> {
    let s = without_nuls(s);
    let mut v: u32 = 0;
    let mut digits = 0;
    let trimmed = {
        let mut a = 0;
        let mut b = s.len();
        while a < b && s[a] == b' ' as u16 {
            a += 1;
        }
        while b > a && s[b - 1] == b' ' as u16 {
            b -= 1;
        }
        &s[a..b]
    };
    for &c in trimmed {
        let d = c.wrapping_sub(b'0' as u16);
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(d as u32)?;
        digits += 1;
    }
    (digits > 0).then_some(v)
}

/// The value `v` of `key` as the driver holds it (an enum's index, a dword's value), before the range
/// check; None when malformed.
fn value_of(key: &Key, v: Value<'_>) -> Option<u32> {
    match (key.kind, v) {
        // An Ndi enum (`Mode`): REG_SZ names, read as a string. Never as an integer: when NDIS honours
        // the requested type it converts a REG_SZ like RtlUnicodeStringToInteger, and every name would
        // be 0 (ndis-sim `config_reads`). An integer coming back anyway (a REG_DWORD someone wrote by
        // hand) is not one of the INF's values and counts as bad.
        (Kind::Enum { .. }, Value::String(s)) => key.enum_index(without_nuls(s)),
        (Kind::Enum { .. }, Value::Integer(_) | Value::Other) => None,
        // Ndi dwords: read as integers, which NDIS converts from the REG_SZ text the INF writes.
        (Kind::Dword { .. }, Value::Integer(n)) => Some(n),
        (Kind::Dword { .. }, Value::String(s)) => parse_decimal(s),
        (Kind::Dword { .. }, Value::Other) => None,
    }
}

/// Reads every key of [`KEYS`] from `src`. Pure apart from the once-only log. Any IRQL the source
/// allows.
pub fn parse(src: &mut dyn Source) -> (Config, ConfigReport) {
    let mut values = DEFAULTS;
    let mut report = ConfigReport::default();
    for (i, key) in KEYS.iter().enumerate() {
        src.with_value(key, &mut |v| {
            let Some(v) = v else { return };
            match value_of(key, v) {
                Some(n) if key.accepts(n) => values[i] = n,
                _ => note_bad(&mut report, i),
            }
        });
    }
    (Config::from_values(&values), report)
}

/// The registry of one filter module, through NDIS.
struct NdisSource {
    handle: NDIS_HANDLE,
}

/// Longest key name (UTF-16 units) the source converts.
const MAX_KEY: usize = 32;

impl Source for NdisSource {
    fn with_value(&mut self, key: &'static Key, f: &mut dyn FnMut(Option<Value<'_>>)) {
        let (key, kind) = (key.name, key.kind);
        let mut wide = [0u16; MAX_KEY];
        if key.len() > MAX_KEY {
            f(None);
            return;
        }
        for (w, b) in wide.iter_mut().zip(key.bytes()) {
            *w = b as u16;
        }
        let mut keyword = NDIS_STRING {
            Length: (key.len() * 2) as u16,
            MaximumLength: (MAX_KEY * 2) as u16,
            Buffer: wide.as_mut_ptr(),
        };
        // One read, as the INF declares the key. Whatever type comes back is interpreted by its tag:
        // NDIS documents both that the result has the requested type and that the requested type is
        // ignored (ndis-sim `config_reads`).
        let ty = match kind {
            Kind::Enum { .. } => NdisParameterString,
            Kind::Dword { .. } => NdisParameterInteger,
        };
        let mut status = NDIS_STATUS_FAILURE;
        let mut param: *mut NDIS_CONFIGURATION_PARAMETER = core::ptr::null_mut();
        // SAFETY: PASSIVE_LEVEL (attach/restart); the handle is open; `keyword` outlives the call.
        unsafe { NdisReadConfiguration(&mut status, &mut param, self.handle, &mut keyword, ty) };
        if status != NDIS_STATUS_SUCCESS || param.is_null() {
            f(None);
            return;
        }
        // SAFETY: NDIS returned a parameter that stays valid until NdisCloseConfiguration.
        let p = unsafe { &*param };
        let value = match p.ParameterType {
            NdisParameterInteger | NdisParameterHexInteger => {
                // SAFETY: the type tag selects the union arm.
                Value::Integer(unsafe { p.ParameterData.IntegerData })
            }
            NdisParameterString => {
                // SAFETY: the type tag selects the union arm.
                let s = unsafe { p.ParameterData.StringData };
                if s.Buffer.is_null() {
                    Value::String(&[])
                } else {
                    // SAFETY: NDIS's string buffer holds `Length` bytes until the handle closes.
                    Value::String(unsafe {
                        core::slice::from_raw_parts(s.Buffer, s.Length as usize / 2)
                    })
                }
            }
            _ => Value::Other,
        };
        f(Some(value));
    }
}

/// Reads the module's configuration. PASSIVE_LEVEL (FilterAttach / FilterRestart).
///
/// # Safety
/// `ndis_filter_handle` must be the module's NdisFilterHandle.
pub unsafe fn read(ndis_filter_handle: NDIS_HANDLE) -> (Config, ConfigReport) {
    let mut object = NDIS_CONFIGURATION_OBJECT {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_CONFIGURATION_OBJECT,
            NDIS_CONFIGURATION_OBJECT_REVISION_1,
            NDIS_SIZEOF_CONFIGURATION_OBJECT_REVISION_1,
        ),
        NdisHandle: ndis_filter_handle,
        Flags: 0,
    };
    let mut handle: NDIS_HANDLE = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; `object` and `handle` outlive the call.
    let status = unsafe { NdisOpenConfigurationEx(&mut object, &mut handle) };
    if status != NDIS_STATUS_SUCCESS || handle.is_null() {
        const OPEN_BIT: u32 = 1 << 31;
        if LOGGED.fetch_or(OPEN_BIT, Ordering::Relaxed) & OPEN_BIT == 0 {
            log!(
                DPFLTR_WARNING_LEVEL,
                "NdisOpenConfigurationEx failed ({:#x}); using defaults",
                status as u32
            );
        }
        return (
            Config::default(),
            ConfigReport {
                open_failed: true,
                ..ConfigReport::default()
            },
        );
    }
    let (cfg, report) = parse(&mut NdisSource { handle });
    // SAFETY: the handle NdisOpenConfigurationEx returned, closed once.
    unsafe { NdisCloseConfiguration(handle) };
    (cfg, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    // The once-only log calls DbgPrintEx: link the simulated kernel that defines it.
    use ndis_sim as _;
    use std::vec::Vec;

    struct Table(Vec<(&'static str, TestValue)>);
    enum TestValue {
        Int(u32),
        Str(&'static str),
        Other,
    }

    impl Source for Table {
        fn with_value(&mut self, key: &'static Key, f: &mut dyn FnMut(Option<Value<'_>>)) {
            match self.0.iter().find(|(k, _)| *k == key.name) {
                None => f(None),
                Some((_, TestValue::Int(n))) => f(Some(Value::Integer(*n))),
                Some((_, TestValue::Str(s))) => {
                    let w: Vec<u16> = s.encode_utf16().collect();
                    f(Some(Value::String(&w)))
                }
                Some((_, TestValue::Other)) => f(Some(Value::Other)),
            }
        }
    }

    #[test]
    fn absent_keys_take_the_documented_defaults() {
        let (cfg, rep) = parse(&mut Table(Vec::new()));
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.data_path.mode, Mode::Exercise);
        assert_eq!(
            (
                cfg.data_path.exercise_bytes,
                cfg.data_path.exercise_backfill
            ),
            (14, 0)
        );
        assert_eq!(
            (
                cfg.data_path.vlan_id,
                cfg.data_path.vlan_priority,
                cfg.data_path.vlan_receive_inline
            ),
            (0, 0, false)
        );
        assert_eq!(
            (
                cfg.pool.magazine_fill,
                cfg.pool.depot_limit,
                cfg.pool.trim_interval_ms
            ),
            (32, 64, 1000)
        );
        assert_eq!(rep, ConfigReport::default());
    }

    #[test]
    fn in_range_values_are_taken_at_both_ends() {
        use TestValue::*;
        let (cfg, rep) = parse(&mut Table(std::vec![
            ("Mode", Str("VLAN")),
            ("ExerciseBytes", Int(256)),
            ("ExerciseBackfill", Str(" 256 ")),
            ("VlanId", Int(4094)),
            ("VlanPriority", Int(7)),
            ("VlanReceiveInline", Str("1")),
            ("PoolMagazineSize", Int(4)),
            ("PoolDepotLimit", Int(0)),
            ("PoolTrimIntervalMs", Int(60000)),
        ]));
        assert_eq!(rep.bad_values, 0);
        assert_eq!(cfg.data_path.mode, Mode::Vlan);
        assert_eq!(cfg.data_path.exercise_bytes, 256);
        assert_eq!(cfg.data_path.exercise_backfill, 256);
        assert_eq!(cfg.data_path.vlan_id, 4094);
        assert_eq!(cfg.data_path.vlan_priority, 7);
        assert!(cfg.data_path.vlan_receive_inline);
        assert_eq!(cfg.pool.magazine_fill, 4);
        assert_eq!(cfg.pool.depot_limit, 0);
        assert_eq!(cfg.pool.trim_interval_ms, 60000);
        // A NUL-terminated name (NDIS counting the terminator) is the same name.
        let (cfg, rep) = parse(&mut Table(std::vec![("Mode", Str("passthrough\0"))]));
        assert_eq!((cfg.data_path.mode, rep.bad_values), (Mode::Passthrough, 0));
        // Mode is an enum of names: an integer is not one of them.
        let (cfg, rep) = parse(&mut Table(std::vec![("Mode", Int(2))]));
        assert_eq!((cfg.data_path.mode, rep.bad_values), (Mode::Exercise, 1));
    }

    #[test]
    fn bad_values_fall_back_and_are_counted() {
        use TestValue::*;
        let (cfg, rep) = parse(&mut Table(std::vec![
            ("Mode", Str("bridge")),
            ("ExerciseBytes", Int(0)),
            ("ExerciseBackfill", Int(257)),
            ("VlanId", Int(4095)),
            ("VlanPriority", Str("8")),
            ("VlanReceiveInline", Str("yes")),
            ("PoolMagazineSize", Int(3)),
            ("PoolDepotLimit", Other),
            ("PoolTrimIntervalMs", Str("99999999999")),
        ]));
        assert_eq!(cfg, Config::default());
        assert_eq!(rep.bad_values, 9);
        assert_eq!(rep.bad_keys, 0x1FF);
        // Logged once: the bits stay set for the driver's lifetime.
        assert_eq!(LOGGED.load(Ordering::Relaxed) & 0x1FF, 0x1FF);
    }
}
