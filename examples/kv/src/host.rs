//! The KV service as a [`HostedService`] for the `dataplane` binary: each core runs the
//! in-process [`KvServer`] (generated firewall → session tracker chain in front of the
//! shared store), exactly as `kv-server` does, or — with `[host.apps]` — the same chain
//! alone ([`KvChain`]) in front of attached `kv-server --attach` processes; reloads swap
//! the firewall rules.
//!
//! This is the glue only: the host process itself lives in `dataplane::host`.

use std::sync::Arc;

use dataplane::anf::{ElementCounters, InitCtx};
use dataplane::config::Config;
use dataplane::engine::{tables_from_config, EngineSpec};
use dataplane::host::HostedService;

use crate::attach::KvChain;
use crate::kv;
use crate::server::{KvServer, ServerStats, Store};

/// The KV service, hosted: one store and one set of element-shared state for all cores.
#[derive(Default)]
pub struct KvHosted {
    shared: kv::ServerShared,
    store: Store,
}

impl KvHosted {
    pub fn new() -> Self {
        Self::default()
    }

    /// Core `core`'s generated server chain.
    fn pipeline(&self, core: usize, tables: &kv::Tables) -> kv::ServerPipeline {
        let init = InitCtx {
            now: 0,
            seed: 0x6b76 ^ core as u64,
        };
        kv::ServerPipeline::new(&self.shared, tables, &init)
    }

    /// The store every core serves (to inspect it in tests).
    pub fn store(&self) -> Store {
        Arc::clone(&self.store)
    }
}

impl HostedService for KvHosted {
    type App = KvServer;
    type Tables = kv::Tables;
    type Chain = KvChain;

    fn name(&self) -> &str {
        kv::SERVICE_NAME
    }

    fn service_id(&self) -> u16 {
        kv::SERVICE_ID
    }

    fn engine_spec(&self) -> EngineSpec {
        crate::engine_spec()
    }

    fn tables(&self, cfg: &Config) -> Result<kv::Tables, String> {
        tables_from_config(&cfg.tables)
    }

    fn make_app(&self, core: usize, tables: &kv::Tables) -> KvServer {
        KvServer::new(self.pipeline(core, tables), Arc::clone(&self.store))
    }

    fn reload(app: &mut KvServer, tables: &kv::Tables) {
        app.pipeline_mut().reload(tables);
    }

    fn make_chain(&self, core: usize, tables: &kv::Tables) -> KvChain {
        KvChain::new(self.pipeline(core, tables))
    }

    fn reload_chain(chain: &mut KvChain, tables: &kv::Tables) {
        chain.pipeline_mut().reload(tables);
    }

    fn chain_elements(chain: &KvChain) -> Vec<(&'static str, ElementCounters)> {
        chain.pipeline().stats().collect()
    }

    fn elements(app: &KvServer) -> Vec<(&'static str, ElementCounters)> {
        app.pipeline().stats().collect()
    }

    fn app_counters(s: &ServerStats) -> Vec<(&'static str, u64)> {
        vec![
            ("gets", s.gets),
            ("sets", s.sets),
            ("answered", (s.gets + s.sets).saturating_sub(s.app_errors)),
            ("allowed", s.allowed),
            ("denied", s.denied),
            ("dropped", s.dropped),
            ("app_errors", s.app_errors),
            ("users", s.sessions),
            ("set_duplicates", s.set_duplicates),
            ("set_out_of_order", s.set_out_of_order),
        ]
    }
}
