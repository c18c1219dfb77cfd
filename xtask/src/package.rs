//! `cargo xtask package`: cross-build `mdlpool.sys` with rust-lld, stamp the
//! INF, verify, and write `target/package/<arch>/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::inf;
use crate::known::KnownExports;
use crate::names;
use crate::verify::{self, Arch, Report};

/// Linker arguments for the driver image (rust-lld in its lld-link flavour),
/// the ones the WDK sets for a WDM driver plus what rust-lld needs to stand in
/// for the MSVC toolchain. rustc itself adds /DLL, /DEBUG, /PDBALTPATH:%_PDB%
/// and the .def file exporting DriverEntry.
pub fn link_args(pdb_path: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "/DRIVER",                // kernel-mode driver image
        "/SUBSYSTEM:NATIVE,10.0", // native subsystem, Windows 10 and later
        "/ENTRY:DriverEntry",     // no CRT start-up code in a driver
        "/NODEFAULTLIB",          // no user-mode CRT (libcmt) or other default libs
        "/NXCOMPAT",              // NX_COMPAT: nonpaged pool and code are NX-aware
        "/DYNAMICBASE",           // relocatable (KASLR)
        "/INTEGRITYCHECK",        // FORCE_INTEGRITY: signature checked at load
        "/OPT:REF,ICF",           // drop unreferenced code, fold identical functions
        "/DEBUG:FULL",            // full PDB: types and publics for WinDbg
        "/RELEASE",               // write the PE checksum the loader verifies
        "/MANIFEST:NO",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("/PDB:{}", pdb_path.display()));
    args
}

/// Options of one `package` run.
#[derive(Clone, Debug)]
pub struct Options {
    pub arches: Vec<Arch>,
    /// Print the cargo commands and stream their output.
    pub verbose: bool,
    /// Catalog and signatures (`--sign test|off|<pfx>`; default test).
    pub sign: crate::sign::SignMode,
}

// The workspace root and target directory live in the `workspace-paths` crate (sysrun uses the
// same); re-exported here for the callers that name them through `package`.
pub use workspace_paths::{target_dir, workspace_root};

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Make sure the rustup target for `arch` is installed; `rustup target add` it
/// otherwise. Returns an error only when it is missing and cannot be added.
pub fn ensure_target(arch: Arch) -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(workspace_root())
        .output()
        .map_err(|e| format!("running rustup: {e} (is rustup installed?)"))?;
    let list = String::from_utf8_lossy(&installed.stdout);
    if list.lines().any(|l| l.trim() == arch.triple()) {
        return Ok(());
    }
    eprintln!("xtask: rustup target add {}", arch.triple());
    let status = Command::new("rustup")
        .args(["target", "add", arch.triple()])
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("running rustup: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`rustup target add {}` failed ({status})",
            arch.triple()
        ))
    }
}

/// Is the rustup target for `arch` available (installed, or installable)?
pub fn target_available(arch: Arch) -> bool {
    ensure_target(arch).is_ok()
}

/// The built files of one architecture, in memory.
#[derive(Clone, Debug)]
pub struct Built {
    pub arch: Arch,
    pub sys: Vec<u8>,
    pub pdb: Vec<u8>,
    pub inf: String,
}

/// Build the image for `arch` (release profile) and return its bytes with the
/// PDB and the stamped INF. Nothing is verified or written to the package
/// directory yet.
pub fn build(arch: Arch, verbose: bool) -> Result<Built, String> {
    ensure_target(arch)?;
    let root = workspace_root();
    let out_dir = target_dir().join(arch.triple()).join("release");
    let link_dir = out_dir.join("xtask-link");
    std::fs::create_dir_all(&link_dir)
        .map_err(|e| format!("creating {}: {e}", link_dir.display()))?;
    let pdb_path = link_dir.join(names::PDB_FILE);

    let mut cmd = Command::new(cargo());
    cmd.current_dir(&root).args([
        "rustc",
        "--package",
        "mdlpool",
        "--lib",
        "--crate-type",
        "cdylib",
        "--release",
        "--target",
        arch.triple(),
    ]);
    if !verbose {
        cmd.arg("--quiet");
    }
    cmd.arg("--");
    for a in link_args(&pdb_path) {
        cmd.arg("-C").arg(format!("link-arg={a}"));
    }
    if verbose {
        eprintln!("xtask: {cmd:?}");
    }
    let status = cmd.status().map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building mdlpool for {} failed ({status})",
            arch.triple()
        ));
    }
    let dll = out_dir.join("mdlpool.dll");
    let sys = std::fs::read(&dll).map_err(|e| format!("reading {}: {e}", dll.display()))?;
    let pdb =
        std::fs::read(&pdb_path).map_err(|e| format!("reading {}: {e}", pdb_path.display()))?;
    let inf = stamp_inf(arch)?;
    Ok(Built {
        arch,
        sys,
        pdb,
        inf,
    })
}

