//! Target `filter_ops`: the whole filter (DriverEntry, FilterAttach/Restart/Pause/Detach, the send
//! and receive paths, OIDs, status, timers, DriverUnload) on ndis-sim, driven by an operation
//! sequence decoded from the input: sends and indications of arbitrary frames (jumbo included) in
//! arbitrary NBL shapes and NB counts, at PASSIVE or DISPATCH on any virtual CPU; completions and
//! returns in any order on any CPU; RESOURCES receives; pause/restart (sends while paused); OIDs
//! (synchronous or pended by the miniport); status indications; simulated time passing (the trim
//! timer); allocation failures at arbitrary points (the pool's own fault injection, NBL contexts,
//! ExAllocatePool2, OID clones); neighbouring drivers that retreat/advance with NDIS's defaults.
//!
//! Properties: every frame that reaches the wire / the protocol is what the mode must make of the
//! frame sent / indicated (exercise and passthrough: identical; vlan: 802.1Q model), in order, and
//! without injected failures every frame arrives; pause and restart succeed; at the end ndis-sim's
//! `finish` reports zero findings (restore-exact, IRQL, flags, state rules, foreign/double frees,
//! and leaks of NBLs, MDLs, pool, timers and configuration handles at detach and unload).

use crate::chain::vlan_model;
use crate::transforms::frame;
use arbitrary::{Result, Unstructured};
use mdlpool::pool::{FaultConfig, PoolConfig};
use ndis_sim::kernel::{at_irql, bind_thread_to_cpu};
use ndis_sim::{
    AdapterConfig, AllocSite, ConfigValue, FaultRule, ModuleState, NblShape, Sim, SimConfig,
};
use ndis_sys::*;

const SITES: [AllocSite; 3] = [AllocSite::NblContext, AllocSite::Pool, AllocSite::CloneOid];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Exercise,
    Vlan,
    Passthrough,
}

struct Setup {
    mode: Mode,
    vlan_id: u16,
    vlan_priority: u8,
    receive_inline: bool,
}

impl Setup {
    fn send_tci(&self, info: usize) -> Option<u16> {
        match self.mode {
            Mode::Vlan => tci_of(info).or_else(|| {
                (self.vlan_id != 0 || self.vlan_priority != 0)
                    .then_some((self.vlan_priority as u16) << 13 | self.vlan_id)
            }),
            _ => None,
        }
    }

    fn receive_tci(&self, info: usize) -> Option<u16> {
        match self.mode {
            Mode::Vlan if self.receive_inline => tci_of(info),
            _ => None,
        }
    }
}

/// The tag an 802.1Q info value asks for (VlanId or priority non-zero), as a TCI.
fn tci_of(info: usize) -> Option<u16> {
    let i = NDIS_NET_BUFFER_LIST_8021Q_INFO { Value: info };
    (i.VlanId() != 0 || i.UserPriority() != 0).then_some(
        (i.UserPriority() as u16) << 13 | (i.CanonicalFormatId() as u16) << 12 | i.VlanId(),
    )
}

/// Runs the target on one input.
pub fn filter_ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let cpus = u.int_in_range(1..=4usize).unwrap_or(2);
    let sim = Sim::start(SimConfig {
        cpus,
        deterministic: true,
        ..SimConfig::default()
    });
    let drv = sim.load_driver(mdlpool::DriverEntry);
    let pool_fault = pool_fault(&mut u).unwrap_or_default();
    if pool_fault.armed() {
        // SAFETY: (fuzz) no module is attached yet, so no handler call can be running.
        let report = unsafe { mdlpool::mdl_handlers::uninstall() }.expect("pool installed");
        assert!(report.is_clean());
        mdlpool::mdl_handlers::install(&PoolConfig {
            fault: pool_fault,
            ..mdlpool::driver::default_pool_config()
        })
        .expect("pool install");
    }
    let (setup, adapter) = setup(&mut u).unwrap_or((
        Setup {
            mode: Mode::Exercise,
            vlan_id: 0,
            vlan_priority: 0,
            receive_inline: false,
        },
        AdapterConfig::default(),
    ));
    let nic = sim.add_adapter(AdapterConfig {
        capture_limit: usize::MAX,
        ..adapter
    });
    let mode_name = match setup.mode {
        Mode::Exercise => "exercise",
        Mode::Vlan => "vlan",
        Mode::Passthrough => "passthrough",
    };
    nic.set_config("Mode", ConfigValue::Str(mode_name.into()));
    nic.set_config("VlanId", ConfigValue::Int(setup.vlan_id as u32));
    nic.set_config("VlanPriority", ConfigValue::Int(setup.vlan_priority as u32));
    nic.set_config(
        "VlanReceiveInline",
        ConfigValue::Int(setup.receive_inline as u32),
    );
    if let Ok(b) = u.int_in_range(1..=256u32) {
        nic.set_config("ExerciseBytes", ConfigValue::Int(b));
    }
    if let Ok(b) = u.int_in_range(0..=256u32) {
        nic.set_config("ExerciseBackfill", ConfigValue::Int(b));
    }
    nic.attach().expect("FilterAttach");
    nic.restart().expect("FilterRestart");
    let faults = arm_faults(&mut u, &sim).unwrap_or(false) || pool_fault.armed();

    let neighbors = nic_neighbors(&sim, &nic);
    let mut run = Run {
        setup,
        neighbors,
        want_wire: Vec::new(),
        want_up: Vec::new(),
        cpus,
    };
    let steps = u.int_in_range(0..=48u8).unwrap_or(0);
    for _ in 0..steps {
        if step(&mut u, &sim, &nic, &mut run, faults).is_err() {
            break;
        }
    }
    bind_thread_to_cpu(0);
    for s in SITES {
        sim.clear_injection(s);
    }
    nic.drain();
    let wire: Vec<Vec<u8>> = nic.wire_frames().into_iter().map(|f| f.bytes).collect();
    let up: Vec<Vec<u8>> = nic.protocol_frames().into_iter().map(|f| f.bytes).collect();
    check_frames("wire", &wire, &run.want_wire, faults);
    check_frames("protocol", &up, &run.want_up, faults);
    nic.pause().expect("FilterPause");
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

