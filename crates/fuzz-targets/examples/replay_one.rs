//! Runs one target on one input file: `cargo run -p fuzz-targets --example replay_one -- TARGET FILE`
//! (set NDIS_SIM_ECHO=1 to see ndis-sim's log as it happens).
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (target, file) = match args.as_slice() {
        [_, t, f] => (t.clone(), f.clone()),
        _ => {
            eprintln!("usage: replay_one TARGET FILE");
            std::process::exit(2);
        }
    };
    let (_, run) = fuzz_targets::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .unwrap_or_else(|| panic!("unknown target {target}"));
    let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    run(&data);
    println!("{target}: {file}: no property broken");
}
