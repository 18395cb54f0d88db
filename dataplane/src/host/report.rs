//! [`StatsReport`]: what `dataplane stats` shows, built on the control thread from the
//! cores' published snapshots (histograms merged there), serialised as JSON over the
//! control socket, printed as a table, and exposed in Prometheus text format.
//!
//! It must not reach into a running core: it reads snapshots only.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::engine::{App, CoreSnapshot};
use crate::stats::pcap::CaptureStats;
use crate::stats::prometheus::{Exposition, FormatError, MetricKind};
use crate::stats::{LatencyHistogram, LatencySummary};

use super::core_app::HostCoreStats;
use super::service::HostedService;

/// One element's verdicts (per core, or summed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElementReport {
    pub element: String,
    pub forwarded: u64,
    pub dropped: u64,
    pub replied: u64,
}

/// One core's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreReport {
    pub core: usize,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Frames or packets dropped, by `layer.reason`.
    pub drops: BTreeMap<String, u64>,
    pub requests_delivered: u64,
    pub retransmissions: u64,
    pub duplicate_requests: u64,
    pub sessions_opened: u64,
    pub sessions_closed: u64,
    /// State evicted for lack of room, by table.
    pub evictions: BTreeMap<String, u64>,
    pub elements: Vec<ElementReport>,
    /// The application's counters (e.g. `answered`, `denied`).
    pub app: BTreeMap<String, u64>,
    pub latency: LatencySummary,
    pub reloads: u64,
    pub generation: u64,
}

/// The whole instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    pub service: String,
    pub uptime_s: f64,
    /// Reloads accepted by the control thread (each one sent to every core).
    pub reloads: u64,
    pub cores: Vec<CoreReport>,
    /// Summed over cores.
    pub totals: CoreReport,
    pub capture: Option<CaptureStats>,
    /// The dataplane's process id.
    #[serde(default)]
    pub pid: u32,
    /// Applications attached over shared memory (`[host.apps]`).
    #[serde(default)]
    pub apps: Option<AppsReport>,
}

/// The shared-memory application hub of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppsReport {
    pub socket: String,
    pub role: crate::config::AppRole,
    /// Attaches accepted and refused, detaches, channels live now.
    pub hub: crate::app::hub::HubSnapshot,
    /// Channels the cores hold now, and slots lent to applications now (summed).
    pub channels: u64,
    pub slots_lent: u64,
    /// Channels each core holds now, by core index.
    #[serde(default)]
    pub channels_per_core: Vec<u64>,
}

/// Transport counters that are drops (`rx_*` other than the traffic counts).
fn transport_drops(t: &crate::transport::TransportStats, out: &mut BTreeMap<String, u64>) {
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(t) {
        for (k, v) in m {
            let drop = (k.starts_with("rx_") && k != "rx_packets" && k != "rx_bytes")
                || k == "tx_control_dropped"
                || k == "tx_buffer_too_small";
            if !drop {
                continue;
            }
            flatten(&format!("transport.{k}"), &v, out);
        }
    }
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, u64>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        v => {
            if let Some(n) = v.as_u64() {
                out.insert(prefix.to_string(), n);
            }
        }
    }
}

/// The in-process application's counters by the service's names, or the shared-memory
/// bridge's by field name.
fn app_counters<S: HostedService>(
    st: &HostCoreStats<<S::App as App>::Stats>,
) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = st
        .app
        .as_ref()
        .map(|a| {
            S::app_counters(a)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        })
        .unwrap_or_default();
    if let Some(b) = &st.bridge {
        if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(b) {
            // Gauges are reported in `AppsReport`; the rest are counters.
            for (k, v) in m
                .into_iter()
                .filter(|(k, _)| k != "channels" && k != "slots_lent")
            {
                if let Some(n) = v.as_u64() {
                    out.insert(k, n);
                }
            }
        }
    }
    out
}

