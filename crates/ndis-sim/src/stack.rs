//! The simulated stack around the filter under test: the registered filter driver, and per adapter a
//! miniport below, a protocol above and the filter module between, with the module state machine
//! (ndis-contract.md §3.2) and the NBL ownership hand-offs of the send and receive paths.
//!
//! Shared state lives in one mutex that is never held while driver code runs: every path copies what
//! it needs (handler, context, convention), drops the lock, then calls the driver through
//! [`crate::abi::Callback`]. How lifecycle operations relate to traffic (one gate, or racing it as
//! on a real machine) is [`crate::race`]'s business; the NDIS→filter calls below claim and record
//! themselves there.

use crate::abi::{Abi, Callback};
use crate::fault::splitmix64;
use crate::kernel::{self, current_irql, set_irql};
use crate::mem::{self, Owner};
use crate::nbl::{self, Creator, Dir, Holder, NblSnap};
use crate::verifier::{self, rules};
use ndis_sys::*;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{LazyLock, Mutex, MutexGuard};

/// A filter module's state (ndis-contract.md §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleState {
    /// No module on this adapter.
    Detached,
    /// Inside FilterAttach.
    Attaching,
    /// Attached and paused.
    Paused,
    /// Inside FilterRestart (or pended).
    Restarting,
    /// Running: data may flow.
    Running,
    /// Inside FilterPause (or pended).
    Pausing,
}

/// A value in a module's configuration map (what NdisReadConfiguration reads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigValue {
    /// A REG_DWORD.
    Int(u32),
    /// A REG_SZ (also parsed as a number when an integer is asked for, as NDIS does).
    Str(String),
}

/// A frame seen by the miniport (on the wire) or by the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The bytes `[DataOffset, DataOffset + DataLength)` of the NB.
    pub bytes: Vec<u8>,
    /// The NBL's Ieee8021QNetBufferListInfo value.
    pub ieee8021q: usize,
    /// Whether the MAC header (14 bytes, 18 when tagged) lay in the MDL holding the data start.
    pub mac_contiguous: bool,
    /// The NBL's TcpIpChecksum, TcpLargeSend and UdpSegmentationOffload info values.
    pub offload: [usize; 3],
    /// Virtual CPU it was seen on.
    pub cpu: usize,
}

/// Counters a test asserts on (per adapter).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// NBLs the protocol sent.
    pub proto_sent_nbls: u64,
    /// NBs the protocol sent.
    pub proto_sent_nbs: u64,
    /// Order-independent digest of every frame the protocol sent.
    pub proto_sent_digest: u64,
    /// NBLs completed back to the protocol.
    pub proto_completed_nbls: u64,
    /// ... of which with NDIS_STATUS_SUCCESS.
    pub proto_completed_success: u64,
    /// ... of which with NDIS_STATUS_PAUSED.
    pub proto_completed_paused: u64,
    /// ... of which with another status.
    pub proto_completed_other: u64,
    /// NBLs that reached the miniport.
    pub wire_nbls: u64,
    /// NBs that reached the miniport.
    pub wire_nbs: u64,
    /// Order-independent digest of every frame that reached the miniport.
    pub wire_digest: u64,
    /// NBLs the miniport completed.
    pub mp_completed_nbls: u64,
    /// NBLs the miniport indicated.
    pub mp_indicated_nbls: u64,
    /// NBs the miniport indicated.
    pub mp_indicated_nbs: u64,
    /// Digest of every frame the miniport indicated.
    pub mp_indicated_digest: u64,
    /// NBLs that came back to the miniport (returned, or back after a RESOURCES indication).
    pub mp_returned_nbls: u64,
    /// NBLs the protocol received.
    pub proto_received_nbls: u64,
    /// NBs the protocol received.
    pub proto_received_nbs: u64,
    /// Digest of every frame the protocol received.
    pub proto_received_digest: u64,
    /// NBLs the protocol returned.
    pub proto_returned_nbls: u64,
    /// NBs a misbehaving neighbour changed before giving them back
    /// ([`AdapterConfig::restore_breaker`]).
    pub neighbor_restore_breaks: u64,
    /// Sends the filter originated (its own NBLs reaching the miniport).
    pub filter_originated_sends: u64,
    /// Receives the filter originated (its own NBLs reaching the protocol).
    pub filter_originated_receives: u64,
    /// Status indications the protocol got.
    pub statuses: Vec<NDIS_STATUS>,
    /// Net PnP events the protocol got.
    pub pnp_events: Vec<u32>,
    /// OIDs completed to the protocol.
    pub oids_completed: u64,
    /// OR of every NDIS_SEND_FLAGS_* value the miniport was handed (pass-through checks, e.g.
    /// NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK).
    pub send_flags_seen: u32,
    /// OR of every NDIS_RECEIVE_FLAGS_* value the protocol was handed.
    pub receive_flags_seen: u32,
    /// NBLs reaching the miniport that asked for each transmit offload: checksum, LSOv1, LSOv2, USO.
    pub wire_offload_nbls: [u64; 4],
    /// NBs reaching the miniport with an in-band 802.1Q/802.1ad tag.
    pub wire_tagged_nbs: u64,
    /// NBLs reaching the miniport with a tag in Ieee8021QNetBufferListInfo.
    pub wire_oob_tagged_nbls: u64,
}

/// Per-adapter behaviour of the simulated miniport and protocol.
#[derive(Clone, Debug)]
pub struct AdapterConfig {
    /// Adapter name (BaseMiniportName).
    pub name: String,
    /// Status the miniport completes sends with.
    pub send_status: NDIS_STATUS,
    /// Complete sends inside NdisFSendNetBufferLists instead of queueing them.
    pub complete_inline: bool,
    /// The miniport pends OIDs (completed by the pump) instead of completing them synchronously.
    pub pend_oids: bool,
    /// The protocol returns receives inside the indication instead of queueing them.
    pub return_inline: bool,
    /// Frames kept per capture list (wire, protocol); counters and digests cover everything.
    pub capture_limit: usize,
    /// Simulated timeout for pause / restart / OID / send / receive, in clock ticks of 10 ms
    /// (default 1000 = 10 s, NdisFilterTimedPauseComplete's bound).
    pub timeout_ticks: u32,
    /// NDIS_RECEIVE_FLAGS / NDIS_SEND_FLAGS bits to add to every indication / send (beyond
    /// DISPATCH_LEVEL, which follows the IRQL).
    pub extra_receive_flags: u32,
    /// When non-zero, the drivers on either side of the filter behave like the common header-adding
    /// driver: the miniport, on every NB it takes, and the protocol, on every NB indicated to it, retreat
    /// this many bytes with NDIS's default allocator (in place when there is room) and advance them
    /// again with `FreeMdl = TRUE` and the default free routine. A filter that hands on an NB whose
    /// chain starts with an MDL of its own lying wholly in unused space has that MDL freed by them
    /// (ndis-contract.md §2.3 point 4), which the verifier reports. Default 0.
    pub neighbor_header_bytes: u32,
    /// `None` (default): a pause first drains the protocol (its sends completed, its held receives
    /// returned), so nothing is in flight when FilterPause runs. `Some`: FilterPause is issued while
    /// the miniport still holds sends and/or the protocol still holds receives, which are given back
    /// later (see [`PauseHold`]).
    pub pause_hold: Option<PauseHold>,
    /// The miniport's MtuSize (bytes after the MAC header; OID_GEN_MAXIMUM_FRAME_SIZE), reported in
    /// NDIS_RESTART_GENERAL_ATTRIBUTES.MtuSize at restart. Frames longer than MtuSize + 14 (+ 4
    /// tagged, see [`crate::wire::NicOffload`]) are FRAME_TOO_LONG. Default 1500.
    pub mtu_size: u32,
    /// DataBackFillSize the miniport reports in its restart attributes. Default 0.
    pub lower_data_backfill: u32,
    /// ContextBackFillSize the miniport reports in its restart attributes. Default 0.
    pub lower_context_backfill: u32,
    /// Context bytes the protocol keeps for itself on every NBL it sends (the used part of the
    /// context it allocates them with; tcpip keeps per-NBL state there). Default 16.
    pub protocol_context: u16,
    /// Context bytes the miniport keeps for itself on every NBL it indicates. Default 0.
    pub miniport_context: u16,
    /// The protocol leaves the DataBackFillSize of the restart attributes in front of each frame it
    /// sends, on top of the shape's `data_offset` (tcpip does; a raw-socket or capture sender need
    /// not). Default true; false keeps every send's geometry exactly as its shape says.
    pub protocol_honours_data_backfill: bool,
    /// NDIS_FILTER_ATTACH_PARAMETERS.MiniportMediaType. Default NdisMedium802_3.
    pub medium: u32,
    /// `Some`: the miniport (on send completion) and/or the protocol (on return) change each NB's
    /// geometry before giving it back, breaking the restore contract (see [`crate::neighbor`]).
    /// Default `None`.
    pub restore_breaker: Option<crate::neighbor::RestoreBreaker>,
    /// The miniport's transmit offload capabilities (DefaultOffloadConfiguration at attach) that
    /// sends are judged against.
    pub nic_offload: crate::wire::NicOffload,
}

