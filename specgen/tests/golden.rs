//! Golden tests: the generated code and the `specgen layout` table of the KV example
//! and of the element corpus must match the files in tests/golden/. Rewrite them with
//! `SPECGEN_BLESS=1 cargo test -p specgen --test golden`.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn compare(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("SPECGEN_BLESS").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from the golden file at line {}:\n  golden: {:?}\n  actual: {:?}\nrerun with SPECGEN_BLESS=1 if the change is intended",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

#[test]
fn kv_generated_code_and_layout() {
    let out = specgen::Builder::new()
        .generate(root().join("../examples/kv/kv.spec"))
        .expect("kv.spec compiles");
    compare("kv.rs.golden", &out.code);
    compare("kv.layout.golden", &out.layout);
}

#[test]
fn corpus_generated_code_and_layout() {
    let out = specgen::Builder::new()
        .generate(root().join("corpus/corpus.spec"))
        .expect("corpus.spec compiles");
    compare("corpus.rs.golden", &out.code);
    compare("corpus.layout.golden", &out.layout);
}

#[test]
fn generated_code_is_deterministic_and_commented() {
    let a = specgen::Builder::new()
        .generate(root().join("../examples/kv/kv.spec"))
        .expect("compiles");
    let b = specgen::Builder::new()
        .generate(root().join("../examples/kv/kv.spec"))
        .expect("compiles");
    assert_eq!(a.code, b.code);
    assert!(a
        .code
        .contains("// elements/firewall.appnet:11: match get(rules, user):"));
    assert!(a
        .code
        .contains("// kv.spec:9: set => reliable() -> ordered()"));
    assert!(
        !a.code.contains("__specgen_src!(\""),
        "every source marker became a comment"
    );
}
