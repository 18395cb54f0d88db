//! Dataplane configuration, read from TOML with serde.
//!
//! ```toml
//! cores = [1]                      # polling cores, one queue each
//!
//! [port]
//! backend = "afpacket"             # "dpdk" | "afpacket" | "tap" | "pcap"
//! iface = "fr-va"                  # afpacket / tap
//! # eal = "--no-huge -m 256 --no-pci --vdev=net_af_packet0,iface=fr-va"   # dpdk
//! # pcap = "requests.pcap"         # pcap: replayed round and round, sent frames dropped
//! # rounds = 10                    # pcap: stop receiving after 10 rounds (default: never)
//!
//! [net]
//! ip = "10.77.0.1"
//! udp_port = 7000
//! # mac = "02:00:00:00:00:01"      # default: the port's own
//! neighbors = [{ ip = "10.77.0.2", mac = "02:00:00:00:00:02" }]   # static ARP entries
//!
//! [transport]                      # every key optional
//! rto_us = 500
//! # tag_seed = 1                   # deterministic session ids (pcap replay only)
//!
//! [tables.firewall]                # state of config-loaded ANF tables, per element
//! rules = { alice = "allow", bob = "deny" }
//!
//! [client]                         # client applications only
//! server = "10.77.0.2:7000"
//!
//! [host]                           # `dataplane run` only; every key optional
//! control = "/run/flatrpc/dataplane.sock"   # control socket (stats, reload)
//! prometheus = "127.0.0.1:9464"    # Prometheus text endpoint (loopback only)
//! ```
//!
//! Unknown keys and bad values are errors that name the key (and its line). This
//! module validates shape and values; it does not open ports or know the service.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::Deserialize;

use crate::wire::MacAddr;

/// A configuration that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        path: String,
        key: &'static str,
        message: String,
    },
}

/// Which packet backend the dataplane drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Dpdk,
    Afpacket,
    Tap,
    /// Replays a recording without end, as DPDK's `net_pcap,infinite_rx=1`, and drops
    /// what is sent (see `port::replay`): the pipeline run without a device.
    Pcap,
}

/// The AF_PACKET receive ring (see `port::afpacket::RxRing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RxRingKind {
    /// TPACKET_V2 frame ring: each frame handed over at once (µs latency).
    V2,
    /// TPACKET_V3 block ring: best throughput, but up to 1 ms wait at low load.
    V3,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub backend: BackendKind,
    /// Interface name (afpacket, tap).
    pub iface: Option<String>,
    /// EAL arguments (dpdk), one string split on whitespace.
    pub eal: Option<String>,
    /// DPDK port id or device name to use (default: the first port).
    pub device: Option<String>,
    /// afpacket: the receive ring, "v2" (default for RPCs: latency) or "v3".
    pub rx_ring: Option<RxRingKind>,
    /// pcap: the Ethernet pcap replayed.
    pub pcap: Option<std::path::PathBuf>,
    /// pcap: rounds of the recording to replay (default: without end).
    pub rounds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neighbor {
    pub ip: Ipv4Addr,
    #[serde(deserialize_with = "de_mac")]
    pub mac: MacAddr,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    pub ip: Ipv4Addr,
    #[serde(default = "default_udp_port")]
    pub udp_port: u16,
    #[serde(default, deserialize_with = "de_opt_mac")]
    pub mac: Option<MacAddr>,
    #[serde(default)]
    pub neighbors: Vec<Neighbor>,
    /// UDP checksum of sent frames: "full" (default) or "zero" (none, RFC 768).
    /// Received zero checksums are accepted either way.
    #[serde(default)]
    pub udp_checksum: UdpChecksumMode,
}

/// `[net] udp_checksum`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UdpChecksumMode {
    #[default]
    Full,
    Zero,
}

fn default_udp_port() -> u16 {
    7000
}

/// Transport tuning; absent keys take the transport's defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportConfig {
    /// Initial retransmission timeout, microseconds.
    pub rto_us: Option<u64>,
    /// Retransmissions before a reliable RPC fails.
    pub max_retries: Option<u32>,
    /// Outstanding RPCs per session (credits).
    pub window: Option<u32>,
    /// Largest message, bytes.
    pub max_message: Option<usize>,
    /// Timeout of an unreliable RPC, microseconds.
    pub unreliable_timeout_us: Option<u64>,
    /// Sessions kept at most (per core).
    pub max_sessions: Option<usize>,
    /// Seed of the session-id tag generator, making session ids deterministic (for
    /// replaying a recorded pcap against a fresh server; never in production: ids
    /// become predictable).
    pub tag_seed: Option<u64>,
}

