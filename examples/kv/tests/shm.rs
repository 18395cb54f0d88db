//! Host mode over shared memory: application processes (`kv-server --attach`,
//! `kv-client --attach`) attached to host dataplanes on each side of a veth pair.
//! Two server apps share the load and one is killed with SIGKILL mid-traffic; hosts are
//! restarted under running apps; a process of another uid is refused; a two-core
//! dataplane gets a server thread on each core (root; skips outside CI when not root).
//!
//! The hosts are `dataplane run` with a `[host.apps]` section; the tests read their
//! counters over the control socket (what `dataplane stats --json` prints).
//!
//! `dataplane` belongs to the workspace's root package, so it is found beside this
//! package's binaries in the same target directory (`cargo build --workspace`, as
//! `scripts/test.sh` does, builds it).

mod harness;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use dataplane::host::control::{self, Reply, Request};
use harness::{require_root, NetnsPair};
use serde_json::Value;

const SERVER: &str = env!("CARGO_BIN_EXE_kv-server");
const CLIENT: &str = env!("CARGO_BIN_EXE_kv-client");

/// The tests of this file run one at a time: each starts two busy-polling hosts and
/// several applications, and the machine may have only 2 cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A child process killed (SIGKILL) and reaped when dropped; its stderr lines arrive on
/// `lines`.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    name: String,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command) -> Result<Proc> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let (tx, lines) = channel();
        let stderr = child.stderr.take().context("stderr")?;
        let tag = name.to_string();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{tag}] {l}");
                let _ = tx.send(l);
            }
        });
        Ok(Proc {
            child,
            lines,
            name: name.to_string(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for a stderr line containing `what`.
    fn wait_line(&self, what: &str, limit: Duration) -> Result<String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(50)) {
                if l.contains(what) {
                    return Ok(l);
                }
            }
        }
        bail!("{}: no line with {what:?} within {limit:?}", self.name)
    }

    fn signal(&self, sig: &str) -> Result<()> {
        let st = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()?;
        ensure!(st.success(), "kill {sig} {}", self.pid());
        Ok(())
    }

    /// SIGTERM, then waits (bounded) and returns stdout.
    fn finish(mut self) -> Result<String> {
        self.signal("-TERM")?;
        self.wait_output(Duration::from_secs(10))
    }

    fn wait_output(&mut self, limit: Duration) -> Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait()? {
                let mut out = String::new();
                if let Some(mut o) = self.child.stdout.take() {
                    std::io::Read::read_to_string(&mut o, &mut out)?;
                }
                ensure!(st.success(), "{} exited with {st}: {out}", self.name);
                return Ok(out);
            }
            if Instant::now() > deadline {
                bail!("{} still running after {limit:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `dataplane` binary of this build.
fn dataplane_bin() -> Result<PathBuf> {
    let p = Path::new(SERVER).with_file_name("dataplane");
    ensure!(
        p.exists(),
        "{} is missing: build the workspace (`cargo build --workspace`) first",
        p.display()
    );
    Ok(p)
}

/// The command that starts a host dataplane in `ns` with `config`.
fn host_command(ns: &str, config: &Path) -> Result<Command> {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns])
        .arg(dataplane_bin()?)
        .args(["run", "--json", "--config"])
        .arg(config);
    Ok(c)
}

struct Setup {
    net: NetnsPair,
    dir: PathBuf,
    scfg: PathBuf,
    ccfg: PathBuf,
    ssock: PathBuf,
    csock: PathBuf,
    sstats: PathBuf,
    cstats: PathBuf,
}

impl Setup {
    fn new(tag: &str) -> Result<Setup> {
        let net = NetnsPair::new(tag)?;
        let dir = std::env::temp_dir().join(format!("flatrpc-{tag}-{}", net.unique));
        std::fs::create_dir_all(&dir)?;
        let (ssock, csock) = (dir.join("server.sock"), dir.join("client.sock"));
        let (sstats, cstats) = (dir.join("server-ctl.sock"), dir.join("client-ctl.sock"));
        let host = |ctl: &Path, apps: &Path, role: &str| {
            format!(
                "[host]\ncontrol = \"{}\"\n[host.apps]\nsocket = \"{}\"\nrole = \"{role}\"\n",
                ctl.display(),
                apps.display()
            )
        };
        let scfg = dir.join("server.toml");
        std::fs::write(
            &scfg,
            format!(
                "cores = [1]\n[port]\nbackend = \"afpacket\"\niface = \"{}\"\n[net]\nip = \"{}\"\nudp_port = 7000\n[transport]\nunreliable_timeout_us = 300000\n{}\n{}",
                net.veth_b,
                harness::SERVER_IP,
                harness::RULES,
                host(&sstats, &ssock, "server")
            ),
        )?;
        let ccfg = dir.join("client.toml");
        std::fs::write(
            &ccfg,
            format!(
                "cores = [0]\n[port]\nbackend = \"afpacket\"\niface = \"{}\"\n[net]\nip = \"{}\"\nudp_port = 7001\n[transport]\nunreliable_timeout_us = 300000\n[client]\nserver = \"{}:7000\"\n{}",
                net.veth_a,
                harness::CLIENT_IP,
                harness::SERVER_IP,
                host(&cstats, &csock, "client")
            ),
        )?;
        Ok(Setup {
            ssock,
            csock,
            sstats,
            cstats,
            net,
            dir,
            scfg,
            ccfg,
        })
    }