struct Run {
    setup: Setup,
    /// Neighbouring drivers retreat/advance with FreeMdl = TRUE: NDIS then frees any leading MDL
    /// wholly in unused space, whoever owns it, so the protocol's and miniport's own chains must
    /// not begin with one (the neighbour, not the filter, would break them).
    neighbors: bool,
    want_wire: Vec<Vec<u8>>,
    want_up: Vec<Vec<u8>>,
    cpus: usize,
}

fn nic_neighbors(_sim: &ndis_sim::SimGuard, nic: &ndis_sim::Adapter) -> bool {
    let mut n = false;
    nic.configure(|c| n = c.neighbor_header_bytes != 0);
    n
}

/// With neighbours (see [`Run::neighbors`]): no empty frame and the first MDL holds the data start.
fn for_neighbors(run: &Run, frames: &mut [Vec<u8>], shape: &mut NblShape) {
    if !run.neighbors {
        return;
    }
    for f in frames.iter_mut() {
        if f.is_empty() {
            f.push(0x5A);
        }
    }
    if let Some(first) = shape.mdl_lengths.first_mut() {
        *first = (*first).max(shape.data_offset + 1);
    }
}

fn pool_fault(u: &mut Unstructured) -> Result<FaultConfig> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => FaultConfig {
            fail_every_nth: u.int_in_range(1..=16u32)?,
            ..FaultConfig::default()
        },
        1 => FaultConfig {
            fail_rate_ppm: u.int_in_range(1..=500_000u32)?,
            seed: u.arbitrary()?,
            ..FaultConfig::default()
        },
        _ => FaultConfig::default(),
    })
}

fn setup(u: &mut Unstructured) -> Result<(Setup, AdapterConfig)> {
    let mode = *u.choose(&[Mode::Exercise, Mode::Vlan, Mode::Passthrough])?;
    let s = Setup {
        mode,
        vlan_id: u.int_in_range(0..=4094u16)?,
        vlan_priority: u.int_in_range(0..=7u8)?,
        receive_inline: u.arbitrary()?,
    };
    let a = AdapterConfig {
        complete_inline: u.ratio(1u8, 4u8)?,
        return_inline: u.ratio(1u8, 4u8)?,
        pend_oids: u.arbitrary()?,
        neighbor_header_bytes: if u.ratio(1u8, 4u8)? {
            u.int_in_range(1..=64u32)?
        } else {
            0
        },
        // A jumbo NIC: frames here go up to 9018 bytes (a tagged jumbo frame); ndis-sim judges
        // every frame against MtuSize + 14 (+ 4 tagged), and the model expects every tag in-band.
        mtu_size: 9004,
        ..AdapterConfig::default()
    };
    Ok((s, a))
}

/// Arms ndis-sim's allocation failures (after attach/restart). Returns whether any is armed.
fn arm_faults(u: &mut Unstructured, sim: &ndis_sim::SimGuard) -> Result<bool> {
    let mut any = false;
    for site in SITES {
        if u.ratio(1u8, 3u8)? {
            let rule = match u.int_in_range(0..=2u8)? {
                0 => FaultRule::Nth(u.int_in_range(0..=32u64)?),
                1 => FaultRule::Every(u.int_in_range(1..=8u64)?),
                _ => FaultRule::Rate {
                    per_million: u.int_in_range(1..=500_000u32)?,
                    seed: u.arbitrary()?,
                },
            };
            sim.inject(site, rule);
            any = true;
        }
    }
    Ok(any)
}

fn shape(u: &mut Unstructured, info: usize) -> Result<NblShape> {
    let mut lens = Vec::new();
    for _ in 0..u.int_in_range(0..=3u8)? {
        lens.push(u.int_in_range(0..=64u32)?);
    }
    Ok(NblShape {
        nbs_per_nbl: u.int_in_range(1..=3usize)?,
        mdl_lengths: lens,
        data_offset: if u.arbitrary()? {
            0
        } else {
            u.int_in_range(0..=64u32)?
        },
        ieee8021q: info,
        ..NblShape::default()
    })
}