/// Where a client sends its RPCs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The server's IPv4 address and UDP port, e.g. "10.77.0.2:7000".
    pub server: std::net::SocketAddrV4,
}

/// The host process (`dataplane run`): where it listens for control and metrics.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// The control Unix socket (default `/run/flatrpc/dataplane.sock`).
    pub control: Option<std::path::PathBuf>,
    /// A loopback TCP address serving Prometheus text exposition (none by default).
    pub prometheus: Option<std::net::SocketAddr>,
    /// Applications attached over shared memory instead of in-process handlers.
    pub apps: Option<AppsConfig>,
}

/// `[host.apps]`: application processes attach to the dataplane over shared memory
/// through `socket`. With `role = "server"` the service's requests run the ANF chain on
/// the dataplane's cores and are served by attached server applications; with
/// `role = "client"` attached client applications' calls go to `[client] server`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppsConfig {
    /// The Unix socket applications attach through.
    pub socket: std::path::PathBuf,
    pub role: AppRole,
    /// Besides the dataplane's own uid and root, these uids / gids may attach.
    #[serde(default)]
    pub allow_uids: Vec<u32>,
    #[serde(default)]
    pub allow_gids: Vec<u32>,
}

/// What attached applications do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppRole {
    /// They serve the service's requests.
    Server,
    /// They call a remote server.
    Client,
}

/// How a polling core spends a pass that found no work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdlePolicy {
    /// Poll again at once (a dedicated core: the lowest latency).
    #[default]
    Spin,
    /// After a run of empty passes, `sched_yield` between passes, so processes sharing
    /// the core (attached applications on a machine with few cores) get it promptly.
    Yield,
}

/// `[engine]`: polling-core behaviour.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    #[serde(default)]
    pub idle: IdlePolicy,
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub cores: Vec<usize>,
    pub port: PortConfig,
    pub net: NetConfig,
    #[serde(default)]
    pub transport: TransportConfig,
    /// Initial state of config-loaded ANF tables, by element name; each value is given
    /// to the generated service's `Tables` deserialiser.
    #[serde(default)]
    pub tables: BTreeMap<String, toml::Value>,
    /// For client applications: where the server is.
    pub client: Option<ClientConfig>,
    /// For the host process: control socket and metrics endpoint.
    #[serde(default)]
    pub host: HostConfig,
    #[serde(default)]
    pub engine: EngineConfig,
}

fn de_mac<'de, D: serde::Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn de_opt_mac<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<MacAddr>, D::Error> {
    de_mac(d).map(Some)
}

