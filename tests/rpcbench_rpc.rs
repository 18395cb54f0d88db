//! `rpcbench rpc-server` / `rpc-client`: bad arguments fail with one clear error line,
//! and a short real run over a veth pair (afpacket, the KV service's firewall →
//! session tracker chain) measures latency and throughput and reports CPU on both
//! sides (root; skips with a reason otherwise, fails under CI).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use common::{require_root, NetnsPair};

const BIN: &str = env!("CARGO_BIN_EXE_rpcbench");

fn fails_with(args: &[&str], needle: &str) {
    let out = Command::new(BIN).args(args).output().expect("run rpcbench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: want {needle:?} in: {stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.contains("error")).count(),
        1,
        "{args:?}: one error line: {stderr}"
    );
}

#[test]
fn rpc_mode_argument_errors() {
    let dir = std::env::temp_dir().join(format!("rpcbench-rpc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        "cores = [0]\n[port]\nbackend = \"afpacket\"\niface = \"lo\"\n[net]\nip = \"10.77.1.1\"\n[client]\nserver = \"10.77.1.2:7000\"\n",
    )
    .expect("cfg");
    let no_client = dir.join("s.toml");
    std::fs::write(
        &no_client,
        "cores = [0]\n[port]\nbackend = \"afpacket\"\niface = \"lo\"\n[net]\nip = \"10.77.1.1\"\n",
    )
    .expect("cfg");
    let c = cfg.to_str().expect("utf-8 path");
    fails_with(&["rpc-client", "--config", c, "--size", "0"], "--size");
    fails_with(&["rpc-client", "--config", c, "--size", "65537"], "--size");
    fails_with(
        &["rpc-client", "--config", c, "--sessions", "0"],
        "--sessions",
    );
    fails_with(
        &["rpc-client", "--config", c, "--window", "256"],
        "--window",
    );
    fails_with(
        &["rpc-client", "--config", c, "--duration", "0"],
        "--duration",
    );
    fails_with(&["rpc-client", "--config", c, "--warmup=-1"], "--warmup");
    fails_with(
        &["rpc-client", "--config", no_client.to_str().expect("utf-8")],
        "[client]",
    );
    fails_with(
        &["rpc-client", "--config", "/nonexistent/flatrpc.toml"],
        "/nonexistent/flatrpc.toml",
    );
    fails_with(
        &["rpc-server", "--config", c, "--duration=-2"],
        "--duration",
    );
    fails_with(&["rpc-client", "--config", c, "--op", "delete"], "delete");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills (SIGKILL, by PID) a child still running when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn json_line(out: &Output) -> Result<serde_json::Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("no JSON; stderr: {}", String::from_utf8_lossy(&out.stderr)))?;
    Ok(serde_json::from_str(line)?)
}

#[test]
fn rpc_client_measures_a_real_rpc_server_over_veth() -> Result<()> {
    if !require_root("rpc_client_measures_a_real_rpc_server_over_veth") {
        return Ok(());
    }
    let net = NetnsPair::new("rpcb")?;
    let dir = std::env::temp_dir().join(format!("rpcbench-rpc-{}", net.unique));
    std::fs::create_dir_all(&dir)?;
    let scfg = dir.join("server.toml");
    std::fs::write(
        &scfg,
        format!(
            "cores = [1]\n[port]\nbackend = \"afpacket\"\niface = \"{}\"\n[net]\nip = \"10.77.1.2\"\nudp_port = 7000\n\
             [transport]\nunreliable_timeout_us = 200000\n[tables.firewall]\nrules = {{ alice = \"allow\", mallory = \"deny\" }}\n",
            net.veth_b
        ),
    )?;
    let ccfg = dir.join("client.toml");
    std::fs::write(
        &ccfg,
        format!(
            "cores = [0]\n[port]\nbackend = \"afpacket\"\niface = \"{}\"\n[net]\nip = \"10.77.1.1\"\nudp_port = 7001\n\
             [client]\nserver = \"10.77.1.2:7000\"\n[transport]\nunreliable_timeout_us = 200000\n",
            net.veth_a
        ),
    )?;
    let mut server = Proc(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.ns_b,
                BIN,
                "rpc-server",
                "--duration",
                "30",
                "--json",
                "--config",
            ])
            .arg(&scfg)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let stderr = server.0.stderr.take().context("stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .context("rpc-server did not say it serves within 10 s")?;
        if line.contains("error") {
            bail!("rpc-server: {line}");
        }
        if line.contains("serving") {
            break;
        }
    }
    let client = |extra: &[&str]| -> Result<Output> {
        Ok(Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.ns_a,
                BIN,
                "rpc-client",
                "--duration",
                "0.5",
                "--warmup",
                "0.1",
                "--timeout",
                "20",
                "--json",
                "--config",
            ])
            .arg(&ccfg)
            .args(extra)
            .stdin(Stdio::null())
            .output()?)
    };
    // Latency: one session, one outstanding.
    let lat = client(&[])?;
    let l = json_line(&lat)?;
    assert!(
        lat.status.success(),
        "{l}: {}",
        String::from_utf8_lossy(&lat.stderr)
    );
    assert!(l["completed"].as_u64().unwrap_or(0) > 100, "{l}");
    let p50 = l["p50_us"].as_f64().unwrap_or(0.0);
    assert!(
        p50 > 0.0 && p50 <= l["p99_us"].as_f64().unwrap_or(0.0),
        "{l}"
    );
    assert!(l["cpu_s"].as_f64().unwrap_or(0.0) > 0.0, "{l}");
    // Throughput: 2 sessions x 8 outstanding, 4 KiB SETs (fragmented, reliable).
    let thr = client(&[
        "--sessions",
        "2",
        "--window",
        "8",
        "--op",
        "set",
        "--size",
        "4096",
    ])?;
    let t = json_line(&thr)?;
    assert!(
        thr.status.success(),
        "{t}: {}",
        String::from_utf8_lossy(&thr.stderr)
    );
    assert_eq!(t["sessions"], 2, "{t}");
    assert!(t["completed"].as_u64().unwrap_or(0) > 100, "{t}");
    assert_eq!(t["errors"], 0, "{t}");
    // The firewall: mallory's RPCs are all denied.
    let denied = client(&["--user", "mallory", "--op", "set"])?;
    let d = json_line(&denied)?;
    assert!(!denied.status.success(), "a denied user's run fails: {d}");
    assert_eq!(d["completed"], 0, "{d}");
    assert!(d["denied"].as_u64().unwrap_or(0) > 0, "{d}");

    Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.0.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            bail!("rpc-server did not exit within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    if let Some(mut o) = server.0.stdout.take() {
        std::io::Read::read_to_string(&mut o, &mut out)?;
    }
    let s: serde_json::Value = serde_json::from_str(out.trim()).context("server JSON")?;
    assert!(s["server"]["sets"].as_u64().unwrap_or(0) > 0, "{s}");
    assert!(s["server"]["denied"].as_u64().unwrap_or(0) > 0, "{s}");
    assert!(s["cpu_us_per_rpc"].as_f64().unwrap_or(0.0) > 0.0, "{s}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
