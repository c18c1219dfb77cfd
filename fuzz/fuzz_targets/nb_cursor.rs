//! libFuzzer entry of the `nb_cursor` target; the logic (and its documentation) is
//! `fuzz_targets::nb_cursor` in crates/fuzz-targets, shared with the corpus regression test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::nb_cursor(data));
