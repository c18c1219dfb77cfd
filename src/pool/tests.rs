//! Unit tests of the pool on the host platform (these run under Miri too).
extern crate std;

use super::host::HostPlatform;
use super::*;
use std::vec::Vec;

fn small_config() -> PoolConfig {
    PoolConfig {
        magazine_size: 4,
        depot_limit: 2,
        ..PoolConfig::default()
    }
}

#[test]
fn allocate_sets_bytecount_and_builds_mdl() {
    let pool = Pool::create(HostPlatform::new(2, true), &small_config()).unwrap();
    for &size in &[1u32, 14, 64, 65, 100, 2048, 2049, 9000] {
        let mdl = pool.allocate(size);
        assert!(!mdl.is_null());
        // SAFETY: a live MDL from the pool.
        unsafe {
            assert_eq!((*mdl).ByteCount, size);
            assert!((*mdl).Next.is_null());
            assert_ne!((*mdl).MdlFlags & ndis_sys::MDL_SOURCE_IS_NONPAGED_POOL, 0);
            let va = ndis_sys::MmGetMdlVirtualAddress(mdl);
            assert_eq!(va, (*mdl).MappedSystemVa);
            let pages = ndis_sys::ADDRESS_AND_SIZE_TO_SPAN_PAGES(va, size as usize);
            assert!(((*mdl).Size as usize) >= 0x30 + 8 * pages);
            if size <= 2048 {
                assert_eq!(pages, 1);
            }
            core::ptr::write_bytes(va.cast::<u8>(), 0xA5, size as usize);
            pool.free(mdl).unwrap();
        }
    }
    let r = pool.snapshot();
    assert_eq!(r.total.in_flight, 0);
    assert_eq!(r.oversize().total_allocates, 2);
    let rep = PoolHandle::destroy(pool);
    assert!(rep.is_clean(), "{rep:?}");
}

#[test]
fn destroy_frees_everything() {
    let plat_probe;
    {
        let pool = Pool::create(HostPlatform::new(1, true), &small_config()).unwrap();
        let v: Vec<_> = (0..50).map(|i| pool.allocate(64 + i)).collect();
        for m in v {
            // SAFETY: ours, in flight.
            unsafe { pool.free(m).unwrap() };
        }
        plat_probe = pool.platform().live_allocs();
        assert!(plat_probe > 0);
        let rep = pool.destroy();
        assert!(rep.is_clean());
    }
}
