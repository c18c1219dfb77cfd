//! Mapping a vetted image into this process: a fresh anonymous mapping, headers and sections copied
//! in, DIR64 base relocations applied for the actual base, every import bound to its win64 entry in
//! ndis-sim's export table, then each section given its own protection (never writable and
//! executable at once) and the range registered with the fault handler.
//!
//! This module owns the mapping's lifetime ([`LoadedImage`]); it does not call into the image
//! (that is `driver`).

use crate::callsite::Thunks;
use crate::error::{LoadError, LoadErrorKind};
use crate::pe::PeImage;
use crate::symbols::Symbols;
use crate::trap;
use std::path::Path;

const PAGE: usize = 0x1000;

fn page_up(x: usize) -> usize {
    (x + PAGE - 1) & !(PAGE - 1)
}

/// Resolves `(module, routine)` to the address of a win64-callable entry.
pub type Resolver<'a> = &'a dyn Fn(&str, &str) -> Option<usize>;

/// ndis-sim's resolver: the win64 entry of the export with that module and name.
pub fn sim_resolver(module: &str, name: &str) -> Option<usize> {
    ndis_sim::find_export(Some(module), name).map(|e| e.win64)
}

/// A driver image mapped into this process, relocated, bound and protected.
pub struct LoadedImage {
    pe: PeImage,
    base: usize,
    size: usize,
    symbols: Option<Symbols>,
    symbols_error: Option<String>,
    slot: usize,
    _thunks: Thunks,
}

// SAFETY: the mapping is plain process memory; the image's own synchronisation governs concurrent
// use of its data, exactly as in the kernel. LoadedImage only hands out addresses.
unsafe impl Send for LoadedImage {}
// SAFETY: as above; no interior mutability in LoadedImage itself.
unsafe impl Sync for LoadedImage {}

impl LoadedImage {
    /// Loads the image at `path`, binding its imports to ndis-sim.
    pub fn load(path: impl AsRef<Path>) -> Result<LoadedImage, LoadError> {
        let pe = PeImage::read(path)?;
        LoadedImage::map(pe, &sim_resolver)
    }

    /// Maps a vetted image, binding imports through `resolve`.
    pub fn map(pe: PeImage, resolve: Resolver<'_>) -> Result<LoadedImage, LoadError> {
        let err = |place: &str, kind: LoadErrorKind| LoadError::new(&pe.path, place, kind);

        // Bind first: an unknown import refuses the image before any memory is touched. Every
        // missing routine is named, not only the first.
        let mut targets = Vec::with_capacity(pe.imports.len());
        let mut missing = Vec::new();
        for imp in &pe.imports {
            match resolve(&imp.module, &imp.name) {
                Some(addr) => targets.push(addr),
                None => missing.push(format!("{}!{}", imp.module, imp.name)),
            }
        }
        if !missing.is_empty() {
            let place = if missing.len() == 1 {
                format!("import {}", missing[0])
            } else {
                format!("imports {}", missing.join(", "))
            };
            return Err(err(&place, LoadErrorKind::UnknownImport));
        }

        trap::install().map_err(|e| err("fault handler", LoadErrorKind::Os(e)))?;
        crate::sites::install();
        // Each IAT slot gets a thunk that records the image's call site, then calls the routine.
        let (thunks, thunk_addrs) =
            Thunks::build(&targets).map_err(|e| err("import thunks", LoadErrorKind::Os(e)))?;

        let size = page_up(pe.size_of_image as usize);
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(err(
                "image",
                LoadErrorKind::Os(format!(
                    "mmap of {size:#x} bytes: {}",
                    std::io::Error::last_os_error()
                )),
            ));
        }
        let base = base as usize;
        let unmap = || {
            // SAFETY: unmapping the mapping created above, which nothing else references yet.
            unsafe { libc::munmap(base as *mut libc::c_void, size) };
        };

