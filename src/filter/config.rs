//! Per-module configuration (DESIGN §5 "Configuration"): the registry keys under the filter module's
//! `FilterAdapterParams` (driver.inx), read at attach and at every restart through
//! NdisOpenConfigurationEx / NdisReadConfiguration.
//!
//! Owns: the keys, their defaults and ranges, parsing, and the once-only log of bad values. Must not
//! touch module state: the caller stores the result. A key that is absent takes its default silently; a
//! key that is present but malformed or out of range takes its default, is counted in
//! `ConfigReport::bad_values`, and is logged the first time that key is bad (per driver load).

#![allow(non_upper_case_globals)] // NDIS constant names in patterns

use crate::transform::Mode;
use core::sync::atomic::{AtomicU32, Ordering};
use ndis_sys::*;

/// The data-path configuration of one module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    /// Bytes retreated past DataOffset in exercise mode, 1..=256 (default 14).
    pub exercise_bytes: u32,
    /// DataBackFill of the exercise retreat, 0..=256 (default 0).
    pub exercise_backfill: u32,
    /// VLAN id inserted on send when the NBL carries none, 0..=4094 (default 0 = none).
    pub vlan_id: u16,
    /// 802.1Q priority inserted on send when the NBL carries none, 0..=7 (default 0).
    pub vlan_priority: u8,
    /// Re-insert NIC-stripped tags inline on receive, 0..=1 (default 0).
    pub vlan_receive_inline: bool,
    /// Pool magazine size M, 4..=256 (default 32).
    pub pool_magazine_size: u32,
    /// Pool depot limit, 0..=4096 (default 64).
    pub pool_depot_limit: u32,
    /// Pool trim interval in ms, 100..=60000 (default 1000).
    pub pool_trim_interval_ms: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Exercise,
            exercise_bytes: 14,
            exercise_backfill: 0,
            vlan_id: 0,
            vlan_priority: 0,
            vlan_receive_inline: false,
            pool_magazine_size: 32,
            pool_depot_limit: 64,
            pool_trim_interval_ms: 1000,
        }
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

/// How a key is read: as the type driver.inx declares for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Declared {
    /// An Ndi `enum` (REG_SZ text): read as NdisParameterString.
    Enum,
    /// An Ndi `dword`: read as NdisParameterInteger (NDIS converts the REG_SZ text).
    Dword,
}

