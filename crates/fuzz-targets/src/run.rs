//! What the cursor and transform targets do around one input: a one-CPU deterministic simulation,
//! the input's choice of MDL handler pair (the pool's, installed for the run, or NDIS's default), and
//! at the end the pool's leak report and the simulator's findings.

use arbitrary::Unstructured;
use mdlpool::nb::MdlHandlers;
use ndis_sim::{Sim, SimConfig, SimGuard};

/// One input's simulation and handler pair.
pub(crate) struct Run {
    sim: SimGuard,
    /// The pair retreats use (`mdlpool::filter::module::handler_pair`, the driver's one choice).
    pub handlers: MdlHandlers,
    /// Whether the pool is installed and `handlers` is its pair.
    pub use_pool: bool,
}

impl Run {
    /// Starts the simulation and takes the first byte of the input as the handler choice.
    pub fn begin(u: &mut Unstructured) -> Run {
        let sim = Sim::start(SimConfig {
            cpus: 1,
            deterministic: true,
            ..SimConfig::default()
        });
        let use_pool = u.arbitrary::<bool>().unwrap_or(true);
        if use_pool {
            mdlpool::mdl_handlers::install(&mdlpool::driver::default_pool_config())
                .expect("pool install");
        }
        Run {
            sim,
            handlers: mdlpool::filter::module::handler_pair(!use_pool),
            use_pool,
        }
    }

    /// Uninstalls the pool (it must report no leak) and ends the simulation (no finding allowed).
    pub fn end(self) {
        if self.use_pool {
            // SAFETY: every handler call of this run has returned; no module exists.
            let report = unsafe { mdlpool::mdl_handlers::uninstall() }.expect("pool installed");
            assert!(report.is_clean(), "pool leak report: {report:?}");
        }
        self.sim.finish();
    }
}
