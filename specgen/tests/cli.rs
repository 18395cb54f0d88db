//! Runs the real `specgen` binary: `check`, `build -o`, `layout`, and non-zero exit
//! codes with a rendered diagnostic on bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

fn kv_spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kv/kv.spec")
}

fn specgen(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_specgen"))
        .args(args)
        .output()
        .expect("run specgen")
}

#[test]
fn check_build_and_layout_succeed_on_the_kv_spec() {
    let spec = kv_spec();
    let out = specgen(&["check".as_ref(), spec.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = std::env::temp_dir().join(format!("specgen-cli-{}", std::process::id()));
    let out = specgen(&[
        "build".as_ref(),
        spec.as_os_str(),
        "-o".as_ref(),
        dir.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = std::fs::read_to_string(dir.join("kv.rs")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(code.contains("pub mod kv"));
    assert!(code.contains("pub struct ServerPipeline"));

    let out = specgen(&["layout".as_ref(), spec.as_os_str()]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("message kv.GetRequest"));
    assert!(table.contains("read by firewall.req on Get (server)"));
    assert!(table.contains("not read by any element"));
}

#[test]
fn errors_exit_non_zero_with_a_located_diagnostic() {
    let dir = std::env::temp_dir().join(format!("specgen-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("elements")).expect("mkdir");
    let base = kv_spec();
    let base = base.parent().expect("dir");
    std::fs::copy(base.join("kv.proto"), dir.join("kv.proto")).expect("copy");
    std::fs::copy(
        base.join("elements/session_tracker.appnet"),
        dir.join("elements/session_tracker.appnet"),
    )
    .expect("copy");
    std::fs::write(
        dir.join("kv.spec"),
        "proto \"kv.proto\"\nservice KvService\ntransport:\n    get => unreliable()\n    get => reliable()\nchain:\n    server: session_tracker()\n",
    )
    .expect("write");
    let spec = dir.join("kv.spec");
    for cmd in ["check", "layout"] {
        let out = specgen(&[cmd.as_ref(), spec.as_os_str()]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("duplicate method `get` in the transport table"),
            "{err}"
        );
        assert!(err.contains("kv.spec:5:5"), "{err}");
        assert!(err.contains("help:"), "{err}");
    }
    let out = specgen(&["check".as_ref(), dir.join("missing.spec").as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}
