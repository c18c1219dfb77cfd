//! `ndis_sim::bench_only` cannot be used from a test: `cargo test` never passes `--bench`, and every
//! bench-only helper refuses to run without it.

#[test]
#[should_panic(expected = "for `cargo bench` targets only")]
fn default_bookkeeping_charge_refuses_to_run_in_a_test() {
    ndis_sim::bench_only::charge_default_mdl_bookkeeping();
}

#[test]
#[should_panic(expected = "for `cargo bench` targets only")]
fn handler_bookkeeping_charge_refuses_to_run_in_a_test() {
    ndis_sim::bench_only::charge_handler_mdl_bookkeeping();
}
