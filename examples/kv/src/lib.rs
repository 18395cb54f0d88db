//! The seed's KV service, compiled by specgen from `kv.spec`: `kv::Method`,
//! `kv::transport`, message views/codecs, the `Firewall` and `SessionTracker`
//! elements, `kv::ServerPipeline`, the `kv::KvService` trait with `kv::dispatch`, and
//! `kv::client` stubs. See `specgen` for what each item is.

include!(concat!(env!("OUT_DIR"), "/kv.rs"));

pub mod attach;
pub mod client;
pub mod host;
pub mod replay;
pub mod server;

/// The transport class of every KV method, from the spec's transport table.
pub fn class_table() -> dataplane::transport::ClassTable {
    let mut t = dataplane::transport::ClassTable::new();
    for m in kv::Method::ALL {
        if let Some(c) = kv::transport(m.id()) {
            t.set(kv::SERVICE_ID, m.id(), c);
        }
    }
    t
}

/// The engine settings every KV binary uses: default transport, the KV class table.
pub fn engine_spec() -> dataplane::engine::EngineSpec {
    dataplane::engine::EngineSpec {
        transport: dataplane::transport::TransportConfig::default(),
        classes: class_table(),
    }
}