/// Pause with work still outstanding below/above the filter ([`AdapterConfig::pause_hold`]).
///
/// Real NDIS pauses the drivers above a filter first, but gives no guarantee about what sits below
/// it (a miniport may still hold sends) nor about receives a protocol holds (indicated without
/// NDIS_RECEIVE_FLAGS_RESOURCES). With this option the pause flow is:
/// 1. the kinds not held are drained as usual; then FilterPause is called with the miniport's queued
///    sends (`sends`) and the protocol's held receives (`receives`) still out;
/// 2. if FilterPause returned NDIS_STATUS_PENDING and `sends_while_pausing` is set, the protocol
///    sends that chain while the module is Pausing (the filter must complete it with
///    NDIS_STATUS_PAUSED: a Pausing filter may not forward new sends); then, with
///    `receives_while_pausing`, the miniport indicates a chain (the filter must return it, or drop
///    it when indicated with NDIS_RECEIVE_FLAGS_RESOURCES, never pass it up);
/// 3. the held NBLs are given back one at a time, queued sends first, each after
///    `release_every_ticks` ticks of 10 ms on the simulated clock (timers fire), at DISPATCH_LEVEL
///    on virtual CPU `release_cpu` (the pausing thread's CPU when `None`);
/// 4. the flow then waits (the adapter's `timeout_ticks`) for NdisFPauseComplete (TIMEOUT_PAUSE).
///
/// Judged as always: NdisFPauseComplete twice or with no pended pause is STATE_FORBIDS_COMPLETE;
/// completing (or returning SUCCESS) while an NBL that still carries the filter's changes is below
/// or above it is PAUSE_WITH_OUTSTANDING (see [`pause_outstanding`]). What happened is recorded
/// in a [`PauseRecord`] (`Adapter::pause_record`).
#[derive(Clone, Debug, Default)]
pub struct PauseHold {
    /// The miniport keeps its queued sends across FilterPause.
    pub sends: bool,
    /// The protocol keeps the receives it holds across FilterPause.
    pub receives: bool,
    /// A chain the protocol sends while the module is Pausing (only when FilterPause pended).
    pub sends_while_pausing: Option<NblShape>,
    /// A chain (and its NDIS_RECEIVE_FLAGS_*) the miniport indicates while the module is Pausing
    /// (only when FilterPause pended), at DISPATCH_LEVEL, after `sends_while_pausing`: the filter
    /// must return it at once (NdisFReturnNetBufferLists) or, with NDIS_RECEIVE_FLAGS_RESOURCES,
    /// drop it; passing it up is RECEIVE_PASSED_WHILE_PAUSING.
    pub receives_while_pausing: Option<(NblShape, u32)>,
    /// Simulated ticks (10 ms each) before each held NBL is given back.
    pub release_every_ticks: u32,
    /// Virtual CPU the held NBLs are given back on; `None` = the pausing thread's CPU.
    pub release_cpu: Option<usize>,
}

/// What the last pause of an adapter looked like (recorded by the pause flow and
/// NdisFPauseComplete).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PauseRecord {
    /// What FilterPause returned.
    pub status: Option<NDIS_STATUS>,
    /// Sends the miniport held when FilterPause was called.
    pub held_sends: usize,
    /// Receives the protocol held when FilterPause was called.
    pub held_receives: usize,
    /// Held NBLs given back so far.
    pub released: usize,
    /// NdisFPauseComplete calls during this pause.
    pub completes: u32,
    /// `released` when (the first) NdisFPauseComplete came (the NBL being given back counts).
    pub released_at_complete: Option<usize>,
    /// NBLs [`pause_outstanding`] listed when the pause completed (NdisFPauseComplete or SUCCESS).
    pub outstanding_at_complete: Option<usize>,
    /// Virtual CPU NdisFPauseComplete was called on.
    pub complete_cpu: Option<usize>,
    /// Protocol NBLs sent while Pausing (`PauseHold::sends_while_pausing`).
    pub sent_while_pausing: usize,
    /// Miniport NBLs indicated while Pausing (`PauseHold::receives_while_pausing`).
    pub indicated_while_pausing: usize,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        AdapterConfig {
            name: "SimNic".into(),
            send_status: NDIS_STATUS_SUCCESS,
            complete_inline: false,
            pend_oids: false,
            return_inline: false,
            capture_limit: 4096,
            timeout_ticks: 1000,
            extra_receive_flags: 0,
            neighbor_header_bytes: 0,
            pause_hold: None,
            mtu_size: 1500,
            lower_data_backfill: 0,
            lower_context_backfill: 0,
            protocol_context: 16,
            miniport_context: 0,
            protocol_honours_data_backfill: true,
            medium: NdisMedium802_3,
            restore_breaker: None,
            nic_offload: crate::wire::NicOffload::default(),
        }
    }
}

pub(crate) struct DriverRec {
    pub handle: usize,
    pub abi: Abi,
    pub chars: NDIS_FILTER_DRIVER_CHARACTERISTICS,
    pub context: usize,
}

pub(crate) struct AdapterRec {
    pub cfg: AdapterConfig,
    pub filter_handle: usize,
    pub module_ctx: usize,
    pub state: ModuleState,
    pub set_attrs: bool,
    pub pause_pending: bool,
    pub pause_done: bool,
    pub pause_record: PauseRecord,
    pub restart_pending: bool,
    pub restart_status: Option<NDIS_STATUS>,
    /// (DataBackFillSize, ContextBackFillSize) the filter left in its restart attributes at the last
    /// successful restart: what the drivers above it were told (None before the first restart).
    pub top_backfill: Option<(u32, u32)>,
    pub config: BTreeMap<String, ConfigValue>,
    pub proto_pool: usize,
    pub mp_pool: usize,
    pub sent: HashMap<usize, NblSnap>,
    pub proto_held: VecDeque<usize>,
    pub proto_oids: HashMap<usize, Option<NDIS_STATUS>>,
    pub mp_pending: Vec<usize>,
    pub mp_out: HashMap<usize, NblSnap>,
    pub mp_oids: VecDeque<usize>,
    pub clones: HashMap<usize, usize>,
    pub counters: Counters,
    pub wire: Vec<Frame>,
    pub proto_rx: Vec<Frame>,
    pub names: Vec<Vec<u16>>,
    /// Gates and in-call records ([`crate::race`]).
    pub race: crate::race::AdapterRace,
}

