//! Configuration: NdisOpenConfigurationEx / NdisReadConfiguration / NdisCloseConfiguration over a
//! per-module key/value map (the adapter's, in the stack's state) or the filter driver's own map.
//!
//! A routine of layer 3; how a stored value is converted for the driver is [`crate::config_reads`].

use crate::config_reads::ConfigValue;
use crate::mem::{self, Owner};
use crate::stack::{self, stack};
use crate::verifier::{self, check_irql, rules};
use ndis_sys::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

#[derive(Default)]
struct Configs {
    handles: HashMap<usize, ConfigHandle>,
    driver_config: BTreeMap<String, ConfigValue>,
}

struct ConfigHandle {
    values: BTreeMap<String, ConfigValue>,
    /// Parameters and string buffers handed out, freed at close.
    blocks: Vec<usize>,
}

static CONFIGS: LazyLock<Mutex<Configs>> = LazyLock::new(|| Mutex::new(Configs::default()));

fn configs() -> std::sync::MutexGuard<'static, Configs> {
    CONFIGS.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn reset() {
    crate::config_reads::reset();
    *configs() = Configs::default();
}

pub(crate) fn set_driver_config(key: &str, v: ConfigValue) {
    configs().driver_config.insert(key.to_ascii_lowercase(), v);
}

/// Configuration handles the driver still holds: (handle, what).
pub(crate) fn driver_leftovers() -> Vec<(usize, &'static str)> {
    configs()
        .handles
        .keys()
        .map(|h| (*h, "configuration handle not closed"))
        .collect()
}

/// Frees every configuration block (end of a simulation).
pub(crate) fn free_all() {
    for (h, c) in configs().handles.drain() {
        for b in c.blocks {
            mem::raw_free(b as *mut u8);
        }
        mem::raw_free(h as *mut u8);
    }
}

fn utf16_to_string(s: *const NDIS_STRING) -> Option<String> {
    if s.is_null() {
        return None;
    }
    // SAFETY: the driver passes a valid NDIS_STRING whose Buffer holds Length bytes.
    unsafe {
        let s = &*s;
        if s.Buffer.is_null() {
            return Some(String::new());
        }
        let units = std::slice::from_raw_parts(s.Buffer, s.Length as usize / 2);
        Some(String::from_utf16_lossy(units))
    }
}

