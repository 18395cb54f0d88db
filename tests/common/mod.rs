//! Helpers shared by the integration tests that need network namespaces.
//!
//! - [`require_root`]: skip (with a printed reason) when not root, but fail under `CI`;
//! - [`NetnsPair`]: two fresh, uniquely named namespaces joined by a veth pair
//!   (`10.77.0.1/24` in a, `10.77.0.2/24` in b), torn down on drop;
//! - [`in_netns`]: run a closure on a dedicated thread that has entered a namespace
//!   (sockets and taps it opens stay in that namespace when moved to other threads);
//! - [`NetnsTriple`]: namespaces a, m, b with veth a↔m and m↔b, a and b on one subnet,
//!   for running the impairment relay in m (as `scripts/netns.sh up-impaired`).
//!
//! Names carry the process id and a per-process counter, so tests running in parallel
//! (threads or processes) never collide. Traffic stays inside these namespaces.
#![allow(dead_code)]

pub mod frames;

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};
use dataplane::wire::MacAddr;

/// Whether a test that needs root may run. Prints why it skips; panics under `CI`,
/// where skipping would hide a broken environment.
pub fn require_root(test: &str) -> bool {
    // /proc/self belongs to the process's effective uid.
    let root = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata("/proc/self").expect("/proc is mounted"),
    ) == 0;
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: needs root (network namespaces, AF_PACKET), and CI must run as root"
        );
        eprintln!("{test}: skipped, needs root (network namespaces, AF_PACKET)");
    }
    root
}

/// Runs `f` on a new thread that has joined network namespace `ns` (as made by
/// `ip netns add`), and returns its result.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    let path = format!("/var/run/netns/{ns}");
    let file = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
    std::thread::scope(|s| {
        s.spawn(move || -> Result<T> {
            enter_netns_on_this_thread(&file).with_context(|| format!("setns into {ns}"))?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("thread inside {ns} panicked"))?
    })
}

/// Moves the calling thread (only) into the network namespace `ns_file` refers to
/// (`setns(2)` through nix's safe wrapper).
fn enter_netns_on_this_thread(ns_file: &std::fs::File) -> Result<()> {
    nix::sched::setns(ns_file, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| anyhow::anyhow!("setns: {e}"))
}