/// Stamp `driver.inx` for `arch`: today's date (UTC, or `SOURCE_DATE_EPOCH`
/// when set, for reproducible output) and the package version of `mdlpool`.
pub fn stamp_inf(arch: Arch) -> Result<String, String> {
    let root = workspace_root();
    let template_path = root.join("driver.inx");
    let template = std::fs::read_to_string(&template_path)
        .map_err(|e| format!("reading {}: {e}", template_path.display()))?;
    let version = inf::driver_ver_version(&package_version(&root)?)?;
    let stamp = inf::Stamp {
        arch: arch.name(),
        date: inf::driver_ver_date(build_time()),
        version,
        catalog: names::CAT_FILE,
    };
    inf::stamp(&template, &stamp)
}

/// Seconds since the Unix epoch: `SOURCE_DATE_EPOCH` when set, else now.
pub fn build_time() -> u64 {
    if let Some(epoch) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return epoch;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `version` of the `[package]` in the root Cargo.toml.
pub fn package_version(root: &Path) -> Result<String, String> {
    let path = root.join("Cargo.toml");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut in_package = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_package = t == "[package]";
            continue;
        }
        if in_package {
            if let Some(rest) = t.strip_prefix("version") {
                let rest = rest.trim_start();
                if let Some(v) = rest.strip_prefix('=') {
                    let v = v.trim().trim_matches('"');
                    if !v.is_empty() && !v.contains('{') {
                        return Ok(v.to_string());
                    }
                }
            }
        }
    }
    Err(format!("no [package] version in {}", path.display()))
}

/// Verify a built package against the repository's allow-list.
pub fn verify_built(built: &Built) -> Result<Report, String> {
    let known = KnownExports::load_default()?;
    let mut report = verify::verify_package(built.arch, &built.sys, &built.pdb, &built.inf, &known);
    crate::windbg_check::verify_workspace_files(&built.pdb, &mut report)?;
    Ok(report)
}

/// Where the package of `arch` is written.
pub fn package_dir(arch: Arch) -> PathBuf {
    target_dir().join("package").join(arch.name())
}

/// Write a verified package; returns its directory.
pub fn write(built: &Built) -> Result<PathBuf, String> {
    let dir = package_dir(built.arch);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for (name, bytes) in [
        (names::SYS_FILE, built.sys.as_slice()),
        (names::PDB_FILE, built.pdb.as_slice()),
        (names::INF_FILE, built.inf.as_bytes()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    crate::windbg_check::copy_into(&dir)?;
    Ok(dir)
}

/// The whole command: build, stamp, verify, write, summarize. Any failed
/// check fails the command and nothing is written for that architecture.
pub fn run(opts: &Options) -> Result<(), String> {
    // Remove stale packages first, so that a failed run never leaves an old
    // package looking like the result.
    for &arch in &opts.arches {
        let dir = package_dir(arch);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| format!("removing {}: {e}", dir.display()))?;
        }
    }
    let identity = crate::sign::identity(&opts.sign)?;
    let mut errors = Vec::new();
    for &arch in &opts.arches {
        let mut built = build(arch, opts.verbose)?;
        let signed = match &identity {
            Some((id, source)) => {
                let s = crate::sign::sign_package(
                    arch,
                    &built.sys,
                    &built.inf,
                    id,
                    source.clone(),
                    build_time(),
                )?;
                // Every check below runs over the signed image.
                built.sys = s.sys.clone();
                crate::sign::verify_package(
                    arch,
                    &s.sys,
                    built.inf.as_bytes(),
                    &s.cat,
                    Some(&s.cer),
                )
                .map_err(|e| {
                    format!(
                        "{}: the package's own signature check failed: {e}",
                        arch.name()
                    )
                })?;
                Some(s)
            }
            None => None,
        };
        let report = verify_built(&built)?;
        if !report.ok() {
            errors.push(format!(
                "{}: {} of {} checks failed:\n{}",
                arch.name(),
                report.failures().count(),
                report.checks.len(),
                report.failure_text()
            ));
            continue;
        }
        let dir = write(&built)?;
        if let Some(s) = &signed {
            crate::sign::write(&dir, s)?;
        }
        print_summary(&built, &report, &dir, opts.verbose);
        if let Some(s) = &signed {
            print_signature(s);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "package verification failed; nothing written for these targets\n{}",
            errors.join("\n")
        ))
    }
}