#[derive(Default)]
pub(crate) struct Stack {
    pub driver: Option<DriverRec>,
    pub adapters: Vec<AdapterRec>,
    pub ndis_version: u32,
    pub seq: u64,
}

// SAFETY: the raw pointers inside (the copied characteristics' name strings) are only read under the
// mutex and point to the driver's static data, valid for its lifetime.
unsafe impl Send for Stack {}

static STACK: LazyLock<Mutex<Stack>> = LazyLock::new(|| Mutex::new(Stack::default()));

pub(crate) fn stack() -> MutexGuard<'static, Stack> {
    STACK.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn reset(ndis_version: u32) {
    *stack() = Stack {
        ndis_version,
        ..Stack::default()
    };
}

/// Tears down every adapter's simulator objects (after the driver is gone).
pub(crate) fn teardown() {
    let adapters = std::mem::take(&mut stack().adapters);
    for a in adapters {
        for (&nbl, _) in a.sent.iter().chain(a.mp_out.iter()) {
            // SAFETY: simulator NBLs still registered; nobody else runs at teardown.
            unsafe { nbl::free_sim_nbl(nbl as *mut NET_BUFFER_LIST) };
        }
        for req in a.proto_oids.keys() {
            mem::raw_free(*req as *mut u8);
        }
        nbl::free_sim_pool(a.proto_pool);
        nbl::free_sim_pool(a.mp_pool);
        if a.filter_handle != 0 {
            mem::raw_free(a.filter_handle as *mut u8);
        }
    }
    let d = stack().driver.take();
    if let Some(d) = d {
        mem::raw_free(d.handle as *mut u8);
    }
}

/// Finds the adapter of a filter handle.
pub(crate) fn adapter_of(handle: NDIS_HANDLE) -> Option<usize> {
    let s = stack();
    s.adapters
        .iter()
        .position(|a| a.filter_handle != 0 && a.filter_handle == handle as usize)
}

/// Finds the adapter of a handle the driver passed to a config/pool routine (filter or driver handle).
pub(crate) fn adapter_of_any(handle: NDIS_HANDLE) -> Option<usize> {
    adapter_of(handle)
}

pub(crate) fn driver_handle() -> Option<usize> {
    stack().driver.as_ref().map(|d| d.handle)
}

/// Calls driver code and checks it returns at the IRQL it was called at (fixing it up if not).
fn checked<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let irql = current_irql();
    let r = f();
    let now = current_irql();
    if now != irql {
        verifier::report(
            rules::IRQL_NOT_RESTORED,
            0,
            format!("{what} returned at IRQL {now}, called at {irql}"),
        );
        set_irql(irql);
    }
    r
}

macro_rules! handler {
    ($id:expr, $field:ident) => {{
        let s = stack();
        let a = &s.adapters[$id];
        let d = s.driver.as_ref();
        match d {
            Some(d) if a.filter_handle != 0 && a.state != ModuleState::Detached => d
                .chars
                .$field
                .map(|h| (h, d.abi, a.module_ctx as NDIS_HANDLE)),
            _ => None,
        }
    }};
}

/// The per-frame digest the counters sum (order-independent, wrapping add).
pub fn frame_digest(frame: &[u8]) -> u64 {
    nbl::fnv(0xCBF2_9CE4_8422_2325, frame)
}

fn digest_add(d: u64, frame: &[u8]) -> u64 {
    d.wrapping_add(nbl::fnv(0xCBF2_9CE4_8422_2325, frame))
}

/// Deterministic frame bytes for sequence number `seq` (a fake Ethernet header + payload pattern).
pub fn make_frame(seq: u64, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    let hdr: [u8; 14] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    for (i, b) in f.iter_mut().enumerate() {
        *b = if i < 14 {
            hdr[i]
        } else {
            (splitmix64(seq ^ (i as u64 / 8)) >> ((i % 8) * 8)) as u8
        };
    }
    if len >= 22 {
        f[14..22].copy_from_slice(&seq.to_le_bytes());
    }
    f
}

/// Shape of the NBLs a send or an indication builds.
#[derive(Clone, Debug)]
pub struct NblShape {
    /// Number of NBLs in the chain.
    pub nbls: usize,
    /// NBs per NBL.
    pub nbs_per_nbl: usize,
    /// Frame length of each NB.
    pub frame_len: usize,
    /// MDL byte lengths of each NB's chain (the last grows to fit DataOffset + frame); empty = one MDL.
    pub mdl_lengths: Vec<u32>,
    /// Unused bytes in front of the data (DataOffset).
    pub data_offset: u32,
    /// Ieee8021QNetBufferListInfo value to set on each NBL (0 = none).
    pub ieee8021q: usize,
    /// Every MDL describes locked pages that are not mapped into system space (a raw-socket or
    /// packet-capture sender's user buffer): see [`crate::mapping`]. Default false.
    pub locked_unmapped: bool,
    /// A transmit offload the NBLs ask for: frames get real IP + TCP/UDP headers and the NBL the
    /// matching info (see [`crate::wire::offload_frame`]). None: the plain pattern frame.
    pub offload: Option<crate::wire::OffloadShape>,
}

impl Default for NblShape {
    fn default() -> Self {
        NblShape {
            nbls: 1,
            nbs_per_nbl: 1,
            frame_len: 60,
            mdl_lengths: Vec::new(),
            data_offset: 0,
            ieee8021q: 0,
            locked_unmapped: false,
            offload: None,
        }
    }
}

fn build_chain(shape: &NblShape, frame: &[u8]) -> *mut MDL {
    let need = shape.data_offset as usize + frame.len();
    let mut lens: Vec<u32> = if shape.mdl_lengths.is_empty() {
        vec![need as u32]
    } else {
        shape.mdl_lengths.clone()
    };
    let sum: usize = lens.iter().map(|&l| l as usize).sum();
    if sum < need {
        *lens.last_mut().expect("non-empty") += (need - sum) as u32;
    }
    let mut head: *mut MDL = std::ptr::null_mut();
    let mut tail: *mut MDL = std::ptr::null_mut();
    let mut pos = 0usize;
    for &l in &lens {
        let m = nbl::sim_mdl(l, 0xEE);
        // SAFETY: `m` is a fresh simulator MDL over `l` bytes; bytes of the frame that fall into it
        // are copied within its buffer.
        unsafe {
            let va = nbl::mdl_va(m);
            for i in 0..l as usize {
                let p = pos + i;
                if p >= shape.data_offset as usize && p < need {
                    *va.add(i) = frame[p - shape.data_offset as usize];
                } else {
                    // Unused bytes carry a position-dependent pattern, so that HEADROOM_CORRUPTED
                    // sees any byte a filter leaves changed there (a constant fill would hide a
                    // write of that constant).
                    *va.add(i) = 0xE5 ^ (p as u8).wrapping_mul(29);
                }
            }
            if shape.locked_unmapped {
                crate::mapping::make_locked_unmapped(m);
            }
            if head.is_null() {
                head = m;
            } else {
                (*tail).Next = m;
            }
        }
        tail = m;
        pos += l as usize;
    }
    head
}

