//! The real binaries: `kv-server` in one namespace answers `kv-client --json` from the
//! other, and exits cleanly on SIGTERM printing its final counters (root; skips outside
//! CI when not root). `kv-server` on the pcap backend serves a `kv-pcap` recording to the
//! end and exits by itself (no root). Bad arguments and configs fail with one error
//! line.

mod harness;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use harness::{require_root, NetnsPair};

const SERVER: &str = env!("CARGO_BIN_EXE_kv-server");
const CLIENT: &str = env!("CARGO_BIN_EXE_kv-client");
const PCAP: &str = env!("CARGO_BIN_EXE_kv-pcap");

fn write(dir: &std::path::Path, name: &str, text: &str) -> Result<std::path::PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, text)?;
    Ok(p)
}

#[test]
fn kv_server_answers_kv_client_and_exits_cleanly_on_sigterm() -> Result<()> {
    if !require_root("kv_server_answers_kv_client_and_exits_cleanly_on_sigterm") {
        return Ok(());
    }
    let net = NetnsPair::new("kvbin")?;
    let dir = std::env::temp_dir().join(format!("flatrpc-kvbin-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let scfg = write(
        &dir,
        "server.toml",
        &format!(
            "cores = [1]\n[port]\nbackend = \"afpacket\"\niface = \"{}\"\n[net]\nip = \"{}\"\nudp_port = 7000\n{}\n",
            net.veth_b, harness::SERVER_IP, harness::RULES
        ),
    )?;
    let ccfg = write(
        &dir,
        "client.toml",
        &format!(
            "cores = [0]\n[port]\nbackend = \"afpacket\"\niface = \"{}\"\n[net]\nip = \"{}\"\nudp_port = 7001\n[client]\nserver = \"{}:7000\"\n",
            net.veth_a, harness::CLIENT_IP, harness::SERVER_IP
        ),
    )?;

    let mut server = Command::new("ip")
        .args(["netns", "exec", &net.ns_b, SERVER, "--config"])
        .arg(&scfg)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting kv-server")?;
    let result = (|| -> Result<()> {
        // Wait (bounded) for the "serving" line.
        let stderr = server.stderr.take().context("stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.contains("serving") => break,
                Ok(_) => {}
                Err(_) if Instant::now() > deadline => bail!("kv-server did not start"),
                Err(_) => {}
            }
        }
        let out = Command::new("ip")
            .args(["netns", "exec", &net.ns_a, CLIENT, "--config"])
            .arg(&ccfg)
            .args([
                "--op",
                "set",
                "--count",
                "200",
                "--concurrency",
                "4",
                "--json",
                "--timeout",
                "20",
            ])
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "kv-client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
            .with_context(|| format!("kv-client --json printed {stdout:?}"))?;
        for key in [
            "completed",
            "errors",
            "denied",
            "timeouts",
            "p50_us",
            "p99_us",
            "rps",
        ] {
            ensure!(r.get(key).is_some(), "kv-client JSON lacks {key}: {r}");
        }
        ensure!(r["completed"] == 200 && r["errors"] == 0, "{r}");
        Ok(())
    })();

    // SIGTERM, then a bounded wait for a clean exit with final counters.
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = server.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = server.kill();
            bail!("kv-server did not exit within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut server.stdout.take().context("stdout")?, &mut out)?;
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    ensure!(status.success(), "kv-server exited with {status}");
    let fin: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or(""))
        .with_context(|| format!("kv-server printed {out:?}"))?;
    ensure!(fin["server"]["sets"] == 200, "final counters: {fin}");
    ensure!(fin["server"]["allowed"] == 200, "final counters: {fin}");
    ensure!(
        fin["server"]["set_out_of_order"] == 0 && fin["server"]["set_duplicates"] == 0,
        "{fin}"
    );
    Ok(())
}

/// Runs `kv-server --json` on `config` with `args` and waits (bounded) for it to exit by
/// itself; returns its final counters.
fn kv_server_to_the_end(config: &std::path::Path, args: &[&str]) -> Result<serde_json::Value> {
    let mut server = Command::new(SERVER)
        .arg("--config")
        .arg(config)
        .arg("--json")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting kv-server")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = server.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = server.kill();
            let _ = server.wait();
            bail!("kv-server did not finish the replay within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut server.stdout.take().context("stdout")?, &mut out)?;
    let mut err = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().context("stderr")?, &mut err)?;
    ensure!(status.success(), "kv-server exited with {status}: {err}");
    serde_json::from_str(out.lines().last().unwrap_or(""))
        .with_context(|| format!("kv-server printed {out:?} and {err:?}"))
}