    fn server_host(&self) -> Result<Proc> {
        let p = Proc::spawn(
            "server-host",
            &mut host_command(&self.net.ns_b, &self.scfg)?,
        )?;
        p.wait_line("serving", Duration::from_secs(10))?;
        Ok(p)
    }

    fn client_host(&self) -> Result<Proc> {
        let p = Proc::spawn(
            "client-host",
            &mut host_command(&self.net.ns_a, &self.ccfg)?,
        )?;
        p.wait_line("serving", Duration::from_secs(10))?;
        Ok(p)
    }

    fn server_app(&self, name: &str) -> Result<Proc> {
        let p = Proc::spawn(
            name,
            Command::new(SERVER)
                .arg("--attach")
                .arg(&self.ssock)
                .arg("--json"),
        )?;
        p.wait_line("attached as channel", Duration::from_secs(10))?;
        Ok(p)
    }

    fn client_app(&self, name: &str, op: &str, count: u64, concurrency: u32) -> Result<Proc> {
        Proc::spawn(
            name,
            Command::new(CLIENT)
                .arg("--attach")
                .arg(&self.csock)
                .args(["--op", op, "--user", "alice", "--json", "--keys", "64"])
                .args(["--count", &count.to_string()])
                .args(["--concurrency", &concurrency.to_string()])
                .args(["--timeout", "20"]),
        )
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The latest counters of the host whose control socket is `ctl`, as
/// `{pid, hub: {...}, bridge: {...}}`: the hub's counters and the bridges' (summed over
/// cores) of `dataplane stats --json`.
fn stats(ctl: &Path) -> Result<Value> {
    let reply = control::call(ctl, Request::Stats, Duration::from_secs(2))?;
    let Reply::Stats { report } = reply else {
        bail!("unexpected reply {reply:?}");
    };
    let apps = report
        .apps
        .as_ref()
        .context("no [host.apps] in the report")?;
    let mut bridge = serde_json::to_value(&report.totals.app)?;
    if let Some(m) = bridge.as_object_mut() {
        m.insert("channels".into(), apps.channels.into());
        m.insert("slots_lent".into(), apps.slots_lent.into());
    }
    Ok(serde_json::json!({
        "pid": report.pid,
        "hub": apps.hub,
        "bridge": bridge,
        "channels_per_core": apps.channels_per_core,
        "latency_count": report.totals.latency.count,
    }))
}

fn num(v: &Value, ptr: &str) -> u64 {
    v.pointer(ptr).and_then(Value::as_u64).unwrap_or(0)
}

/// Logs how long `what` took to be reached (in the test's output, for slow CI runs).
fn logged(t0: Instant, what: &str, v: Value) -> Value {
    eprintln!("[test] {:.2} s: {what}", t0.elapsed().as_secs_f64());
    v
}

/// Waits (bounded) until `cond` holds for the counters in `path`.
fn wait_stats(
    path: &Path,
    what: &str,
    limit: Duration,
    cond: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let t0 = Instant::now();
    let deadline = t0 + limit;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(v) = stats(path) {
            if cond(&v) {
                return Ok(logged(t0, what, v));
            }
            last = v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what}: not reached within {limit:?}; last counters {last}")
}

/// Segment files of dataplane `pid` left in /dev/shm.
fn shm_files(pid: u64) -> Result<Vec<String>> {
    let prefix = format!("flatrpc-{pid}-");
    Ok(std::fs::read_dir("/dev/shm")?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect())
}

fn json_line(out: &str) -> Result<Value> {
    let line = out.lines().last().context("no output")?;
    Ok(serde_json::from_str(line)?)
}

#[test]
fn two_server_apps_one_killed_mid_traffic_then_restarted() -> Result<()> {
    if !require_root("two_server_apps_one_killed_mid_traffic_then_restarted") {
        return Ok(());
    }
    let _serial = serial();
    let s = Setup::new("shmkill")?;
    let _shost = s.server_host()?;
    let _chost = s.client_host()?;
    let a1 = s.server_app("app1")?;
    let a2 = s.server_app("app2")?;
    wait_stats(
        &s.sstats,
        "two server apps attached",
        Duration::from_secs(5),
        |v| num(v, "/bridge/channels") == 2,
    )?;
    let count = 200_000;
    let mut client = s.client_app("client", "set", count, 8)?;
    // Both apps serve.
    wait_stats(&s.sstats, "traffic", Duration::from_secs(10), |v| {
        num(v, "/bridge/requests") > 300
    })?;
    a1.signal("-KILL")?;
    drop(a1);
    let v = wait_stats(
        &s.sstats,
        "the killed app detached",
        Duration::from_secs(5),
        |v| num(v, "/bridge/channels") == 1 && num(v, "/hub/live") == 1,
    )?;
    let host_pid = num(&v, "/pid");
    ensure!(host_pid > 0, "host pid in {v}");
    let at_kill = num(&v, "/bridge/responses");
    // The other app keeps serving.
    wait_stats(
        &s.sstats,
        "serving after the kill",
        Duration::from_secs(10),
        |v| num(v, "/bridge/responses") > at_kill + 300,
    )?;
    // A restarted app reattaches and gets traffic too.
    let a3 = s.server_app("app3")?;
    wait_stats(
        &s.sstats,
        "the new app attached",
        Duration::from_secs(5),
        |v| num(v, "/bridge/channels") == 2,
    )?;
    std::thread::sleep(Duration::from_millis(500));
    client.signal("-TERM")?;
    let out = json_line(&client.wait_output(Duration::from_secs(10))?)?;
    let completed = num(&out, "/completed");
    let errors = num(&out, "/errors");
    ensure!(completed > 600, "client: {out}");
    // Only what the killed app held failed (at most the window), as `unavailable`.
    ensure!(
        errors <= 8 && num(&out, "/timeouts") == 0,
        "client errors: {out}"
    );
    let v = wait_stats(&s.sstats, "all slots back", Duration::from_secs(5), |v| {
        num(v, "/bridge/slots_lent") == 0
    })?;
    ensure!(
        num(&v, "/bridge/unavailable") == num(&v, "/bridge/slots_reclaimed")
            && num(&v, "/bridge/slots_reclaimed") == num(&out, "/other_errors"),
        "every reclaimed slot's request was answered unavailable and the client saw it: host {v} client {out}"
    );
    ensure!(
        num(&v, "/bridge/detached") == 1 && num(&v, "/bridge/bad_descriptors") == 0,
        "host: {v}"
    );
    ensure!(
        shm_files(host_pid)?.is_empty(),
        "segments left: {:?}",
        shm_files(host_pid)?
    );
    let a2_out = json_line(&a2.finish()?)?;
    let a3_out = json_line(&a3.finish()?)?;
    ensure!(num(&a2_out, "/sets") > 300, "app2: {a2_out}");
    ensure!(
        num(&a3_out, "/sets") > 0,
        "the restarted app served nothing: {a3_out}"
    );
    Ok(())
}

#[test]
fn hosts_restarted_under_running_apps() -> Result<()> {
    if !require_root("hosts_restarted_under_running_apps") {
        return Ok(());
    }
    let _serial = serial();
    let s = Setup::new("shmrst")?;
    let shost = s.server_host()?;
    let chost = s.client_host()?;
    let app = s.server_app("app")?;
    let mut client = s.client_app("client", "set", 10_000_000, 4)?;
    client.wait_line("attached as channel", Duration::from_secs(10))?;
    wait_stats(&s.sstats, "traffic", Duration::from_secs(10), |v| {
        num(v, "/bridge/responses") > 500
    })?;
    // The client side's host dies hard and comes back.
    chost.signal("-KILL")?;
    drop(chost);
    client.wait_line("dataplane gone", Duration::from_secs(5))?;
    let _chost = s.client_host()?;
    client.wait_line("reattached", Duration::from_secs(10))?;
    wait_stats(
        &s.cstats,
        "calls through the new client host",
        Duration::from_secs(10),
        |v| num(v, "/bridge/completions") > 500,
    )?;
    // The server side's host stops and comes back.
    shost.finish()?;
    app.wait_line("dataplane gone", Duration::from_secs(5))?;
    let _shost = s.server_host()?;
    app.wait_line("reattached", Duration::from_secs(10))?;
    wait_stats(
        &s.sstats,
        "traffic through the new server host",
        Duration::from_secs(15),
        |v| num(v, "/bridge/responses") > 500,
    )?;
    client.signal("-TERM")?;
    let out = json_line(&client.wait_output(Duration::from_secs(10))?)?;
    ensure!(num(&out, "/reattaches") == 1, "client: {out}");
    ensure!(
        num(&out, "/completed") > 1000 && num(&out, "/mismatches") == 0,
        "client: {out}"
    );
    let a = json_line(&app.finish()?)?;
    ensure!(
        num(&a, "/reattaches") == 1 && num(&a, "/sets") > 1000,
        "server app: {a}"
    );
    Ok(())
}

#[test]
fn other_uid_is_refused_and_firewall_runs_in_the_host() -> Result<()> {
    if !require_root("other_uid_is_refused_and_firewall_runs_in_the_host") {
        return Ok(());
    }
    let _serial = serial();
    let s = Setup::new("shmuid")?;
    let _shost = s.server_host()?;
    let _chost = s.client_host()?;
    let _app = s.server_app("app")?;
    // `nobody` may connect to the socket but is refused by its credentials.
    let out = Command::new(CLIENT)
        .arg("--attach")
        .arg(&s.csock)
        .args(["--count", "1"])
        .uid(65534)
        .gid(65534)
        .output()
        .context("running kv-client as nobody")?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "nobody attached: {err}");
    ensure!(
        err.contains("refused") && err.contains("uid 65534"),
        "stderr: {err}"
    );
    let v = wait_stats(
        &s.cstats,
        "the refusal counted",
        Duration::from_secs(5),
        |v| num(v, "/hub/refused") == 1,
    )?;
    ensure!(num(&v, "/hub/attached") == 0, "{v}");
    // Root attaches; the firewall (in the server host) answers alice and denies bob.
    for (user, want_denied) in [("alice", false), ("bob", true)] {
        let out = Command::new(CLIENT)
            .arg("--attach")
            .arg(&s.csock)
            .args([
                "--op",
                "get",
                "--count",
                "200",
                "--concurrency",
                "4",
                "--json",
                "--user",
                user,
            ])
            .output()?;
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = json_line(&String::from_utf8_lossy(&out.stdout))?;
        if want_denied {
            ensure!(
                num(&r, "/denied") == 200 && num(&r, "/completed") == 0,
                "{user}: {r}"
            );
        } else {
            ensure!(
                num(&r, "/completed") == 200 && num(&r, "/errors") == 0,
                "{user}: {r}"
            );
        }
    }
    let v = wait_stats(
        &s.sstats,
        "server host counters",
        Duration::from_secs(5),
        |v| num(v, "/bridge/chain_replied") >= 200,
    )?;
    ensure!(
        num(&v, "/bridge/chain_replied") == 200 && num(&v, "/bridge/requests") == 200,
        "{v}"
    );
    Ok(())
}

#[test]
fn a_two_core_dataplane_gives_each_core_a_server_thread() -> Result<()> {
    if !require_root("a_two_core_dataplane_gives_each_core_a_server_thread") {
        return Ok(());
    }
    let _serial = serial();
    let s = Setup::new("shmcores")?;
    // The server side polls two cores; idle cores yield (four busy processes may share
    // two CPUs here).
    let text = std::fs::read_to_string(&s.scfg)?.replace("cores = [1]", "cores = [0, 1]");
    std::fs::write(&s.scfg, format!("{text}[engine]\nidle = \"yield\"\n"))?;
    let _shost = s.server_host()?;
    let _chost = s.client_host()?;
    let app = Proc::spawn(
        "app",
        Command::new(SERVER)
            .arg("--attach")
            .arg(&s.ssock)
            .args(["--threads", "2", "--json"]),
    )?;
    wait_stats(
        &s.sstats,
        "one server channel on each core",
        Duration::from_secs(10),
        |v| v.pointer("/channels_per_core") == Some(&serde_json::json!([1, 1])),
    )?;
    let out = s
        .client_app("client", "set", 2000, 8)?
        .wait_output(Duration::from_secs(30))?;
    let out = json_line(&out)?;
    ensure!(
        num(&out, "/completed") == 2000 && num(&out, "/errors") == 0,
        "client: {out}"
    );
    let v = wait_stats(
        &s.sstats,
        "responses counted",
        Duration::from_secs(5),
        |v| num(v, "/bridge/responses") >= 2000,
    )?;
    ensure!(num(&v, "/bridge/unavailable") == 0, "host: {v}");
    // The attached application's answers are timed too (published with the counters).
    wait_stats(&s.sstats, "answers timed", Duration::from_secs(5), |v| {
        num(v, "/latency_count") >= 2000
    })?;
    let a = json_line(&app.finish()?)?;
    ensure!(num(&a, "/sets") == 2000, "server app: {a}");
    Ok(())
}
