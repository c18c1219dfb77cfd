//! libFuzzer entry of the `filter_ops` target; the logic (and its documentation) is
//! `fuzz_targets::filter_ops` in crates/fuzz-targets, shared with the corpus regression test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::filter_ops(data));
