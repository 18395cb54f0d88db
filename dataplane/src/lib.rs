//! flatrpc dataplane runtime.
//!
//! One folder per concern:
//! - [`port`]: the `Port` trait and its backends (DPDK, AF_PACKET, TAP, sim);
//! - [`wire`]: checked views over Ethernet, ARP, IPv4, UDP and the RPC header;
//! - [`transport`]: sans-IO per-RPC reliability (sessions, retransmit, dedup, reorder, fragments);
//! - [`engine`]: the per-core busy-poll loop;
//! - [`app`]: application channels;
//! - [`stats`]: counters and histograms;
//! - [`config`]: TOML configuration;
//! - [`host`]: the host process (`dataplane run/stats/reload`) around a hosted service.
//!
//! `unsafe` lives only in `dpdk` (the thin safe layer over `dpdk-sys`) and in the
//! `port::afpacket` / `port::tap` backends, each block with a `// SAFETY:` line.

pub mod anf;
pub mod app;
pub mod config;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod engine;
pub mod forward;
pub mod host;
pub mod impair;
pub mod port;
pub mod stats;
pub mod transport;
pub mod wire;
