//! A traffic run: protocol sends, miniport completions, indications, returns and clock ticks on
//! every virtual CPU (threads, or one seeded thread in deterministic mode).

#[allow(unused_imports)]
use super::*;

/// A traffic run ([`SimGuard::run_traffic`]).
#[derive(Clone, Debug)]
pub struct Traffic {
    /// Operations per virtual CPU.
    pub steps_per_cpu: usize,
    /// Virtual CPUs to run on (empty = all).
    pub cpus: Vec<usize>,
    /// Shape of protocol sends.
    pub send: NblShape,
    /// Shape of miniport indications.
    pub receive: NblShape,
    /// One indication in this many carries NDIS_RECEIVE_FLAGS_RESOURCES (0 = never).
    pub resources_one_in: u32,
    /// Seed (combined with the CPU index per thread).
    pub seed: u64,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            steps_per_cpu: 200,
            cpus: Vec::new(),
            send: NblShape {
                nbls: 2,
                ..NblShape::default()
            },
            receive: NblShape {
                nbls: 2,
                ..NblShape::default()
            },
            resources_one_in: 4,
            seed: 1,
        }
    }
}

fn traffic_step(id: usize, t: &Traffic, rng: &mut u64) {
    *rng = fault::splitmix64(*rng);
    let r = *rng;
    let _g = race::gate_shared();
    let dispatch = (r >> 8) & 1 == 1;
    let irql = if dispatch {
        DISPATCH_LEVEL
    } else {
        PASSIVE_LEVEL
    };
    match r % 8 {
        // A send only while the protocol runs, an indication only while the miniport may indicate
        // to the module: claimed under the stack lock (race.rs: where the line is).
        0 | 1 if race::claim_send(id) => {
            kernel::at_irql(irql, || flows::protocol_send(id, &t.send, 0));
            race::release_send(id);
        }
        2 | 3 => {
            let mut seed = r >> 16;
            flows::pump_sends(id, 1 + (r >> 20) as usize % 4, &mut seed);
        }
        4 | 5 if race::claim_indicate(id) => {
            let res =
                t.resources_one_in != 0 && (r >> 24).is_multiple_of(t.resources_one_in as u64);
            let flags = if res { NDIS_RECEIVE_FLAGS_RESOURCES } else { 0 };
            kernel::at_irql(DISPATCH_LEVEL, || {
                flows::miniport_indicate(id, &t.receive, flags)
            });
            race::release(id);
        }
        6 => {
            kernel::at_irql(irql, || flows::return_some(id, 1 + (r >> 20) as usize % 4));
        }
        _ => {
            flows::advance_clock_ms(1);
        }
    }
}

impl SimGuard {
    /// Runs traffic on `adapter` across virtual CPUs: protocol sends, miniport completions in random
    /// order, indications (some with NDIS_RECEIVE_FLAGS_RESOURCES), protocol returns, clock ticks.
    /// Threads per CPU, or one seeded thread in deterministic mode. Sends and receives happen only
    /// while the module runs; lifecycle steps may run concurrently from another thread.
    pub fn run_traffic(&self, adapter: &Adapter, t: &Traffic) {
        let cpus: Vec<usize> = if t.cpus.is_empty() {
            (0..kernel::cpu_count()).collect()
        } else {
            t.cpus.clone()
        };
        if self.config.deterministic {
            let mut rng = fault::splitmix64(t.seed ^ self.config.seed);
            let home = kernel::current_cpu();
            for _ in 0..t.steps_per_cpu * cpus.len() {
                rng = fault::splitmix64(rng);
                let cpu = cpus[(rng % cpus.len() as u64) as usize];
                kernel::bind_thread_to_cpu(cpu);
                traffic_step(adapter.id, t, &mut rng);
            }
            kernel::bind_thread_to_cpu(home);
        } else {
            std::thread::scope(|s| {
                for &cpu in &cpus {
                    let t = t.clone();
                    let id = adapter.id;
                    let seed = self.config.seed;
                    s.spawn(move || {
                        kernel::bind_thread_to_cpu(cpu);
                        let mut rng =
                            fault::splitmix64(t.seed ^ seed ^ (cpu as u64).wrapping_mul(0x9E37));
                        for _ in 0..t.steps_per_cpu {
                            traffic_step(id, &t, &mut rng);
                        }
                    });
                }
            });
        }
    }
}
