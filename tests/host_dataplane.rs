//! The `dataplane` binary end to end (root; skips outside CI when not root): `dataplane
//! run` serving the KV service in one namespace, in-process KV client engines in the
//! other, and `dataplane stats|reload`, the Prometheus endpoint and `--pcap` checked
//! against what the clients counted. Bad configs and arguments are one-line errors.

#[path = "../examples/kv/tests/harness/mod.rs"]
mod harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use dataplane::host::StatsReport;
use harness::{require_root, Backend, NetnsPair, Run};
use kv_example::client::{ClientStats, Op};

const DATAPLANE: &str = env!("CARGO_BIN_EXE_dataplane");
const PROMETHEUS: &str = "127.0.0.1:9464";

fn temp_dir(tag: &str) -> Result<PathBuf> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("flatrpc-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn server_config(net: &NetnsPair, dir: &Path, rules: &str) -> String {
    format!(
        "cores = [1]\n[port]\nbackend = \"afpacket\"\niface = \"{}\"\n[net]\nip = \"{}\"\n\
         udp_port = 7000\n[host]\ncontrol = \"{}\"\nprometheus = \"{PROMETHEUS}\"\n\
         [tables.firewall]\nrules = {{ {rules} }}\n",
        net.veth_b,
        harness::SERVER_IP,
        dir.join("ctl.sock").display()
    )
}

/// A `dataplane run` process in a namespace; killed if still running when dropped.
struct Dataplane {
    child: Child,
    stderr: Receiver<String>,
}

impl Dataplane {
    fn start(ns: &str, config: &Path, pcap: Option<&Path>) -> Result<Dataplane> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, DATAPLANE, "run", "--json", "--config"])
            .arg(config);
        if let Some(p) = pcap {
            cmd.arg("--pcap").arg(p);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting dataplane run")?;
        let err = child.stderr.take().context("stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let dp = Dataplane { child, stderr: rx };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            match dp.stderr.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.contains("serving") => return Ok(dp),
                Ok(l) => seen.push(l),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("dataplane run exited: {seen:?}")
                }
                Err(_) if Instant::now() > deadline => bail!("dataplane did not start: {seen:?}"),
                Err(_) => {}
            }
        }
    }

    /// SIGTERM, a bounded wait for a clean exit, and the final counters it printed.
    fn stop(mut self) -> Result<StatsReport> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait()? {
                break s;
            }
            ensure!(
                Instant::now() < deadline,
                "dataplane did not exit within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .context("stdout")?
            .read_to_string(&mut out)?;
        ensure!(status.success(), "dataplane exited with {status}");
        serde_json::from_str(out.lines().last().unwrap_or(""))
            .with_context(|| format!("dataplane run --json printed {out:?}"))
    }

    /// Stderr lines so far.
    fn log(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `dataplane ARGS`, returning (success, stdout, stderr).
fn cli(args: &[&str]) -> Result<(bool, String, String)> {
    let out = Command::new(DATAPLANE).args(args).output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn client(
    net: &NetnsPair,
    ip: &str,
    port: u16,
    op: Op,
    count: u64,
    user: &'static str,
) -> Result<ClientStats> {
    let cfg = harness::config(
        &Backend::Afpacket,
        &net.veth_a,
        0,
        ip,
        port,
        &format!("[client]\nserver = \"{}:7000\"", harness::SERVER_IP),
    )?;
    let mut run = Run::new(op, count, user);
    run.concurrency = 4;
    harness::run_client(
        &net.ns_a,
        &Backend::Afpacket,
        &net.veth_a,
        &cfg,
        run,
        Duration::from_secs(20),
    )
}

/// The Prometheus endpoint's text, fetched from inside `ns` (it listens on that
/// namespace's loopback).
fn scrape(ns: &str) -> Result<Vec<dataplane::stats::prometheus::Sample>> {
    let text = harness::in_netns(ns, || -> Result<String> {
        let mut s = std::net::TcpStream::connect(PROMETHEUS)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })??;
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP head")?;
    ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    ensure!(head.contains("text/plain; version=0.0.4"), "{head}");
    Ok(dataplane::stats::prometheus::parse_text(body)?)
}

fn sum(samples: &[dataplane::stats::prometheus::Sample], name: &str, label: (&str, &str)) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && s.label(label.0) == Some(label.1))
        .map(|s| s.value)
        .sum()
}

