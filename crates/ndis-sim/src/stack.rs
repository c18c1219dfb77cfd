//! The simulated stack around the filter under test: the registered filter driver, and per adapter a
//! miniport below, a protocol above and the filter module between, with the module state machine
//! (ndis-contract.md §3.2) and the NBL ownership hand-offs of the send and receive paths.
//!
//! State only (layer 3): the records, their lookups and the public configuration types. The paths
//! that move NBLs through the stack and call the driver are the flows above (`flows/`).
//!
//! Shared state lives in one mutex that is never held while driver code runs: every path copies what
//! it needs (handler, context, convention), drops the lock, then calls the driver through
//! [`crate::abi::Callback`]. How lifecycle operations relate to traffic (one gate, or racing it as
//! on a real machine) is [`crate::race`]'s business.

use crate::abi::Abi;
use crate::fault::splitmix64;
use crate::mem::{self, Owner};
use crate::nbl::{self, Creator, NblSnap};
use ndis_sys::*;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{LazyLock, Mutex, MutexGuard, OnceLock};

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

pub use crate::config_reads::ConfigValue;

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
/// or above it is PAUSE_WITH_OUTSTANDING (see [`crate::outstanding::pause_outstanding`]). What happened is recorded
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
    /// NBLs [`crate::outstanding::pause_outstanding`] listed when the pause completed (NdisFPauseComplete or SUCCESS).
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

/// Per-adapter concurrency state (concurrent mode; the in-call records in both modes):
/// the record [`crate::race`] keeps and judges.
#[derive(Default)]
pub(crate) struct AdapterRace {
    /// The protocol above may send (opened once the module runs, closed when a pause begins).
    pub proto_open: bool,
    /// The miniport below may indicate (opened when a restart begins, closed after a pause).
    pub mp_open: bool,
    /// NDIS→filter data-path calls claimed and not yet returned.
    pub calls: usize,
    /// ... of which protocol sends.
    pub sending: usize,
    /// OIDs and status indications in progress.
    pub ctl: usize,
    /// A detach is under way: no new OIDs or status indications.
    pub detaching: bool,
    /// Pause completions so far (the line of the module docs).
    pub epoch: u64,
    /// Pauses under way or done whose FilterPause call has returned. A receive NDIS issued before
    /// the current pause's FilterPause returned is not a *new* indication to the filter
    /// (RECEIVE_PASSED_WHILE_PAUSING): the filter changes its own state somewhere inside FilterPause,
    /// and a receive issued while FilterPause still ran may have met it Running; one issued after
    /// met it Pausing, whatever the interleaving.
    pub begun: u64,
    /// A FilterPause call is in progress (entered, not returned): a receive passed on meanwhile
    /// cannot be judged new, whenever it was issued.
    pub pause_in_call: bool,
    /// NBLs inside a data-path call in progress: (pause epoch at issue, issuing thread, its CPU,
    /// the call's serial — an NBL freed inside the call may be reallocated at the same address and
    /// issued in another call before this one ends —, pauses begun at issue).
    pub in_call: HashMap<usize, (u64, u64, usize, u64, u64)>,
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
    pub race: AdapterRace,
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

/// The simulated miniport and protocol as NDIS reaches them when a filter hands NBLs on (what
/// happens to a send it passes down, a send completion or a receive it passes up, a receive it
/// returns, a send it cancels), and the lifecycle work a routine starts (deregistration pauses and
/// detaches every module). The flows above (`flows/`) install them when a simulation
/// starts, as a real miniport and protocol register their handlers with NDIS; the NdisF* routines
/// call through them and never import the flows.
#[derive(Clone, Copy)]
pub(crate) struct Upcalls {
    /// NdisFSendNetBufferLists reached the miniport: (adapter, chain head, send flags).
    pub miniport_send: fn(usize, *mut NET_BUFFER_LIST, u32),
    /// NdisFSendNetBufferListsComplete reached the protocol: (adapter, the NBLs).
    pub protocol_send_complete: fn(usize, &[*mut NET_BUFFER_LIST]),
    /// NdisFIndicateReceiveNetBufferLists reached the protocol: (adapter, head, count, flags).
    pub protocol_receive: fn(usize, *mut NET_BUFFER_LIST, u32, u32),
    /// NdisFReturnNetBufferLists gave one of the miniport's receives back: (adapter, NBL, context).
    pub miniport_return: fn(usize, *mut NET_BUFFER_LIST, &str),
    /// The miniport completes these queued sends now (NdisFCancelSendNetBufferLists).
    pub miniport_complete_sends: fn(usize, Vec<usize>),
    /// NdisFDeregisterFilterDriver: pause the module if it runs, then detach it if it is paused.
    pub pause_and_detach: fn(usize),
}

static UPCALLS: OnceLock<Upcalls> = OnceLock::new();

/// Installs the simulated miniport and protocol (once per process; always the same functions).
pub(crate) fn install_upcalls(n: Upcalls) {
    let _ = UPCALLS.set(n);
}

/// The simulated miniport and protocol, and the lifecycle work routines start ([`Upcalls`]).
pub(crate) fn upcalls() -> Upcalls {
    *UPCALLS
        .get()
        .expect("Sim::start installs the simulated miniport and protocol")
}

/// The module state of adapter `id`.
pub(crate) fn state_of(id: usize) -> ModuleState {
    stack().adapters[id].state
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

/// The per-frame digest the counters sum (order-independent, wrapping add).
pub fn frame_digest(frame: &[u8]) -> u64 {
    nbl::fnv(0xCBF2_9CE4_8422_2325, frame)
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
pub(crate) fn nbl_context(id: usize, creator: Creator) -> (u16, u16) {
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
