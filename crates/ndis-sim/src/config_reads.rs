//! How NdisReadConfiguration turns a registry value into an NDIS_CONFIGURATION_PARAMETER.
//!
//! Evidence (see README's ndis-sim section):
//! - DOCUMENTED (learn.microsoft.com, NdisReadConfiguration): the `ParameterType` argument "is
//!   ignored in Windows NT and later versions".
//! - DOCUMENTED (learn.microsoft.com, NDIS_CONFIGURATION_PARAMETER): "for successful calls ... the
//!   ParameterType value matches the value at the ParameterType parameter", NdisParameterHexInteger
//!   coming back as NdisParameterInteger. The two pages contradict each other.
//! - OBSERVED in ReactOS's reimplementation (drivers/network/ndis/ndis/config.c, NdisReadConfiguration
//!   and IsValidNumericString): the requested type is ignored; a REG_SZ whose characters are all hex
//!   digits (an `x`/`X` allowed as the second character, NULs skipped) is converted with
//!   RtlUnicodeStringToInteger(base 0) and returned as an integer (NdisParameterHexInteger when it has
//!   the `x`); any other REG_SZ comes back as NdisParameterString whose `Length` is the registry data
//!   length, *including* the terminating NUL. INFERRED for ndis.sys.
//! - DOCUMENTED (learn.microsoft.com, RtlUnicodeStringToInteger): leading white space skipped, an
//!   optional sign, with base 0 a `0x` / `0o` / `0b` prefix picks the base (else 10), digits end at the
//!   first character that is not a digit of the base; a non-empty string that does not start with a
//!   number converts to 0 *with STATUS_SUCCESS* ("xyz" → 0, "+678abc" → 678); an empty string fails.
//!
//! So a driver cannot know which of the two readings the running ndis.sys follows; ndis-sim offers both
//! ([`ConfigReads`], chosen per simulation with [`set_config_reads`]) and a correct driver must get the
//! same configuration under each. [`ConfigReads::AsRequested`] (the default) converts a REG_SZ read as
//! an integer the way RtlUnicodeStringToInteger does (base 10, or 16 for NdisParameterHexInteger), so a
//! non-numeric string read as an integer is 0, not a failure. A REG_DWORD is an integer under both
//! (INFERRED; ReactOS reads a REG_DWORD as string data, which no driver could rely on); under
//! `AsRequested` a REG_DWORD read as a string is its decimal text.
//!
//! Owns: the conversion. Must not call driver code.

use ndis_sys::*;
use std::sync::atomic::{AtomicU8, Ordering};

/// A value in a module's configuration map (what NdisReadConfiguration reads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigValue {
    /// A REG_DWORD.
    Int(u32),
    /// A REG_SZ (also parsed as a number when an integer is asked for, as NDIS does).
    Str(String),
}

/// Which documented reading of NdisReadConfiguration the simulation follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigReads {
    /// NDIS_CONFIGURATION_PARAMETER's page: the result has the requested type; a REG_SZ read as an
    /// integer goes through RtlUnicodeStringToInteger (base 10; 16 for HexInteger).
    AsRequested,
    /// NdisReadConfiguration's page and ReactOS: the requested type is ignored; a REG_SZ is an integer
    /// only when it is a numeric string, else a string whose Length includes the terminating NUL.
    ByValue,
}

static MODE: AtomicU8 = AtomicU8::new(0);

/// Chooses the reading for the rest of this simulation (reset to [`ConfigReads::AsRequested`] by
/// `Sim::start`). Call while holding the simulation.
pub fn set_config_reads(mode: ConfigReads) {
    MODE.store(mode as u8, Ordering::SeqCst);
}

pub(crate) fn config_reads() -> ConfigReads {
    if MODE.load(Ordering::SeqCst) == ConfigReads::ByValue as u8 {
        ConfigReads::ByValue
    } else {
        ConfigReads::AsRequested
    }
}

pub(crate) fn reset() {
    set_config_reads(ConfigReads::AsRequested);
}

/// RtlUnicodeStringToInteger as documented; `None` is STATUS_INVALID_PARAMETER (empty string, or a
/// base other than 0, 2, 8, 10, 16). Stops at a NUL like any other non-digit.
pub fn rtl_unicode_string_to_integer(s: &[u16], base: u32) -> Option<u32> {
    if s.is_empty() || ![0, 2, 8, 10, 16].contains(&base) {
        return None;
    }
    let mut i = 0;
    while i < s.len() && s[i] <= b' ' as u16 && s[i] != 0 {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' as u16 || s[i] == b'-' as u16) {
        negative = s[i] == b'-' as u16;
        i += 1;
    }
    let mut base = base;
    if base == 0 {
        base = 10;
        if i + 1 < s.len() && s[i] == b'0' as u16 {
            let b = match s[i + 1] {
                c if c == b'x' as u16 => 16,
                c if c == b'o' as u16 => 8,
                c if c == b'b' as u16 => 2,
                _ => 0,
            };
            if b != 0 {
                base = b;
                i += 2;
            }
        }
    }
    let mut v: u32 = 0;
    while i < s.len() {
        let c = s[i];
        let d = match c {
            0x30..=0x39 => c - 0x30,
            0x41..=0x5A => c - 0x41 + 10,
            0x61..=0x7A => c - 0x61 + 10,
            _ => break,
        } as u32;
        if d >= base {
            break;
        }
        v = v.wrapping_mul(base).wrapping_add(d);
        i += 1;
    }
    Some(if negative { v.wrapping_neg() } else { v })
}

