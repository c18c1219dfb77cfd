//! The target architectures of a package (a leaf: the verifier, the allow-list of kernel exports,
//! the signer and the build all name them).

use object::pe;

/// Target architecture of a package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// The INF / WDK architecture name (`$ARCH$`, package directory).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-pc-windows-msvc",
            Arch::Arm64 => "aarch64-pc-windows-msvc",
        }
    }

    /// IMAGE_FILE_MACHINE_*.
    pub fn machine(self) -> u16 {
        match self {
            Arch::Amd64 => pe::IMAGE_FILE_MACHINE_AMD64.0,
            Arch::Arm64 => pe::IMAGE_FILE_MACHINE_ARM64.0,
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        match s.to_ascii_lowercase().as_str() {
            "amd64" | "x64" | "x86_64" => Some(Arch::Amd64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

/// The IRQL routines an arm64 image imports, all from hal.dll (NTHALAPI on
/// arm64; KeRaiseIrql / KeLowerIrql are macros over the Kf pair there). See
/// `known-exports/README.md`.
pub const ARM64_HAL_IRQL: [&str; 3] = ["KeGetCurrentIrql", "KfRaiseIrql", "KfLowerIrql"];
