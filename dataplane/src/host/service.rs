//! What a service provides to be hosted by `dataplane run`: the application each core
//! runs in-process (a generated pipeline in front of handlers), the ANF chain alone (run
//! by the dataplane in front of applications attached over shared memory), its ANF
//! tables and their reload, and names for its counters. Implementations live with the
//! generated code.

use crate::anf::ElementCounters;
use crate::app::ChainHook;
use crate::config::Config;
use crate::engine::{App, EngineSpec};

/// A service the host process can run on its cores.
pub trait HostedService: Send + Sync + 'static {
    /// The application on each core.
    type App: App + 'static;
    /// The ANF tables parsed from a config (`[tables.*]`), sent to every core on reload.
    type Tables: Send + Sync + 'static;
    /// The service's server-side ANF chain alone, which the dataplane runs in front of
    /// attached server applications (`[host.apps] role = "server"`).
    type Chain: ChainHook + 'static;

    /// The service's name, for logs and reports.
    fn name(&self) -> &str;

    /// The service id on the wire (what attached server applications serve).
    fn service_id(&self) -> u16;

    /// Transport settings and the method class table.
    fn engine_spec(&self) -> EngineSpec;

    /// Parses the config's tables; an error names the offending key.
    fn tables(&self, cfg: &Config) -> Result<Self::Tables, String>;

    /// Core `core`'s application, starting with `tables`. Called on the launching thread.
    fn make_app(&self, core: usize, tables: &Self::Tables) -> Self::App;

    /// Swaps the application's tables. Runs on the core between bursts: no blocking.
    fn reload(app: &mut Self::App, tables: &Self::Tables);

    /// Core `core`'s chain for attached server applications, starting with `tables`.
    fn make_chain(&self, core: usize, tables: &Self::Tables) -> Self::Chain;

    /// Swaps the chain's tables (on the core, between bursts).
    fn reload_chain(chain: &mut Self::Chain, tables: &Self::Tables);

    /// Verdict counters of each element of the chain, in chain order.
    fn chain_elements(chain: &Self::Chain) -> Vec<(&'static str, ElementCounters)>;

    /// Verdict counters of each element of the app's ANF chain, in chain order.
    fn elements(app: &Self::App) -> Vec<(&'static str, ElementCounters)>;

    /// The application's counters by name (e.g. `answered`, `denied`), for reports.
    fn app_counters(stats: &<Self::App as App>::Stats) -> Vec<(&'static str, u64)>;
}
