//! The host dataplane process: `dataplane run` owns the port and polling cores and
//! serves a [`HostedService`]; `dataplane stats` and `dataplane reload` talk to it over
//! its control socket; a Prometheus text endpoint and `--pcap` capture are optional.
//!
//! - [`service`]: the [`HostedService`] trait a service implements to be hosted;
//! - [`core_app`]: [`HostApp`], the per-core wrapper (table reloads, latency histogram);
//! - [`report`]: [`StatsReport`], counters merged across cores (table, JSON, Prometheus);
//! - [`control`]: the control-socket protocol (requests, replies, client and server);
//! - [`metrics`]: the minimal HTTP server of the Prometheus endpoint;
//! - [`run`]: [`Host`], starting the engine and the control loop; signals;
//! - [`cli`]: the `dataplane` command line ([`cli::main`]).
//!
//! ```text
//! dataplane run --config server.toml [--pcap run.pcap] [--json]   # until SIGINT/SIGTERM
//! dataplane stats [--json] --config server.toml    # or --control /run/flatrpc/x.sock
//! dataplane reload --config server.toml            # or: kill -HUP <pid>
//! ```
//!
//! with, in the config, `[host] control = "/run/flatrpc/dataplane.sock"` (the default)
//! and optionally `prometheus = "127.0.0.1:9464"` (loopback only; `GET /metrics`).
//! A reload re-reads the file the instance was started with; only `[tables]` apply.
//!
//! The generated services live in other crates: this module is generic over them and
//! must not name one.

pub mod cli;
pub mod control;
pub mod core_app;
pub mod metrics;
pub mod report;
pub mod run;
pub mod service;

pub use core_app::{CoreApp, HostApp, HostCoreStats};
pub use report::{AppsReport, StatsReport};
pub use run::Host;
pub use service::HostedService;

/// The control socket when the config names none.
pub const DEFAULT_CONTROL: &str = "/run/flatrpc/dataplane.sock";

/// After a reply was written and our side shut down: reads (bounded, with the stream's
/// read timeout) until the peer closes, so unread input does not reset the connection
/// and destroy the reply before the peer has read it.
fn drain_until_closed(s: &mut impl std::io::Read, buf: &mut [u8]) {
    let mut drained = 0;
    while drained < 64 * 1024 {
        match s.read(buf) {
            Ok(0) | Err(_) => break,
            Ok(got) => drained += got,
        }
    }
}
