//! BUGCHECK: `KeBugCheckEx` (the driver's panic path: ndis-sys's `rt` panic handler calls it) records the
//! finding, prints it with the log so far and aborts the process, as the real routine stops the machine.
//! Because it cannot return, the deliberately bad call runs in a child process (this same test binary,
//! told by an environment variable to be the child) and the parent checks how the child ended and what it
//! printed.

use ndis_sim::*;
use ndis_sys::*;
use std::process::Command;

const CHILD: &str = "NDIS_SIM_BUGCHECK_CHILD";

/// The child: a simulation with a log line, then a bugcheck at DISPATCH_LEVEL (as a panic on a kernel
/// path would raise it). Does nothing unless the parent started it.
#[test]
fn bugcheck_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let sim = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    sim.expect_finding(verifier::rules::BUGCHECK);
    kernel::at_irql(DISPATCH_LEVEL, || {
        // SAFETY: deliberately bad: KeBugCheckEx never returns; it aborts this child process.
        unsafe { kernel::KeBugCheckEx(0x7E, 0xC000_0005, 0x1234, 0, 0) }
    });
}

#[test]
#[cfg_attr(miri, ignore = "spawns a child process")]
fn ke_bug_check_ex_records_bugcheck_and_aborts() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "bugcheck_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the child returned from KeBugCheckEx: {stderr}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(6),
            "the child did not abort: {:?}\n{stderr}",
            out.status
        );
    }
    assert!(
        stderr.contains("the driver bugchecked: KeBugCheckEx(0x7e, 0xc0000005, 0x1234, 0x0, 0x0)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("BUGCHECK"),
        "no BUGCHECK finding in the log it printed: {stderr}"
    );
}
