//! The driver's pool tags (README "Pool tags"): one per kind of allocation, so `!poolused` tells MDL
//! blocks, module contexts, NBL contexts, cloned OID requests and the timer object apart. The
//! package verifier checks that they all differ and that each is used by the image: on amd64 a tag
//! is a 32-bit immediate (its four little-endian bytes in the code); on arm64 it is built by a
//! `movz`/`movk` pair (or loaded from a literal, whose bytes are in the image as on amd64).
//!
//! Owns: this table and the `pool_tags.*` checks. Must not: touch the other checks of `verify`.

use crate::arch::Arch;
use crate::verify::report::{Check, Report};

/// (tag bytes, what it marks): the driver's own table, `mdlpool_names::tags::ALL` (README names each).
pub const TAGS: [([u8; 4], &str); mdlpool_names::tags::ALL.len()] = {
    let all = mdlpool_names::tags::ALL;
    let mut t = [([0; 4], ""); mdlpool_names::tags::ALL.len()];
    let mut i = 0;
    while i < all.len() {
        t[i] = (all[i].0.to_le_bytes(), all[i].1);
        i += 1;
    }
    t
};

/// Whether the image uses `tag`: its bytes anywhere in the image (an amd64 immediate, possibly part
/// of a 64-bit one that also sets a neighbouring field, or a literal), or (arm64) its two 16-bit halves
/// moved into one register by `movz`/`movk` at shifts 0/16 or 32/48 (a 32-bit store, or a 64-bit one
/// combining the tag with a neighbouring field) within eight instructions.
pub fn image_uses(arch: Arch, sys: &[u8], tag: &[u8; 4]) -> bool {
    if sys.windows(4).any(|w| w == tag) {
        return true;
    }
    if arch != Arch::Arm64 {
        return false;
    }
    let v = u32::from_le_bytes(*tag);
    let (lo, hi) = (v & 0xFFFF, v >> 16);
    let words: Vec<u32> = sys
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    // MOVZ / MOVK (wide immediate), 32- or 64-bit: bits 30..23 are 0b10100101 / 0b11100101; hw in
    // bits 22..21, imm16 in 20..5, Rd in 4..0.
    let movz_or_k = |w: u32| matches!((w >> 23) & 0xFF, 0xA5 | 0xE5);
    let movk = |w: u32| (w >> 23) & 0xFF == 0xE5;
    let hw = |w: u32| (w >> 21) & 3;
    let imm = |w: u32| (w >> 5) & 0xFFFF;
    words.iter().enumerate().any(|(i, &w)| {
        movz_or_k(w) && imm(w) == lo && (hw(w) == 0 || hw(w) == 2) && {
            let (rd, h) = (w & 0x1F, hw(w));
            let near = &words[i.saturating_sub(8)..words.len().min(i + 9)];
            near.iter()
                .any(|&k| movk(k) && imm(k) == hi && hw(k) == h + 1 && k & 0x1F == rd)
        }
    })
}

/// `pool_tags.distinct` and one `pool_tags.used` per tag.
pub fn verify(arch: Arch, sys: &[u8], report: &mut Report) {
    let mut seen = std::collections::BTreeSet::new();
    let distinct = TAGS.iter().all(|(t, _)| seen.insert(*t));
    report.checks.push(Check {
        id: "pool_tags.distinct",
        passed: distinct,
        detail: format!("{} pool tags, all different: {distinct}", TAGS.len()),
    });
    for (tag, what) in TAGS {
        let used = image_uses(arch, sys, &tag);
        let name = String::from_utf8_lossy(&tag);
        report.checks.push(Check {
            id: "pool_tags.used",
            passed: used,
            detail: format!(
                "pool tag '{name}' ({what}) {} the image",
                if used { "used by" } else { "NOT found in" }
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_amd64_immediates_and_arm64_movz_movk_pairs() {
        let mut x64 = vec![0x90u8; 32];
        x64[5..9].copy_from_slice(b"MdlM");
        assert!(image_uses(Arch::Amd64, &x64, b"MdlM"));
        assert!(!image_uses(Arch::Amd64, &x64, b"MdlO"));
        let v = u32::from_le_bytes(*b"MdlO");
        let movz = 0x5280_0000 | (v & 0xFFFF) << 5 | 2;
        let movk = 0x72A0_0000 | (v >> 16) << 5 | 2;
        let wrong_reg = 0x72A0_0000 | (v >> 16) << 5 | 3;
        let code = |a: u32, b: u32| -> Vec<u8> {
            [0xD503_201F, a, 0xD503_201F, b]
                .iter()
                .flat_map(|w: &u32| w.to_le_bytes())
                .collect()
        };
        assert!(image_uses(Arch::Arm64, &code(movz, movk), b"MdlO"));
        // 64-bit: the tag in the upper half (movk x2, #lo, lsl #32; movk x2, #hi, lsl #48).
        let k32 = 0xF2C0_0000 | (v & 0xFFFF) << 5 | 2;
        let k48 = 0xF2E0_0000 | (v >> 16) << 5 | 2;
        assert!(image_uses(Arch::Arm64, &code(k32, k48), b"MdlO"));
        assert!(!image_uses(Arch::Arm64, &code(movz, wrong_reg), b"MdlO"));
        assert!(!image_uses(Arch::Amd64, &code(movz, movk), b"MdlO"));
    }

    #[test]
    fn readme_names_every_tag() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md");
        for (tag, _) in TAGS {
            let t = format!("`{}`", String::from_utf8_lossy(&tag));
            assert!(readme.contains(&t), "README does not name pool tag {t}");
        }
    }

    #[test]
    fn a_missing_tag_fails_the_check() {
        let mut r = Report::default();
        verify(Arch::Amd64, b"....MdlPMdlMMdlNMdlT....", &mut r);
        let failed: Vec<&str> = r.failures().map(|c| c.detail.as_str()).collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].contains("MdlO"), "{failed:?}");
    }
}
