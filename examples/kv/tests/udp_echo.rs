//! The kernel UDP echo baseline (`udp-echo`, used by `scripts/bench.sh --only kvlat`)
//! over loopback: the client's closed loop gets every echo back and reports sane
//! percentiles, in blocking and busy-polling modes; the server stops on SIGTERM with
//! its count; bad arguments fail with one error line. Needs no root: 127.0.0.1 only.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

const ECHO: &str = env!("CARGO_BIN_EXE_udp-echo");

/// A running `udp-echo server`; killed on drop if the test did not stop it.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(args: &[&str]) -> Result<Server> {
        let mut cmd = Command::new(ECHO);
        cmd.args(["server", "--bind", "127.0.0.1:0"]).args(args);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning udp-echo server")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut server = Server {
            child,
            addr: String::new(),
        };
        // The first line names the bound address; read it on a thread so a silent
        // server cannot hang the test.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stderr).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .context("udp-echo server printed nothing in 10 s")?;
        server.addr = line
            .trim()
            .strip_prefix("udp-echo: serving on ")
            .with_context(|| format!("unexpected first line {line:?}"))?
            .to_string();
        Ok(server)
    }

    /// SIGTERM, then the number of datagrams it says it echoed.
    fn stop(mut self) -> Result<u64> {
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        ensure!(killed.success(), "kill failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait()? {
                break s;
            }
            if Instant::now() > deadline {
                bail!("udp-echo server ignored SIGTERM for 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        ensure!(status.success(), "server exited with {status}");
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .context("no stdout")?
            .read_to_string(&mut out)?;
        let n = out
            .trim()
            .strip_prefix("udp-echo: echoed ")
            .and_then(|r| r.strip_suffix(" datagrams"))
            .with_context(|| format!("unexpected final line {out:?}"))?;
        Ok(n.parse()?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn client(addr: &str, extra: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new(ECHO)
        .args([
            "client", "--server", addr, "--count", "300", "--warmup", "20", "--json",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .context("running udp-echo client")?;
    ensure!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let line = text.lines().last().context("client printed no JSON line")?;
    Ok(serde_json::from_str(line)?)
}

fn check_round_trips(spin: bool, size: usize, reply_size: Option<usize>) -> Result<()> {
    let reply_arg = reply_size.map(|r| r.to_string());
    let mut common = vec![];
    if let Some(r) = &reply_arg {
        common.extend(["--reply-size", r.as_str()]);
    }
    if spin {
        common.push("--spin");
    }
    let server = Server::start(&common)?;
    let size_arg = size.to_string();
    let mut extra = vec!["--size", size_arg.as_str()];
    extra.extend(&common);
    let r = client(&server.addr, &extra)?;
    ensure!(r["count"] == 300, "count {}", r["count"]);
    ensure!(r["completed"] == 300, "completed {}", r["completed"]);
    ensure!(r["lost"] == 0, "lost {}", r["lost"]);
    ensure!(r["size"] == size, "size {}", r["size"]);
    ensure!(
        r["reply_size"] == reply_size.unwrap_or(size),
        "reply_size {}",
        r["reply_size"]
    );
    ensure!(r["spin"] == spin, "spin {}", r["spin"]);
    let p50 = r["p50_us"].as_f64().context("p50_us")?;
    let p99 = r["p99_us"].as_f64().context("p99_us")?;
    let max = r["max_us"].as_f64().context("max_us")?;
    ensure!(
        p50 > 0.0 && p50 <= p99 && p99 <= max,
        "percentiles out of order: {r}"
    );
    ensure!(r["rps"].as_f64().unwrap_or(0.0) > 0.0, "rps {}", r["rps"]);
    let echoed = server.stop()?;
    ensure!(
        echoed == 320,
        "server echoed {echoed}, expected 300 + 20 warm-up"
    );
    Ok(())
}

#[test]
fn blocking_client_gets_every_echo() -> Result<()> {
    check_round_trips(false, 160, None)
}

#[test]
fn reply_size_mirrors_a_small_request_and_a_larger_response() -> Result<()> {
    // A KV GET: 58 bytes of UDP payload out, 169 back.
    check_round_trips(false, 58, Some(169))?;
    check_round_trips(true, 200, Some(8))
}

#[test]
fn echo_of_the_wrong_size_is_not_counted() -> Result<()> {
    let server = Server::start(&["--reply-size", "100"])?;
    let out = Command::new(ECHO)
        .args(["client", "--server", &server.addr, "--size", "64"])
        .args([
            "--count",
            "3",
            "--warmup",
            "0",
            "--reply-timeout",
            "20",
            "--json",
        ])
        .stdin(Stdio::null())
        .output()?;
    ensure!(
        !out.status.success(),
        "client accepted 100-byte echoes of 64"
    );
    let text = String::from_utf8(out.stdout)?;
    let r: serde_json::Value = serde_json::from_str(text.trim())?;
    ensure!(r["completed"] == 0 && r["lost"] == 3, "{r}");
    ensure!(server.stop()? == 3);
    Ok(())
}

#[test]
fn spinning_client_and_server_get_every_echo() -> Result<()> {
    check_round_trips(true, 8, None)
}

#[test]
fn nothing_listening_is_an_error_not_a_hang() -> Result<()> {
    // Bind and drop a socket to find a port with (very likely) nobody behind it.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let started = Instant::now();
    let out = Command::new(ECHO)
        .args(["client", "--server", &format!("127.0.0.1:{port}")])
        .args(["--count", "3", "--warmup", "0", "--reply-timeout", "50"])
        .stdin(Stdio::null())
        .output()?;
    ensure!(!out.status.success(), "client succeeded with no server");
    ensure!(started.elapsed() < Duration::from_secs(10), "took too long");
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(err.contains("udp-echo: error:"), "stderr {err:?}");
    Ok(())
}

#[test]
fn bad_size_is_refused() -> Result<()> {
    let out = Command::new(ECHO)
        .args(["client", "--server", "127.0.0.1:9", "--size", "4"])
        .stdin(Stdio::null())
        .output()?;
    ensure!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        err.trim() == "udp-echo: error: --size must be between 8 and 65507, got 4",
        "stderr {err:?}"
    );
    Ok(())
}