/// `cargo xtask verify`: run the verifier over an existing package directory
/// (for example the WDK flow's `target/<profile>/package/mdlpool_package`).
pub fn verify_dir(arch: Arch, dir: &Path, verbose: bool) -> Result<(), String> {
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .map_err(|e| format!("reading {}: {e}", dir.join(name).display()))
    };
    let inf_bytes = read(names::INF_FILE)?;
    let built = Built {
        arch,
        sys: read(names::SYS_FILE)?,
        pdb: read(names::PDB_FILE)?,
        inf: inf::decode_inf(&inf_bytes)?,
    };
    // A package xtask signed carries mdlpool.cat and mdlpool-test.cer: check both
    // signatures and the catalog's members. A catalog without the certificate
    // (e.g. inf2cat's, in the WDK flow) is left to signtool.
    let signature = if dir.join(names::CAT_FILE).exists()
        && dir.join(crate::sign::CER_FILE).exists()
    {
        let cat = read(names::CAT_FILE)?;
        let cer = read(crate::sign::CER_FILE)?;
        Some(
            crate::sign::verify_package(arch, &built.sys, &inf_bytes, &cat, Some(&cer))
                .map_err(|e| format!("{}: signature check failed: {e}", dir.display()))?,
        )
    } else {
        if dir.join(names::CAT_FILE).exists() {
            println!(
                "  note: {} present without {}: not a package xtask signed; its signatures are not checked here",
                names::CAT_FILE,
                crate::sign::CER_FILE
            );
        }
        None
    };
    let report = verify_built(&built)?;
    if !report.ok() {
        return Err(format!(
            "{}: {} of {} checks failed:\n{}",
            dir.display(),
            report.failures().count(),
            report.checks.len(),
            report.failure_text()
        ));
    }
    print_summary(&built, &report, dir, verbose);
    if let Some(sig) = signature {
        println!(
            "  signature    {} and {} verified, signer {}",
            names::SYS_FILE,
            names::CAT_FILE,
            sig.signer
        );
        for m in &sig.members {
            println!(
                "    catalog member {:<12} sha256 {}",
                m.file,
                crate::sign::hex(&m.sha256)
            );
        }
    }
    Ok(())
}

fn print_signature(s: &crate::sign::Signed) {
    println!(
        "  {:<12} {:>8} bytes, signer {} ({})",
        names::CAT_FILE,
        s.cat.len(),
        s.signer,
        s.source
    );
    println!(
        "  certificate  {} ({} bytes, DER), sha256 {}",
        crate::sign::CER_FILE,
        s.cer.len(),
        s.signer_sha256
    );
    println!(
        "  signed       {} (Authenticode, SHA-256, embedded) and {}",
        names::SYS_FILE,
        names::CAT_FILE
    );
    println!("  catalog      {} members", s.members.len());
    for m in &s.members {
        let how = match m.kind {
            crate::sign::catalog::MemberKind::Pe => "authenticode",
            crate::sign::catalog::MemberKind::Flat => "flat file",
        };
        println!(
            "    {:<12} sha256 {} ({how})",
            m.file,
            crate::sign::hex(&m.sha256)
        );
    }
}

fn print_summary(built: &Built, report: &Report, dir: &Path, verbose: bool) {
    let f = &report.facts;
    let mut modules: Vec<String> = f.imports.iter().map(|(m, _)| m.clone()).collect();
    modules.sort();
    modules.dedup();
    let per_module: Vec<String> = modules
        .iter()
        .map(|m| format!("{m} {}", f.imports.iter().filter(|(x, _)| x == m).count()))
        .collect();
    println!("package {} -> {}", built.arch.name(), dir.display());
    println!(
        "  {:<12} {:>8} bytes, {} sections, entry 0x{:x} = DriverEntry",
        names::SYS_FILE,
        built.sys.len(),
        f.sections,
        f.entry_rva.unwrap_or(0)
    );
    println!(
        "  {:<12} {:>8} bytes, {} publics, {} type records",
        names::PDB_FILE,
        built.pdb.len(),
        f.pdb_publics,
        f.pdb_type_records
    );
    println!("  {:<12} {:>8} bytes", names::INF_FILE, built.inf.len());
    println!(
        "  imports      {} ({})",
        f.imports.len(),
        per_module.join(", ")
    );
    println!(
        "  exports      {} ({})",
        f.exports.len(),
        f.exports.join(", ")
    );
    println!("  checks       {} passed, 0 failed", report.passed_count());
    if verbose {
        for (m, n) in &f.imports {
            println!("    import {m}!{n}");
        }
        for c in &report.checks {
            println!("    ok [{}] {}", c.id, c.detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_args_have_the_driver_flags() {
        let args = link_args(Path::new("/x/mdlpool.pdb"));
        for want in [
            "/DRIVER",
            "/ENTRY:DriverEntry",
            "/NODEFAULTLIB",
            "/INTEGRITYCHECK",
            "/NXCOMPAT",
            "/DYNAMICBASE",
            "/PDB:/x/mdlpool.pdb",
        ] {
            assert!(
                args.iter().any(|a| a == want),
                "{want} missing from {args:?}"
            );
        }
        assert!(args.iter().any(|a| a.starts_with("/SUBSYSTEM:NATIVE")));
    }

    #[test]
    fn root_package_version_is_read() {
        let v = package_version(&workspace_root()).unwrap();
        assert!(inf::driver_ver_version(&v).is_ok(), "{v}");
    }
}