#[test]
fn counters_prometheus_stats_json_and_pcap_agree_with_the_clients() -> Result<()> {
    if !require_root("counters_prometheus_stats_json_and_pcap_agree_with_the_clients") {
        return Ok(());
    }
    let net = NetnsPair::new("hostobs")?;
    let dir = temp_dir("hostobs")?;
    let config = dir.join("server.toml");
    std::fs::write(&config, server_config(&net, &dir, "alice = \"allow\""))?;
    let pcap = dir.join("run.pcap");
    let dp = Dataplane::start(&net.ns_b, &config, Some(&pcap))?;
    let result = (|| -> Result<(ClientStats, ClientStats)> {
        let alice = client(&net, harness::CLIENT_IP, 7001, Op::Mixed, 400, "alice")?;
        let mallory = client(&net, harness::CLIENT_IP, 7001, Op::Get, 50, "mallory")?;
        ensure!(
            alice.completed == 400 && alice.errors == 0,
            "alice: {alice:?}"
        );
        ensure!(
            mallory.denied == 50 && mallory.completed == 0,
            "mallory: {mallory:?}"
        );
        // Cores publish their counters every 100 ms.
        std::thread::sleep(Duration::from_millis(300));

        let prom = scrape(&net.ns_b)?;
        let answered = sum(&prom, "flatrpc_app_total", ("counter", "answered"));
        let denied = sum(&prom, "flatrpc_app_total", ("counter", "denied"));
        ensure!(
            answered == 400.0 && denied == 50.0,
            "prometheus: answered {answered} denied {denied}"
        );
        let fw_reply: f64 = prom
            .iter()
            .filter(|s| {
                s.name == "flatrpc_element_verdicts_total"
                    && s.label("element") == Some("firewall")
                    && s.label("verdict") == Some("reply")
            })
            .map(|s| s.value)
            .sum();
        ensure!(fw_reply == 50.0, "firewall replies {fw_reply}");
        let timed = sum(&prom, "flatrpc_request_latency_count", ("core", "0"));
        ensure!(timed == 450.0, "timed requests {timed}");

        let (ok, out, err) = cli(&["stats", "--json", "--config", &config.to_string_lossy()])?;
        ensure!(ok, "stats --json: {err}");
        let r: StatsReport = serde_json::from_str(out.trim())
            .with_context(|| format!("stats --json printed {out:?}"))?;
        ensure!(
            r.service == "kv.KvService" || !r.service.is_empty(),
            "{r:?}"
        );
        ensure!(r.cores.len() == 1, "{r:?}");
        ensure!(
            r.totals.app.get("answered") == Some(&400),
            "{:?}",
            r.totals.app
        );
        ensure!(
            r.totals.app.get("denied") == Some(&50),
            "{:?}",
            r.totals.app
        );
        ensure!(r.totals.latency.count == 450, "{:?}", r.totals.latency);
        ensure!(
            r.totals.latency.p50_ns > 0 && r.totals.latency.p50_ns <= r.totals.latency.max_ns,
            "{:?}",
            r.totals.latency
        );
        let fw = r.totals.elements.iter().find(|e| e.element == "firewall");
        ensure!(
            fw.is_some_and(|e| e.forwarded >= 400 && e.replied == 50),
            "{:?}",
            r.totals.elements
        );
        ensure!(r.totals.rx_packets > 0 && r.totals.tx_packets > 0, "{r:?}");
        // The table form too.
        let (ok, table, err) = cli(&["stats", "--config", &config.to_string_lossy()])?;
        eprintln!("{table}");
        ensure!(
            ok && table.contains("firewall") && table.contains("total"),
            "{table}{err}"
        );
        Ok((alice, mallory))
    })();
    let fin = dp.stop();
    let fin = match (result, fin) {
        (Err(e), _) => return Err(e),
        (Ok(_), Err(e)) => return Err(e),
        (Ok(_), Ok(f)) => f,
    };
    let cap = fin.capture.context("no capture counters")?;
    let frames = fin.totals.rx_packets + fin.totals.tx_packets;
    ensure!(cap.skipped == 0, "{cap:?}");
    ensure!(cap.written == frames, "pcap {cap:?} vs port rx+tx {frames}");
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .stderr(Stdio::piped())
        .output()
        .context("running tshark (scripts/setup.sh installs it)")?;
    ensure!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = String::from_utf8_lossy(&out.stdout).lines().count() as u64;
    ensure!(
        read == frames,
        "tshark read {read} packets, the port counted {frames}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn reload_flips_a_user_under_load_and_a_bad_config_is_refused() -> Result<()> {
    if !require_root("reload_flips_a_user_under_load_and_a_bad_config_is_refused") {
        return Ok(());
    }
    let net = NetnsPair::new("hostrld")?;
    let dir = temp_dir("hostrld")?;
    let config = dir.join("server.toml");
    let cfg_arg = config.to_string_lossy().into_owned();
    let allow_both = server_config(&net, &dir, "alice = \"allow\", bob = \"allow\"");
    std::fs::write(&config, &allow_both)?;
    let dp = Dataplane::start(&net.ns_b, &config, None)?;
    let result = (|| -> Result<()> {
        let bob = client(&net, "10.77.1.3", 7002, Op::Mixed, 100, "bob")?;
        ensure!(bob.completed == 100, "bob before the reload: {bob:?}");

        // alice keeps RPCs flowing while the rules change.
        let load = std::thread::scope(|s| -> Result<(ClientStats, bool)> {
            let alice =
                s.spawn(|| client(&net, harness::CLIENT_IP, 7001, Op::Mixed, 30_000, "alice"));
            // Reload once the server has answered a good part of alice's RPCs (cores
            // publish counters every 100 ms), so the swap lands in the middle of them.
            let sock = dir.join("ctl.sock");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let reply = dataplane::host::control::call(
                    &sock,
                    dataplane::host::control::Request::Stats,
                    Duration::from_secs(5),
                )?;
                let answered = match reply {
                    dataplane::host::control::Reply::Stats { report } => {
                        report.totals.app.get("answered").copied().unwrap_or(0)
                    }
                    other => bail!("stats: {other:?}"),
                };
                if answered >= 100 + 3000 {
                    break;
                }
                ensure!(Instant::now() < deadline, "alice's load did not start");
                std::thread::sleep(Duration::from_millis(10));
            }
            std::fs::write(
                &config,
                allow_both.replace("bob = \"allow\"", "bob = \"deny\""),
            )?;
            let (ok, out, err) = cli(&["reload", "--config", &cfg_arg])?;
            ensure!(ok, "reload: {out}{err}");
            ensure!(out.contains("applied on 1 of 1"), "{out}");
            let during = !alice.is_finished();
            let bob = client(&net, "10.77.1.3", 7002, Op::Mixed, 100, "bob")?;
            ensure!(
                bob.denied == 100 && bob.completed == 0 && bob.timeouts == 0,
                "bob after the reload: {bob:?}"
            );
            let alice = alice
                .join()
                .map_err(|_| anyhow::anyhow!("alice's client panicked"))??;
            Ok((alice, during))
        })?;
        let (alice, during) = load;
        ensure!(
            during,
            "alice's load finished before the reload: raise its count"
        );
        ensure!(
            alice.completed == 30_000 && alice.errors == 0,
            "alice under reload: {alice:?}"
        );
        let max_ms = alice.latency_ns.max() as f64 / 1e6;
        eprintln!(
            "alice across the reload: {} RPCs, p50 {:.1} us, p99 {:.1} us, max {max_ms:.2} ms",
            alice.completed,
            alice.latency_ns.value_at_quantile(0.5) as f64 / 1e3,
            alice.latency_ns.value_at_quantile(0.99) as f64 / 1e3,
        );
        ensure!(max_ms < 250.0, "alice's slowest RPC took {max_ms:.1} ms");

        // A config that does not parse, and one whose tables are wrong: refused with
        // one error line, and the current rules keep working.
        std::fs::write(&config, "cores = [1\n")?;
        let sock = dir.join("ctl.sock").to_string_lossy().into_owned();
        let (ok, _, err) = cli(&["reload", "--control", &sock])?;
        ensure!(!ok && err.contains("reload refused"), "{err}");
        ensure!(err.lines().count() == 1, "{err}");
        std::fs::write(&config, allow_both.replace("bob = \"allow\"", "bob = 3"))?;
        let (ok, _, err) = cli(&["reload", "--config", &cfg_arg])?;
        ensure!(
            !ok && err.contains("reload refused") && err.contains("tables.firewall.rules"),
            "{err}"
        );
        ensure!(err.lines().count() == 1, "{err}");
        let bob = client(&net, "10.77.1.3", 7002, Op::Get, 50, "bob")?;
        ensure!(bob.denied == 50, "bob after refused reloads: {bob:?}");
        let alice = client(&net, harness::CLIENT_IP, 7001, Op::Get, 50, "alice")?;
        ensure!(
            alice.completed == 50,
            "alice after refused reloads: {alice:?}"
        );

        // SIGHUP reloads too: back to allowing bob.
        std::fs::write(&config, &allow_both)?;
        let _ = Command::new("kill")
            .args(["-HUP", &dp.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut log = Vec::new();
        while !log
            .iter()
            .any(|l: &String| l.contains("SIGHUP") && l.contains("applied on 1"))
        {
            ensure!(
                Instant::now() < deadline,
                "no SIGHUP reload logged: {log:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
            log.extend(dp.log());
        }
        let bob = client(&net, "10.77.1.3", 7002, Op::Get, 50, "bob")?;
        ensure!(bob.completed == 50, "bob after SIGHUP: {bob:?}");
        Ok(())
    })();
    let fin = dp.stop();
    result?;
    let fin = fin?;
    // Two accepted reloads (CLI and SIGHUP); the refused ones do not count.
    ensure!(fin.reloads == 2, "{fin:?}");
    ensure!(
        fin.totals.reloads == 2 && fin.totals.generation == 2,
        "{:?}",
        fin.totals
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn one_error_line(args: &[&str], needle: &str) -> Result<()> {
    let (ok, _, err) = cli(args)?;
    ensure!(!ok, "{args:?} succeeded");
    ensure!(!err.contains("panicked"), "{args:?} panicked: {err}");
    ensure!(err.contains(needle), "{args:?}: want {needle:?} in {err}");
    ensure!(
        err.lines().filter(|l| l.contains("error")).count() == 1,
        "{args:?}: {err}"
    );
    Ok(())
}

#[test]
fn bad_configs_addresses_and_sockets_are_one_line_errors() -> Result<()> {
    let dir = temp_dir("hostbad")?;
    let base = format!(
        "cores = [0]\n[port]\nbackend = \"afpacket\"\niface = \"lo\"\n[net]\nip = \"10.9.9.9\"\n\
         [host]\ncontrol = \"{}\"\n",
        dir.join("ctl.sock").display()
    );
    let w = |name: &str, text: &str| -> Result<String> {
        let p = dir.join(name);
        std::fs::write(&p, text)?;
        Ok(p.to_string_lossy().into_owned())
    };
    let public = w(
        "public.toml",
        &format!("{base}prometheus = \"0.0.0.0:9464\"\n"),
    )?;
    let noport = w(
        "noport.toml",
        &format!("{base}prometheus = \"127.0.0.1\"\n"),
    )?;
    let rules = w(
        "rules.toml",
        &format!("{base}[tables.firewall]\nrules = {{ alice = 3 }}\n"),
    )?;
    let good = w("good.toml", &base)?;
    let apps_client = w(
        "apps-client.toml",
        &format!("{base}[host.apps]\nsocket = \"/tmp/x.sock\"\nrole = \"client\"\n"),
    )?;
    let apps_dir = w(
        "apps-dir.toml",
        &format!("{base}[host.apps]\nsocket = \"/proc/flatrpc/x.sock\"\nrole = \"server\"\n"),
    )?;
    one_error_line(&["run", "--config", &apps_client], "host.apps.role")?;
    one_error_line(&["run", "--config", &apps_dir], "host.apps.socket")?;
    one_error_line(&["run", "--config", &public], "host.prometheus")?;
    one_error_line(&["run", "--config", &noport], "prometheus")?;
    one_error_line(&["run", "--config", &rules], "tables.firewall.rules")?;
    one_error_line(&["run", "--config", "/nonexistent/f.toml"], "cannot read")?;
    one_error_line(
        &[
            "run",
            "--config",
            &good,
            "--pcap",
            "/nonexistent/dir/x.pcap",
        ],
        "cannot create /nonexistent/dir/x.pcap",
    )?;
    one_error_line(
        &["stats", "--control", "/nonexistent/ctl.sock"],
        "cannot reach the control socket /nonexistent/ctl.sock",
    )?;
    one_error_line(
        &["stats", "--config", &good],
        "cannot reach the control socket",
    )?;
    one_error_line(
        &["reload", "--config", "/nonexistent/f.toml"],
        "cannot read",
    )?;
    one_error_line(&["stats"], "--config")?;
    let noiface = w(
        "noiface.toml",
        &base.replace("iface = \"lo\"", "iface = \"nosuchif0\""),
    )?;
    one_error_line(&["run", "--config", &noiface], "nosuchif0")?;
    // No socket left behind by the failed runs.
    ensure!(!dir.join("ctl.sock").exists());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
