//! Findings: what the simulated Driver Verifier reports.
//!
//! A finding names a stable rule (the constants in [`rules`]), the address of the object it is about,
//! and a detail line. Findings raised inside a routine the driver called are recorded and the routine
//! carries on (returning what the real kernel would), so nothing unwinds through driver frames; the
//! test learns about them from [`crate::SimGuard::finish`], which fails on any finding the test did
//! not announce with [`crate::SimGuard::expect_finding`].
//!
//! Layer 1 (above `cpu`): owns the finding list, the per-test log and the IRQL checks that report findings
//! (`check_irql`, `check_dispatch_flag`); imports only [`crate::cpu`] below it; it must not call
//! into the driver.

use ndis_sys::{DISPATCH_LEVEL, KIRQL};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{LazyLock, Mutex};

/// Stable rule names. Each is documented with what fires it and its Windows analogue.
pub mod rules {
    /// A routine (or a driver callback's return) at an IRQL above the routine's documented maximum
    /// (Irql_NetBuffer_Function / Irql_Filter_Driver_Function; bugcheck 0xA / 0xD1).
    pub const IRQL_TOO_HIGH: &str = "IRQL_TOO_HIGH";
    /// A driver callback returned at a different IRQL than it was called at (0xC4 / IRQL_NOT_LESS).
    pub const IRQL_NOT_RESTORED: &str = "IRQL_NOT_RESTORED";
    /// A *_DISPATCH_LEVEL flag that does not match the caller's IRQL (Flags_Irql / [IRQL-TRACK]).
    pub const DISPATCH_FLAG_MISMATCH: &str = "DISPATCH_FLAG_MISMATCH";
    /// A completed/returned NB whose MdlChain, DataOffset, DataLength, CurrentMdl or CurrentMdlOffset
    /// differs from what the owning layer handed out.
    pub const NB_NOT_RESTORED: &str = "NB_NOT_RESTORED";
    /// A completed/returned NBL whose NB list, SourceHandle or 802.1Q info differs from what was
    /// handed out.
    pub const NBL_NOT_RESTORED: &str = "NBL_NOT_RESTORED";
    /// The frame bytes of a completed/returned NB differ from what the owner put there.
    pub const DATA_CORRUPTED: &str = "DATA_CORRUPTED";
    /// An NB whose CurrentMdl/CurrentMdlOffset does not locate DataOffset, or whose chain is shorter
    /// than DataOffset + DataLength, reached the miniport or the protocol.
    pub const NB_INCONSISTENT: &str = "NB_INCONSISTENT";
    /// NBLs still held at detach (bugcheck 0x7C/0x27 NDIS_BUGCHECK_LEAKED_NBL), or NBLs/pools allocated
    /// by the driver and not freed when it detaches/unloads.
    pub const LEAKED_NBL: &str = "LEAKED_NBL";
    /// MDLs from NdisAllocateMdl or NDIS's default retreat allocator not freed at unload.
    pub const LEAKED_MDL: &str = "LEAKED_MDL";
    /// Pool blocks of the driver not freed at unload (Driver Verifier pool tracking, 0xC4/0x62).
    pub const LEAKED_POOL: &str = "LEAKED_POOL";
    /// A send completed twice, or an NBL completed up that the filter does not hold.
    pub const DOUBLE_COMPLETE: &str = "DOUBLE_COMPLETE";
    /// A receive returned twice, or an NBL returned down that the filter does not hold.
    pub const DOUBLE_RETURN: &str = "DOUBLE_RETURN";
    /// An NBL pointer the simulator never allocated nor saw handed in.
    pub const UNKNOWN_NBL: &str = "UNKNOWN_NBL";
    /// The filter wrote an NBL/NB/MDL (or frame bytes) after giving it away.
    pub const NBL_TOUCHED_AFTER_HANDOFF: &str = "NBL_TOUCHED_AFTER_HANDOFF";
    /// NetAllocateMdl returned an MDL whose ByteCount differs from the returned *BufferSize.
    pub const MDL_BYTECOUNT_MISMATCH: &str = "MDL_BYTECOUNT_MISMATCH";
    /// An MDL not built for nonpaged pool (no MDL_SOURCE_IS_NONPAGED_POOL / PAGES_LOCKED), or
    /// describing memory outside any live nonpaged pool block.
    pub const MDL_NOT_NONPAGED: &str = "MDL_NOT_NONPAGED";
    /// A free routine was handed an MDL it did not allocate (advance with FreeMdl=TRUE over a foreign
    /// leading MDL, NDIS's default free on a custom MDL, NdisFreeMdl on a foreign MDL).
    pub const FOREIGN_MDL_FREED: &str = "FOREIGN_MDL_FREED";
    /// ExFreePool of an address that is not a live pool block (double free / foreign pointer).
    pub const BAD_POOL_FREE: &str = "BAD_POOL_FREE";
    /// Executable nonpaged pool requested (code integrity 0x2000).
    pub const EXECUTABLE_POOL: &str = "EXECUTABLE_POOL";
    /// ExFreePoolWithTag with a tag other than the allocation's.
    pub const POOL_TAG_MISMATCH: &str = "POOL_TAG_MISMATCH";
    /// A pool block (the driver's, or one NDIS made: an NBL, a context, an MDL) was written after it was
    /// freed: its freed fill changed while it sat in the simulator's freed-block quarantine (found when it
    /// leaves it, or at `finish`). Driver Verifier's Special Pool faults on the access itself: bug check
    /// 0xD5 DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL ("a driver has referenced memory which was earlier
    /// freed", learn.microsoft.com debugger/bug-check-0xd5--driver-page-fault-in-freed-special-pool,
    /// DOCUMENTED). See `mem.rs` for what the simulator can and cannot see.
    pub const FREED_POOL_MODIFIED: &str = "FREED_POOL_MODIFIED";
    /// Bytes after the end of a pool block were written (found when the block is freed). Special
    /// Pool: bug check 0xC1 SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, parameter 4 = 0x24, "a driver
    /// freed an address, but bytes occurring after the end of the allocation have been overwritten"
    /// (learn.microsoft.com debugger/bug-check-0xc1--special-pool-detected-memory-corruption,
    /// DOCUMENTED).
    pub const POOL_OVERRUN: &str = "POOL_OVERRUN";
    /// An advance by more than DataLength (the real routine wraps the ULONG).
    pub const ADVANCE_UNDERFLOW: &str = "ADVANCE_UNDERFLOW";
    /// NdisFSendNetBufferLists in a state that forbids it (not Running; originated while Pausing).
    pub const STATE_FORBIDS_SEND: &str = "STATE_FORBIDS_SEND";
    /// NdisFIndicateReceiveNetBufferLists in a state that forbids it.
    pub const STATE_FORBIDS_RECEIVE: &str = "STATE_FORBIDS_RECEIVE";
    /// NdisFOidRequest while Attaching/Detached.
    pub const STATE_FORBIDS_OID: &str = "STATE_FORBIDS_OID";
    /// NdisFIndicateStatus while Attaching/Detached.
    pub const STATE_FORBIDS_STATUS: &str = "STATE_FORBIDS_STATUS";
    /// NdisFPauseComplete / NdisFRestartComplete with no such operation pending, or twice.
    pub const STATE_FORBIDS_COMPLETE: &str = "STATE_FORBIDS_COMPLETE";
    /// A pause completed while NBLs were still outstanding through the module
    /// (NdisFilterTimedPauseComplete's sibling: lost NBLs at pause).
    pub const PAUSE_WITH_OUTSTANDING: &str = "PAUSE_WITH_OUTSTANDING";
    /// FilterPause returned a failure (pause cannot fail).
    pub const PAUSE_FAILED: &str = "PAUSE_FAILED";
    /// A pended pause not completed within the simulated timeout (NdisFilterTimedPauseComplete, 0x25/0x11).
    pub const TIMEOUT_PAUSE: &str = "TIMEOUT_PAUSE";
    /// A pended restart not completed within the simulated timeout.
    pub const TIMEOUT_RESTART: &str = "TIMEOUT_RESTART";
    /// An OID not completed within the simulated timeout (0x25/0x24).
    pub const TIMEOUT_OID: &str = "TIMEOUT_OID";
    /// A send not completed within the simulated timeout (NdisFilterTimedDataSend).
    pub const TIMEOUT_SEND: &str = "TIMEOUT_SEND";
    /// A receive not returned within the simulated timeout (NdisFilterTimedDataReceive).
    pub const TIMEOUT_RECEIVE: &str = "TIMEOUT_RECEIVE";
    /// Bad filter characteristics / attributes / object headers (bugcheck 0x7C/0x21 analogue).
    pub const BAD_OBJECT: &str = "BAD_OBJECT";
    /// FilterAttach returned SUCCESS without calling NdisFSetAttributes.
    pub const SET_ATTRIBUTES_MISSING: &str = "SET_ATTRIBUTES_MISSING";
    /// A handle that is not a live simulator handle.
    pub const BAD_HANDLE: &str = "BAD_HANDLE";
    /// NumberOfNetBufferLists differs from the chain length.
    pub const RECEIVE_COUNT_MISMATCH: &str = "RECEIVE_COUNT_MISMATCH";
    /// DriverUnload returned with the filter driver still registered.
    pub const NOT_DEREGISTERED: &str = "NOT_DEREGISTERED";
    /// A spin lock acquired recursively on one CPU, or released when not held / by another CPU.
    pub const SPIN_LOCK_MISUSE: &str = "SPIN_LOCK_MISUSE";
    /// A receive indicated with NDIS_RECEIVE_FLAGS_RESOURCES was still away (not back in the filter's
    /// hands) when FilterReceiveNetBufferLists returned, or was returned with NdisFReturnNetBufferLists.
    pub const RESOURCES_NBL_KEPT: &str = "RESOURCES_NBL_KEPT";
    /// KeBugCheckEx was called (the driver's panic path).
    pub const BUGCHECK: &str = "BUGCHECK";
    /// A timer object freed while still set, or set after being freed.
    pub const TIMER_MISUSE: &str = "TIMER_MISUSE";
    /// An OID clone freed twice or not freed, or the original completed before the clone was freed.
    pub const OID_MISUSE: &str = "OID_MISUSE";
    /// NdisFIndicateReceiveNetBufferLists passing receives from below up while the module is
    /// Pausing or Paused: they must be returned at once (NdisFReturnNetBufferLists) or, when indicated
    /// with NDIS_RECEIVE_FLAGS_RESOURCES, dropped by returning from the callback (DOCUMENTED:
    /// network/pausing-a-filter-module; the ndislwf sample's FilterReceiveNetBufferLists).
    pub const RECEIVE_PASSED_WHILE_PAUSING: &str = "RECEIVE_PASSED_WHILE_PAUSING";
    /// A context size or backfill (NdisAllocateNetBufferListContext, NdisAllocateNetBufferList*,
    /// NdisAllocateNetBufferListPool's ContextSize) that is not a multiple of
    /// MEMORY_ALLOCATION_ALIGNMENT (16 on x64/arm64): the next driver's context data would be
    /// misaligned (DOCUMENTED: nf-nblapi-ndisallocatenetbufferlist; the NdisAllocateNetBufferListContext
    /// reference of the NDIS 6 Compact 2013 docs; ContextData is DECLSPEC_ALIGN(MEMORY_ALLOCATION_ALIGNMENT)).
    pub const NBL_CONTEXT_MISALIGNED: &str = "NBL_CONTEXT_MISALIGNED";
    /// FilterAttach returned a status its documentation does not list (only NDIS_STATUS_SUCCESS,
    /// NDIS_STATUS_RESOURCES and NDIS_STATUS_FAILURE; DOCUMENTED: ddi/ndis/nc-ndis-filter_attach).
    pub const ATTACH_STATUS_UNDOCUMENTED: &str = "ATTACH_STATUS_UNDOCUMENTED";
    /// NdisFRegisterFilterDriver called while the DRIVER_OBJECT has no DriverUnload: the unload
    /// routine, where NdisFDeregisterFilterDriver must be called, is set first (INFERRED from the
    /// ndislwf sample's DriverEntry, which sets it before registering, and network/unloading-a-filter-driver).
    pub const UNLOAD_NOT_SET_AT_REGISTER: &str = "UNLOAD_NOT_SET_AT_REGISTER";
    /// NdisFOidRequest of a clone whose RequestId differs from its original's: a cancel of the
    /// original (FilterCancelOidRequest → NdisFCancelOidRequest with that RequestId) could never reach
    /// it. The ndislwf sample copies it ("use same request ID"); ndis-sim's clone does not (INFERRED
    /// from the sample copying it explicitly).
    pub const OID_CLONE_REQUEST_ID: &str = "OID_CLONE_REQUEST_ID";
    /// Bytes written through the MappedSystemVa of an MDL whose pages are locked but not mapped into
    /// system space (MmGetSystemAddressForMdlSafe not called first); see `mapping.rs`.
    pub const UNMAPPED_MDL_ACCESS: &str = "UNMAPPED_MDL_ACCESS";
    /// MmMapLockedPagesSpecifyCache misused: a second system mapping, pages not locked, UserMode,
    /// BugCheckOnFailure TRUE, a requested address, or no MdlMappingNoExecute.
    pub const MDL_MAPPING_MISUSE: &str = "MDL_MAPPING_MISUSE";
    /// A completed/returned NB whose unused space in front of the data start (the chain's bytes
    /// `[0, DataOffset)`) differs from what its owner handed out. Receive: DOCUMENTED that a driver
    /// that advances past a header it used leaves that header "in the buffer in the unused data
    /// space" (learn.microsoft.com, "Retreat and Advance Operations"), and that retreating on return
    /// gives it back to the lower driver; INFERRED that a miniport or lower filter may read it again
    /// once the NBL is back, so an upper driver that writes there must put it back. Send: stricter
    /// than Windows (a protocol's send backfill is documented as room for lower drivers' headers),
    /// held to because the driver under test claims an exact restore of its callers' buffers.
    pub const HEADROOM_CORRUPTED: &str = "HEADROOM_CORRUPTED";
    /// A send reached the miniport with its MAC header (14 bytes, 18 when tagged) not wholly inside
    /// the MDL holding the data start, although the protocol handed it down that way (evidence in
    /// `wire/mod.rs`).
    pub const MAC_HEADER_SPLIT: &str = "MAC_HEADER_SPLIT";
    /// A send reached the miniport with a TcpHeaderOffset (checksum or LSO info) or UdpHeaderOffset
    /// (USO info) that does not point at the TCP/UDP header of the bytes it carries (evidence in
    /// `wire/offload.rs`).
    pub const OFFLOAD_OFFSET_WRONG: &str = "OFFLOAD_OFFSET_WRONG";
    /// A send reached the miniport with a checksum/LSO/USO request that contradicts its frame (IP
    /// version, protocol), or that the miniport did not advertise for the frame's encapsulation
    /// (an in-band 802.1Q tag needs NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q).
    pub const OFFLOAD_MISMATCH: &str = "OFFLOAD_MISMATCH";
    /// A frame (or, for LSO/USO, a segment) longer than the miniport's MtuSize + 14 bytes (+ 4 for a
    /// tagged frame on a miniport that handles 802.1Q encapsulation) reached the miniport.
    pub const FRAME_TOO_LONG: &str = "FRAME_TOO_LONG";
}