/// Builds a simulator NBL chain of `shape` from `pool`; returns (chain head, list, frames digest, nbs).
/// With `frames`, NB k (in chain order) carries `frames[k]` instead of a [`make_frame`] frame, and the
/// chain has `frames.len().div_ceil(nbs_per_nbl)` NBLs (the last may have fewer NBs).
fn build_nbls(
    id: usize,
    pool: usize,
    creator: Creator,
    shape: &NblShape,
    source: usize,
    frames: Option<&[Vec<u8>]>,
) -> (Vec<*mut NET_BUFFER_LIST>, u64, u64) {
    let (used, backfill) = nbl_context_of(id, creator);
    let mut list = Vec::new();
    let mut digest = 0u64;
    let mut nbs = 0u64;
    let per = shape.nbs_per_nbl.max(1);
    let nbl_count = frames.map_or(shape.nbls, |f| f.len().div_ceil(per));
    let mut given = frames.map(|f| f.iter());
    for i in 0..nbl_count {
        let nbl = nbl::alloc_nbl(pool, used, backfill, creator, id);
        assert!(!nbl.is_null(), "simulator NBL allocation failed");
        nbl::fill_owner_context(nbl, i as u8);
        for j in 0..per {
            let (frame, infos) = match given.as_mut() {
                Some(it) => match it.next() {
                    Some(f) => (f.clone(), [0; 3]),
                    None => break,
                },
                None => {
                    let seq = {
                        let mut s = stack();
                        s.seq += 1;
                        s.seq
                    };
                    match &shape.offload {
                        Some(o) => crate::wire::offload_frame(seq, shape.frame_len, o),
                        None => (make_frame(seq, shape.frame_len), [0; 3]),
                    }
                }
            };
            if j == 0 {
                for (slot, v) in crate::wire::OFFLOAD_INFO_SLOTS.iter().zip(infos) {
                    // SAFETY: fresh simulator NBL.
                    unsafe { (*nbl).NetBufferListInfo[*slot] = v as PVOID };
                }
            }
            digest = digest_add(digest, &frame);
            nbs += 1;
            let chain = build_chain(shape, &frame);
            if j == 0 {
                nbl::set_prealloc_nb(nbl, chain, shape.data_offset, frame.len() as u32);
            } else {
                nbl::sim_append_nb(nbl, chain, shape.data_offset, frame.len() as u32);
            }
        }
        // SAFETY: fresh simulator NBL.
        unsafe {
            (*nbl).NetBufferListInfo[info::Ieee8021QNetBufferListInfo] = shape.ieee8021q as PVOID;
            (*nbl).SourceHandle = source as NDIS_HANDLE;
        }
        list.push(nbl);
    }
    for w in list.windows(2) {
        // SAFETY: fresh simulator NBLs.
        unsafe { (*w[0]).Next = w[1] };
    }
    (list, digest, nbs)
}

/// (DataBackFillSize, ContextBackFillSize) the drivers above the filter were told: what the filter
/// left in its restart attributes, or before any restart what the miniport reports.
pub(crate) fn top_backfill(id: usize) -> (u32, u32) {
    let s = stack();
    let a = &s.adapters[id];
    a.top_backfill
        .unwrap_or((a.cfg.lower_data_backfill, a.cfg.lower_context_backfill))
}

/// The (used, backfill) context a simulated NBL is allocated with. The protocol allocates its sends
/// with its own context plus the ContextBackFillSize the stack below asked for in the restart
/// attributes (DOCUMENTED: a filter raises it for the drivers above). The miniport's receive NBLs
/// get the same backfill: NDIS sizes the context of NBL pools for the whole stack (INFERRED from
/// the remarks of ns-nbl-net_buffer_list_context, "NDIS estimates the required context data space
/// and ... adjusts the allocated data space to meet the requirements for the entire driver stack").
fn nbl_context_of(id: usize, creator: Creator) -> (u16, u16) {
    let (_, ctx) = top_backfill(id);
    let s = stack();
    let cfg = &s.adapters[id].cfg;
    let used = match creator {
        Creator::Protocol(_) => cfg.protocol_context,
        Creator::Miniport(_) => cfg.miniport_context,
        Creator::Driver => 0,
    };
    (used, ctx.min(u16::MAX as u32) as u16)
}

fn link(list: &[*mut NET_BUFFER_LIST]) -> *mut NET_BUFFER_LIST {
    for (i, &n) in list.iter().enumerate() {
        // SAFETY: NBLs the simulator holds right now.
        unsafe { (*n).Next = list.get(i + 1).copied().unwrap_or(std::ptr::null_mut()) };
    }
    list.first().copied().unwrap_or(std::ptr::null_mut())
}

// ---------------------------------------------------------------------------------------------
// Send path

/// The protocol sends a chain built from `shape` at the caller's IRQL. Returns the NBL count.
pub(crate) fn protocol_send(id: usize, shape: &NblShape, extra_flags: u32) -> usize {
    protocol_send_frames(id, shape, None, extra_flags)
}

/// [`protocol_send`] with the NBs carrying `frames` (in order) when given.
pub(crate) fn protocol_send_frames(
    id: usize,
    shape: &NblShape,
    frames: Option<&[Vec<u8>]>,
    extra_flags: u32,
) -> usize {
    let (pool, src) = {
        let s = stack();
        (s.adapters[id].proto_pool, s.adapters[id].proto_pool)
    };
    // The protocol leaves the DataBackFillSize the stack below asked for in front of each frame.
    let honour = stack().adapters[id].cfg.protocol_honours_data_backfill;
    let shape = &NblShape {
        data_offset: shape.data_offset + if honour { top_backfill(id).0 } else { 0 },
        ..shape.clone()
    };
    let (list, digest, nbs) = build_nbls(id, pool, Creator::Protocol(id), shape, src, frames);
    {
        let mut s = stack();
        let a = &mut s.adapters[id];
        for &n in &list {
            // SAFETY: fresh simulator NBL.
            a.sent.insert(n as usize, unsafe { nbl::snapshot(n) });
        }
        a.counters.proto_sent_nbls += list.len() as u64;
        a.counters.proto_sent_nbs += nbs;
        a.counters.proto_sent_digest = a.counters.proto_sent_digest.wrapping_add(digest);
    }
    let flags = extra_flags
        | if current_irql() >= DISPATCH_LEVEL {
            NDIS_SEND_FLAGS_DISPATCH_LEVEL
        } else {
            0
        };
    let h = handler!(id, SendNetBufferListsHandler);
    let in_stack = {
        let s = stack();
        !matches!(
            s.adapters[id].state,
            ModuleState::Detached | ModuleState::Attaching
        )
    };
    // In a call from here on (before the filter holds them: race.rs, where the line is).
    let call = crate::race::mark_in_call(id, &list);
    for &n in &list {
        nbl::with_nbl(n, |r| {
            r.holder = Holder::Filter;
            r.since_ms = crate::misc::now_ms();
            r.timed_out = false;
            r.dir = Dir::Send;
        });
    }
    let head = link(&list);
    match h {
        Some((f, abi, ctx)) if in_stack => {
            // SAFETY: the registered FilterSendNetBufferLists with its module context.
            checked("FilterSendNetBufferLists", || unsafe {
                f.invoke(abi, (ctx, head, 0u32, flags))
            });
        }
        _ => miniport_accept(id, head, flags),
    }
    crate::race::unmark_in_call(id, &list, call);
    list.len()
}

/// What [`AdapterConfig::neighbor_header_bytes`] makes a neighbouring driver do to one NB it holds.
///
/// # Safety
/// `nb` must be a valid NB the caller (the simulated neighbour) owns.
unsafe fn neighbor_header_round_trip(nb: *mut NET_BUFFER, bytes: u32) {
    if bytes == 0 {
        return;
    }
    // SAFETY: the caller owns the NB; NDIS's default allocator and free routine, as such drivers use.
    unsafe {
        if ndis_sys::NdisRetreatNetBufferDataStart(nb, bytes, 0, None) == NDIS_STATUS_SUCCESS {
            ndis_sys::NdisAdvanceNetBufferDataStart(nb, bytes, TRUE, None);
        }
    }
}

