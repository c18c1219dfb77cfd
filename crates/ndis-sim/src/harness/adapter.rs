//! An adapter of the simulated stack as a test drives it: lifecycle, traffic, OIDs, status, and
//! what the miniport and protocol saw.

#[allow(unused_imports)]
use super::*;

/// An adapter of the simulated stack: miniport below, protocol above, the filter module between.
#[derive(Clone, Copy, Debug)]
pub struct Adapter {
    pub(super) id: usize,
}

/// The kind of NDIS call [`Adapter::claimed`] claims.
#[derive(Clone, Copy)]
enum Claim {
    /// A protocol send (counted while the protocol runs).
    Send,
    /// A miniport indication (counted while the miniport may indicate).
    Indicate,
    /// An OID or a status indication.
    Ctl,
}

impl Adapter {
    /// Index of this adapter.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Runs `f` as one NDIS call of `kind` on this adapter: claimed first when the module's state
    /// lets it be (a send or an indication is counted in progress; an OID or status indication
    /// waits its turn), released after `f` whatever it did. The caller holds the gate it needs.
    fn claimed<R>(&self, kind: Claim, f: impl FnOnce() -> R) -> R {
        self.claimed_reach(kind, |_| f())
    }

    /// [`claimed`](Self::claimed), telling `f` whether the call may reach the filter module: in
    /// concurrent mode only a claimed OID or status indication may (a detach waits for claimed ones
    /// only, so an unclaimed one that went on to the module could run into a module a later detach
    /// frees: it goes past the module, as NDIS sends it when no module is attached); in serialised
    /// mode the gate keeps every lifecycle step out, so the state decides.
    fn claimed_reach<R>(&self, kind: Claim, f: impl FnOnce(bool) -> R) -> R {
        let claimed = match kind {
            Claim::Send => race::claim_send(self.id),
            Claim::Indicate => race::claim_indicate(self.id),
            Claim::Ctl => race::wait_claim_ctl(self.id),
        };
        let r = f(claimed || !race::concurrent());
        if claimed {
            match kind {
                Claim::Send => race::release_send(self.id),
                Claim::Indicate => race::release(self.id),
                Claim::Ctl => race::release_ctl(self.id),
            }
        }
        r
    }