/// One verifier finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// A [`rules`] constant.
    pub rule: &'static str,
    /// Address of the object concerned (NBL, NB, MDL, pool block, handle), or 0.
    pub object: usize,
    /// Human-readable detail.
    pub detail: String,
    /// Virtual CPU it was raised on.
    pub cpu: usize,
    /// Where in a loaded driver image the offending call came from, when a site hook is installed
    /// (sysrun names the image function through its PDB); `None` for a driver linked from source.
    pub site: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} object={:#x} cpu={}: {}",
            self.rule, self.object, self.cpu, self.detail
        )?;
        if let Some(site) = &self.site {
            write!(f, " [at {site}]")?;
        }
        Ok(())
    }
}

/// Names the current call site in a loaded driver image (see [`set_site_hook`]).
pub type SiteHook = fn() -> Option<String>;

static SITE_HOOK: std::sync::OnceLock<SiteHook> = std::sync::OnceLock::new();

/// Installs the hook [`Finding::site`] is filled from: called on the reporting thread while the
/// finding is recorded. sysrun installs one that names the image function whose import call is
/// running; the first hook installed stays.
pub fn set_site_hook(hook: SiteHook) {
    let _ = SITE_HOOK.set(hook);
}

#[derive(Default)]
struct Book {
    findings: Vec<Finding>,
    expected: BTreeMap<&'static str, usize>,
    log: Vec<String>,
    echo: bool,
}

