//! The gRPC baseline for real: grpc-kv server and client processes over loopback
//! (a direct run, the firewall refusing a denied user), and the sidecar stack — the
//! client through two HAProxy instances in HTTP/2 mode, the server-side one denying
//! `x-user: mallory` — in a private network namespace (root and haproxy needed; without
//! them the test skips, except under CI where a missing root fails).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_grpc-kv");
static COUNTER: AtomicU32 = AtomicU32::new(0);

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

/// Reads stderr lines (bounded wait) until one contains `needle`; returns it.
fn wait_line(child: &mut Child, needle: &str) -> String {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let needle = needle.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&needle) {
                let _ = tx.send(line);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the server printed its serving line within 10 s")
}

fn json_of(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "no JSON line; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).expect("JSON")
}

fn client(prefix: &[&str], url: &str, extra: &[&str]) -> Output {
    let mut cmd = Command::new(prefix.first().copied().unwrap_or(BIN));
    let mut args: Vec<&str> = prefix.iter().skip(1).copied().collect();
    if !prefix.is_empty() {
        args.push(BIN);
    }
    args.extend([
        "client",
        "--server",
        url,
        "--duration",
        "0.4",
        "--warmup",
        "0.1",
        "--timeout",
        "20",
        "--json",
    ]);
    args.extend(extra);
    cmd.args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("run grpc-kv client")
}

fn sigterm(p: &Proc) {
    let _ = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status();
}

#[test]
fn direct_grpc_serves_and_its_firewall_denies() {
    let mut server = Proc(
        Command::new(BIN)
            .args([
                "server",
                "--listen",
                "127.0.0.1:0",
                "--deny",
                "mallory",
                "--duration",
                "30",
                "--json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start grpc-kv server"),
    );
    let line = wait_line(&mut server.0, "serving on");
    let addr = line.rsplit(' ').next().expect("address");
    let url = format!("http://{addr}");

    let ok = client(
        &[],
        &url,
        &["--sessions", "2", "--window", "4", "--size", "1024"],
    );
    assert!(
        ok.status.success(),
        "client: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let r = json_of(&ok);
    assert!(r["completed"].as_u64().unwrap_or(0) > 0, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["p50_us"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
    assert_eq!(r["cdf"].as_array().map(Vec::len), Some(24), "{r}");

    let denied = client(&[], &url, &["--op", "set", "--user", "mallory"]);
    assert!(!denied.status.success(), "a denied user's run must fail");
    let d = json_of(&denied);
    assert_eq!(d["completed"], 0, "{d}");
    assert!(d["denied"].as_u64().unwrap_or(0) > 0, "{d}");

    sigterm(&server);
    let out = server.0.wait_with_output_bounded();
    let s: serde_json::Value = serde_json::from_str(out.trim()).expect("server JSON");
    assert!(s["gets"].as_u64().unwrap_or(0) > 0, "{s}");
    assert!(s["denied"].as_u64().unwrap_or(0) > 0, "{s}");
    assert!(s["cpu_s"].as_f64().unwrap_or(0.0) > 0.0, "{s}");
}

trait WaitBounded {
    fn wait_with_output_bounded(&mut self) -> String;
}

impl WaitBounded for Child {
    /// Waits up to 10 s for exit, then returns stdout.
    fn wait_with_output_bounded(&mut self) -> String {
        for _ in 0..200 {
            if let Ok(Some(_)) = self.try_wait() {
                let mut s = String::new();
                if let Some(mut o) = self.stdout.take() {
                    let _ = std::io::Read::read_to_string(&mut o, &mut s);
                }
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the process did not exit within 10 s of SIGTERM");
    }
}

/// A private network namespace with only `lo`, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!(
            "frt-grpc-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
        assert!(
            ok(Command::new("ip").args(["netns", "add", &name])),
            "ip netns add"
        );
        let ns = Netns(name);
        assert!(ok(
            Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"])
        ));
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

#[test]
fn haproxy_sidecars_deny_the_denied_user_and_pass_the_allowed_one() {
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root: this test must run"
        );
        eprintln!("skipping: network namespaces need root");
        return;
    }
    if Command::new("haproxy").arg("-v").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs haproxy (scripts/setup.sh)"
        );
        eprintln!("skipping: haproxy is not installed");
        return;
    }
    let ns = Netns::new();
    let dir = std::env::temp_dir().join(format!("grpc-kv-sidecars-{}", ns.0));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = |listen: &str, upstream: &str, deny: &[&str]| {
        let mut args = vec!["sidecar-config", "--listen", listen, "--upstream", upstream];
        for d in deny {
            args.extend(["--deny", d]);
        }
        let out = Command::new(BIN)
            .args(&args)
            .output()
            .expect("sidecar-config");
        assert!(out.status.success());
        let path = dir.join(format!("{}.cfg", listen.replace([':', '.'], "_")));
        std::fs::write(&path, &out.stdout).expect("write cfg");
        path
    };
    let client_side = config("127.0.0.1:18001", "127.0.0.1:18002", &[]);
    let server_side = config("127.0.0.1:18002", "127.0.0.1:18003", &["mallory"]);
    let exec = |args: &[&str]| {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.0]).args(args);
        c
    };
    let mut server = Proc(
        exec(&[
            BIN,
            "server",
            "--listen",
            "127.0.0.1:18003",
            "--no-firewall",
            "--duration",
            "30",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start grpc-kv server"),
    );
    wait_line(&mut server.0, "serving on");
    let mut proxies = Vec::new();
    for cfg in [&client_side, &server_side] {
        let cfg = cfg.to_string_lossy().into_owned();
        let mut p = Proc(
            exec(&["haproxy", "-db", "-f", &cfg])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start haproxy"),
        );
        // haproxy -db says nothing when it starts well: give it a moment, then check
        // it is still running.
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            matches!(p.0.try_wait(), Ok(None)),
            "haproxy -f {cfg} exited"
        );
        proxies.push(p);
    }
    let prefix = ["ip", "netns", "exec", ns.0.as_str()];
    let url = "http://127.0.0.1:18001";
    let ok = client(&prefix, url, &["--op", "set", "--user", "alice"]);
    assert!(
        ok.status.success(),
        "alice: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let r = json_of(&ok);
    assert!(r["completed"].as_u64().unwrap_or(0) > 0, "{r}");
    assert_eq!(r["errors"], 0, "{r}");

    let denied = client(&prefix, url, &["--op", "set", "--user", "mallory"]);
    assert!(!denied.status.success(), "mallory must be denied");
    let d = json_of(&denied);
    assert_eq!(d["completed"], 0, "{d}");
    assert!(d["denied"].as_u64().unwrap_or(0) > 0, "{d}");

    drop(proxies);
    sigterm(&server);
    let out = server.0.wait_with_output_bounded();
    let s: serde_json::Value = serde_json::from_str(out.trim()).expect("server JSON");
    // The sidecar refused mallory: the application never saw a denied request.
    assert!(s["sets"].as_u64().unwrap_or(0) > 0, "{s}");
    assert_eq!(s["denied"], 0, "{s}");
    assert_eq!(s["users"], 1, "only alice reached the server: {s}");
    let _ = std::fs::remove_dir_all(&dir);
}