/// ReactOS's IsValidNumericString: `Some(hex)` when every character is a hex digit (or a NUL), an
/// `x`/`X` being allowed as the second one (then `hex`); `None` otherwise or when empty.
fn numeric_string(s: &[u16]) -> Option<bool> {
    if s.is_empty() {
        return None;
    }
    let mut hex = false;
    for (i, &c) in s.iter().enumerate() {
        if i == 1 && (c == b'x' as u16 || c == b'X' as u16) {
            hex = true;
            continue;
        }
        if c == 0 {
            continue;
        }
        let ok = matches!(c, 0x30..=0x39 | 0x41..=0x46 | 0x61..=0x66);
        if !ok {
            return None;
        }
    }
    Some(hex)
}

/// What NdisReadConfiguration returns for `value` read as `requested`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Converted {
    /// An integer, with the ParameterType NDIS reports.
    Integer(u32, u32),
    /// A string: its UTF-16 units as NDIS reports them (`Length` = `units.len() * 2`).
    String(Vec<u16>),
    /// NDIS_STATUS_FAILURE.
    Failure,
}

/// Converts a registry value the way the current [`ConfigReads`] says.
pub fn convert(value: &ConfigValue, requested: u32) -> Converted {
    let mode = config_reads();
    match value {
        ConfigValue::Int(i) => match (mode, requested) {
            (ConfigReads::AsRequested, NdisParameterString) => {
                Converted::String(i.to_string().encode_utf16().collect())
            }
            (ConfigReads::AsRequested, NdisParameterInteger | NdisParameterHexInteger)
            | (ConfigReads::ByValue, _) => Converted::Integer(NdisParameterInteger, *i),
            _ => Converted::Failure,
        },
        ConfigValue::Str(text) => {
            let units: Vec<u16> = text.encode_utf16().collect();
            match mode {
                ConfigReads::AsRequested => match requested {
                    NdisParameterInteger | NdisParameterHexInteger => {
                        let base = if requested == NdisParameterHexInteger {
                            16
                        } else {
                            10
                        };
                        match rtl_unicode_string_to_integer(&units, base) {
                            Some(v) => Converted::Integer(NdisParameterInteger, v),
                            None => Converted::Failure,
                        }
                    }
                    NdisParameterString => Converted::String(units),
                    _ => Converted::Failure,
                },
                ConfigReads::ByValue => {
                    // The registry data of a REG_SZ ends with its NUL, and ReactOS hands all of it on.
                    let mut data = units;
                    data.push(0);
                    match numeric_string(&data)
                        .and_then(|hex| rtl_unicode_string_to_integer(&data, 0).map(|v| (hex, v)))
                    {
                        Some((hex, v)) => Converted::Integer(
                            if hex {
                                NdisParameterHexInteger
                            } else {
                                NdisParameterInteger
                            },
                            v,
                        ),
                        None => Converted::String(data),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn rtl_unicode_string_to_integer_matches_the_documented_examples() {
        let cases: [(&str, u32, u32); 9] = [
            ("123", 10, 123),
            ("  -345", 10, (-345i32) as u32),
            ("xyz", 10, 0),
            ("   +678abc", 10, 678),
            ("   +678abc", 16, 6_785_724),
            ("007", 10, 7),
            ("789", 8, 7),
            ("FGH", 16, 15),
            ("      ", 10, 0),
        ];
        for (s, base, want) in cases {
            assert_eq!(
                rtl_unicode_string_to_integer(&w(s), base),
                Some(want),
                "{s:?} base {base}"
            );
        }
        assert_eq!(rtl_unicode_string_to_integer(&w(""), 10), None);
        assert_eq!(rtl_unicode_string_to_integer(&w("0x1F"), 0), Some(31));
        assert_eq!(rtl_unicode_string_to_integer(&w("0b101"), 0), Some(5));
        assert_eq!(rtl_unicode_string_to_integer(&w("0o17"), 0), Some(15));
        assert_eq!(rtl_unicode_string_to_integer(&w("1"), 7), None);
    }

    #[test]
    fn both_readings_of_a_reg_sz() {
        let sim = crate::Sim::start(crate::SimConfig::default());
        let vlan = ConfigValue::Str("vlan".into());
        let n = ConfigValue::Str("14".into());
        set_config_reads(ConfigReads::AsRequested);
        assert_eq!(
            convert(&vlan, NdisParameterInteger),
            Converted::Integer(NdisParameterInteger, 0)
        );
        assert_eq!(
            convert(&vlan, NdisParameterString),
            Converted::String(w("vlan"))
        );
        assert_eq!(
            convert(&n, NdisParameterInteger),
            Converted::Integer(NdisParameterInteger, 14)
        );
        assert_eq!(
            convert(&n, NdisParameterHexInteger),
            Converted::Integer(NdisParameterInteger, 0x14)
        );
        assert_eq!(
            convert(&ConfigValue::Str(String::new()), NdisParameterInteger),
            Converted::Failure
        );
        set_config_reads(ConfigReads::ByValue);
        let mut z = w("vlan");
        z.push(0);
        assert_eq!(convert(&vlan, NdisParameterInteger), Converted::String(z));
        assert_eq!(
            convert(&n, NdisParameterString),
            Converted::Integer(NdisParameterInteger, 14)
        );
        assert_eq!(
            convert(&ConfigValue::Str("0x10".into()), NdisParameterInteger),
            Converted::Integer(NdisParameterHexInteger, 16)
        );
        // All hex digits: a numeric string, converted in base 10 up to the first non-decimal digit.
        assert_eq!(
            convert(&ConfigValue::Str("bad".into()), NdisParameterString),
            Converted::Integer(NdisParameterInteger, 0)
        );
        assert_eq!(
            convert(&ConfigValue::Int(3), NdisParameterString),
            Converted::Integer(NdisParameterInteger, 3)
        );
        set_config_reads(ConfigReads::AsRequested);
        sim.finish();
    }
}
