//! The configuration keys under each filter module's `FilterAdapterParams` (driver.inx), with the
//! kind, default and range of each: the one table the driver's parser (`src/filter/config.rs`) reads
//! the registry by and the INF check (`cargo xtask package`, `inf.config_params`) compares
//! driver.inx's Ndi params with.
//!
//! Owns the table only; the driver decides what a value does.

/// What kind of value a key holds, as driver.inx declares it (`HKR,...,type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An Ndi `enum`: REG_SZ text, one of `values` (compared ASCII case-insensitively). The driver's
    /// value is the index of the name in `values`; `default` is an index.
    Enum {
        values: &'static [&'static str],
        default: u32,
    },
    /// An Ndi `dword` in `min..=max` (the INF writes it as REG_SZ text; NDIS converts it).
    Dword { min: u32, max: u32, default: u32 },
}

/// One configuration key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The registry value name.
    pub name: &'static str,
    pub kind: Kind,
    /// One-line description (INF `ParamDesc`).
    pub desc: &'static str,
}

impl Key {
    /// The default as the driver holds it (an enum's index, a dword's value).
    pub const fn default(&self) -> u32 {
        match self.kind {
            Kind::Enum { default, .. } | Kind::Dword { default, .. } => default,
        }
    }

    /// Whether `v` (an enum's index, a dword's value) is one the key accepts.
    pub const fn accepts(&self, v: u32) -> bool {
        match self.kind {
            Kind::Enum { values, .. } => (v as usize) < values.len(),
            Kind::Dword { min, max, .. } => min <= v && v <= max,
        }
    }

    /// The index of `name` among an enum key's values (ASCII case-insensitive), for names given as
    /// UTF-16 code units without terminator. `None` for a dword key or an unknown name.
    pub fn enum_index(&self, name: &[u16]) -> Option<u32> {
        let Kind::Enum { values, .. } = self.kind else {
            return None;
        };
        values
            .iter()
            .position(|v| {
                v.len() == name.len()
                    && v.bytes()
                        .zip(name)
                        .all(|(a, &w)| w < 0x80 && a.eq_ignore_ascii_case(&(w as u8)))
            })
            .map(|i| i as u32)
    }
}

const fn dword(name: &'static str, default: u32, min: u32, max: u32, desc: &'static str) -> Key {
    Key {
        name,
        kind: Kind::Dword { min, max, default },
        desc,
    }
}

/// Index of `Mode` in [`KEYS`]: the data-path mode. Its values, in the order of the driver's `Mode`
/// discriminants.
pub const MODE: usize = 0;
/// Index of `ExerciseBytes`: bytes retreated past DataOffset in exercise mode.
pub const EXERCISE_BYTES: usize = 1;
/// Index of `ExerciseBackfill`: DataBackFill of the exercise retreat.
pub const EXERCISE_BACKFILL: usize = 2;
/// Index of `VlanId`: VLAN id inserted on send when the NBL carries none (0 = none).
pub const VLAN_ID: usize = 3;
/// Index of `VlanPriority`: 802.1Q priority inserted on send when the NBL carries none.
pub const VLAN_PRIORITY: usize = 4;
/// Index of `VlanReceiveInline`: re-insert NIC-stripped tags inline on receive (0/1).
pub const VLAN_RECEIVE_INLINE: usize = 5;
/// Index of `PoolMagazineSize`: the pool's magazine size M.
pub const POOL_MAGAZINE_SIZE: usize = 6;
/// Index of `PoolDepotLimit`: full magazines each depot keeps.
pub const POOL_DEPOT_LIMIT: usize = 7;
/// Index of `PoolTrimIntervalMs`: the pool's trim interval.
pub const POOL_TRIM_INTERVAL_MS: usize = 8;

/// Every key the filter reads, in the order it reads them (at attach and at every restart).
pub const KEYS: [Key; 9] = [
    Key {
        name: "Mode",
        kind: Kind::Enum {
            values: &["exercise", "vlan", "passthrough"],
            default: 0,
        },
        desc: "Data path mode",
    },
    dword(
        "ExerciseBytes",
        14,
        1,
        256,
        "Bytes retreated past DataOffset in exercise mode",
    ),
    dword(
        "ExerciseBackfill",
        0,
        0,
        256,
        "DataBackFill requested in exercise mode",
    ),
    dword("VlanId", 0, 0, 4094, "802.1Q VLAN id inserted on send"),
    dword("VlanPriority", 0, 0, 7, "802.1Q priority inserted on send"),
    dword(
        "VlanReceiveInline",
        0,
        0,
        1,
        "Re-insert NIC-stripped tags inline on receive",
    ),
    dword(
        "PoolMagazineSize",
        32,
        4,
        256,
        "Blocks per per-CPU magazine",
    ),
    dword(
        "PoolDepotLimit",
        64,
        0,
        4096,
        "Full magazines kept in each depot",
    ),
    dword(
        "PoolTrimIntervalMs",
        1000,
        100,
        60000,
        "Pool trim interval in milliseconds",
    ),
];

// The driver keeps one bit per key (bad-value log, report) in a u32 whose top bit is its own.
const _: () = assert!(KEYS.len() < 31);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_accepted_and_names_differ() {
        for (i, key) in KEYS.iter().enumerate() {
            assert!(key.accepts(key.default()), "{}", key.name);
            for other in &KEYS[i + 1..] {
                assert!(!key.name.eq_ignore_ascii_case(other.name));
            }
        }
    }

    #[test]
    fn indices_name_their_keys() {
        let named = [
            (MODE, "Mode"),
            (EXERCISE_BYTES, "ExerciseBytes"),
            (EXERCISE_BACKFILL, "ExerciseBackfill"),
            (VLAN_ID, "VlanId"),
            (VLAN_PRIORITY, "VlanPriority"),
            (VLAN_RECEIVE_INLINE, "VlanReceiveInline"),
            (POOL_MAGAZINE_SIZE, "PoolMagazineSize"),
            (POOL_DEPOT_LIMIT, "PoolDepotLimit"),
            (POOL_TRIM_INTERVAL_MS, "PoolTrimIntervalMs"),
        ];
        assert_eq!(named.len(), KEYS.len());
        for (i, name) in named {
            assert_eq!(KEYS[i].name, name);
        }
    }

    #[test]
    fn enum_names_match_without_case_and_only_whole() {
        let w = |s: &str| -> ([u16; 16], usize) {
            let mut b = [0u16; 16];
            for (d, c) in b.iter_mut().zip(s.encode_utf16()) {
                *d = c;
            }
            (b, s.len())
        };
        let mode = &KEYS[MODE];
        for (s, want) in [
            ("VLAN", Some(1)),
            ("passthrough", Some(2)),
            ("Exercise", Some(0)),
            ("vla", None),
            ("vlans", None),
            ("", None),
        ] {
            let (b, n) = w(s);
            assert_eq!(mode.enum_index(&b[..n]), want, "{s}");
        }
        // A non-ASCII unit whose low byte spells a name is not that name.
        assert_eq!(mode.enum_index(&[0x176, 0x6c, 0x61, 0x6e]), None);
        assert_eq!(KEYS[VLAN_ID].enum_index(&[0x30]), None);
    }
}
