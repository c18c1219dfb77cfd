//! Running a loaded image as a driver inside an ndis-sim simulation: `DriverEntry` is called by the
//! simulator's I/O-manager stand-in ([`ndis_sim::SimGuard::load_driver_raw`]) in the Windows x64
//! convention, with the DRIVER_OBJECT and registry path it builds; `DriverUnload` (the pointer the
//! image stored in that object) is called back the same way by [`ndis_sim::SimGuard::unload`], which
//! then runs the leak checks. Every callback the image registers is called through ndis-sim's
//! convention-aware helper, because the image entered the simulator through win64 entries.
//!
//! This module owns the pairing of a mapped image with its simulator driver record ([`SysDriver`])
//! and the order of teardown: the image stays mapped until the driver has unloaded.

use crate::error::{LoadError, LoadErrorKind};
use crate::loader::LoadedImage;
use ndis_sim::{Abi, SimGuard};
use std::mem::ManuallyDrop;
use std::path::Path;

/// A driver image loaded into a simulation.
pub struct SysDriver {
    image: ManuallyDrop<LoadedImage>,
    sim_driver: Option<ndis_sim::Driver>,
}

impl SysDriver {
    /// Maps the image at `path` (imports bound to ndis-sim), installs the finding-site hook and
    /// calls its `DriverEntry` at PASSIVE_LEVEL. A refused image or a failed DriverEntry is an error
    /// naming the file.
    pub fn load(sim: &SimGuard, path: impl AsRef<Path>) -> Result<SysDriver, LoadError> {
        SysDriver::start(sim, LoadedImage::load(path)?)
    }

    /// Calls `DriverEntry` of an already mapped image.
    pub fn start(sim: &SimGuard, image: LoadedImage) -> Result<SysDriver, LoadError> {
        crate::sites::install();
        let entry = image.entry();
        // SAFETY: the entry point of a vetted, relocated, bound image: a DRIVER_INITIALIZE in the
        // Windows x64 convention.
        match unsafe { sim.load_driver_raw(entry, Abi::Win64) } {
            Ok(d) => Ok(SysDriver {
                image: ManuallyDrop::new(image),
                sim_driver: Some(d),
            }),
            Err(status) => Err(LoadError::new(
                &image.pe().path,
                "DriverEntry",
                LoadErrorKind::EntryFailed(status as u32),
            )),
        }
    }

    /// The mapped image.
    pub fn image(&self) -> &LoadedImage {
        &self.image
    }

    /// The simulator's record of the driver (its DRIVER_OBJECT).
    pub fn sim_driver(&self) -> ndis_sim::Driver {
        self.sim_driver.expect("a started driver")
    }

    /// Unloads the driver: `DriverUnload` through win64, then the simulator's leak checks. The image
    /// stays mapped (its data, such as the stats root, readable) until this value is dropped.
    pub fn unload(&mut self, sim: &SimGuard) {
        if let Some(d) = self.sim_driver.take() {
            sim.unload(d);
        }
    }

    /// Whether DriverUnload has run.
    pub fn is_unloaded(&self) -> bool {
        self.sim_driver.is_none()
    }
}

impl Drop for SysDriver {
    fn drop(&mut self) {
        if self.sim_driver.is_some() {
            // Not unloaded: the simulator may still call into the image (filter callbacks, or its own
            // unload at the end of the simulation). Keep it mapped rather than leave dangling code.
            return;
        }
        // SAFETY: dropped once, here; the driver has unloaded, so nothing calls into the image.
        unsafe { ManuallyDrop::drop(&mut self.image) };
    }
}