/// Where the values come from: the registry in the driver, a table in tests.
pub trait Source {
    /// Calls `f` with the value of `key` read as `declared`, or `None` if it is absent.
    fn with_value(
        &mut self,
        key: &'static str,
        declared: Declared,
        f: &mut dyn FnMut(Option<Value<'_>>),
    );
}

/// Integer keys: (name, index into `LOGGED` bits, min, max).
#[derive(Clone, Copy)]
struct IntKey {
    name: &'static str,
    min: u32,
    max: u32,
}

const KEY_MODE: &str = "Mode";
const INT_KEYS: [IntKey; 8] = [
    IntKey {
        name: "ExerciseBytes",
        min: 1,
        max: 256,
    },
    IntKey {
        name: "ExerciseBackfill",
        min: 0,
        max: 256,
    },
    IntKey {
        name: "VlanId",
        min: 0,
        max: 4094,
    },
    IntKey {
        name: "VlanPriority",
        min: 0,
        max: 7,
    },
    IntKey {
        name: "VlanReceiveInline",
        min: 0,
        max: 1,
    },
    IntKey {
        name: "PoolMagazineSize",
        min: 4,
        max: 256,
    },
    IntKey {
        name: "PoolDepotLimit",
        min: 0,
        max: 4096,
    },
    IntKey {
        name: "PoolTrimIntervalMs",
        min: 100,
        max: 60000,
    },
];

/// Every key the filter reads, in the order of [`INT_KEYS`] after `Mode`.
pub const KEYS: [&str; 9] = [
    KEY_MODE,
    INT_KEYS[0].name,
    INT_KEYS[1].name,
    INT_KEYS[2].name,
    INT_KEYS[3].name,
    INT_KEYS[4].name,
    INT_KEYS[5].name,
    INT_KEYS[6].name,
    INT_KEYS[7].name,
];

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
            KEYS[index]
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

/// Reads every key from `src`. Pure apart from the once-only log. Any IRQL the source allows.
pub fn parse(src: &mut dyn Source) -> (Config, ConfigReport) {
    let mut cfg = Config::default();
    let mut report = ConfigReport::default();

    // `Mode` is an Ndi enum: REG_SZ names, read as a string. Never as an integer: when NDIS honours
    // the requested type it converts a REG_SZ like RtlUnicodeStringToInteger, and every name would be
    // 0 (ndis-sim `config_reads`). An integer coming back anyway (a REG_DWORD someone wrote by hand) is
    // not one of the INF's values and counts as bad.
    src.with_value(KEY_MODE, Declared::Enum, &mut |v| match v {
        None => {}
        Some(Value::String(s)) => {
            let s = without_nuls(s);
            let mut ascii = [0u8; 16];
            let ok = s.len() <= ascii.len()
                && s.iter().zip(ascii.iter_mut()).all(|(&w, a)| {
                    *a = w as u8;
                    w < 0x80
                });
            match ok.then(|| Mode::parse(&ascii[..s.len()])).flatten() {
                Some(m) => cfg.mode = m,
                None => note_bad(&mut report, 0),
            }
        }
        Some(Value::Integer(_)) | Some(Value::Other) => note_bad(&mut report, 0),
    });

    let mut ints = [0u32; INT_KEYS.len()];
    let defaults = [
        cfg.exercise_bytes,
        cfg.exercise_backfill,
        cfg.vlan_id as u32,
        cfg.vlan_priority as u32,
        cfg.vlan_receive_inline as u32,
        cfg.pool_magazine_size,
        cfg.pool_depot_limit,
        cfg.pool_trim_interval_ms,
    ];
    for (i, key) in INT_KEYS.iter().enumerate() {
        ints[i] = defaults[i];
        // Ndi dwords: read as integers, which NDIS converts from the REG_SZ text the INF writes.
        src.with_value(key.name, Declared::Dword, &mut |v| {
            let n = match v {
                None => return,
                Some(Value::Integer(n)) => Some(n),
                Some(Value::String(s)) => parse_decimal(s),
                Some(Value::Other) => None,
            };
            match n {
                Some(n) if (key.min..=key.max).contains(&n) => ints[i] = n,
                _ => note_bad(&mut report, i + 1),
            }
        });
    }
    cfg.exercise_bytes = ints[0];
    cfg.exercise_backfill = ints[1];
    cfg.vlan_id = ints[2] as u16;
    cfg.vlan_priority = ints[3] as u8;
    cfg.vlan_receive_inline = ints[4] != 0;
    cfg.pool_magazine_size = ints[5];
    cfg.pool_depot_limit = ints[6];
    cfg.pool_trim_interval_ms = ints[7];
    (cfg, report)
}

/// The registry of one filter module, through NDIS.
struct NdisSource {
    handle: NDIS_HANDLE,
}

/// Longest key name (UTF-16 units) the source converts.
const MAX_KEY: usize = 32;

impl Source for NdisSource {
    fn with_value(
        &mut self,
        key: &'static str,
        declared: Declared,
        f: &mut dyn FnMut(Option<Value<'_>>),
    ) {
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
        let ty = match declared {
            Declared::Enum => NdisParameterString,
            Declared::Dword => NdisParameterInteger,
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
        fn with_value(
            &mut self,
            key: &'static str,
            _declared: Declared,
            f: &mut dyn FnMut(Option<Value<'_>>),
        ) {
            match self.0.iter().find(|(k, _)| *k == key) {
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
        assert_eq!(cfg.mode, Mode::Exercise);
        assert_eq!((cfg.exercise_bytes, cfg.exercise_backfill), (14, 0));
        assert_eq!(
            (cfg.vlan_id, cfg.vlan_priority, cfg.vlan_receive_inline),
            (0, 0, false)
        );
        assert_eq!(
            (
                cfg.pool_magazine_size,
                cfg.pool_depot_limit,
                cfg.pool_trim_interval_ms
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
        assert_eq!(cfg.mode, Mode::Vlan);
        assert_eq!(cfg.exercise_bytes, 256);
        assert_eq!(cfg.exercise_backfill, 256);
        assert_eq!(cfg.vlan_id, 4094);
        assert_eq!(cfg.vlan_priority, 7);
        assert!(cfg.vlan_receive_inline);
        assert_eq!(cfg.pool_magazine_size, 4);
        assert_eq!(cfg.pool_depot_limit, 0);
        assert_eq!(cfg.pool_trim_interval_ms, 60000);
        // A NUL-terminated name (NDIS counting the terminator) is the same name.
        let (cfg, rep) = parse(&mut Table(std::vec![("Mode", Str("passthrough\0"))]));
        assert_eq!((cfg.mode, rep.bad_values), (Mode::Passthrough, 0));
        // Mode is an enum of names: an integer is not one of them.
        let (cfg, rep) = parse(&mut Table(std::vec![("Mode", Int(2))]));
        assert_eq!((cfg.mode, rep.bad_values), (Mode::Exercise, 1));
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
