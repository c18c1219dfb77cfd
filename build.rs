//! Build script for the `mdlpool` driver crate.
//!
//! On every host except Windows with the `wdk` feature on, this does nothing
//! beyond declaring the cfg it could set: Linux builds (`cargo xtask package`,
//! `cargo test`) never compile wdk-build or bindgen, which are optional,
//! Windows-only build-dependencies.
//!
//! On a Windows host with the eWDK and `--features wdk` (what Makefile.toml
//! does) it:
//! 1. configures the driver link through wdk-build (the same
//!    `configure_binary_build` every windows-drivers-rs driver uses: /DRIVER,
//!    /SUBSYSTEM:NATIVE, /ENTRY:DriverEntry, the WDK library paths ...);
//! 2. runs bindgen over the real `ndis.h` with the defines an NDIS 6.84
//!    lightweight filter uses (NDIS_WDM, NDIS684), and writes `const`
//!    assertions comparing the size and field offsets of the hand-written
//!    `ndis-sys` types with the generated ones to
//!    `$OUT_DIR/ndis_layout_check.rs`, which the crate includes under
//!    `cfg(mdlpool_wdk_bindgen)`. A layout drift then fails the first Windows
//!    build instead of corrupting memory at run time.
//!
//! None of that can run on Linux; it is kept small on purpose.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(mdlpool_wdk_bindgen)");
    #[cfg(all(windows, feature = "wdk"))]
    wdk_host::run();
}

#[cfg(all(windows, feature = "wdk"))]
mod wdk_host {
    use std::fmt::Write as _;
    use std::path::PathBuf;

    use wdk_build::{BuilderExt, Config};

    /// (ndis-sys type, bindgen typedef, fields whose offsets must agree). Only
    /// fields that are named members in the C headers are listed: members of
    /// anonymous unions get generated names, and their structs are pinned by
    /// size (and by ndis-sys's own offset assertions against published values).
    const TYPES: &[(&str, &str, &[&str])] = &[
        (
            "MDL",
            "MDL",
            &[
                "Next",
                "Size",
                "MdlFlags",
                "MappedSystemVa",
                "StartVa",
                "ByteCount",
                "ByteOffset",
            ],
        ),
        ("NET_BUFFER", "NET_BUFFER", &[]),
        ("NET_BUFFER_LIST", "NET_BUFFER_LIST", &[]),
        (
            "NET_BUFFER_LIST_CONTEXT",
            "NET_BUFFER_LIST_CONTEXT",
            &["Next", "Size", "Offset"],
        ),
        (
            "NDIS_OBJECT_HEADER",
            "NDIS_OBJECT_HEADER",
            &["Type", "Revision", "Size"],
        ),
        (
            "NDIS_FILTER_DRIVER_CHARACTERISTICS",
            "NDIS_FILTER_DRIVER_CHARACTERISTICS",
            &[
                "Header",
                "MajorNdisVersion",
                "MinorNdisVersion",
                "FriendlyName",
                "UniqueName",
                "ServiceName",
                "AttachHandler",
                "DetachHandler",
                "RestartHandler",
                "PauseHandler",
                "SendNetBufferListsHandler",
                "ReceiveNetBufferListsHandler",
                "ReturnNetBufferListsHandler",
                "StatusHandler",
            ],
        ),
        (
            "NDIS_FILTER_ATTRIBUTES",
            "NDIS_FILTER_ATTRIBUTES",
            &["Header", "Flags"],
        ),
        (
            "NDIS_FILTER_ATTACH_PARAMETERS",
            "NDIS_FILTER_ATTACH_PARAMETERS",
            &["Header", "MiniportMediaType"],
        ),
        (
            "NDIS_FILTER_RESTART_PARAMETERS",
            "NDIS_FILTER_RESTART_PARAMETERS",
            &["Header", "RestartAttributes"],
        ),
        (
            "NDIS_FILTER_PAUSE_PARAMETERS",
            "NDIS_FILTER_PAUSE_PARAMETERS",
            &["Header", "Flags", "PauseReason"],
        ),
        (
            "NDIS_OID_REQUEST",
            "NDIS_OID_REQUEST",
            &[
                "Header",
                "RequestType",
                "PortNumber",
                "Timeout",
                "RequestId",
            ],
        ),
        (
            "NDIS_STATUS_INDICATION",
            "NDIS_STATUS_INDICATION",
            &["Header", "SourceHandle", "StatusCode", "StatusBuffer"],
        ),
        (
            "NET_PNP_EVENT_NOTIFICATION",
            "NET_PNP_EVENT_NOTIFICATION",
            &["Header", "PortNumber", "NetPnPEvent"],
        ),
        (
            "UNICODE_STRING",
            "UNICODE_STRING",
            &["Length", "MaximumLength", "Buffer"],
        ),
        ("PROCESSOR_NUMBER", "PROCESSOR_NUMBER", &["Group", "Number"]),
    ];