crate::sim_exports! {
    module = "ndis.sys";

    /// `NdisOpenConfigurationEx`: PASSIVE_LEVEL. NdisHandle is a filter module handle (its map) or
    /// the filter driver handle (the driver's map).
    fn NdisOpenConfigurationEx(obj: *mut NDIS_CONFIGURATION_OBJECT, out: *mut NDIS_HANDLE) -> NDIS_STATUS {
        check_irql("NdisOpenConfigurationEx", PASSIVE_LEVEL, obj as usize);
        if obj.is_null() || out.is_null() {
            return NDIS_STATUS_INVALID_PARAMETER;
        }
        // SAFETY: the driver passes a valid configuration object.
        let o = unsafe { &*obj };
        if o.Header.Type != NDIS_OBJECT_TYPE_CONFIGURATION_OBJECT || o.Header.Size < NDIS_SIZEOF_CONFIGURATION_OBJECT_REVISION_1 {
            verifier::report(rules::BAD_OBJECT, obj as usize, "NdisOpenConfigurationEx: bad NDIS_OBJECT_HEADER");
            return NDIS_STATUS_INVALID_PARAMETER;
        }
        let values = if let Some(id) = stack::adapter_of_any(o.NdisHandle) {
            stack().adapters[id].config.clone()
        } else if stack::driver_handle() == Some(o.NdisHandle as usize) {
            configs().driver_config.clone()
        } else {
            verifier::report(rules::BAD_HANDLE, o.NdisHandle as usize, "NdisOpenConfigurationEx: NdisHandle is neither a filter module nor the driver handle");
            return NDIS_STATUS_INVALID_PARAMETER;
        };
        if crate::fault::should_fail(crate::fault::AllocSite::Config, 0, 0) {
            return NDIS_STATUS_RESOURCES;
        }
        let h = mem::raw_alloc(Owner::Sim, POOL_FLAG_PAGED, 64, mem::SIM_TAG) as usize;
        configs().handles.insert(h, ConfigHandle { values, blocks: Vec::new() });
        // SAFETY: valid out pointer.
        unsafe { *out = h as NDIS_HANDLE };
        NDIS_STATUS_SUCCESS
    }

    /// `NdisReadConfiguration`: PASSIVE_LEVEL. The value is converted as [`crate::config_reads`]
    /// documents (either documented reading, per simulation); the parameter stays valid until
    /// NdisCloseConfiguration.
    fn NdisReadConfiguration(status: *mut NDIS_STATUS, value: *mut *mut NDIS_CONFIGURATION_PARAMETER,
        handle: NDIS_HANDLE, keyword: *mut NDIS_STRING, ty: u32) {
        check_irql("NdisReadConfiguration", PASSIVE_LEVEL, handle as usize);
        // PASSIVE_LEVEL: the caller holds no spin lock; other CPUs' traffic may run here.
        crate::race::preemption_point("NdisReadConfiguration", false);
        if status.is_null() || value.is_null() {
            verifier::report(rules::BAD_OBJECT, handle as usize, "NdisReadConfiguration: NULL out pointer");
            return;
        }
        let key = utf16_to_string(keyword).unwrap_or_default().to_ascii_lowercase();
        let found = {
            let m = configs();
            match m.handles.get(&(handle as usize)) {
                None => None.ok_or(true),
                Some(c) => c.values.get(&key).cloned().ok_or(false),
            }
        };
        let v = match found {
            Err(bad) => {
                if bad {
                    verifier::report(rules::BAD_HANDLE, handle as usize, "NdisReadConfiguration: not an open configuration handle");
                }
                // SAFETY: valid out pointers (checked).
                unsafe { *status = NDIS_STATUS_FAILURE; *value = std::ptr::null_mut(); }
                return;
            }
            Ok(v) => v,
        };
        let p = mem::raw_alloc(Owner::Sim, POOL_FLAG_PAGED, std::mem::size_of::<NDIS_CONFIGURATION_PARAMETER>(), mem::SIM_TAG) as *mut NDIS_CONFIGURATION_PARAMETER;
        let mut blocks = vec![p as usize];
        let ok = match crate::config_reads::convert(&v, ty) {
            crate::config_reads::Converted::Integer(t, i) => {
                // SAFETY: fresh parameter block.
                unsafe { (*p).ParameterType = t; (*p).ParameterData.IntegerData = i; }
                true
            }
            crate::config_reads::Converted::String(units) => {
                let buf = mem::raw_alloc(Owner::Sim, POOL_FLAG_PAGED, units.len() * 2 + 2, mem::SIM_TAG) as *mut u16;
                blocks.push(buf as usize);
                // SAFETY: fresh blocks sized for the string (plus a NUL) and the parameter.
                unsafe {
                    std::ptr::copy_nonoverlapping(units.as_ptr(), buf, units.len());
                    (*p).ParameterType = NdisParameterString;
                    (*p).ParameterData.StringData = NDIS_STRING { Length: (units.len() * 2) as u16, MaximumLength: (units.len() * 2 + 2) as u16, Buffer: buf };
                }
                true
            }
            crate::config_reads::Converted::Failure => false,
        };
        if let Some(c) = configs().handles.get_mut(&(handle as usize)) {
            c.blocks.extend(blocks);
        }
        // SAFETY: valid out pointers (checked).
        unsafe {
            *status = if ok { NDIS_STATUS_SUCCESS } else { NDIS_STATUS_FAILURE };
            *value = if ok { p } else { std::ptr::null_mut() };
        }
    }

    /// `NdisCloseConfiguration`: PASSIVE_LEVEL; frees every parameter read through the handle.
    fn NdisCloseConfiguration(handle: NDIS_HANDLE) {
        check_irql("NdisCloseConfiguration", PASSIVE_LEVEL, handle as usize);
        let c = configs().handles.remove(&(handle as usize));
        match c {
            Some(c) => {
                for b in c.blocks {
                    mem::raw_free(b as *mut u8);
                }
                mem::raw_free(handle as *mut u8);
            }
            None => verifier::report(rules::BAD_HANDLE, handle as usize, "NdisCloseConfiguration: not an open configuration handle"),
        }
    }
}