/// Runs a command, failing with its stderr when it exits non-zero.
pub fn run(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("spawn {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Two namespaces `a` and `b` joined by a veth pair, removed on drop.
#[derive(Debug)]
pub struct NetnsPair {
    pub ns_a: String,
    pub ns_b: String,
    /// The veth end in `ns_a` (≤ 15 bytes).
    pub veth_a: String,
    /// The veth end in `ns_b`.
    pub veth_b: String,
    pub ip_a: Ipv4Addr,
    pub ip_b: Ipv4Addr,
    /// A prefix unique to this pair for more interface names (≤ 12 bytes).
    pub unique: String,
}

impl NetnsPair {
    /// Creates the namespaces and the veth pair, links up, IPv6 off (no router
    /// solicitations or DAD frames in the way), addresses 10.77.0.1/24 and .2/24.
    pub fn new(tag: &str) -> Result<NetnsPair> {
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Interface names: 'f' + pid (≤ 7 digits) + 'x' + n (≤ 3) + 1 letter ≤ 13 bytes.
        let unique = format!("f{pid}x{}", n % 1000);
        let mut pair = NetnsPair {
            ns_a: format!("frt-{tag}-{pid}-{n}-a"),
            ns_b: format!("frt-{tag}-{pid}-{n}-b"),
            veth_a: format!("{unique}a"),
            veth_b: format!("{unique}b"),
            ip_a: Ipv4Addr::new(10, 77, 0, 1),
            ip_b: Ipv4Addr::new(10, 77, 0, 2),
            unique,
        };
        // On failure below, drop removes whatever was made.
        let made = [pair.ns_a.clone(), pair.ns_b.clone()];
        for ns in &made {
            run("ip", &["netns", "add", ns])?;
        }
        pair.setup()
            .map_err(|e| e.context(format!("setting up {} / {}", pair.ns_a, pair.ns_b)))?;
        Ok(pair)
    }

    fn setup(&mut self) -> Result<()> {
        for ns in [&self.ns_a, &self.ns_b] {
            in_netns(ns, || {
                for f in ["all", "default"] {
                    // Absent when the kernel has no IPv6: nothing to silence then.
                    let _ =
                        std::fs::write(format!("/proc/sys/net/ipv6/conf/{f}/disable_ipv6"), "1");
                }
            })?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        run(
            "ip",
            &[
                "link",
                "add",
                &self.veth_a,
                "netns",
                &self.ns_a,
                "type",
                "veth",
                "peer",
                "name",
                &self.veth_b,
                "netns",
                &self.ns_b,
            ],
        )?;
        run(
            "ip",
            &[
                "-n",
                &self.ns_a,
                "addr",
                "add",
                "10.77.0.1/24",
                "dev",
                &self.veth_a,
            ],
        )?;
        run(
            "ip",
            &[
                "-n",
                &self.ns_b,
                "addr",
                "add",
                "10.77.0.2/24",
                "dev",
                &self.veth_b,
            ],
        )?;
        run("ip", &["-n", &self.ns_a, "link", "set", &self.veth_a, "up"])?;
        run("ip", &["-n", &self.ns_b, "link", "set", &self.veth_b, "up"])?;
        Ok(())
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Writes a sysctl under /proc/sys inside `ns`, e.g. `("net/ipv4/ip_forward", "1")`.
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{key}");
        let value = value.to_string();
        in_netns(ns, move || {
            std::fs::write(&path, value).with_context(|| format!("write {path}"))
        })?
    }

    /// The MAC address of `iface` in `ns`.
    pub fn mac_of(&self, ns: &str, iface: &str) -> Result<MacAddr> {
        let json = self.ip(ns, &["-j", "link", "show", "dev", iface])?;
        let v: serde_json::Value = serde_json::from_str(&json).context("ip -j link output")?;
        let addr = v
            .get(0)
            .and_then(|l| l.get("address"))
            .and_then(|a| a.as_str())
            .context("no address in ip -j link output")?;
        addr.parse().map_err(|e| anyhow::anyhow!("{e}"))
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the interfaces in it (both veth ends, taps).
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Three namespaces `a`, `m`, `b`: veth `veth_a` (in a) ↔ `veth_ma` (in m) and
/// `veth_mb` (in m) ↔ `veth_b` (in b); a and b share 10.77.0.0/24 (.1 in a, .2 in b)
/// but nothing joins them until a relay runs in m. Removed on drop.
///
/// The same shape as `scripts/netns.sh up-impaired`: IPv6 off everywhere, and tx
/// checksum / TSO / GSO offloads off on `veth_a` and `veth_b` (with `ethtool`), so the
/// kernel's frames cross a byte-copying relay complete and no larger than the MTU.
#[derive(Debug)]
pub struct NetnsTriple {
    pub ns_a: String,
    pub ns_m: String,
    pub ns_b: String,
    /// The veth end in `ns_a`.
    pub veth_a: String,
    /// The end in `ns_m` facing a.
    pub veth_ma: String,
    /// The end in `ns_m` facing b.
    pub veth_mb: String,
    /// The veth end in `ns_b`.
    pub veth_b: String,
    pub ip_a: Ipv4Addr,
    pub ip_b: Ipv4Addr,
}

impl NetnsTriple {
    pub fn new(tag: &str) -> Result<NetnsTriple> {
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // 'f' + pid (≤ 7 digits) + 'x' + n (≤ 3) + 2 letters ≤ 14 bytes.
        let unique = format!("f{pid}x{}", n % 1000);
        let t = NetnsTriple {
            ns_a: format!("frt-{tag}-{pid}-{n}-a"),
            ns_m: format!("frt-{tag}-{pid}-{n}-m"),
            ns_b: format!("frt-{tag}-{pid}-{n}-b"),
            veth_a: format!("{unique}va"),
            veth_ma: format!("{unique}ma"),
            veth_mb: format!("{unique}mb"),
            veth_b: format!("{unique}vb"),
            ip_a: Ipv4Addr::new(10, 77, 0, 1),
            ip_b: Ipv4Addr::new(10, 77, 0, 2),
        };
        // On failure below, drop removes whatever was made.
        for ns in [&t.ns_a, &t.ns_m, &t.ns_b] {
            run("ip", &["netns", "add", ns])?;
        }
        t.setup()
            .map_err(|e| e.context(format!("setting up {} / {} / {}", t.ns_a, t.ns_m, t.ns_b)))?;
        Ok(t)
    }

    fn setup(&self) -> Result<()> {
        for ns in [&self.ns_a, &self.ns_m, &self.ns_b] {
            in_netns(ns, || {
                for f in ["all", "default"] {
                    // Absent when the kernel has no IPv6: nothing to silence then.
                    let _ =
                        std::fs::write(format!("/proc/sys/net/ipv6/conf/{f}/disable_ipv6"), "1");
                }
            })?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        for (x, ns_x, y, ns_y) in [
            (&self.veth_a, &self.ns_a, &self.veth_ma, &self.ns_m),
            (&self.veth_mb, &self.ns_m, &self.veth_b, &self.ns_b),
        ] {
            run(
                "ip",
                &[
                    "link", "add", x, "netns", ns_x, "type", "veth", "peer", "name", y, "netns",
                    ns_y,
                ],
            )?;
        }
        for (ns, dev, addr) in [
            (&self.ns_a, &self.veth_a, "10.77.0.1/24"),
            (&self.ns_b, &self.veth_b, "10.77.0.2/24"),
        ] {
            run("ip", &["-n", ns, "addr", "add", addr, "dev", dev])?;
            run(
                "ip",
                &[
                    "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso",
                    "off",
                ],
            )
            .context("turning offloads off (is ethtool installed?)")?;
        }
        for (ns, dev) in [
            (&self.ns_a, &self.veth_a),
            (&self.ns_m, &self.veth_ma),
            (&self.ns_m, &self.veth_mb),
            (&self.ns_b, &self.veth_b),
        ] {
            run("ip", &["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(())
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        run("ip", &all)
    }
}

impl Drop for NetnsTriple {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends, and with them their peers.
        for ns in [&self.ns_a, &self.ns_m, &self.ns_b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
