//! Building blocks for tests of NB/MDL routines: NBLs with a chosen chain layout, owned by the
//! simulator (their MDLs count as foreign to any driver allocator), freed on drop.

use crate::mem::{self, MdlOrigin};
use crate::nbl::{self, Creator};
use ndis_sys::*;

/// One NB's layout: MDL byte lengths, DataOffset, DataLength.
#[derive(Clone, Debug)]
pub struct NbLayout {
    /// Byte length of each MDL of the chain.
    pub mdl_lengths: Vec<u32>,
    /// DataOffset.
    pub data_offset: u32,
    /// DataLength.
    pub data_length: u32,
}

/// An NBL built by the simulator for a test. Must be dropped inside the simulation that made it.
pub struct TestNbl {
    nbl: *mut NET_BUFFER_LIST,
    pool: usize,
    mdls: Vec<*mut MDL>,
    nbs: Vec<*mut NET_BUFFER>,
}

impl TestNbl {
    /// Builds an NBL whose NBs have the given layouts; byte `i` of each NB's chain holds `i as u8`.
    pub fn new(layouts: &[NbLayout]) -> TestNbl {
        let pool = nbl::sim_nbl_pool(0);
        let l = nbl::alloc_nbl(pool, 0, 0, Creator::Protocol(usize::MAX), usize::MAX);
        assert!(!l.is_null());
        let mut mdls = Vec::new();
        for (i, lay) in layouts.iter().enumerate() {
            let mut head: *mut MDL = std::ptr::null_mut();
            let mut tail: *mut MDL = std::ptr::null_mut();
            let mut pos = 0u32;
            for &len in &lay.mdl_lengths {
                let m = nbl::sim_mdl(len, 0);
                // SAFETY: fresh MDL over `len` bytes.
                unsafe {
                    let va = nbl::mdl_va(m);
                    for k in 0..len {
                        *va.add(k as usize) = (pos + k) as u8;
                    }
                    if head.is_null() {
                        head = m;
                    } else {
                        (*tail).Next = m;
                    }
                }
                tail = m;
                pos += len;
                mdls.push(m);
            }
            if i == 0 {
                nbl::set_prealloc_nb(l, head, lay.data_offset, lay.data_length);
            } else {
                nbl::sim_append_nb(l, head, lay.data_offset, lay.data_length);
            }
        }
        // SAFETY: our NBL.
        let nbs = unsafe { nbl::nbs_of(l) };
        nbl::with_nbl(l, |r| r.holder = nbl::Holder::Filter);
        TestNbl {
            nbl: l,
            pool,
            mdls,
            nbs,
        }
    }

    /// An NBL with one NB.
    pub fn single(mdl_lengths: &[u32], data_offset: u32, data_length: u32) -> TestNbl {
        TestNbl::new(&[NbLayout {
            mdl_lengths: mdl_lengths.to_vec(),
            data_offset,
            data_length,
        }])
    }

    /// The NBL.
    pub fn nbl(&self) -> *mut NET_BUFFER_LIST {
        self.nbl
    }

    /// NB `i` (in build order).
    pub fn nb(&self, i: usize) -> *mut NET_BUFFER {
        self.nbs[i]
    }

    /// The MDLs the simulator built, in build order.
    pub fn mdls(&self) -> &[*mut MDL] {
        &self.mdls
    }
}

impl Drop for TestNbl {
    fn drop(&mut self) {
        for &m in &self.mdls {
            if mem::mdl_origin(m) == Some(MdlOrigin::SimLayer) {
                // SAFETY: our MDL; its buffer is a simulator block.
                let va = unsafe { (*m).StartVa as usize + (*m).ByteOffset as usize };
                mem::raw_free(va as *mut u8);
                mem::raw_free(m as *mut u8);
            }
        }
        // SAFETY: our NBL: relink the original NBs so only the simulator's NB objects are freed.
        unsafe {
            for (i, &nb) in self.nbs.iter().enumerate() {
                (*nb).Next = self.nbs.get(i + 1).copied().unwrap_or(std::ptr::null_mut());
                (*nb).MdlChain = std::ptr::null_mut();
            }
            (*self.nbl).FirstNetBuffer = self.nbs.first().copied().unwrap_or(std::ptr::null_mut());
            nbl::free_sim_nbl(self.nbl);
        }
        nbl::free_sim_pool(self.pool);
    }
}