impl TransportConfig {
    /// `base` with the keys this config sets.
    pub fn apply(
        &self,
        mut base: crate::transport::TransportConfig,
    ) -> crate::transport::TransportConfig {
        if let Some(v) = self.rto_us {
            base.rto_initial_ns = v.saturating_mul(1000);
            base.rto_min_ns = base.rto_min_ns.min(base.rto_initial_ns);
        }
        if let Some(v) = self.max_retries {
            base.max_retries = v;
        }
        if let Some(v) = self.window {
            base.window = v.min(255) as u8;
        }
        if let Some(v) = self.max_message {
            base.max_message_size = v;
        }
        if let Some(v) = self.unreliable_timeout_us {
            base.unreliable_timeout_ns = v.saturating_mul(1000);
        }
        if let Some(v) = self.max_sessions {
            base.max_sessions = v;
        }
        if let Some(v) = self.tag_seed {
            base.tag_seed = Some(v);
        }
        base
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| ConfigError::Invalid {
            path: origin.to_string(),
            key,
            message,
        };
        if self.cores.is_empty() {
            return Err(bad("cores", "needs at least one core".into()));
        }
        let mut seen = self.cores.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != self.cores.len() {
            return Err(bad("cores", "lists a core twice".into()));
        }
        match self.port.backend {
            BackendKind::Dpdk => {
                if self.port.eal.as_deref().is_none_or(|e| e.trim().is_empty()) {
                    return Err(bad(
                        "port.eal",
                        "the dpdk backend needs EAL arguments".into(),
                    ));
                }
                if self.port.rx_ring.is_some() {
                    return Err(bad(
                        "port.rx_ring",
                        "only applies to the afpacket backend".into(),
                    ));
                }
                if self.port.iface.is_some() {
                    return Err(bad(
                        "port.iface",
                        "not used by the dpdk backend: name the device in port.eal (e.g. --vdev=net_af_packet0,iface=...)".into(),
                    ));
                }
            }
            BackendKind::Pcap => {
                if self
                    .port
                    .pcap
                    .as_deref()
                    .is_none_or(|p| p.as_os_str().is_empty())
                {
                    return Err(bad(
                        "port.pcap",
                        "the pcap backend needs a pcap file".into(),
                    ));
                }
                if self.port.rounds == Some(0) {
                    return Err(bad("port.rounds", "must be at least 1".into()));
                }
                if self.cores.len() != 1 {
                    return Err(bad(
                        "cores",
                        "the pcap backend has one queue: give one core".into(),
                    ));
                }
                let stray = [
                    ("port.iface", self.port.iface.is_some()),
                    ("port.eal", self.port.eal.is_some()),
                    ("port.device", self.port.device.is_some()),
                    ("port.rx_ring", self.port.rx_ring.is_some()),
                ];
                if let Some(&(key, _)) = stray.iter().find(|(_, set)| *set) {
                    return Err(bad(key, "not used by the pcap backend".into()));
                }
            }
            BackendKind::Afpacket | BackendKind::Tap => {
                match self.port.iface.as_deref() {
                    None | Some("") => {
                        return Err(bad(
                            "port.iface",
                            "this backend needs an interface name".into(),
                        ))
                    }
                    Some(i) if i.len() > 15 => {
                        return Err(bad("port.iface", format!("{i:?} is longer than 15 bytes")))
                    }
                    _ => {}
                }
                if self.port.rx_ring.is_some() && self.port.backend == BackendKind::Tap {
                    return Err(bad(
                        "port.rx_ring",
                        "only applies to the afpacket backend".into(),
                    ));
                }
                if self.port.eal.is_some() || self.port.device.is_some() {
                    return Err(bad(
                        "port.eal",
                        "EAL arguments and device only apply to the dpdk backend".into(),
                    ));
                }
            }
        }
        if self.port.backend != BackendKind::Pcap {
            if self.port.pcap.is_some() {
                return Err(bad("port.pcap", "only applies to the pcap backend".into()));
            }
            if self.port.rounds.is_some() {
                return Err(bad(
                    "port.rounds",
                    "only applies to the pcap backend".into(),
                ));
            }
        }
        if self.net.ip.is_unspecified() || self.net.ip.is_broadcast() || self.net.ip.is_multicast()
        {
            return Err(bad(
                "net.ip",
                format!("{} is not a unicast address", self.net.ip),
            ));
        }
        if self.net.udp_port == 0 {
            return Err(bad("net.udp_port", "must not be 0".into()));
        }
        if let Some(m) = self.net.mac {
            if m.is_multicast() || m == MacAddr::ZERO {
                return Err(bad("net.mac", format!("{m} is not a unicast address")));
            }
        }
        for n in &self.net.neighbors {
            if n.mac.is_multicast() || n.mac == MacAddr::ZERO {
                return Err(bad(
                    "net.neighbors.mac",
                    format!("{} is not a unicast address", n.mac),
                ));
            }
        }
        if let Some(a) = self.host.prometheus {
            if !a.ip().is_loopback() {
                return Err(bad(
                    "host.prometheus",
                    format!("{a} is not a loopback address (the endpoint is unauthenticated)"),
                ));
            }
        }
        if self
            .host
            .control
            .as_deref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(bad("host.control", "must not be empty".into()));
        }
        if let Some(a) = &self.host.apps {
            if a.socket.as_os_str().is_empty() {
                return Err(bad("host.apps.socket", "must not be empty".into()));
            }
            if a.role == AppRole::Client && self.client.is_none() {
                return Err(bad(
                    "host.apps.role",
                    "\"client\" needs a [client] section naming the server".into(),
                ));
            }
        }
        let t = &self.transport;
        let positive = [
            ("transport.rto_us", t.rto_us.map(|v| v as u128)),
            ("transport.window", t.window.map(|v| v as u128)),
            ("transport.max_message", t.max_message.map(|v| v as u128)),
            (
                "transport.unreliable_timeout_us",
                t.unreliable_timeout_us.map(|v| v as u128),
            ),
            ("transport.max_sessions", t.max_sessions.map(|v| v as u128)),
        ];
        for (key, v) in positive {
            if v == Some(0) {
                return Err(bad(key, "must be greater than 0".into()));
            }
        }
        Ok(())
    }

    /// EAL arguments split on whitespace.
    pub fn eal_args(&self) -> Vec<String> {
        self.port
            .eal
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
cores = [1]
[port]
backend = "afpacket"
iface = "fr-va"
[net]
ip = "10.77.0.1"
neighbors = [{ ip = "10.77.0.2", mac = "02:00:00:00:00:02" }]
[transport]
rto_us = 500
[tables.firewall]
rules = { alice = "allow" }
"#;

    fn err(text: &str) -> String {
        Config::parse(text, "t.toml").unwrap_err().to_string()
    }

    #[test]
    fn a_good_config_parses() {
        let c = Config::parse(GOOD, "t.toml").unwrap();
        assert_eq!(c.port.backend, BackendKind::Afpacket);
        assert_eq!(c.net.udp_port, 7000);
        assert_eq!(c.net.neighbors[0].mac.to_string(), "02:00:00:00:00:02");
        assert_eq!(c.transport.rto_us, Some(500));
        assert!(c.tables.contains_key("firewall"));
        assert_eq!(c.net.udp_checksum, UdpChecksumMode::Full);
        let c = Config::parse(
            &GOOD.replace("[net]", "[net]\nudp_checksum = \"zero\""),
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.net.udp_checksum, UdpChecksumMode::Zero);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = err(&GOOD.replace("rto_us = 500", "rto_ms = 500"));
        assert!(e.contains("rto_ms"), "{e}");
        let e = err(&format!("bogus = 1\n{GOOD}"));
        assert!(e.contains("bogus"), "{e}");
        let e = err(&GOOD.replace("[net]", "[net]\nipaddr = \"10.0.0.1\""));
        assert!(e.contains("ipaddr"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (GOOD.replace("cores = [1]", "cores = []"), "cores"),
            (GOOD.replace("cores = [1]", "cores = [1, 1]"), "cores"),
            (GOOD.replace("10.77.0.1", "10.77.0"), "ip"),
            (GOOD.replace("10.77.0.1", "0.0.0.0"), "net.ip"),
            (GOOD.replace("\"afpacket\"", "\"carrier\""), "backend"),
            (GOOD.replace("iface = \"fr-va\"", ""), "port.iface"),
            (
                GOOD.replace("fr-va", "a-very-long-interface-name"),
                "port.iface",
            ),
            (GOOD.replace("02:00:00:00:00:02", "02:00:00"), "mac"),
            (
                GOOD.replace("02:00:00:00:00:02", "01:00:00:00:00:02"),
                "net.neighbors.mac",
            ),
            (
                GOOD.replace("rto_us = 500", "rto_us = 0"),
                "transport.rto_us",
            ),
            (GOOD.replace("rto_us = 500", "rto_us = -5"), "rto_us"),
            (
                GOOD.replace("backend = \"afpacket\"", "backend = \"dpdk\""),
                "port.eal",
            ),
            (GOOD.replace("[net]", "[net]\nudp_port = 0"), "net.udp_port"),
            (
                GOOD.replace("iface = \"fr-va\"", "iface = \"fr-va\"\nrx_ring = \"v4\""),
                "rx_ring",
            ),
            (format!("{GOOD}\n[client]\nserver = \"10.0.0.1\""), "server"),
            ("cores = [1".to_string(), "t.toml"),
            (
                format!("{GOOD}\n[host]\nprometheus = \"0.0.0.0:9464\""),
                "host.prometheus",
            ),
            (
                format!("{GOOD}\n[host]\nprometheus = \"localhost\""),
                "prometheus",
            ),
            (format!("{GOOD}\n[host]\ncontrol = \"\""), "host.control"),
            (format!("{GOOD}\n[host]\nctl = \"/x\""), "ctl"),
            (format!("{GOOD}\n[engine]\nidle = \"sleep\""), "sleep"),
            (
                format!("{GOOD}\n[host.apps]\nsocket = \"\"\nrole = \"server\""),
                "host.apps.socket",
            ),
            (
                format!("{GOOD}\n[host.apps]\nsocket = \"/s\"\nrole = \"client\""),
                "host.apps.role",
            ),
            (
                format!("{GOOD}\n[host.apps]\nsocket = \"/s\"\nrole = \"proxy\""),
                "proxy",
            ),
            (
                format!("{GOOD}\n[host.apps]\nsocket = \"/s\"\nrole = \"server\"\nallow_uid = [1]"),
                "allow_uid",
            ),
            (
                GOOD.replace("[net]", "[net]\nudp_checksum = \"none\""),
                "udp_checksum",
            ),
        ];
        for (text, key) in cases {
            let e = err(&text);
            assert!(e.contains(key), "expected {key:?} in {e:?}");
        }
    }

    #[test]
    fn the_pcap_backend_takes_a_file_one_core_and_nothing_of_the_others() {
        let pcap = GOOD.replace(
            "backend = \"afpacket\"\niface = \"fr-va\"",
            "backend = \"pcap\"\npcap = \"req.pcap\"",
        );
        let c = Config::parse(&pcap, "t.toml").unwrap();
        assert_eq!(c.port.backend, BackendKind::Pcap);
        assert_eq!(c.port.pcap, Some("req.pcap".into()));
        assert_eq!(c.port.rounds, None);
        let c = Config::parse(&pcap.replace("[net]", "rounds = 3\n[net]"), "t.toml").unwrap();
        assert_eq!(c.port.rounds, Some(3));
        let cases = [
            (pcap.replace("pcap = \"req.pcap\"", ""), "port.pcap"),
            (pcap.replace("\"req.pcap\"", "\"\""), "port.pcap"),
            (pcap.replace("[net]", "rounds = 0\n[net]"), "port.rounds"),
            (pcap.replace("[net]", "rounds = -1\n[net]"), "rounds"),
            (pcap.replace("cores = [1]", "cores = [1, 2]"), "cores"),
            (pcap.replace("[net]", "iface = \"x\"\n[net]"), "port.iface"),
            (pcap.replace("[net]", "eal = \"-l 0\"\n[net]"), "port.eal"),
            (
                pcap.replace("[net]", "device = \"0\"\n[net]"),
                "port.device",
            ),
            (
                pcap.replace("[net]", "rx_ring = \"v3\"\n[net]"),
                "port.rx_ring",
            ),
            (
                GOOD.replace("[net]", "pcap = \"req.pcap\"\n[net]"),
                "port.pcap",
            ),
            (GOOD.replace("[net]", "rounds = 2\n[net]"), "port.rounds"),
        ];
        for (text, key) in cases {
            let e = err(&text);
            assert!(e.contains(key), "expected {key:?} in {e:?}");
        }
    }

    #[test]
    fn host_apps_and_idle_policy_parse() {
        let c = Config::parse(GOOD, "t.toml").unwrap();
        assert_eq!(c.engine.idle, IdlePolicy::Spin);
        assert!(c.host.apps.is_none());
        let text = format!(
            "{GOOD}\n[engine]\nidle = \"yield\"\n[client]\nserver = \"10.77.0.2:7000\"\n\
             [host.apps]\nsocket = \"/run/x.sock\"\nrole = \"client\"\nallow_uids = [1000]\n"
        );
        let c = Config::parse(&text, "t.toml").unwrap();
        assert_eq!(c.engine.idle, IdlePolicy::Yield);
        let a = c.host.apps.unwrap();
        assert_eq!(a.role, AppRole::Client);
        assert_eq!(a.socket, std::path::PathBuf::from("/run/x.sock"));
        assert_eq!(a.allow_uids, vec![1000]);
        assert!(a.allow_gids.is_empty());
    }

    #[test]
    fn tag_seed_reaches_the_transport_only_when_set() {
        let base = crate::transport::TransportConfig::default();
        let c = Config::parse(GOOD, "t.toml").unwrap();
        assert_eq!(c.transport.apply(base.clone()).tag_seed, None);
        let c = Config::parse(&GOOD.replace("rto_us = 500", "tag_seed = 7"), "t.toml").unwrap();
        assert_eq!(c.transport.apply(base).tag_seed, Some(7));
        let e = err(&GOOD.replace("rto_us = 500", "tag_seed = -1"));
        assert!(e.contains("tag_seed"), "{e}");
    }

    #[test]
    fn eal_arguments_split_on_whitespace() {
        let text = GOOD
            .replace("backend = \"afpacket\"", "backend = \"dpdk\"")
            .replace("iface = \"fr-va\"", "eal = \" --no-huge  -m 256 \"");
        let c = Config::parse(&text, "t.toml").unwrap();
        assert_eq!(c.eal_args(), ["--no-huge", "-m", "256"]);
    }
}
