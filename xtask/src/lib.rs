//! Project automation for mdlpool (`cargo xtask ...`), as a library so that the
//! package verifier can be unit-tested with deliberately broken inputs.
//!
//! - [`package`]: cross-build `mdlpool.sys`, stamp `driver.inx`, verify, write
//!   `target/package/<arch>/`.
//! - [`arch`]: the target architectures (a leaf).
//! - [`verify`]: the checks over (PE bytes, PDB bytes, INF text): `pe`, `pdb`, `inf`, `names`, and
//!   the `report` they write into.
//! - [`inf`]: INF reading and stamping.
//! - [`known`]: the allow-list of kernel exports.
//! - [`names`]: the names the driver, the INF and the verifier share (the driver's from `mdlpool-names`),
//!   and the check of the INF's configuration parameters against the driver's key table.
//! - [`pool_tags`]: the driver's pool tags and their check.
//! - [`windbg_check`]: the NatVis and debugger script against the PDB; shipped in each package.
//! - [`wdk_inx`]: `mdlpool.inx`, the copy of `driver.inx` that cargo-wdk requires.

pub mod arch;
pub mod inf;
pub mod known;
pub mod names;
pub mod package;
pub mod pool_tags;
pub mod sign;
pub mod verify;
pub mod wdk_inx;
pub mod windbg_check;
