//! libFuzzer entry of the `transforms` target; the logic (and its documentation) is
//! `fuzz_targets::transforms` in crates/fuzz-targets, shared with the corpus regression test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::transforms(data));