impl CoreReport {
    fn from_snapshot<S: HostedService>(
        c: &CoreSnapshot<HostCoreStats<<S::App as App>::Stats>>,
        latency: Option<&LatencyHistogram>,
    ) -> CoreReport {
        let mut drops = BTreeMap::new();
        if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(c.net) {
            for (k, v) in m {
                if matches!(
                    k.as_str(),
                    "arp_replies_sent" | "arp_requests_sent" | "neighbor_evictions"
                ) {
                    continue;
                }
                flatten(&format!("net.{k}"), &v, &mut drops);
            }
        }
        transport_drops(&c.transport, &mut drops);
        drops.insert("port.rx_dropped".into(), c.port.rx_dropped);
        drops.insert("port.tx_dropped".into(), c.port.tx_dropped + c.tx_dropped);
        drops.insert("port.rx_errors".into(), c.port.rx_errors);
        drops.insert("port.tx_errors".into(), c.port.tx_errors);
        let t = &c.transport;
        let evictions = BTreeMap::from([
            ("neighbor".to_string(), c.net.neighbor_evictions),
            ("embryonic_session".to_string(), t.embryonic_evicted),
            (
                "unreliable_reassembly".to_string(),
                t.unreliable_reassembly_evicted,
            ),
        ]);
        CoreReport {
            core: c.core,
            rx_packets: c.port.rx_packets,
            tx_packets: c.port.tx_packets,
            rx_bytes: c.port.rx_bytes,
            tx_bytes: c.port.tx_bytes,
            drops,
            requests_delivered: t.requests_delivered,
            retransmissions: t.retransmissions,
            duplicate_requests: t.duplicate_requests,
            sessions_opened: t.sessions_opened,
            sessions_closed: t.sessions_closed + t.sessions_idle_closed,
            evictions,
            elements: c
                .app
                .elements
                .iter()
                .map(|e| ElementReport {
                    element: e.element.to_string(),
                    forwarded: e.forwarded,
                    dropped: e.dropped,
                    replied: e.replied,
                })
                .collect(),
            app: app_counters::<S>(&c.app),
            latency: latency.map(LatencyHistogram::summary).unwrap_or_default(),
            reloads: c.app.reloads,
            generation: c.app.generation,
        }
    }

    fn add(&mut self, o: &CoreReport) {
        self.rx_packets += o.rx_packets;
        self.tx_packets += o.tx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_bytes += o.tx_bytes;
        for (k, v) in &o.drops {
            *self.drops.entry(k.clone()).or_default() += v;
        }
        self.requests_delivered += o.requests_delivered;
        self.retransmissions += o.retransmissions;
        self.duplicate_requests += o.duplicate_requests;
        self.sessions_opened += o.sessions_opened;
        self.sessions_closed += o.sessions_closed;
        for (k, v) in &o.evictions {
            *self.evictions.entry(k.clone()).or_default() += v;
        }
        for e in &o.elements {
            match self.elements.iter_mut().find(|m| m.element == e.element) {
                Some(m) => {
                    m.forwarded += e.forwarded;
                    m.dropped += e.dropped;
                    m.replied += e.replied;
                }
                None => self.elements.push(e.clone()),
            }
        }
        for (k, v) in &o.app {
            *self.app.entry(k.clone()).or_default() += v;
        }
        self.reloads = self.reloads.min(o.reloads);
        self.generation = self.generation.min(o.generation);
    }
}