#[test]
fn kv_server_serves_a_kv_pcap_recording_to_the_end_on_the_pcap_backend() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("flatrpc-kvreplay-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<()> {
        const ROUNDS: u64 = 3;
        // (op, count, user, kv-server arguments)
        let runs: [(&str, u64, &str, &[&str]); 3] = [
            ("get", 64, "alice", &["--preload", "64"]),
            ("set", 512, "alice", &[]),
            ("get", 64, "mallory", &[]),
        ];
        for (op, count, user, args) in runs {
            let pcap = dir.join(format!("{op}-{user}.pcap"));
            let st = Command::new(PCAP)
                .args([
                    "--op",
                    op,
                    "--count",
                    &count.to_string(),
                    "--user",
                    user,
                    "--out",
                ])
                .arg(&pcap)
                .output()?;
            ensure!(st.status.success(), "kv-pcap: {st:?}");
            let cfg = write(
                &dir,
                &format!("{op}-{user}.toml"),
                &format!(
                    "cores = [0]\n[port]\nbackend = \"pcap\"\npcap = \"{}\"\nrounds = {ROUNDS}\n\
                     [net]\nip = \"10.77.1.2\"\nneighbors = [{{ ip = \"10.77.1.1\", mac = \"02:00:00:77:01:01\" }}]\n\
                     [transport]\ntag_seed = 1\n{}\n",
                    pcap.display(),
                    harness::RULES
                ),
            )?;
            let fin = kv_server_to_the_end(&cfg, args)?;
            let (srv, core) = (&fin["server"], &fin["cores"][0]);
            let requests = ROUNDS * count;
            // Every round: the Connect, its confirmation, then the requests; each request
            // is answered (a value, an acknowledged SET, or "denied"), and the Connect.
            ensure!(
                core["port"]["rx_packets"] == ROUNDS * (count + 2),
                "{op} {user}: {fin}"
            );
            ensure!(
                core["port"]["tx_packets"] == ROUNDS * (count + 1),
                "{op} {user}: {fin}"
            );
            ensure!(
                core["net"]["not_our_mac"] == 0 && core["net"]["not_our_ip"] == 0,
                "{fin}"
            );
            if user == "alice" {
                ensure!(
                    srv[op.to_string() + "s"] == requests && srv["allowed"] == requests,
                    "{fin}"
                );
                ensure!(srv["denied"] == 0 && srv["app_errors"] == 0, "{fin}");
                ensure!(
                    srv["set_duplicates"] == 0 && srv["set_out_of_order"] == 0,
                    "{fin}"
                );
            } else {
                ensure!(srv["denied"] == requests && srv["gets"] == 0, "{fin}");
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn one_error_line(bin: &str, args: &[&str], needle: &str) -> Result<()> {
    let out = Command::new(bin).args(args).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "{args:?} succeeded");
    ensure!(!err.contains("panicked"), "{args:?} panicked: {err}");
    ensure!(err.contains(needle), "{args:?}: want {needle:?} in {err}");
    ensure!(
        err.lines().filter(|l| l.contains("error")).count() == 1,
        "{args:?}: {err}"
    );
    Ok(())
}

#[test]
fn bad_configs_and_arguments_are_one_line_errors() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("flatrpc-kvbad-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let base =
        "cores = [0]\n[port]\nbackend = \"afpacket\"\niface = \"lo\"\n[net]\nip = \"10.9.9.9\"\n";
    let typo = write(&dir, "typo.toml", &base.replace("[net]", "[net]\nipp = 1"))?;
    let rules = write(
        &dir,
        "rules.toml",
        &format!("{base}[tables.firewall]\nrulez = {{}}\n"),
    )?;
    let noclient = write(&dir, "noclient.toml", base)?;
    let t = |p: &std::path::Path| p.to_string_lossy().into_owned();
    one_error_line(SERVER, &["--config", &t(&typo)], "ipp")?;
    one_error_line(SERVER, &["--config", &t(&rules)], "rulez")?;
    one_error_line(
        SERVER,
        &["--config", "/nonexistent/flatrpc.toml"],
        "cannot read",
    )?;
    one_error_line(CLIENT, &["--config", &t(&noclient)], "[client]")?;
    one_error_line(
        CLIENT,
        &["--config", &t(&noclient), "--op", "delete"],
        "delete",
    )?;
    one_error_line(
        CLIENT,
        &["--config", &t(&noclient), "--concurrency", "0"],
        "[client]",
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
