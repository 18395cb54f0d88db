//! The seed's KV service, compiled by specgen from `kv.spec`: `kv::Method`,
//! `kv::transport`, message views/codecs, the `Firewall` and `SessionTracker`
//! elements, `kv::ServerPipeline`, the `kv::KvService` trait with `kv::dispatch`, and
//! `kv::client` stubs. See `specgen` for what each item is.

include!(concat!(env!("OUT_DIR"), "/kv.rs"));