/// The miniport takes a send chain (from NdisFSendNetBufferLists or a bypassed stack).
pub(crate) fn miniport_accept(id: usize, head: *mut NET_BUFFER_LIST, flags: u32) {
    // SAFETY: a chain of registered NBLs (checked by the caller).
    let list = unsafe { nbl::nbl_chain(head) };
    let cpu = kernel::current_cpu();
    let neighbor = stack().adapters[id].cfg.neighbor_header_bytes;
    let mut frames = Vec::new();
    let mut originated = 0;
    for &n in &list {
        let rec = nbl::nbl_record(n);
        if rec.as_ref().is_some_and(|r| r.creator == Creator::Driver) {
            originated += 1;
        }
        // SAFETY: a registered NBL handed to the miniport; walks are bounded.
        unsafe {
            let (sent, nic, mtu) = {
                let s = stack();
                let a = &s.adapters[id];
                (
                    a.sent.get(&(n as usize)).cloned(),
                    a.cfg.nic_offload,
                    a.cfg.mtu_size,
                )
            };
            let infos = crate::wire::OFFLOAD_INFO_SLOTS.map(|i| (*n).NetBufferListInfo[i] as usize);
            for (i, nb) in nbl::nbs_of(n).into_iter().enumerate() {
                if nbl::check_nb_consistent("send reaching the miniport", nb) {
                    crate::wire::judge_nb(i, nb, sent.as_ref());
                    if let Some(f) = nbl::nb_frame(nb) {
                        crate::wire::judge_offload(nb as usize, &f, infos, &nic, mtu);
                    }
                }
                neighbor_header_round_trip(nb, neighbor);
                let mut m = (*nb).MdlChain;
                let mut hops = 0;
                while !m.is_null() && hops < nbl::MAX_CHAIN {
                    mem::check_mdl_nonpaged("send reaching the miniport", m);
                    crate::mapping::check_decoy(m, "send reaching the miniport");
                    m = (*m).Next;
                    hops += 1;
                }
                let bytes = nbl::nb_frame(nb).unwrap_or_default();
                let mac_contiguous =
                    crate::wire::head_contiguous(nb, crate::wire::mac_header_len(&bytes));
                frames.push(Frame {
                    bytes,
                    ieee8021q: (*n).NetBufferListInfo[info::Ieee8021QNetBufferListInfo] as usize,
                    mac_contiguous,
                    offload: crate::wire::OFFLOAD_INFO_SLOTS
                        .map(|i| (*n).NetBufferListInfo[i] as usize),
                    cpu,
                });
            }
        }
        // Seal after the checks: from here on only the miniport may touch it.
        // SAFETY: as above.
        let seal = unsafe { nbl::seal_of(n) };
        nbl::with_nbl(n, |r| {
            r.holder = Holder::Miniport;
            r.seal = Some(seal);
            if r.dir == Dir::None {
                r.dir = Dir::Send;
            }
            r.adapter = id;
        });
    }
    let inline = {
        let mut s = stack();
        let a = &mut s.adapters[id];
        a.counters.send_flags_seen |= flags;
        a.counters.wire_nbls += list.len() as u64;
        a.counters.wire_nbs += frames.len() as u64;
        a.counters.filter_originated_sends += originated;
        for &n in &list {
            // SAFETY: registered NBLs the miniport holds now; read only.
            let (infos, oob) = unsafe {
                (
                    crate::wire::OFFLOAD_INFO_SLOTS.map(|i| (*n).NetBufferListInfo[i] as usize),
                    (*n).NetBufferListInfo[info::Ieee8021QNetBufferListInfo] as usize,
                )
            };
            for (k, hit) in crate::wire::offload_kinds(infos).iter().enumerate() {
                a.counters.wire_offload_nbls[k] += *hit as u64;
            }
            a.counters.wire_oob_tagged_nbls += (oob != 0) as u64;
        }
        a.counters.wire_tagged_nbs += frames
            .iter()
            .filter(|f| crate::wire::mac_header_len(&f.bytes) == 18)
            .count() as u64;
        for f in &frames {
            a.counters.wire_digest = digest_add(a.counters.wire_digest, &f.bytes);
        }
        let room = a.cfg.capture_limit.saturating_sub(a.wire.len());
        a.wire.extend(frames.into_iter().take(room));
        if !a.cfg.complete_inline {
            a.mp_pending.extend(list.iter().map(|&n| n as usize));
        }
        a.cfg.complete_inline
    };
    if inline {
        complete_sends(id, list.iter().map(|&n| n as usize).collect());
    }
}

/// [`AdapterConfig::restore_breaker`]: the miniport (`send`) or the protocol changes every NB of `n`
/// before giving it back.
fn break_restore(id: usize, n: *mut NET_BUFFER_LIST, send: bool) {
    let Some(b) = stack().adapters[id].cfg.restore_breaker else {
        return;
    };
    if !(if send { b.miniport } else { b.protocol }) {
        return;
    }
    let who = if send { "the miniport" } else { "the protocol" };
    let mut broke = 0u64;
    // SAFETY: a registered NBL the neighbour still holds; walks are bounded.
    unsafe {
        for nb in nbl::nbs_of(n) {
            if crate::neighbor::break_nb(nb, b.how, who) {
                broke += 1;
            }
        }
    }
    stack().adapters[id].counters.neighbor_restore_breaks += broke;
}

fn verify_seal(n: *mut NET_BUFFER_LIST, context: &str) {
    let seal = nbl::nbl_record(n).and_then(|r| r.seal);
    if let Some(seal) = seal {
        // SAFETY: a registered NBL the simulator holds.
        let now = unsafe { nbl::seal_of(n) };
        if now != seal {
            verifier::report(
                rules::NBL_TOUCHED_AFTER_HANDOFF,
                n as usize,
                format!("NBL/NB/MDL/frame changed while {context}"),
            );
        }
    }
}

/// The miniport completes the given sends (at the caller's IRQL), in the given order.
pub(crate) fn complete_sends(id: usize, nbls: Vec<usize>) {
    if nbls.is_empty() {
        return;
    }
    let status = stack().adapters[id].cfg.send_status;
    let mut to_filter = Vec::new();
    let mut to_proto = Vec::new();
    let h = handler!(id, SendNetBufferListsCompleteHandler);
    let all: Vec<*mut NET_BUFFER_LIST> = nbls.iter().map(|&a| a as *mut NET_BUFFER_LIST).collect();
    let call = crate::race::mark_in_call(id, &all);
    for &a in &nbls {
        let n = a as *mut NET_BUFFER_LIST;
        verify_seal(n, "held by the miniport (send)");
        break_restore(id, n, true);
        // SAFETY: a registered NBL the miniport holds.
        unsafe { (*n).Status = status };
        let creator = nbl::nbl_record(n).map(|r| r.creator);
        nbl::with_nbl(n, |r| {
            r.seal = None;
            r.holder = Holder::Filter;
            r.since_ms = crate::misc::now_ms();
            r.timed_out = false;
        });
        if h.is_some() || creator == Some(Creator::Driver) {
            to_filter.push(n);
        } else {
            to_proto.push(n);
        }
    }
    stack().adapters[id].counters.mp_completed_nbls += nbls.len() as u64;
    let flags = if current_irql() >= DISPATCH_LEVEL {
        NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL
    } else {
        0
    };
    if !to_filter.is_empty() {
        let head = link(&to_filter);
        match h {
            // SAFETY: the registered FilterSendNetBufferListsComplete with its module context.
            Some((f, abi, ctx)) => checked("FilterSendNetBufferListsComplete", || unsafe {
                f.invoke(abi, (ctx, head, flags))
            }),
            None => verifier::report(
                rules::BAD_OBJECT,
                head as usize,
                "the filter sent its own NBLs without a SendNetBufferListsComplete handler",
            ),
        }
    }
    if !to_proto.is_empty() {
        protocol_complete(id, &to_proto);
    }
    crate::race::unmark_in_call(id, &all, call);
}