static BOOK: LazyLock<Mutex<Book>> = LazyLock::new(|| Mutex::new(Book::default()));

fn book() -> std::sync::MutexGuard<'static, Book> {
    BOOK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a finding (never panics, never calls the driver).
pub(crate) fn report(rule: &'static str, object: usize, detail: impl Into<String>) {
    let f = Finding {
        rule,
        object,
        detail: detail.into(),
        cpu: crate::cpu::current_cpu(),
        site: SITE_HOOK.get().and_then(|h| h()),
    };
    let mut b = book();
    if b.echo {
        eprintln!("ndis-sim finding: {f}");
    }
    let line = format!("[verifier] {f}");
    b.log.push(line);
    b.findings.push(f);
}

/// Appends a line to the per-test log.
pub(crate) fn log(line: impl Into<String>) {
    let line = line.into();
    let mut b = book();
    if b.echo {
        eprintln!("ndis-sim: {line}");
    }
    b.log.push(line);
}

pub(crate) fn reset(echo: bool) {
    let mut b = book();
    *b = Book {
        echo,
        ..Book::default()
    };
}

pub(crate) fn expect(rule: &'static str) {
    *book().expected.entry(rule).or_default() += 1;
}

/// Snapshot of every finding so far.
pub(crate) fn findings() -> Vec<Finding> {
    book().findings.clone()
}