    fn lifecycle<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = race::exclusive(true);
        f()
    }

    /// FilterAttach (Detached → Paused).
    pub fn attach(&self) -> Result<(), LifecycleError> {
        self.lifecycle(|| flows::lifecycle::attach_flow(self.id))
    }

    /// FilterRestart (Paused → Running), waiting for NdisFRestartComplete when it pends.
    pub fn restart(&self) -> Result<(), LifecycleError> {
        self.lifecycle(|| flows::lifecycle::restart_flow(self.id))
    }

    /// Pauses the protocol (drains its sends/receives), then FilterPause (Running → Paused), waiting
    /// (with the simulated timeout) for NdisFPauseComplete when it pends. With
    /// [`AdapterConfig::pause_hold`] set, FilterPause runs while sends/receives are still out (see
    /// [`crate::PauseHold`]).
    pub fn pause(&self) -> Result<(), LifecycleError> {
        self.lifecycle(|| flows::pause::pause_flow(self.id))
    }

    /// What the last (or current) pause looked like: FilterPause's status, the NBLs held across it,
    /// NdisFPauseComplete calls and what was outstanding then.
    pub fn pause_record(&self) -> PauseRecord {
        stack::stack().adapters[self.id].pause_record.clone()
    }

    /// FilterDetach (Paused → Detached) and the per-module leak checks.
    pub fn detach(&self) {
        self.lifecycle(|| flows::lifecycle::detach_flow(self.id))
    }

    /// (DataBackFillSize, ContextBackFillSize) the drivers above the filter were told: what the
    /// filter left in the restart attributes of its last successful FilterRestart, or before any
    /// restart what the miniport reports ([`AdapterConfig::lower_data_backfill`],
    /// [`AdapterConfig::lower_context_backfill`]). The protocol allocates its NBLs with them.
    pub fn restart_backfill(&self) -> (u32, u32) {
        stack::top_backfill(self.id)
    }

    /// The module's state.
    pub fn state(&self) -> ModuleState {
        stack::stack().adapters[self.id].state
    }

    /// Sets a key in this module's configuration map (read by NdisReadConfiguration).
    pub fn set_config(&self, key: &str, value: ConfigValue) {
        stack::stack().adapters[self.id]
            .config
            .insert(key.to_ascii_lowercase(), value);
    }

    /// Changes the miniport/protocol behaviour.
    pub fn configure(&self, f: impl FnOnce(&mut AdapterConfig)) {
        f(&mut stack::stack().adapters[self.id].cfg);
    }

    /// The protocol sends one chain of `shape` at the caller's IRQL (NDIS_SEND_FLAGS_DISPATCH_LEVEL
    /// follows it). Returns the NBL count.
    pub fn send(&self, shape: &NblShape) -> usize {
        self.send_with_flags(shape, 0)
    }

    /// Like [`send`](Self::send) with extra NDIS_SEND_FLAGS_* bits.
    pub fn send_with_flags(&self, shape: &NblShape, flags: u32) -> usize {
        let _g = race::gate_shared();
        // Counted as a protocol send in progress when the protocol runs; sent regardless (the test
        // asked for it; a filter that is not Running completes it with NDIS_STATUS_PAUSED).
        self.claimed(Claim::Send, || flows::protocol_send(self.id, shape, flags))
    }

    /// The miniport indicates one chain of `shape` at the caller's IRQL with `flags`.
    pub fn indicate(&self, shape: &NblShape, flags: u32) -> usize {
        let _g = race::gate_shared();
        self.claimed(Claim::Indicate, || {
            flows::miniport_indicate(self.id, shape, flags)
        })
    }

    /// The protocol sends `frames` (NB k carries `frames[k]`) in NBLs of `shape.nbs_per_nbl` NBs, with
    /// `shape`'s MDL layout, DataOffset and 802.1Q info (its `nbls` and `frame_len` are ignored), at the
    /// caller's IRQL. Returns the NBL count. For traffic given from outside, e.g. a capture.
    pub fn send_frames(&self, shape: &NblShape, frames: &[Vec<u8>], flags: u32) -> usize {
        let _g = race::gate_shared();
        self.claimed(Claim::Send, || {
            flows::protocol_send_frames(self.id, shape, Some(frames), flags)
        })
    }

    /// The miniport indicates `frames` as [`send_frames`](Self::send_frames) lays them out, with
    /// `flags`, at the caller's IRQL.
    pub fn indicate_frames(&self, shape: &NblShape, frames: &[Vec<u8>], flags: u32) -> usize {
        let _g = race::gate_shared();
        self.claimed(Claim::Indicate, || {
            flows::miniport_indicate_frames(self.id, shape, Some(frames), flags)
        })
    }

    /// Sends queued at the miniport, in arrival order.
    pub fn pending_sends(&self) -> usize {
        stack::stack().adapters[self.id].mp_pending.len()
    }

    /// The miniport completes up to `n` queued sends at the caller's IRQL, in an order shuffled by
    /// `seed` (0 = arrival order).
    pub fn complete_sends(&self, n: usize, seed: u64) -> usize {
        let _g = race::gate_shared();
        let mut s = seed;
        flows::pump_sends_at_current_irql(self.id, n, if seed == 0 { None } else { Some(&mut s) })
    }

    /// Receives the protocol is holding (not yet returned).
    pub fn held_receives(&self) -> usize {
        stack::stack().adapters[self.id].proto_held.len()
    }

    /// The protocol returns up to `n` held receives at the caller's IRQL.
    pub fn return_receives(&self, n: usize) -> usize {
        let _g = race::gate_shared();
        flows::return_some(self.id, n)
    }

    /// Completes every queued send, returns every held receive, completes pended OIDs (at
    /// DISPATCH_LEVEL), until nothing is left.
    pub fn drain(&self) {
        let _g = race::gate_shared();
        for _ in 0..10_000 {
            if flows::pump(self.id, usize::MAX, None) == 0 {
                return;
            }
        }
    }

    /// The protocol issues an OID request (at PASSIVE_LEVEL) and waits for it (simulated timeout).
    /// Returns (status, BytesWritten/BytesRead).
    pub fn oid_request(
        &self,
        request_type: u32,
        oid: NDIS_OID,
        buffer: &mut [u8],
    ) -> (NDIS_STATUS, u32) {
        let _g = race::exclusive(false);
        self.claimed_reach(Claim::Ctl, |reach| {
            flows::oid::protocol_oid(self.id, request_type, oid, buffer, reach)
        })
    }

    /// The miniport indicates a status (at the caller's IRQL).
    pub fn indicate_status(&self, code: NDIS_STATUS) {
        let _g = race::gate_shared();
        self.claimed_reach(Claim::Ctl, |reach| {
            flows::oid::miniport_status(self.id, code, reach);
        });
    }

    /// The miniport's task offload configuration changes (e.g. LSO turned off through
    /// OID_TCP_OFFLOAD_PARAMETERS): from now on sends are judged against `nic`, and the miniport
    /// indicates NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG with the new NDIS_OFFLOAD as its status
    /// buffer (DOCUMENTED: ndis-status-task-offload-current-config), at the caller's IRQL.
    pub fn change_offload(&self, nic: wire::NicOffload) {
        let _g = race::gate_shared();
        self.claimed_reach(Claim::Ctl, |reach| {
            stack::stack().adapters[self.id].cfg.nic_offload = nic;
            let mut o = nic.ndis_offload();
            flows::oid::miniport_status_with(
                self.id,
                NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG,
                &mut o as *mut NDIS_OFFLOAD as PVOID,
                std::mem::size_of::<NDIS_OFFLOAD>() as u32,
                reach,
            );
        });
    }

    /// NDIS sends a net PnP event down to the filter (PASSIVE_LEVEL); returns the filter's status.
    pub fn net_pnp_event(&self, code: u32) -> NDIS_STATUS {
        // NDIS starts no PnP operation while another (pause, restart, attach, detach) is under way.
        let _g = race::exclusive(true);
        flows::oid::net_pnp(self.id, code)
    }

    /// The miniport loses the link: sends complete with NDIS_STATUS_MEDIA_DISCONNECTED from now on,
    /// and NDIS_STATUS_MEDIA_DISCONNECT is indicated.
    pub fn disconnect(&self) {
        self.configure(|c| c.send_status = NDIS_STATUS_MEDIA_DISCONNECTED);
        self.indicate_status(NDIS_STATUS_MEDIA_DISCONNECT);
    }

    /// The link comes back: sends succeed again and NDIS_STATUS_MEDIA_CONNECT is indicated.
    pub fn connect(&self) {
        self.configure(|c| c.send_status = NDIS_STATUS_SUCCESS);
        self.indicate_status(NDIS_STATUS_MEDIA_CONNECT);
    }

    /// The miniport resets: NDIS_STATUS_RESET_START, every queued send completed with
    /// NDIS_STATUS_RESET_IN_PROGRESS (at DISPATCH_LEVEL), NDIS_STATUS_RESET_END.
    pub fn reset(&self) {
        self.indicate_status(NDIS_STATUS_RESET_START);
        let old = stack::stack().adapters[self.id].cfg.send_status;
        self.configure(|c| c.send_status = NDIS_STATUS_RESET_IN_PROGRESS);
        {
            let _g = race::gate_shared();
            kernel::at_irql(DISPATCH_LEVEL, || {
                flows::pump_sends_at_current_irql(self.id, usize::MAX, None)
            });
        }
        self.configure(|c| c.send_status = old);
        self.indicate_status(NDIS_STATUS_RESET_END);
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        stack::stack().adapters[self.id].counters.clone()
    }

    /// Frames the miniport saw (up to the capture limit), in order.
    pub fn wire_frames(&self) -> Vec<Frame> {
        stack::stack().adapters[self.id].wire.clone()
    }

    /// Frames the protocol received (up to the capture limit), in order.
    pub fn protocol_frames(&self) -> Vec<Frame> {
        stack::stack().adapters[self.id].proto_rx.clone()
    }

    /// Forgets the captured wire and protocol frames (counters and digests are kept).
    pub fn clear_captures(&self) {
        let mut s = stack::stack();
        let a = &mut s.adapters[self.id];
        a.wire.clear();
        a.proto_rx.clear();
    }

    /// NBLs currently in flight through the module (what a pause would leave behind).
    pub fn outstanding(&self) -> usize {
        outstanding::outstanding(self.id).len()
    }

    /// The module's NdisFilterHandle (0 when detached).
    pub fn filter_handle(&self) -> NDIS_HANDLE {
        stack::stack().adapters[self.id].filter_handle as NDIS_HANDLE
    }

    /// The module context the filter gave NdisFSetAttributes.
    pub fn module_context(&self) -> NDIS_HANDLE {
        stack::stack().adapters[self.id].module_ctx as NDIS_HANDLE
    }
}