/// The protocol gets its sends back: restore check, counters, free.
pub(crate) fn protocol_complete(id: usize, list: &[*mut NET_BUFFER_LIST]) {
    for &n in list {
        let snap = stack().adapters[id].sent.remove(&(n as usize));
        let Some(snap) = snap else {
            verifier::report(
                rules::DOUBLE_COMPLETE,
                n as usize,
                "completed to the protocol but not outstanding",
            );
            continue;
        };
        nbl::with_nbl(n, |r| r.holder = Holder::Protocol);
        // SAFETY: the protocol's own NBL, back in its hands.
        unsafe { nbl::check_restored("send completion", n, &snap) };
        // SAFETY: as above.
        let status = unsafe { (*n).Status };
        {
            let mut s = stack();
            let c = &mut s.adapters[id].counters;
            c.proto_completed_nbls += 1;
            match status {
                NDIS_STATUS_SUCCESS => c.proto_completed_success += 1,
                NDIS_STATUS_PAUSED => c.proto_completed_paused += 1,
                _ => c.proto_completed_other += 1,
            }
        }
        // SAFETY: the protocol's NBL; nothing else references it now.
        unsafe { nbl::free_sim_nbl(n) };
    }
}

// ---------------------------------------------------------------------------------------------
// Receive path

/// The miniport indicates a chain built from `shape` with `flags` (DISPATCH_LEVEL added from the
/// IRQL). Returns the NBL count.
pub(crate) fn miniport_indicate(id: usize, shape: &NblShape, flags: u32) -> usize {
    miniport_indicate_frames(id, shape, None, flags)
}

/// [`miniport_indicate`] with the NBs carrying `frames` (in order) when given.
pub(crate) fn miniport_indicate_frames(
    id: usize,
    shape: &NblShape,
    frames: Option<&[Vec<u8>]>,
    flags: u32,
) -> usize {
    let pool = stack().adapters[id].mp_pool;
    let (list, digest, nbs) = build_nbls(id, pool, Creator::Miniport(id), shape, pool, frames);
    let resources = flags & NDIS_RECEIVE_FLAGS_RESOURCES != 0;
    {
        let mut s = stack();
        let a = &mut s.adapters[id];
        for &n in &list {
            // SAFETY: fresh simulator NBL.
            a.mp_out.insert(n as usize, unsafe { nbl::snapshot(n) });
        }
        a.counters.mp_indicated_nbls += list.len() as u64;
        a.counters.mp_indicated_nbs += nbs;
        a.counters.mp_indicated_digest = a.counters.mp_indicated_digest.wrapping_add(digest);
    }
    let flags = flags
        | if current_irql() >= DISPATCH_LEVEL {
            NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL
        } else {
            0
        };
    let call = crate::race::mark_in_call(id, &list);
    for &n in &list {
        nbl::with_nbl(n, |r| {
            r.holder = Holder::Filter;
            r.since_ms = crate::misc::now_ms();
            r.timed_out = false;
            r.dir = Dir::Receive;
            r.resources = resources;
        });
    }
    let head = link(&list);
    let h = handler!(id, ReceiveNetBufferListsHandler);
    let in_stack = !matches!(
        stack().adapters[id].state,
        ModuleState::Detached | ModuleState::Attaching
    );
    match h {
        Some((f, abi, ctx)) if in_stack => {
            // SAFETY: the registered FilterReceiveNetBufferLists with its module context.
            checked("FilterReceiveNetBufferLists", || unsafe {
                f.invoke(abi, (ctx, head, 0u32, list.len() as u32, flags))
            });
        }
        _ => protocol_receive(id, head, list.len() as u32, flags),
    }
    crate::race::unmark_in_call(id, &list, call);
    if resources {
        // Ownership is back now: every NBL must be in the filter's hands, in the original order.
        let mut kept = false;
        for &n in &list {
            let held = nbl::nbl_record(n).map(|r| r.holder);
            if held != Some(Holder::Filter) {
                verifier::report(rules::RESOURCES_NBL_KEPT, n as usize,
                    format!("FilterReceiveNetBufferLists returned while a RESOURCES NBL is held by {held:?}"));
                kept = true;
            }
        }
        if kept {
            return list.len();
        }
        for (i, &n) in list.iter().enumerate() {
            // SAFETY: NBLs back in the miniport's hands.
            let next = unsafe { (*n).Next };
            let want = list.get(i + 1).copied().unwrap_or(std::ptr::null_mut());
            if next != want {
                verifier::report(
                    rules::NBL_NOT_RESTORED,
                    n as usize,
                    "RESOURCES indication: original NBL linked list not restored",
                );
            }
        }
        for &n in &list {
            miniport_take_back(id, n, "receive (RESOURCES) completion");
        }
    }
    list.len()
}

pub(crate) fn miniport_take_back(id: usize, n: *mut NET_BUFFER_LIST, context: &str) {
    let snap = stack().adapters[id].mp_out.remove(&(n as usize));
    let Some(snap) = snap else {
        verifier::report(
            rules::DOUBLE_RETURN,
            n as usize,
            "returned to the miniport but not outstanding",
        );
        return;
    };
    nbl::with_nbl(n, |r| {
        r.holder = Holder::Miniport;
        r.resources = false;
    });
    // SAFETY: the miniport's own NBL, back in its hands.
    unsafe { nbl::check_restored(context, n, &snap) };
    stack().adapters[id].counters.mp_returned_nbls += 1;
    // SAFETY: as above; nothing else references it now.
    unsafe { nbl::free_sim_nbl(n) };
}

/// The protocol receives a chain (from NdisFIndicateReceiveNetBufferLists or a bypassed stack).
pub(crate) fn protocol_receive(id: usize, head: *mut NET_BUFFER_LIST, count: u32, flags: u32) {
    // SAFETY: registered NBLs (checked by the caller).
    let list = unsafe { nbl::nbl_chain(head) };
    if list.len() as u32 != count {
        verifier::report(
            rules::RECEIVE_COUNT_MISMATCH,
            head as usize,
            format!("NumberOfNetBufferLists {count}, chain has {}", list.len()),
        );
    }
    let cpu = kernel::current_cpu();
    let neighbor = stack().adapters[id].cfg.neighbor_header_bytes;
    let mut frames = Vec::new();
    let mut originated = 0;
    for &n in &list {
        if nbl::nbl_record(n).is_some_and(|r| r.creator == Creator::Driver) {
            originated += 1;
        }
        // SAFETY: registered NBL held by the protocol; walks are bounded.
        unsafe {
            for nb in nbl::nbs_of(n) {
                nbl::check_nb_consistent("receive reaching the protocol", nb);
                neighbor_header_round_trip(nb, neighbor);
                let bytes = nbl::nb_frame(nb).unwrap_or_default();
                let mac_contiguous =
                    crate::wire::head_contiguous(nb, crate::wire::mac_header_len(&bytes));
                frames.push(Frame {
                    bytes,
                    ieee8021q: (*n).NetBufferListInfo[info::Ieee8021QNetBufferListInfo] as usize,
                    mac_contiguous,
                    offload: crate::wire::OFFLOAD_INFO_SLOTS
                        .map(|i| (*n).NetBufferListInfo[i] as usize),
                    cpu,
                });
            }
        }
    }
    let inline = {
        let mut s = stack();
        let a = &mut s.adapters[id];
        a.counters.receive_flags_seen |= flags;
        a.counters.proto_received_nbls += list.len() as u64;
        a.counters.proto_received_nbs += frames.len() as u64;
        a.counters.filter_originated_receives += originated;
        for f in &frames {
            a.counters.proto_received_digest =
                digest_add(a.counters.proto_received_digest, &f.bytes);
        }
        let room = a.cfg.capture_limit.saturating_sub(a.proto_rx.len());
        a.proto_rx.extend(frames.into_iter().take(room));
        a.cfg.return_inline
    };
    if flags & NDIS_RECEIVE_FLAGS_RESOURCES != 0 {
        for &n in &list {
            verify_seal(n, "held by the protocol (RESOURCES receive)");
            nbl::with_nbl(n, |r| {
                r.seal = None;
                r.holder = Holder::Filter;
                r.since_ms = crate::misc::now_ms();
                r.timed_out = false;
            });
        }
        return;
    }
    if inline {
        protocol_return(id, list.iter().map(|&n| n as usize).collect());
    } else {
        stack().adapters[id]
            .proto_held
            .extend(list.iter().map(|&n| n as usize));
    }
}

