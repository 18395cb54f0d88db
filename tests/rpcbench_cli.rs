//! rpcbench refuses bad arguments with one clear error line and a non-zero exit,
//! never a panic.

use std::process::Command;

fn rpcbench(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rpcbench"))
        .args(args)
        .output()
        .expect("run rpcbench");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

fn assert_clean_failure(args: &[&str], needle: &str) {
    let (code, stderr) = rpcbench(args);
    assert_ne!(code, 0, "{args:?} should fail; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(
        stderr.to_lowercase().contains(&needle.to_lowercase()),
        "{args:?}: expected {needle:?} in stderr, got: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: want one error line, got: {stderr}"
    );
}

#[test]
fn unknown_mode() {
    assert_clean_failure(
        &["--backend", "afpacket", "--iface", "lo", "--mode", "warp"],
        "unknown mode",
    );
}

#[test]
fn unknown_backend() {
    assert_clean_failure(&["--backend", "carrier-pigeon"], "carrier-pigeon");
}

#[test]
fn afpacket_without_iface() {
    assert_clean_failure(&["--backend", "afpacket", "--duration", "1"], "--iface");
}

#[test]
fn tap_without_iface() {
    assert_clean_failure(&["--backend", "tap", "--duration", "1"], "--iface");
}

#[test]
fn missing_interface() {
    assert_clean_failure(
        &[
            "--backend",
            "afpacket",
            "--iface",
            "flatrpc-nope0",
            "--duration",
            "1",
        ],
        "flatrpc-nope0",
    );
}

#[test]
fn bad_burst_cores_and_duration() {
    let lo = ["--backend", "afpacket", "--iface", "lo"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        lo.iter().chain(extra.iter()).copied().collect()
    };
    assert_clean_failure(&with(&["--burst", "0"]), "--burst");
    assert_clean_failure(&with(&["--burst", "33"]), "--burst");
    assert_clean_failure(&with(&["--cores", "3-1"]), "core");
    assert_clean_failure(&with(&["--cores", "4000"]), "core 4000");
    assert_clean_failure(&with(&["--duration=-1"]), "--duration");
}

#[test]
fn txonly_frame_size_out_of_range() {
    let lo = ["--backend", "afpacket", "--iface", "lo", "--mode", "txonly"];
    for size in ["20", "9000"] {
        let args: Vec<&str> = lo.iter().copied().chain(["--pkt-size", size]).collect();
        assert_clean_failure(&args, "--pkt-size");
    }
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_without_eal_args() {
    assert_clean_failure(&["--backend", "dpdk", "--duration", "1"], "--eal");
}

#[cfg(feature = "dpdk")]
#[test]
fn eal_failure_is_one_line() {
    assert_clean_failure(
        &[
            "--backend",
            "dpdk",
            "--eal",
            "--no-huge -m 64 --no-pci --vdev=net_nosuchdriver0 --file-prefix=rpcbench-cli-bad",
            "--duration",
            "1",
        ],
        "EAL",
    );
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_with_no_ports() {
    assert_clean_failure(
        &[
            "--backend",
            "dpdk",
            "--eal",
            "--no-huge -m 128 --no-pci --file-prefix=rpcbench-cli-noports",
            "--duration",
            "1",
        ],
        "no DPDK port",
    );
}
