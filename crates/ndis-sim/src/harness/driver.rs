//! Loading a driver (DriverEntry as the I/O manager calls it), unloading it, and the leak checks
//! of both.

#[allow(unused_imports)]
use super::*;

/// A loaded driver (its DRIVER_OBJECT).
#[derive(Clone, Copy, Debug)]
pub struct Driver {
    pub(super) object: usize,
    pub(super) abi: Abi,
}

impl Driver {
    /// The DRIVER_OBJECT address.
    pub fn object(&self) -> *mut DRIVER_OBJECT {
        self.object as *mut DRIVER_OBJECT
    }
}

impl SimGuard {
    /// Loads a driver linked into the test binary: builds a DRIVER_OBJECT the way the I/O manager
    /// does and calls DriverEntry at PASSIVE_LEVEL. Panics when DriverEntry fails (use
    /// [`try_load_driver`](Self::try_load_driver) to test failures).
    pub fn load_driver(
        &self,
        entry: unsafe extern "system" fn(*mut DRIVER_OBJECT, *mut UNICODE_STRING) -> NTSTATUS,
    ) -> Driver {
        self.try_load_driver(entry)
            .unwrap_or_else(|st| panic!("DriverEntry failed with {st:#x}"))
    }

    /// Like [`load_driver`](Self::load_driver), returning DriverEntry's failure status.
    pub fn try_load_driver(
        &self,
        entry: unsafe extern "system" fn(*mut DRIVER_OBJECT, *mut UNICODE_STRING) -> NTSTATUS,
    ) -> Result<Driver, NTSTATUS> {
        // SAFETY: a Rust-linked DriverEntry has the system convention.
        unsafe { self.load_driver_with(entry, Abi::System) }
    }

    /// Loads a driver from an entry address in the given convention (a PE image mapped by sysrun uses
    /// [`Abi::Win64`]).
    ///
    /// # Safety
    /// `entry` must be a DriverEntry of convention `abi`.
    pub unsafe fn load_driver_raw(&self, entry: usize, abi: Abi) -> Result<Driver, NTSTATUS> {
        // SAFETY: the caller guarantees `entry` is a DriverEntry (the convention is handled by invoke).
        let f: unsafe extern "system" fn(*mut DRIVER_OBJECT, *mut UNICODE_STRING) -> NTSTATUS =
            unsafe { std::mem::transmute(entry) };
        // SAFETY: as above.
        unsafe { self.load_driver_with(f, abi) }
    }

    /// # Safety
    /// `f` must be a DriverEntry of convention `abi`.
    unsafe fn load_driver_with(
        &self,
        f: unsafe extern "system" fn(*mut DRIVER_OBJECT, *mut UNICODE_STRING) -> NTSTATUS,
        abi: Abi,
    ) -> Result<Driver, NTSTATUS> {
        let obj = mem::raw_alloc(
            mem::Owner::Sim,
            POOL_FLAG_NON_PAGED,
            std::mem::size_of::<DRIVER_OBJECT>(),
            mem::SIM_TAG,
        ) as *mut DRIVER_OBJECT;
        let name: &'static [u16] = ndis_sys::utf16!("\\Driver\\mdlpool");
        let reg: &'static [u16] =
            ndis_sys::utf16!("\\Registry\\Machine\\System\\CurrentControlSet\\Services\\mdlpool");
        let mut reg_path = UNICODE_STRING::from_static(reg);
        // SAFETY: fresh zeroed block of DRIVER_OBJECT size.
        unsafe {
            (*obj).Type = IO_TYPE_DRIVER;
            (*obj).Size = std::mem::size_of::<DRIVER_OBJECT>() as i16;
            (*obj).DriverName = UNICODE_STRING::from_static(name);
            (*obj).DriverInit = Some(f);
        }
        let _g = race::exclusive(true);
        verifier::log("[io] DriverEntry");
        // SAFETY: DriverEntry with a fresh driver object and registry path, at PASSIVE_LEVEL.
        let st = kernel::at_irql(PASSIVE_LEVEL, || unsafe {
            abi::Callback::invoke(f, abi, (obj, &mut reg_path as *mut _))
        });
        if kernel::current_irql() != PASSIVE_LEVEL {
            verifier::report(
                rules::IRQL_NOT_RESTORED,
                obj as usize,
                "DriverEntry returned above PASSIVE_LEVEL",
            );
            kernel::set_irql(PASSIVE_LEVEL);
        }
        if !NT_SUCCESS(st) {
            drop(_g);
            self.driver_leak_check("failed DriverEntry");
            return Err(st);
        }
        self.drivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((obj as usize, abi, false));
        Ok(Driver {
            object: obj as usize,
            abi,
        })
    }

    /// Calls the driver's DriverUnload (PASSIVE_LEVEL), then checks it deregistered and leaked nothing.
    pub fn unload(&self, driver: Driver) {
        let obj = driver.object as *mut DRIVER_OBJECT;
        {
            let mut d = self.drivers.lock().unwrap_or_else(|e| e.into_inner());
            let e = d
                .iter_mut()
                .find(|e| e.0 == driver.object)
                .expect("a loaded driver");
            assert!(!e.2, "driver already unloaded");
            e.2 = true;
        }
        // SAFETY: our DRIVER_OBJECT.
        let unload = unsafe { (*obj).DriverUnload };
        {
            let _g = race::exclusive(true);
            verifier::log("[io] DriverUnload");
            match unload {
                Some(f) => {
                    // SAFETY: the driver's unload routine, at PASSIVE_LEVEL.
                    kernel::at_irql(PASSIVE_LEVEL, || unsafe {
                        abi::Callback::invoke(f, driver.abi, (obj,))
                    });
                }
                None => verifier::report(
                    rules::NOT_DEREGISTERED,
                    obj as usize,
                    "driver has no DriverUnload",
                ),
            }
            if stack::driver_handle().is_some() {
                verifier::report(
                    rules::NOT_DEREGISTERED,
                    obj as usize,
                    "DriverUnload returned with the filter driver still registered",
                );
            }
        }
        self.driver_leak_check("unload");
    }

    fn driver_leak_check(&self, when: &str) {
        for (addr, size, tag, origin) in mem::driver_blocks() {
            let tag_s = String::from_utf8_lossy(&tag.to_le_bytes()).into_owned();
            match origin {
                Some(o) => verifier::report(
                    rules::LEAKED_MDL,
                    addr,
                    format!("{when}: {o:?} MDL ({size} bytes) not freed"),
                ),
                None => verifier::report(
                    rules::LEAKED_POOL,
                    addr,
                    format!("{when}: pool block of {size} bytes, tag '{tag_s}' not freed"),
                ),
            }
        }
        for (pool, _, live) in nbl::driver_pools() {
            verifier::report(
                rules::LEAKED_NBL,
                pool,
                format!("{when}: NBL/NB pool not freed ({live} live)"),
            );
        }
        for (addr, r) in nbl::all_nbls() {
            if r.creator == nbl::Creator::Driver {
                verifier::report(
                    rules::LEAKED_NBL,
                    addr,
                    format!("{when}: driver NBL not freed (held by {:?})", r.holder),
                );
            }
        }
        for (h, what) in timers::driver_leftovers()
            .into_iter()
            .chain(configuration::driver_leftovers())
        {
            verifier::report(rules::LEAKED_POOL, h, format!("{when}: {what}"));
        }
    }
}