/// The protocol returns receives it held (at the caller's IRQL).
pub(crate) fn protocol_return(id: usize, nbls: Vec<usize>) {
    if nbls.is_empty() {
        return;
    }
    let all: Vec<*mut NET_BUFFER_LIST> = nbls.iter().map(|&a| a as *mut NET_BUFFER_LIST).collect();
    let call = crate::race::mark_in_call(id, &all);
    let mut list = Vec::new();
    for &a in &nbls {
        let n = a as *mut NET_BUFFER_LIST;
        verify_seal(n, "held by the protocol (receive)");
        break_restore(id, n, false);
        nbl::with_nbl(n, |r| {
            r.seal = None;
            r.holder = Holder::Filter;
            r.since_ms = crate::misc::now_ms();
            r.timed_out = false;
        });
        list.push(n);
    }
    stack().adapters[id].counters.proto_returned_nbls += list.len() as u64;
    let flags = if current_irql() >= DISPATCH_LEVEL {
        NDIS_RETURN_FLAGS_DISPATCH_LEVEL
    } else {
        0
    };
    let h = handler!(id, ReturnNetBufferListsHandler);
    match h {
        Some((f, abi, ctx)) => {
            let head = link(&list);
            // SAFETY: the registered FilterReturnNetBufferLists with its module context.
            checked("FilterReturnNetBufferLists", || unsafe {
                f.invoke(abi, (ctx, head, flags))
            });
        }
        None => {
            for n in list {
                if nbl::nbl_record(n).is_some_and(|r| r.creator == Creator::Driver) {
                    verifier::report(
                        rules::BAD_OBJECT,
                        n as usize,
                        "the filter indicated its own NBL without a ReturnNetBufferLists handler",
                    );
                } else {
                    miniport_take_back(id, n, "receive return");
                }
            }
        }
    }
    crate::race::unmark_in_call(id, &all, call);
}

// ---------------------------------------------------------------------------------------------
// Background work ("the rest of the machine")

/// Completes pending sends, returns held receives and completes pended OIDs, at DISPATCH_LEVEL for
/// the data path. `max` bounds each kind; `rng` (when given) shuffles the completion order.
pub(crate) fn pump(id: usize, max: usize, rng: Option<&mut u64>) -> usize {
    let (mut sends, rets, oids) = {
        let mut s = stack();
        let a = &mut s.adapters[id];
        let ns = a.mp_pending.len().min(max);
        let sends: Vec<usize> = a.mp_pending.drain(..ns).collect();
        let nr = a.proto_held.len().min(max);
        let rets: Vec<usize> = a.proto_held.drain(..nr).collect();
        let no = a.mp_oids.len().min(max);
        let oids: Vec<usize> = a.mp_oids.drain(..no).collect();
        if !sends.is_empty() || !rets.is_empty() {
            crate::race::claim_taken(&mut a.race);
        }
        (sends, rets, oids)
    };
    let claimed = !sends.is_empty() || !rets.is_empty();
    if let Some(r) = rng {
        for i in (1..sends.len()).rev() {
            *r = splitmix64(*r);
            sends.swap(i, (*r % (i as u64 + 1)) as usize);
        }
    }
    let work = sends.len() + rets.len() + oids.len();
    kernel::at_irql(DISPATCH_LEVEL, || {
        complete_sends(id, sends);
        protocol_return(id, rets);
    });
    if claimed {
        crate::race::release(id);
    }
    for req in oids {
        crate::filter::miniport_complete_oid(id, req);
    }
    work
}

/// One tick of background work on every adapter, plus due timers and the clock.
pub(crate) fn tick_all() -> usize {
    let n = stack().adapters.len();
    let mut work = 0;
    for id in 0..n {
        work += pump(id, usize::MAX, None);
    }
    work += crate::misc::advance_clock_ms(10);
    work
}

/// Pumps until `done()` or the adapter's timeout; reports `rule` on timeout. Returns done().
pub(crate) fn wait_until(
    id: usize,
    rule: &'static str,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> bool {
    let ticks = stack().adapters[id].cfg.timeout_ticks;
    let started = std::time::Instant::now();
    let mut used = 0;
    while used <= ticks {
        if done() {
            return true;
        }
        if crate::race::others_busy() && started.elapsed() < std::time::Duration::from_secs(120) {
            // Another CPU is inside a call: wait for it without spending simulated time.
            std::thread::yield_now();
            continue;
        }
        crate::race::wait_tick();
        tick_all();
        used += 1;
    }
    if done() {
        return true;
    }
    verifier::report(
        rules_static(rule),
        id,
        format!("{what} did not complete within {ticks} simulated ticks of 10 ms"),
    );
    false
}

