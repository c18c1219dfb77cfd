//! The loader's refusal: every reason a file is not loaded, with the file, the place in it (section,
//! import, relocation, header field) and the reason. Loading never crashes on a bad file; it returns
//! one of these.

use std::fmt;
use std::path::PathBuf;

/// Why an image was refused (or could not be run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file being loaded.
    pub file: PathBuf,
    /// Where in the file: `header`, `section .text`, `import ndis.sys!NdisFoo`, `relocation at RVA 0x1234` …
    pub place: String,
    /// What is wrong with it.
    pub kind: LoadErrorKind,
}

/// The class of a [`LoadError`], so tests and tools can match on it without parsing text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadErrorKind {
    /// The file could not be read.
    Io(String),
    /// Not a PE file, or a header/table lies outside the file (truncated or corrupt).
    Malformed(String),
    /// A PE file, but not an amd64 image.
    WrongMachine(u16),
    /// A PE file, but not a native (kernel-mode) subsystem image.
    WrongSubsystem(u16),
    /// A section asks to be writable and executable at once.
    WritableExecutable,
    /// The image imports a routine ndis-sim does not provide (or imports by ordinal).
    UnknownImport,
    /// A base relocation of a type the loader does not apply.
    UnsupportedRelocation(u16),
    /// The image uses a feature a kernel driver cannot have or the loader does not support
    /// (TLS directory, delay-load imports, section alignment below the page size …).
    Unsupported(String),
    /// The host refused a mapping or protection change.
    Os(String),
    /// The image loaded, but its DriverEntry returned this failure status.
    EntryFailed(u32),
}

impl LoadError {
    pub(crate) fn new(
        file: impl Into<PathBuf>,
        place: impl Into<String>,
        kind: LoadErrorKind,
    ) -> Self {
        LoadError {
            file: file.into(),
            place: place.into(),
            kind,
        }
    }
}

impl fmt::Display for LoadErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadErrorKind::Io(e) => write!(f, "cannot read the file: {e}"),
            LoadErrorKind::Malformed(e) => write!(f, "malformed or truncated image: {e}"),
            LoadErrorKind::WrongMachine(m) => {
                write!(
                    f,
                    "machine type {m:#06x} is not amd64 (0x8664); only amd64 images can run here"
                )
            }
            LoadErrorKind::WrongSubsystem(s) => {
                write!(
                    f,
                    "subsystem {s} is not NATIVE (1): this is not a kernel-mode driver image"
                )
            }
            LoadErrorKind::WritableExecutable => {
                write!(
                    f,
                    "section is both writable and executable; refusing to map W+X memory"
                )
            }
            LoadErrorKind::UnknownImport => {
                write!(f, "ndis-sim does not export this routine, so the image cannot be bound (a kernel would refuse to load it too)")
            }
            LoadErrorKind::UnsupportedRelocation(t) => {
                write!(f, "base relocation type {t} is not supported (only DIR64 = 10 and ABSOLUTE = 0 occur in amd64 images)")
            }
            LoadErrorKind::Unsupported(e) => write!(f, "unsupported: {e}"),
            LoadErrorKind::Os(e) => write!(f, "the host refused: {e}"),
            LoadErrorKind::EntryFailed(st) => {
                write!(f, "DriverEntry failed with status {st:#010x}")
            }
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file.display(), self.place, self.kind)
    }
}

impl std::error::Error for LoadError {}
