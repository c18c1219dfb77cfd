//! The deliberately misbehaving test driver (tests/bad-driver), loaded from its own .sys: CR8
//! through every register, an IRQL violation and an NB not restored that the verifier reports with
//! the offending function named from the PDB, and a privileged instruction that stops the run.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use ndis_sim::{rules, AdapterConfig, NblShape, Sim, SimConfig};
use ndis_sys::*;
use sysrun::{LoadedImage, SysDriver};

fn bad_sys() -> std::path::PathBuf {
    sysrun::testing::bad_driver_sys().unwrap_or_else(|e| panic!("{e}"))
}

fn export<F: Copy>(image: &LoadedImage, name: &str) -> F {
    let addr = image
        .export(name)
        .unwrap_or_else(|| panic!("bad driver exports {name}"));
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<usize>());
    // SAFETY: the caller names an exported function of the test driver with signature F (win64).
    unsafe { std::mem::transmute_copy::<usize, F>(&addr) }
}

#[test]
fn cr8_moves_through_every_register_set_and_read_the_virtual_cpu_irql() {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        ..SimConfig::default()
    });
    let image = LoadedImage::load(bad_sys()).unwrap_or_else(|e| panic!("{e}"));
    let roundtrip: unsafe extern "win64" fn(u64) -> u64 = export(&image, "SysrunCr8Roundtrip");
    let (r0, w0) = sysrun::trap::cr8_counts();
    for level in [DISPATCH_LEVEL, APC_LEVEL, HIGH_LEVEL] {
        // SAFETY: exported test routine; it writes CR8 and lowers back to PASSIVE_LEVEL.
        let sum = unsafe { roundtrip(level as u64) };
        assert_eq!(
            sum,
            14 * level as u64,
            "each of 14 registers reads back the IRQL it wrote"
        );
        assert_eq!(ndis_sim::kernel::current_irql(), PASSIVE_LEVEL);
    }
    let (r1, w1) = sysrun::trap::cr8_counts();
    assert!(
        r1 - r0 >= 3 * 14 && w1 - w0 >= 3 * 15,
        "reads {} writes {}",
        r1 - r0,
        w1 - w0
    );
    drop(image);
    sim.finish();
}

#[test]
fn an_irql_violation_is_reported_with_the_function_that_made_it() {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        ..SimConfig::default()
    });
    sysrun::sites::install();
    sim.expect_finding(rules::IRQL_TOO_HIGH);
    let image = LoadedImage::load(bad_sys()).unwrap_or_else(|e| panic!("{e}"));
    let bad: unsafe extern "win64" fn() -> u32 = export(&image, "SysrunAllocateAtHighLevel");
    // SAFETY: exported test routine (allocates at HIGH_LEVEL on purpose, then restores the IRQL).
    unsafe { bad() };
    let f = sim
        .findings()
        .into_iter()
        .find(|f| f.rule == rules::IRQL_TOO_HIGH)
        .expect("IRQL_TOO_HIGH reported");
    let site = f.site.clone().expect("the finding names its call site");
    assert!(site.contains("sysrun_bad_driver.sys!"), "{site}");
    assert!(site.contains("SysrunAllocateAtHighLevel"), "{site}");
    assert!(f.to_string().contains("ExAllocatePool2"), "{f}");
    eprintln!("finding: {f}");
    drop(image);
    sim.finish();
}

#[test]
fn an_nb_not_restored_is_reported_with_the_function_that_completed_it() {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        ..SimConfig::default()
    });
    sim.expect_finding(rules::NB_NOT_RESTORED);
    let mut drv = SysDriver::load(&sim, bad_sys()).unwrap_or_else(|e| panic!("{e}"));
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.attach().expect("attach");
    nic.restart().expect("restart");
    // Room in front of the data: the retreat takes the fast path, no allocation.
    nic.send(&NblShape {
        nbls: 2,
        data_offset: 16,
        ..NblShape::default()
    });
    nic.drain();
    let f = sim
        .findings()
        .into_iter()
        .find(|f| f.rule == rules::NB_NOT_RESTORED)
        .expect("NB_NOT_RESTORED reported");
    eprintln!("finding: {f}");
    let site = f.site.clone().expect("the finding names its call site");
    assert!(site.contains("BadSendComplete"), "{f}");
    eprintln!("finding: {f}");
    nic.pause().expect("pause");
    nic.detach();
    drv.unload(&sim);
    sim.finish();
}

/// Runs `test` of this binary in a child process with `SYSRUN_CHILD` set; returns (status, stderr).
fn run_child(test: &str) -> (std::process::ExitStatus, String) {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("SYSRUN_CHILD", "1")
        .env("SYSRUN_BAD_SYS", bad_sys())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn child_reads_cr3() {
    if std::env::var_os("SYSRUN_CHILD").is_none() {
        return; // only meaningful in the child started by the test below
    }
    let _sim = Sim::start(SimConfig {
        cpus: 1,
        ..SimConfig::default()
    });
    let image = LoadedImage::load(bad_sys()).unwrap_or_else(|e| panic!("{e}"));
    let cr3: unsafe extern "win64" fn() -> u64 = export(&image, "SysrunReadCr3");
    // SAFETY: exported test routine; it executes `mov rax, cr3`, which stops the process.
    unsafe { cr3() };
    unreachable!("mov rax, cr3 must not return");
}

#[test]
fn another_privileged_instruction_stops_the_run_naming_bytes_and_function() {
    let _ = bad_sys(); // build before the child needs it
    let (status, stderr) = run_child("child_reads_cr3");
    assert!(!status.success(), "the child must not survive: {stderr}");
    assert!(
        stderr.contains("sysrun: SIGSEGV in the loaded driver image"),
        "{stderr}"
    );
    assert!(stderr.contains("sysrun_bad_driver.sys!"), "{stderr}");
    assert!(stderr.contains("SysrunReadCr3"), "{stderr}");
    assert!(stderr.contains("instruction bytes: 0f 20 d8"), "{stderr}");
    assert!(stderr.contains("privileged instruction"), "{stderr}");
}

#[test]
fn child_passes_a_bad_nb_pointer() {
    if std::env::var_os("SYSRUN_CHILD").is_none() {
        return; // only meaningful in the child started by the test below
    }
    let _sim = Sim::start(SimConfig {
        cpus: 1,
        ..SimConfig::default()
    });
    let image = LoadedImage::load(bad_sys()).unwrap_or_else(|e| panic!("{e}"));
    let bad: unsafe extern "win64" fn() -> u32 = export(&image, "SysrunBadNbPointer");
    // SAFETY: exported test routine; it passes NET_BUFFER 0x10 to NDIS, which faults.
    unsafe { bad() };
    unreachable!("NdisAdjustNetBufferCurrentMdl(0x10) must fault");
}

#[test]
fn a_fault_inside_ndis_sim_names_the_image_call_that_led_there() {
    let _ = bad_sys();
    let (status, stderr) = run_child("child_passes_a_bad_nb_pointer");
    assert!(!status.success(), "the child must not survive: {stderr}");
    assert!(stderr.contains("sysrun: SIGSEGV at"), "{stderr}");
    assert!(stderr.contains("fault address 0x"), "{stderr}");
    assert!(
        stderr.contains("outside the image, inside a routine called from sysrun_bad_driver.sys!"),
        "{stderr}"
    );
    assert!(stderr.contains("SysrunBadNbPointer"), "{stderr}");
}
