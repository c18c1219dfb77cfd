//! Unit tests of the cursor and the retreat policy on hand-built chains.

use super::test_chains::Chain;
use super::*;
use core::ptr;
use std::vec;
use std::vec::Vec;

#[test]
fn read_spans_mdls_and_zero_length_ones() {
    // 5 | 0 | 3 | 8 bytes; data starts at 4 (inside the first MDL).
    let c = Chain::new(&[5, 0, 3, 8], 4, 12);
    let flat = c.flat();
    let mut buf = vec![0u8; 12];
    read_at(c.net_buffer(), 0, &mut buf).unwrap();
    assert_eq!(buf, flat[4..16]);
    let mut part = vec![0u8; 5];
    read_at(c.net_buffer(), 3, &mut part).unwrap();
    assert_eq!(part, flat[7..12]);
    let mut too_long = vec![0u8; 13];
    let r = read_at(c.net_buffer(), 0, &mut too_long);
    assert_eq!(r, Err(NbError::TooShort));
}

#[test]
fn write_spans_every_split_position() {
    for split in 0..=10u32 {
        let total = 20u32;
        let c = Chain::new(&[split, 4, total - split - 4], 0, total);
        let data: Vec<u8> = (0..total as u8).map(|i| i.wrapping_mul(7)).collect();
        write_at(c.net_buffer(), 0, &data).unwrap();
        assert_eq!(c.flat(), data, "split {split}");
        let mut back = vec![0u8; 6];
        read_at(c.net_buffer(), 7, &mut back).unwrap();
        assert_eq!(back, data[7..13]);
    }
}

#[test]
fn fill_and_check_round_trip() {
    let c = Chain::new(&[3, 3, 3, 3], 2, 10);
    fill_at(c.net_buffer(), 1, 8, |i| 0x5A ^ i as u8).unwrap();
    assert!(check_at(c.net_buffer(), 1, 8, |i, b| b == 0x5A ^ i as u8).unwrap());
    assert!(!check_at(c.net_buffer(), 0, 9, |i, b| b == 0x5A ^ i as u8).unwrap());
    let flat = c.flat();
    assert_eq!(flat[2], 0xA0 ^ 2, "byte before the fill untouched");
    assert_eq!(flat[11], 0xA0 ^ 11, "byte after the fill untouched");
}

#[test]
fn a_chain_that_ends_early_is_an_error_not_a_crash() {
    let mut c = Chain::new(&[4, 4], 0, 8);
    c.mdl_mut(0).Next = ptr::null_mut();
    let mut buf = [0u8; 8];
    let r = read_at(c.net_buffer(), 0, &mut buf);
    assert_eq!(r, Err(NbError::Unmapped));
}

#[test]
fn record_captures_and_applies_all_five_fields() {
    let mut c = Chain::new(&[6, 6], 6, 6);
    // Not normalised on purpose: CurrentMdl at the end of the first MDL.
    let m0 = c.mdls[0];
    c.nb_mut().CurrentMdl = m0;
    c.nb_mut().CurrentMdlOffset = 6;
    // SAFETY: (test) the NB is valid.
    let rec = unsafe { RetreatRecord::capture(c.nb()) };
    c.normalise();
    c.nb_mut().DataOffset = 1;
    c.nb_mut().SetDataLength(11);
    c.nb_mut().MdlChain = ptr::null_mut();
    // SAFETY: (test) as above.
    assert!(!unsafe { rec.matches(c.nb()) });
    // SAFETY: (test) as above.
    unsafe { rec.apply(c.nb()) };
    // SAFETY: (test) as above.
    assert!(unsafe { rec.matches(c.nb()) });
    assert_eq!(c.nb_mut().CurrentMdl, m0);
    assert_eq!(c.nb_mut().CurrentMdlOffset, 6);
}

#[test]
fn park_after_an_in_place_retreat_hands_on_the_callers_current_mdl() {
    // Found by the nb_cursor fuzz target: data start at the very end of the chain, the caller's
    // CurrentMdl is the last MDL with CurrentMdlOffset == ByteCount; after an in-place retreat and
    // the advance back, NDIS's walk leaves CurrentMdl NULL (an equivalent normalisation). The NB
    // handed on must carry the caller's exact five fields.
    let mut c = Chain::new(&[6, 6], 12, 0);
    let m1 = c.mdls[1];
    c.nb_mut().CurrentMdl = m1;
    c.nb_mut().CurrentMdlOffset = 6;
    // SAFETY: (test) valid NB.
    let mut rec = unsafe { RetreatRecord::capture(c.nb()) };
    c.normalise();
    assert!(c.nb_mut().CurrentMdl.is_null());
    // SAFETY: (test) valid NB; the data start is where recorded, no MDL was allocated.
    unsafe { park(c.nb(), &mut rec) }.unwrap();
    assert!(rec.parked.is_null());
    // SAFETY: (test) as above.
    let same = unsafe { rec.matches(c.nb()) };
    assert!(same, "park handed on another CurrentMdl");
    assert_eq!(c.nb_mut().CurrentMdl, m1);
    assert_eq!(c.nb_mut().CurrentMdlOffset, 6);
}

#[test]
fn free_advance_is_safe_only_when_the_head_holds_the_data_start() {
    let c = Chain::new(&[8, 8], 3, 10);
    // SAFETY: (test) valid NB.
    let rec = unsafe { RetreatRecord::capture(c.nb()) };
    // SAFETY: (test) as above.
    assert!(unsafe { free_advance_is_safe(c.nb(), &rec) });
    let d = Chain::new(&[8, 8], 8, 8);
    // SAFETY: (test) valid NB.
    let rec = unsafe { RetreatRecord::capture(d.nb()) };
    // SAFETY: (test) as above.
    let safe = unsafe { free_advance_is_safe(d.nb(), &rec) };
    assert!(!safe, "fully unused foreign head");
    let e = Chain::new(&[0, 8], 0, 8);
    // SAFETY: (test) valid NB.
    let rec = unsafe { RetreatRecord::capture(e.nb()) };
    // SAFETY: (test) as above.
    let safe = unsafe { free_advance_is_safe(e.nb(), &rec) };
    assert!(!safe, "zero-length foreign head");
}
