//! Build script of dpdk-sys: finds the system DPDK with pkg-config, generates the Rust
//! bindings with bindgen (static-inline functions wrapped through generated C), and
//! compiles those wrappers plus `src/shim.c` with the same cflags.
//!
//! It owns the FFI surface only; it must not contain logic beyond locating, generating
//! and linking.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const NOT_FOUND: &str =
    "dpdk-sys: libdpdk not found via pkg-config; run scripts/setup.sh (installs libdpdk-dev, clang)";

/// Structs bindgen cannot lay out (packed structs inside packed structs, rustc E0588).
const OPAQUE: &[&str] = &[
    "rte_l2tpv2_combined_msg_hdr",
    "rte_gtp_psc_generic_hdr",
    "rte_arp_hdr",
    "rte_arp_ipv4",
];

fn main() {
    println!("cargo:rerun-if-changed=src/wrapper.h");
    println!("cargo:rerun-if-changed=src/shim.h");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");

    let lib = match pkg_config::Config::new()
        .statik(false)
        .cargo_metadata(false)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(_) => fail(NOT_FOUND),
    };
    let cflags = dpdk_cflags();

    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_default());
    let src = manifest.join("src");
    let static_fns = out.join("static_fns");

    let mut builder = bindgen::Builder::default()
        .header(src.join("wrapper.h").to_string_lossy())
        .clang_args(&cflags)
        .clang_arg(format!("-I{}", src.display()))
        .clang_arg("-DALLOW_EXPERIMENTAL_API")
        .allowlist_function("rte_.*|flatrpc_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*|rte_.*|FLATRPC_.*|RING_F_.*")
        .wrap_static_fns(true)
        .wrap_static_fns_path(&static_fns)
        .derive_default(true)
        .derive_debug(false)
        .generate_comments(false)
        .layout_tests(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for ty in OPAQUE {
        builder = builder.opaque_type(ty);
    }
    let bindings = match builder.generate() {
        Ok(b) => b,
        Err(e) => fail(&format!(
            "dpdk-sys: bindgen failed on the DPDK headers: {e}"
        )),
    };
    if let Err(e) = bindings.write_to_file(out.join("bindings.rs")) {
        fail(&format!("dpdk-sys: cannot write bindings.rs: {e}"));
    }

    // The generated wrappers of static-inline functions, and our shim, with DPDK's
    // exact cflags (including `-include rte_config.h -march=corei7`).
    let mut cc = cc::Build::new();
    cc.file(static_fns.with_extension("c"))
        .file(src.join("shim.c"))
        .include(&src)
        .include(&manifest)
        .define("ALLOW_EXPERIMENTAL_API", None)
        .opt_level(3)
        .warnings(false);
    for flag in &cflags {
        cc.flag(flag);
    }
    cc.compile("flatrpc_dpdk_wrappers");

    // The DPDK shared libraries, after our static wrappers so the linker resolves them.
    for path in &lib.link_paths {
        println!("cargo:rustc-link-search=native={}", path.display());
    }
    for name in &lib.libs {
        println!("cargo:rustc-link-lib=dylib={name}");
    }
    // Two drivers we call directly: the vdev bus (`rte_vdev_init`, hot-plugging virtual
    // devices) and the ring PMD (`rte_eth_from_rings`, in-process port pairs). They are
    // the same files EAL loads as plugins from its pmds directory (the linker names are
    // symlinks into it), so nothing registers twice; with `--as-needed` only binaries
    // that call them keep them.
    println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");
    println!("cargo:include={}", src.display());
}

/// `pkg-config --cflags libdpdk`, split into arguments. The pkg-config crate keeps only
/// the include paths and defines; bindgen and cc need every flag.
fn dpdk_cflags() -> Vec<String> {
    let tool = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let output = Command::new(&tool).args(["--cflags", "libdpdk"]).output();
    match output {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        _ => fail(NOT_FOUND),
    }
}

/// Stops the build with one readable line.
fn fail(msg: &str) -> ! {
    println!("cargo:warning={msg}");
    eprintln!("{msg}");
    std::process::exit(1);
}
