//! Hand-built MDL chains over host memory for unit tests (no NDIS calls). The NB and the MDLs
//! live behind raw pointers (from `Box::into_raw`) for the chain's lifetime, so the pointers the
//! chain links through stay valid under Miri's borrow rules however the test edits them.

use crate::ndis::NetBuffer;
use core::ptr;
use ndis_sys::*;
use std::boxed::Box;
use std::vec::Vec;

/// An NB over a chain of MDLs, each over its own buffer.
pub struct Chain {
    nb: *mut NET_BUFFER,
    pub mdls: Vec<*mut MDL>,
    /// Owns the bytes the MDLs describe (only read through the MDLs).
    #[allow(dead_code)]
    pub bufs: Vec<Vec<u8>>,
}

impl Chain {
    /// MDLs of the given sizes; the data starts `data_offset` bytes into the chain and is
    /// `data_length` long. Buffer bytes are `0xA0 ^ index-in-chain`.
    pub fn new(sizes: &[u32], data_offset: u32, data_length: u32) -> Self {
        let mut bufs: Vec<Vec<u8>> = Vec::new();
        let mut k = 0u32;
        for &s in sizes {
            let mut b = Vec::with_capacity(s as usize);
            for _ in 0..s {
                b.push(0xA0 ^ (k as u8));
                k += 1;
            }
            bufs.push(b);
        }
        let mut mdls: Vec<*mut MDL> = Vec::new();
        for b in bufs.iter_mut() {
            // SAFETY: (test) an all-zero MDL header is a valid value of the plain-data struct.
            let mut m: Box<MDL> = Box::new(unsafe { core::mem::zeroed() });
            m.ByteCount = b.len() as u32;
            m.MappedSystemVa = b.as_mut_ptr() as PVOID;
            m.StartVa = PAGE_ALIGN(b.as_ptr() as _);
            m.ByteOffset = BYTE_OFFSET(b.as_ptr() as _);
            m.MdlFlags = MDL_SOURCE_IS_NONPAGED_POOL;
            mdls.push(Box::into_raw(m));
        }
        for i in 1..mdls.len() {
            // SAFETY: (test) both MDLs are live boxes owned by this chain.
            unsafe { (*mdls[i - 1]).Next = mdls[i] };
        }
        // SAFETY: (test) an all-zero NET_BUFFER is a valid empty NB.
        let nb: Box<NET_BUFFER> = Box::new(unsafe { core::mem::zeroed() });
        let nb = Box::into_raw(nb);
        // SAFETY: (test) the NB was just allocated.
        unsafe {
            (*nb).MdlChain = mdls.first().copied().unwrap_or(ptr::null_mut());
            (*nb).DataOffset = data_offset;
            (*nb).SetDataLength(data_length);
        }
        let chain = Chain { nb, mdls, bufs };
        chain.normalise();
        chain
    }

    /// Sets CurrentMdl/CurrentMdlOffset from DataOffset with NDIS's walk.
    pub fn normalise(&self) {
        // SAFETY: (test) the NB and its chain are ours and valid.
        unsafe {
            let mut off = (*self.nb).DataOffset;
            let mut m = (*self.nb).MdlChain;
            while !m.is_null() && off >= (*m).ByteCount {
                off -= (*m).ByteCount;
                m = (*m).Next;
            }
            (*self.nb).CurrentMdl = m;
            (*self.nb).CurrentMdlOffset = off;
        }
    }

    pub fn nb(&self) -> *mut NET_BUFFER {
        self.nb
    }

    /// The NB as a [`NetBuffer`] (the chain owns it and keeps its MDLs mapped).
    pub fn net_buffer(&self) -> NetBuffer {
        // SAFETY: (test) the NB and its chain are ours, valid and mapped while the chain lives.
        unsafe { NetBuffer::new_unchecked(self.nb) }
    }

    /// The NB, for field edits in tests.
    pub fn nb_mut(&mut self) -> &mut NET_BUFFER {
        // SAFETY: (test) the NB is live while the chain is; `&mut self` makes this access unique.
        unsafe { &mut *self.nb }
    }

    /// MDL `i`, for field edits in tests.
    pub fn mdl_mut(&mut self, i: usize) -> &mut MDL {
        // SAFETY: (test) as `nb_mut`.
        unsafe { &mut *self.mdls[i] }
    }

    /// The whole chain's bytes, concatenated.
    pub fn flat(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for &m in &self.mdls {
            // SAFETY: (test) each MDL maps its own live buffer of ByteCount bytes.
            unsafe {
                let p = (*m).MappedSystemVa as *const u8;
                v.extend_from_slice(core::slice::from_raw_parts(p, (*m).ByteCount as usize));
            }
        }
        v
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        // SAFETY: (test) every pointer came from Box::into_raw in `new` and is freed once.
        unsafe {
            drop(Box::from_raw(self.nb));
            for &m in &self.mdls {
                drop(Box::from_raw(m));
            }
        }
    }
}