        // The copies below: `base..base+size` is our fresh RW mapping; the vetting in pe.rs
        // guarantees each source range lies in the file and each destination range within
        // SizeOfImage.
        // SAFETY: see above (headers: SizeOfHeaders <= file length and < SizeOfImage).
        unsafe {
            std::ptr::copy_nonoverlapping(
                pe.data.as_ptr(),
                base as *mut u8,
                pe.size_of_headers as usize,
            );
        }
        for s in &pe.sections {
            let n = s.raw_size.min(s.virtual_size) as usize;
            if n > 0 {
                // SAFETY: see above.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        pe.data.as_ptr().add(s.raw_offset as usize),
                        (base + s.rva as usize) as *mut u8,
                        n,
                    );
                }
            }
        }

        // Base relocations: the image was linked for ImageBase; it now lives at `base`.
        let delta = (base as u64).wrapping_sub(pe.image_base);
        for &rva in &pe.relocations {
            let p = (base + rva as usize) as *mut u64;
            // SAFETY: rva + 8 <= SizeOfImage (checked in pe.rs); unaligned access is allowed.
            unsafe { p.write_unaligned(p.read_unaligned().wrapping_add(delta)) };
        }

        // Imports.
        for (imp, &addr) in pe.imports.iter().zip(&thunk_addrs) {
            let p = (base + imp.iat_rva as usize) as *mut u64;
            // SAFETY: the IAT slot lies within SizeOfImage (checked in pe.rs).
            unsafe { p.write_unaligned(addr as u64) };
        }

        // Protections: headers read-only, each section its own, the rest inaccessible.
        let protect =
            |start: usize, len: usize, prot: libc::c_int, what: &str| -> Result<(), LoadError> {
                if len == 0 {
                    return Ok(());
                }
                // SAFETY: [start, start+len) is page-aligned and inside our mapping.
                if unsafe { libc::mprotect((base + start) as *mut libc::c_void, len, prot) } != 0 {
                    return Err(err(
                        what,
                        LoadErrorKind::Os(format!("mprotect: {}", std::io::Error::last_os_error())),
                    ));
                }
                Ok(())
            };
        let headers_end = page_up(pe.size_of_headers as usize);
        let mut result = protect(0, headers_end, libc::PROT_READ, "headers");
        let mut covered = headers_end;
        for s in &pe.sections {
            if result.is_err() {
                break;
            }
            let start = s.rva as usize;
            let end = page_up(start + s.virtual_size as usize);
            if start > covered {
                result = protect(covered, start - covered, libc::PROT_NONE, "gap");
            }
            // Executable code must also be readable here (the fault handler decodes it).
            let prot = match (s.read || s.execute, s.write, s.execute) {
                (_, true, true) => unreachable!("W+X refused in pe.rs"),
                (true, true, false) => libc::PROT_READ | libc::PROT_WRITE,
                (false, true, false) => libc::PROT_WRITE | libc::PROT_READ,
                (true, false, true) => libc::PROT_READ | libc::PROT_EXEC,
                (true, false, false) => libc::PROT_READ,
                _ => libc::PROT_NONE,
            };
            if result.is_ok() {
                result = protect(start, end - start, prot, &format!("section {}", s.name));
            }
            covered = covered.max(end);
        }
        if result.is_ok() && covered < size {
            result = protect(covered, size - covered, libc::PROT_NONE, "tail");
        }
        if let Err(e) = result {
            unmap();
            return Err(e);
        }

        let (symbols, symbols_error) = match Symbols::for_image(&pe.path, pe.codeview.as_ref()) {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        let file_name = pe
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let Some(slot) = trap::register(base, base + size, file_name, symbols.clone()) else {
            unmap();
            return Err(err(
                "image",
                LoadErrorKind::Unsupported("too many images loaded at once".into()),
            ));
        };
        Ok(LoadedImage {
            pe,
            base,
            size,
            symbols,
            symbols_error,
            slot,
            _thunks: thunks,
        })
    }

    /// The address the image was mapped at.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Mapped size (SizeOfImage rounded up to a page).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The vetted file description.
    pub fn pe(&self) -> &PeImage {
        &self.pe
    }

    /// The entry point's address (DriverEntry).
    pub fn entry(&self) -> usize {
        self.base + self.pe.entry_rva as usize
    }

    /// The address of a named export.
    pub fn export(&self, name: &str) -> Option<usize> {
        self.pe.export_rva(name).map(|r| self.base + r as usize)
    }

    /// The RVA of `addr` if it lies in the image.
    pub fn rva_of(&self, addr: usize) -> Option<u32> {
        (addr >= self.base && addr < self.base + self.size).then(|| (addr - self.base) as u32)
    }

    /// The PDB symbols, when a matching PDB was found.
    pub fn symbols(&self) -> Option<&Symbols> {
        self.symbols.as_ref()
    }

    /// Why no symbols were loaded, if none were.
    pub fn symbols_error(&self) -> Option<&str> {
        self.symbols_error.as_deref()
    }

    /// The address of the function named `name` (PDB symbol), for tests and diagnostics.
    pub fn function(&self, name: &str) -> Option<usize> {
        self.symbols
            .as_ref()?
            .find(name)
            .map(|r| self.base + r as usize)
    }

    /// Names the function containing `addr`: `mdlpool.sys!mdlpool::driver::DriverEntry+0x12 (rva …)`.
    /// `None` when `addr` is outside the image.
    pub fn describe(&self, addr: usize) -> Option<String> {
        self.rva_of(addr)?;
        trap::describe_address(addr)
    }
}

impl Drop for LoadedImage {
    fn drop(&mut self) {
        trap::unregister(self.slot);
        // SAFETY: the caller of drop guarantees no code or data of the image is in use any more
        // (DriverUnload returned, or DriverEntry was never called); the mapping is ours.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.size) };
    }
}

impl std::fmt::Debug for LoadedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedImage")
            .field("path", &self.pe.path)
            .field("base", &format_args!("{:#x}", self.base))
            .field("size", &format_args!("{:#x}", self.size))
            .field("imports", &self.pe.imports.len())
            .field("symbols", &self.symbols.as_ref().map(|s| s.len()))
            .finish()
    }
}