impl StatsReport {
    /// Builds the report from every core's latest snapshot and latency histogram
    /// (`latency[i]` of core index `i`); the histograms are merged here, on the caller's
    /// (control) thread.
    pub fn build<S: HostedService>(
        service: &str,
        uptime_s: f64,
        reloads: u64,
        snaps: &[CoreSnapshot<HostCoreStats<<S::App as App>::Stats>>],
        latency: &[LatencyHistogram],
        capture: Option<CaptureStats>,
    ) -> StatsReport {
        let cores: Vec<CoreReport> = snaps
            .iter()
            .map(|c| CoreReport::from_snapshot::<S>(c, latency.get(c.core)))
            .collect();
        let mut totals = CoreReport {
            core: cores.len(),
            reloads: u64::MAX,
            generation: u64::MAX,
            ..CoreReport::default()
        };
        for c in &cores {
            totals.add(c);
        }
        if cores.is_empty() {
            totals.reloads = 0;
            totals.generation = 0;
        }
        let mut merged = LatencyHistogram::new();
        for h in latency {
            merged.merge(h);
        }
        totals.latency = merged.summary();
        StatsReport {
            service: service.to_string(),
            uptime_s,
            reloads,
            cores,
            totals,
            capture,
            pid: std::process::id(),
            apps: None,
        }
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{}: up {:.1} s, {} core(s), {} reload(s)",
            self.service,
            self.uptime_s,
            self.cores.len(),
            self.reloads
        );
        let _ = writeln!(
            o,
            "{:<6} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
            "core",
            "rx",
            "tx",
            "rpcs",
            "drops",
            "retrans",
            "sess",
            "evict",
            "p50_us",
            "p99_us",
            "max_us"
        );
        let row = |o: &mut String, name: &str, c: &CoreReport| {
            let _ = writeln!(
                o,
                "{:<6} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9.1} {:>9.1} {:>9.1}",
                name,
                c.rx_packets,
                c.tx_packets,
                c.requests_delivered,
                c.drops.values().sum::<u64>(),
                c.retransmissions,
                c.sessions_opened,
                c.evictions.values().sum::<u64>(),
                c.latency.p50_ns as f64 / 1e3,
                c.latency.p99_ns as f64 / 1e3,
                c.latency.max_ns as f64 / 1e3,
            );
        };
        for c in &self.cores {
            row(&mut o, &c.core.to_string(), c);
        }
        row(&mut o, "total", &self.totals);
        let _ = writeln!(
            o,
            "{:<18} {:>10} {:>10} {:>10}",
            "element", "forwarded", "dropped", "replied"
        );
        for e in &self.totals.elements {
            let _ = writeln!(
                o,
                "{:<18} {:>10} {:>10} {:>10}",
                e.element, e.forwarded, e.dropped, e.replied
            );
        }
        let app: Vec<String> = self
            .totals
            .app
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(o, "app: {}", app.join(", "));
        let drops: Vec<String> = self
            .totals
            .drops
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            o,
            "drops: {}",
            if drops.is_empty() {
                "none".to_string()
            } else {
                drops.join(", ")
            }
        );
        if let Some(c) = self.capture {
            let _ = writeln!(o, "pcap: written {} skipped {}", c.written, c.skipped);
        }
        if let Some(a) = &self.apps {
            let _ = writeln!(
                o,
                "apps ({:?}, {}): live {}, attached {}, refused {}, detached {}; slots lent {}",
                a.role,
                a.socket,
                a.hub.live,
                a.hub.attached,
                a.hub.refused,
                a.hub.detached,
                a.slots_lent
            );
        }
        o
    }

    /// The Prometheus text exposition of this report.
    pub fn prometheus(&self) -> Result<String, FormatError> {
        use MetricKind::{Counter, Gauge};
        let mut e = Exposition::new();
        type Field = fn(&CoreReport) -> u64;
        let per_core: [(&str, &str, Field); 9] = [
            ("flatrpc_rx_packets_total", "Frames received.", |c| {
                c.rx_packets
            }),
            ("flatrpc_tx_packets_total", "Frames sent.", |c| c.tx_packets),
            ("flatrpc_rx_bytes_total", "Bytes received.", |c| c.rx_bytes),
            ("flatrpc_tx_bytes_total", "Bytes sent.", |c| c.tx_bytes),
            (
                "flatrpc_requests_delivered_total",
                "Requests the transport handed to the application.",
                |c| c.requests_delivered,
            ),
            (
                "flatrpc_retransmissions_total",
                "Fragments and probes sent again.",
                |c| c.retransmissions,
            ),
            (
                "flatrpc_duplicate_requests_total",
                "Duplicate requests answered from the response cache.",
                |c| c.duplicate_requests,
            ),
            ("flatrpc_sessions_opened_total", "Sessions opened.", |c| {
                c.sessions_opened
            }),
            ("flatrpc_sessions_closed_total", "Sessions closed.", |c| {
                c.sessions_closed
            }),
        ];
        for (name, help, f) in per_core {
            e.family(name, Counter, help)?;
            for c in &self.cores {
                e.sample(name, &[("core", &c.core.to_string())], f(c) as f64)?;
            }
        }
        e.family(
            "flatrpc_drops_total",
            Counter,
            "Frames or packets dropped, by reason.",
        )?;
        for c in &self.cores {
            for (reason, v) in &c.drops {
                e.sample(
                    "flatrpc_drops_total",
                    &[("core", &c.core.to_string()), ("reason", reason)],
                    *v as f64,
                )?;
            }
        }
        e.family(
            "flatrpc_evictions_total",
            Counter,
            "State evicted for lack of room, by table.",
        )?;
        for c in &self.cores {
            for (table, v) in &c.evictions {
                e.sample(
                    "flatrpc_evictions_total",
                    &[("core", &c.core.to_string()), ("table", table)],
                    *v as f64,
                )?;
            }
        }
        e.family(
            "flatrpc_element_verdicts_total",
            Counter,
            "ANF element verdicts (forward, drop, reply), per element.",
        )?;
        for c in &self.cores {
            for el in &c.elements {
                for (verdict, v) in [
                    ("forward", el.forwarded),
                    ("drop", el.dropped),
                    ("reply", el.replied),
                ] {
                    e.sample(
                        "flatrpc_element_verdicts_total",
                        &[
                            ("core", &c.core.to_string()),
                            ("element", &el.element),
                            ("verdict", verdict),
                        ],
                        v as f64,
                    )?;
                }
            }
        }
        e.family(
            "flatrpc_app_total",
            Counter,
            "Application counters of the hosted service, by name.",
        )?;
        for c in &self.cores {
            for (name, v) in &c.app {
                e.sample(
                    "flatrpc_app_total",
                    &[("core", &c.core.to_string()), ("counter", name)],
                    *v as f64,
                )?;
            }
        }
        e.family(
            "flatrpc_request_latency_seconds",
            Gauge,
            "Request arrival to response handed to the transport, by quantile.",
        )?;
        let lat = |e: &mut Exposition, core: &str, l: &LatencySummary| {
            for (q, v) in [
                ("0.5", l.p50_ns),
                ("0.9", l.p90_ns),
                ("0.99", l.p99_ns),
                ("0.999", l.p999_ns),
                ("1", l.max_ns),
            ] {
                e.sample(
                    "flatrpc_request_latency_seconds",
                    &[("core", core), ("quantile", q)],
                    v as f64 / 1e9,
                )?;
            }
            Ok::<(), FormatError>(())
        };
        for c in &self.cores {
            lat(&mut e, &c.core.to_string(), &c.latency)?;
        }
        lat(&mut e, "all", &self.totals.latency)?;
        e.family("flatrpc_request_latency_count", Counter, "Requests timed.")?;
        for c in &self.cores {
            e.sample(
                "flatrpc_request_latency_count",
                &[("core", &c.core.to_string())],
                c.latency.count as f64,
            )?;
        }
        e.family("flatrpc_reloads_total", Counter, "Table reloads accepted.")?;
        e.sample("flatrpc_reloads_total", &[], self.reloads as f64)?;
        if let Some(c) = self.capture {
            e.family(
                "flatrpc_pcap_frames_total",
                Counter,
                "Frames written to the pcap file, or skipped (queue full).",
            )?;
            e.sample(
                "flatrpc_pcap_frames_total",
                &[("outcome", "written")],
                c.written as f64,
            )?;
            e.sample(
                "flatrpc_pcap_frames_total",
                &[("outcome", "skipped")],
                c.skipped as f64,
            )?;
        }
        if let Some(a) = &self.apps {
            e.family(
                "flatrpc_app_attaches_total",
                Counter,
                "Application attaches over shared memory, by outcome.",
            )?;
            for (outcome, v) in [
                ("attached", a.hub.attached),
                ("refused", a.hub.refused),
                ("detached", a.hub.detached),
            ] {
                e.sample(
                    "flatrpc_app_attaches_total",
                    &[("outcome", outcome)],
                    v as f64,
                )?;
            }
            e.family(
                "flatrpc_app_channels",
                Gauge,
                "Attached application channels.",
            )?;
            e.sample("flatrpc_app_channels", &[], a.hub.live as f64)?;
            e.family(
                "flatrpc_app_slots_lent",
                Gauge,
                "Request slots held by attached applications.",
            )?;
            e.sample("flatrpc_app_slots_lent", &[], a.slots_lent as f64)?;
        }
        Ok(e.finish())
    }
}
