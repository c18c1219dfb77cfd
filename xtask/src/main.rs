//! `cargo xtask`: project automation for mdlpool. See `xtask/src/lib.rs`.

use std::process::ExitCode;

mod bench;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod replay;
mod simulate;

use xtask::arch::Arch;
use xtask::package::{self, Options};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  package [--target amd64|arm64|all] [--release] [--verbose] [--sign test|off|<pfx>]
      Cross-build mdlpool.sys (release profile, always: --release is accepted
      and is the default), stamp driver.inx into mdlpool.inf, verify the image,
      PDB and INF (and the names windbg/mdlpool.natvis and windbg/mdlpool.js use
      against the PDB), and write target/package/<arch>/{mdlpool.sys,mdlpool.pdb,
      mdlpool.inf,mdlpool.natvis,mdlpool.js}. --target defaults to all.
      --sign (default test): Authenticode-sign mdlpool.sys and write a signed
      catalog mdlpool.cat plus the signer's certificate mdlpool-test.cer;
      `test` uses the project's test certificate under target/sign/ (created
      once, then reused), `<pfx>` a PKCS#12 file whose password is read from
      MDLPOOL_PFX_PASSWORD, `off` writes no catalog and no signature.
  inx
      Write mdlpool.inx, an exact copy of driver.inx, next to the root Cargo.toml:
      cargo-wdk (`cargo wdk build`) requires <package>.inx there. Git-ignored.
  verify [--target amd64|arm64] [--verbose] <dir>
      Run the package verifier over an existing package directory holding
      mdlpool.sys, mdlpool.pdb and mdlpool.inf (e.g. the WDK flow's output);
      if it holds mdlpool.cat and mdlpool-test.cer (a package xtask signed),
      also the image's and the catalog's signatures and the catalog's members
      against the files.
      --target defaults to amd64.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("package") => parse_package(&args[1..]).and_then(|o| package::run(&o)),
        Some("bench") => bench::run(&args[1..]),
        Some("simulate") => simulate::parse(&args[1..]).and_then(|o| simulate::run(&o)),
        Some("inx") if args.len() == 1 => xtask::wdk_inx::run(),
        Some("verify") => parse_verify(&args[1..])
            .and_then(|(arch, dir, verbose)| package::verify_dir(arch, &dir, verbose)),
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}{}{}", simulate::USAGE, bench::USAGE);
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
        None => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_verify(args: &[String]) -> Result<(Arch, std::path::PathBuf, bool), String> {
    let mut arch = Arch::Amd64;
    let mut dir = None;
    let mut verbose = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--verbose" | "-v" => verbose = true,
            "--target" => {
                let t = it.next().ok_or("--target needs a value: amd64 or arm64")?;
                arch = Arch::parse(t)
                    .ok_or_else(|| format!("unknown target {t:?}: amd64 or arm64"))?;
            }
            s if s.starts_with('-') => return Err(format!("unknown argument {s:?}\n\n{USAGE}")),
            s => dir = Some(std::path::PathBuf::from(s)),
        }
    }
    Ok((
        arch,
        dir.ok_or_else(|| format!("verify needs a package directory\n\n{USAGE}"))?,
        verbose,
    ))
}

fn parse_package(args: &[String]) -> Result<Options, String> {
    let mut arches = Arch::ALL.to_vec();
    let mut verbose = false;
    let mut sign = xtask::sign::SignMode::Test;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let target = match a.as_str() {
            "--release" => continue,
            "--sign" => {
                let v = it
                    .next()
                    .ok_or("--sign needs a value: test, off or a .pfx path")?;
                sign = xtask::sign::SignMode::parse(v);
                continue;
            }
            s if s.starts_with("--sign=") => {
                sign = xtask::sign::SignMode::parse(&s["--sign=".len()..]);
                continue;
            }
            "--verbose" | "-v" => {
                verbose = true;
                continue;
            }
            "--target" => it
                .next()
                .ok_or("--target needs a value: amd64, arm64 or all")?
                .clone(),
            s if s.starts_with("--target=") => s["--target=".len()..].to_string(),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        };
        arches = if target == "all" {
            Arch::ALL.to_vec()
        } else {
            vec![Arch::parse(&target)
                .ok_or_else(|| format!("unknown target {target:?}: amd64, arm64 or all"))?]
        };
    }
    Ok(Options {
        arches,
        verbose,
        sign,
    })
}