fn rules_static(r: &'static str) -> &'static str {
    r
}

/// NBLs in flight through the module of adapter `id` that a pause must not leave behind.
pub(crate) fn outstanding(id: usize) -> Vec<(usize, String)> {
    let mut v = Vec::new();
    for (addr, r) in nbl::all_nbls() {
        let mine = match r.creator {
            Creator::Driver => r.adapter == id && r.holder != Holder::Filter,
            Creator::Protocol(a) => {
                a == id && r.holder != Holder::Creator && r.holder != Holder::Protocol
            }
            Creator::Miniport(a) => a == id && r.holder == Holder::Filter && !r.resources,
        };
        if mine {
            v.push((
                addr,
                format!("{:?} NBL held by {:?} ({:?})", r.creator, r.holder, r.dir),
            ));
        }
    }
    v
}

/// What a pause must not leave behind on adapter `id`: the filter's own NBLs not back in its hands;
/// sends from above or receives from below held by the filter (non-RESOURCES); and NBLs the filter
/// handed on (a protocol send the miniport holds, a miniport receive the protocol holds) that still
/// carry the filter's changes (NBL context, NB list, MDL chain, offsets or OOB info differ from what
/// their owner handed out): the filter could only undo those in a callback after it said Paused.
/// Unchanged pass-through NBLs below/above are NDIS's concern, not the filter's.
pub fn pause_outstanding(id: usize) -> Vec<(usize, String)> {
    let mut v = Vec::new();
    for (addr, _) in nbl::all_nbls() {
        // Judged with the in-call records and the queues frozen (stack lock, then the NBL
        // registry): other CPUs move NBLs on meanwhile, and a call marks its NBLs before the filter
        // holds them. An NBL is read only when nobody else can be changing or freeing it: in a call
        // on this CPU, or queued at the miniport / held by the protocol. One inside a call in
        // progress on another CPU is left to be judged when that call hands it on (race.rs).
        let s = stack();
        let Some(a) = s.adapters.get(id) else { break };
        let Some(r) = nbl::nbl_record(addr as *const NET_BUFFER_LIST) else {
            continue;
        };
        let elsewhere = crate::race::in_call_elsewhere(&a.race, addr);
        let readable = !elsewhere
            && (a.race.in_call.contains_key(&addr)
                || a.mp_pending.contains(&addr)
                || a.proto_held.contains(&addr));
        let changed = |send: bool| {
            let snap = if send {
                a.sent.get(&addr)
            } else {
                a.mp_out.get(&addr)
            };
            // SAFETY: a registered simulator NBL its owner has not freed, that no other CPU is
            // changing (`readable`, under the stack lock that every hand-off and free takes).
            readable
                && snap.is_some_and(|snap| unsafe {
                    nbl::carries_changes(addr as *const NET_BUFFER_LIST, snap)
                })
        };
        let mine = match r.creator {
            Creator::Driver => r.adapter == id && r.holder != Holder::Filter,
            Creator::Protocol(a) if a == id => match r.holder {
                Holder::Filter => !elsewhere,
                Holder::Miniport => changed(true),
                _ => false,
            },
            Creator::Miniport(a) if a == id => match r.holder {
                Holder::Filter => !r.resources && !elsewhere,
                Holder::Protocol => !r.resources && changed(false),
                _ => false,
            },
            _ => false,
        };
        drop(s);
        if mine {
            v.push((
                addr,
                format!("{:?} NBL held by {:?} ({:?})", r.creator, r.holder, r.dir),
            ));
        }
    }
    v
}

pub(crate) fn changed_since_handout(id: usize, addr: usize, send: bool) -> bool {
    let snap = {
        let s = stack();
        let a = &s.adapters[id];
        if send {
            a.sent.get(&addr).cloned()
        } else {
            a.mp_out.get(&addr).cloned()
        }
    };
    // SAFETY: a registered simulator NBL, outstanding (its owner has not freed it).
    snap.is_some_and(|snap| unsafe { nbl::carries_changes(addr as *const NET_BUFFER_LIST, &snap) })
}

/// A new adapter (module Detached).
pub(crate) fn add_adapter(cfg: AdapterConfig) -> usize {
    let proto_pool = nbl::sim_nbl_pool(0);
    let mp_pool = nbl::sim_nbl_pool(0);
    let mut s = stack();
    s.adapters.push(AdapterRec {
        cfg,
        filter_handle: 0,
        module_ctx: 0,
        state: ModuleState::Detached,
        set_attrs: false,
        pause_pending: false,
        pause_done: false,
        pause_record: PauseRecord::default(),
        restart_pending: false,
        restart_status: None,
        top_backfill: None,
        config: BTreeMap::new(),
        proto_pool,
        mp_pool,
        sent: HashMap::new(),
        proto_held: VecDeque::new(),
        proto_oids: HashMap::new(),
        mp_pending: Vec::new(),
        mp_out: HashMap::new(),
        mp_oids: VecDeque::new(),
        clones: HashMap::new(),
        counters: Counters::default(),
        wire: Vec::new(),
        proto_rx: Vec::new(),
        names: Vec::new(),
        race: Default::default(),
    });
    s.adapters.len() - 1
}

pub(crate) fn alloc_handle() -> usize {
    mem::raw_alloc(Owner::Sim, POOL_FLAG_NON_PAGED, 64, mem::SIM_TAG) as usize
}

/// Completes up to `n` queued sends at DISPATCH_LEVEL in a seeded order.
pub(crate) fn pump_sends(id: usize, n: usize, seed: &mut u64) -> usize {
    kernel::at_irql(DISPATCH_LEVEL, || {
        pump_sends_at_current_irql(id, n, Some(seed))
    })
}

/// Completes up to `n` queued sends at the caller's IRQL (shuffled when a seed is given).
pub(crate) fn pump_sends_at_current_irql(id: usize, n: usize, seed: Option<&mut u64>) -> usize {
    let mut sends: Vec<usize> = {
        let mut s = stack();
        let a = &mut s.adapters[id];
        let k = a.mp_pending.len().min(n);
        if k != 0 {
            crate::race::claim_taken(&mut a.race);
        }
        a.mp_pending.drain(..k).collect()
    };
    if let Some(r) = seed {
        for i in (1..sends.len()).rev() {
            *r = splitmix64(*r);
            sends.swap(i, (*r % (i as u64 + 1)) as usize);
        }
    }
    let k = sends.len();
    complete_sends(id, sends);
    if k != 0 {
        crate::race::release(id);
    }
    k
}

/// The protocol returns up to `n` held receives at the caller's IRQL.
pub(crate) fn return_some(id: usize, n: usize) -> usize {
    let rets: Vec<usize> = {
        let mut s = stack();
        let a = &mut s.adapters[id];
        let k = a.proto_held.len().min(n);
        if k != 0 {
            crate::race::claim_taken(&mut a.race);
        }
        a.proto_held.drain(..k).collect()
    };
    let k = rets.len();
    protocol_return(id, rets);
    if k != 0 {
        crate::race::release(id);
    }
    k
}

/// NdisFilterTimedDataSend / NdisFilterTimedDataReceive: a send from above or a receive from below
/// that stays in the filter's hands longer than the adapter's timeout.
pub(crate) fn check_held_timeouts(now_ms: u64) {
    let limits: Vec<u64> = stack()
        .adapters
        .iter()
        .map(|a| a.cfg.timeout_ticks as u64 * 10)
        .collect();
    let mut late = Vec::new();
    for (addr, _) in nbl::all_nbls() {
        // The record as it is now, with the in-call records frozen (other CPUs move NBLs on).
        let (r, in_call) = {
            let s = stack();
            let r = nbl::nbl_record(addr as *const NET_BUFFER_LIST);
            let in_call = r.as_ref().is_some_and(|r| {
                let id = match r.creator {
                    Creator::Protocol(a) | Creator::Miniport(a) => a,
                    Creator::Driver => r.adapter,
                };
                s.adapters
                    .get(id)
                    .is_some_and(|a| a.race.in_call.contains_key(&addr))
            });
            (r, in_call)
        };
        let Some(r) = r else { continue };
        if r.holder != Holder::Filter || r.timed_out {
            continue;
        }
        let (id, rule) = match r.creator {
            Creator::Protocol(a) => (a, rules::TIMEOUT_SEND),
            Creator::Miniport(a) if !r.resources => (a, rules::TIMEOUT_RECEIVE),
            _ => continue,
        };
        // Concurrent mode: an NBL inside a call still in progress on another thread is being
        // handled, not kept; the host may simply not have scheduled that thread while others
        // advanced the clock (a callback that never returns is not this rule's to judge).
        if crate::race::concurrent() && in_call {
            continue;
        }
        if let Some(&limit) = limits.get(id) {
            if now_ms.saturating_sub(r.since_ms) > limit {
                late.push((addr, rule, now_ms - r.since_ms));
            }
        }
    }
    for (addr, rule, held) in late {
        nbl::with_nbl(addr as *const NET_BUFFER_LIST, |r| r.timed_out = true);
        verifier::report(
            rule,
            addr,
            format!("held by the filter for {held} ms of simulated time"),
        );
    }
}
