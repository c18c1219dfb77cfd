//! What the data path puts into retreated space (DESIGN §5 "Transforms").
//!
//! Owns: the per-NB transforms (`exercise`, `vlan`) and their inverse, expressed through the `nb/`
//! cursor and retreat record; the frame-level constants and encodings (802.1Q TCI, the NBL's
//! `Ieee8021QNetBufferListInfo`). Must not: touch NBL lists, module state or statistics (the caller in
//! `filter/` counts), or call NDIS for anything but retreat/advance (through `nb/`).
//!
//! IRQL: every routine runs at IRQL <= DISPATCH_LEVEL and never blocks.

pub mod exercise;
pub mod offload;
pub mod vlan;

use crate::nb::NbError;
use ndis_sys::NDIS_STATUS;

/// The data-path mode of a filter module (registry `Mode`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Default: force an allocating retreat per NB, fill and check the bytes, keep the block in the
    /// chain as unused space until completion/return. The wire sees the frame unchanged.
    Exercise = 0,
    /// Software 802.1Q tag insertion on send (and optional inline re-insertion on receive).
    Vlan = 1,
    /// No retreat at all.
    Passthrough = 2,
}

impl Mode {
    /// From the numeric encoding: the index of the registry name in `mdlpool_names::config::KEYS`'s
    /// `Mode` values, which the module also stores (`Mode as u32`: 0, 1, 2). Any IRQL.
    pub fn from_u32(v: u32) -> Option<Mode> {
        match v {
            0 => Some(Mode::Exercise),
            1 => Some(Mode::Vlan),
            2 => Some(Mode::Passthrough),
            _ => None,
        }
    }
}

/// Why a transform of one NB failed. The caller rolls the NBL back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransformError {
    /// NdisRetreatNetBufferDataStart failed (the allocator returned NULL); the NB is untouched.
    Retreat(NDIS_STATUS),
    /// A cursor access failed (frame too short, unmapped MDL); the NB may be retreated: restore it.
    Access(NbError),
    /// The exercise pattern did not read back as written (a bug, or memory corruption); restore it.
    PatternMismatch,
}

impl From<NbError> for TransformError {
    fn from(e: NbError) -> Self {
        TransformError::Access(e)
    }
}