/// Findings of `rule` so far.
pub(crate) fn count(rule: &str) -> usize {
    book().findings.iter().filter(|f| f.rule == rule).count()
}

pub(crate) fn log_lines() -> Vec<String> {
    book().log.clone()
}

pub(crate) fn expected() -> BTreeMap<&'static str, usize> {
    book().expected.clone()
}

/// Reports IRQL_TOO_HIGH when the caller's IRQL exceeds `max`; returns whether the IRQL was fine.
pub(crate) fn check_irql(routine: &str, max: KIRQL, object: usize) -> bool {
    let irql = crate::cpu::current_irql();
    if irql > max {
        report(
            rules::IRQL_TOO_HIGH,
            object,
            format!("{routine} called at IRQL {irql}, maximum {max}"),
        );
        false
    } else {
        true
    }
}

/// Checks that a *_DISPATCH_LEVEL flag bit matches the caller's IRQL.
pub(crate) fn check_dispatch_flag(routine: &str, flag_set: bool, object: usize) {
    let irql = crate::cpu::current_irql();
    let at_dispatch = irql == DISPATCH_LEVEL;
    if flag_set != at_dispatch {
        report(
            rules::DISPATCH_FLAG_MISMATCH,
            object,
            format!(
                "{routine}: DISPATCH_LEVEL flag is {} but the caller runs at IRQL {irql}",
                flag_set as u8
            ),
        );
    }
}