    pub fn run() {
        let config =
            Config::from_env_auto().expect("wdk-build configuration (run from an eWDK prompt)");
        config
            .configure_binary_build()
            .expect("wdk-build binary configuration");

        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
        // clang cannot expand ndis.h's NDIS_API_VERSION_AVAILABLE (it relies on
        // MSVC token pasting); bind against a copy with that one macro replaced.
        let ndis_h = config
            .include_paths()
            .expect("WDK include paths")
            .map(|dir| dir.join("ndis.h"))
            .find(|p| p.exists())
            .expect("ndis.h in the WDK include paths");
        println!("cargo:rerun-if-changed={}", ndis_h.display());
        let original = std::fs::read_to_string(&ndis_h).expect("reading ndis.h");
        let patched: String = original
            .lines()
            .map(|l| {
                if l.trim_start()
                    .starts_with("#define NDIS_API_VERSION_AVAILABLE(")
                {
                    "#define NDIS_API_VERSION_AVAILABLE(major,minor) (1)".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let hacks = out.join("ndis-header-hacks");
        std::fs::create_dir_all(&hacks).expect("creating header-hacks dir");
        let patched_h = hacks.join("ndis.h");
        std::fs::write(&patched_h, patched).expect("writing patched ndis.h");

        let wrapper = format!(
            "#define NDIS_WDM 1\n#define NDIS684 1\n#include <ntddk.h>\n#include \"{}\"\n",
            patched_h.display().to_string().replace('\\', "/")
        );
        let mut builder = bindgen::Builder::wdk_default(&config)
            .expect("bindgen defaults")
            .header_contents("mdlpool_ndis.h", &wrapper);
        for (_, c, _) in TYPES {
            builder = builder.allowlist_type(c);
        }
        builder
            .generate()
            .expect("bindgen over ndis.h")
            .write_to_file(out.join("ndis_bindings.rs"))
            .expect("writing bindings");

        let mut check = String::from(
            "#[allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code, clippy::all)]\n\
             mod bindings { include!(concat!(env!(\"OUT_DIR\"), \"/ndis_bindings.rs\")); }\n",
        );
        for (ours, theirs, fields) in TYPES {
            writeln!(
                check,
                "const _: () = assert!(core::mem::size_of::<ndis_sys::{ours}>() == core::mem::size_of::<bindings::{theirs}>(), \"size of {ours} differs from ndis.h\");"
            )
            .unwrap();
            for f in *fields {
                writeln!(
                    check,
                    "const _: () = assert!(core::mem::offset_of!(ndis_sys::{ours}, {f}) == core::mem::offset_of!(bindings::{theirs}, {f}), \"offset of {ours}.{f} differs from ndis.h\");"
                )
                .unwrap();
            }
        }
        std::fs::write(out.join("ndis_layout_check.rs"), check).expect("writing layout check");
        println!("cargo:rustc-cfg=mdlpool_wdk_bindgen");
    }
}
