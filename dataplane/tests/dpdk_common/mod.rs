//! Shared set-up of the `dpdk_*` integration tests: the EAL, once per test binary, with
//! its own `--file-prefix`, no hugepages, no PCI, no shared config files, and the
//! binary's virtual devices. Not a test target itself (a directory module).

#![allow(dead_code)]

use std::path::Path;
use std::sync::OnceLock;

use dataplane::dpdk::Eal;

/// The EAL arguments for test binary `name` with `vdevs` (`--vdev` values).
pub fn eal_args(name: &str, vdevs: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "-l",
        "0",
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-telemetry",
        "--no-shconf",
        "--log-level=error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!(
        "--file-prefix=flatrpc-{name}-{}",
        std::process::id()
    ));
    args.extend(vdevs.iter().map(|v| format!("--vdev={v}")));
    args
}

/// The binary's EAL, initialised by the first test that asks.
pub fn eal(name: &str, vdevs: &[&str]) -> Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    *EAL.get_or_init(|| {
        remove_stale_runtime_dirs();
        match Eal::init(&eal_args(name, vdevs)) {
            Ok(e) => e,
            Err(e) => panic!("EAL init failed: {e}"),
        }
    })
}

/// EAL leaves an (empty, with `--no-shconf`) runtime directory per file prefix. Remove
/// those of earlier test processes that are gone, so runs do not accumulate them.
pub fn remove_stale_runtime_dirs() {
    let Ok(entries) = std::fs::read_dir("/var/run/dpdk") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("flatrpc-") {
            continue;
        }
        let Some(pid) = name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // Only empty directories: remove_dir refuses anything else.
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// A frame of `len` bytes whose content depends on `seed`.
pub fn frame(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