fn info(u: &mut Unstructured) -> Result<usize> {
    Ok(if u.arbitrary()? {
        0
    } else {
        NDIS_NET_BUFFER_LIST_8021Q_INFO::new(
            u.int_in_range(0..=7u8)?,
            u.int_in_range(0..=1u8)?,
            u.int_in_range(0..=4095u16)?,
        )
        .Value
    })
}

fn step(
    u: &mut Unstructured,
    sim: &ndis_sim::SimGuard,
    nic: &ndis_sim::Adapter,
    run: &mut Run,
    faults: bool,
) -> Result<()> {
    let cpu = u.int_in_range(0..=run.cpus - 1)?;
    bind_thread_to_cpu(cpu);
    let irql = if u.arbitrary()? {
        DISPATCH_LEVEL
    } else {
        PASSIVE_LEVEL
    };
    match u.int_in_range(0..=9u8)? {
        0..=2 => {
            let mut frames = Vec::new();
            for _ in 0..u.int_in_range(1..=4u8)? {
                frames.push(frame(u)?);
            }
            let oob = info(u)?;
            let mut shape = shape(u, oob)?;
            for_neighbors(run, &mut frames, &mut shape);
            let running = nic.state() == ModuleState::Running;
            at_irql(irql, || nic.send_frames(&shape, &frames, 0));
            if running {
                let tci = run.setup.send_tci(oob);
                run.want_wire
                    .extend(frames.iter().map(|f| vlan_model(f, tci)));
            }
        }
        3..=5 => {
            let mut frames = Vec::new();
            for _ in 0..u.int_in_range(1..=4u8)? {
                frames.push(frame(u)?);
            }
            let oob = info(u)?;
            let mut shape = shape(u, oob)?;
            for_neighbors(run, &mut frames, &mut shape);
            let flags = if u.arbitrary()? {
                NDIS_RECEIVE_FLAGS_RESOURCES
            } else {
                0
            };
            // Miniports indicate at DISPATCH_LEVEL mostly; PASSIVE is allowed too.
            at_irql(irql, || nic.indicate_frames(&shape, &frames, flags));
            let tci = run.setup.receive_tci(oob);
            run.want_up
                .extend(frames.iter().map(|f| vlan_model(f, tci)));
        }
        6 => {
            let n = u.int_in_range(1..=8usize)?;
            let seed = u.arbitrary::<u64>()?;
            at_irql(irql, || nic.complete_sends(n, seed));
        }
        7 => {
            let n = u.int_in_range(1..=8usize)?;
            at_irql(irql, || nic.return_receives(n));
        }
        8 => match u.int_in_range(0..=3u8)? {
            0 => {
                // Decode everything first: the module must be Running again before this step can
                // stop on a short input.
                let while_paused = if u.arbitrary()? {
                    Some(vec![frame(u)?])
                } else {
                    None
                };
                let seed = u.arbitrary::<u64>()?;
                bind_thread_to_cpu(0);
                for s in SITES {
                    sim.clear_injection(s);
                }
                nic.pause().expect("FilterPause");
                // A send while paused is completed with NDIS_STATUS_PAUSED (nothing on the wire).
                if let Some(mut f) = while_paused {
                    let mut shape = NblShape::default();
                    for_neighbors(run, &mut f, &mut shape);
                    nic.send_frames(&shape, &f, 0);
                }
                nic.restart().expect("FilterRestart");
                if faults {
                    // Failures go on after the restart (a fresh rule: the old indices have passed).
                    sim.inject(
                        AllocSite::NblContext,
                        FaultRule::Rate {
                            per_million: 200_000,
                            seed,
                        },
                    );
                }
            }
            1 => {
                bind_thread_to_cpu(0);
                let mut buf = [0u8; 8];
                let _ = nic.oid_request(NdisRequestQueryInformation, 0x0001_0106, &mut buf);
            }
            2 => {
                bind_thread_to_cpu(0);
                let mut buf = [0u8; 4];
                let _ = nic.oid_request(NdisRequestSetInformation, 0x0001_010E, &mut buf);
            }
            _ => at_irql(irql, || nic.indicate_status(NDIS_STATUS_LINK_STATE)),
        },
        _ => {
            bind_thread_to_cpu(0);
            sim.advance_clock(u.int_in_range(1..=2500u64)?);
        }
    }
    Ok(())
}

/// `got` must be `want` (no injected failure) or an in-order subsequence of it (failed NBLs are
/// completed with RESOURCES / dropped, never reordered or altered).
fn check_frames(what: &str, got: &[Vec<u8>], want: &[Vec<u8>], faults: bool) {
    if !faults {
        assert_eq!(got.len(), want.len(), "{what}: frame count");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g, w, "{what}: frame {i} differs from the model");
        }
        return;
    }
    let mut it = want.iter();
    for (i, g) in got.iter().enumerate() {
        assert!(
            it.any(|w| w == g),
            "{what}: frame {i} is not (in order) one of the frames the model expects"
        );
    }
}
