//! `cargo xtask`: project automation for mdlpool.
fn main() {
    eprintln!("usage: cargo xtask package [--target amd64|arm64|all] [--release]");
    std::process::exit(2);
}
