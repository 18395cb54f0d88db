//! The corpus of invalid inputs (tests/invalid/*.case): each case overrides files of
//! the KV example (spec, proto, elements) and names the one diagnostic specgen must
//! give, as `file:line:col: message`. Every diagnostic must also render the source line
//! with a caret and a hint. Rewrite expectations with `SPECGEN_BLESS=1`.

use std::path::{Path, PathBuf};

struct Case {
    expect: String,
    files: Vec<(String, String)>,
}

fn parse_case(text: &str) -> Case {
    let mut expect = String::new();
    let mut files: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(e) = line.strip_prefix("# expect: ") {
            expect = e.to_string();
        } else if let Some(p) = line.strip_prefix("--- ") {
            files.push((p.trim().to_string(), String::new()));
        } else if let Some((_, body)) = files.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    Case { expect, files }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read base").flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "elements") {
                copy_dir(&p, &to.join("elements"));
            }
        } else if p
            .extension()
            .is_some_and(|x| x == "spec" || x == "proto" || x == "appnet")
        {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_invalid_input_gets_its_diagnostic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = root.join("../examples/kv");
    let dir = root.join("tests/invalid");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("cases")
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    let bless = std::env::var_os("SPECGEN_BLESS").is_some();
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in names
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "case"))
    {
        let text = std::fs::read_to_string(path).expect("read case");
        let case = parse_case(&text);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = TempDir(
            std::env::temp_dir().join(format!("specgen-invalid-{}-{name}", std::process::id())),
        );
        let _ = std::fs::remove_dir_all(&tmp.0);
        copy_dir(&base, &tmp.0);
        for (rel, body) in &case.files {
            let p = tmp.0.join(rel);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d).expect("mkdir");
            }
            std::fs::write(p, body).expect("write override");
        }
        let result =
            std::panic::catch_unwind(|| specgen::Builder::new().generate(tmp.0.join("kv.spec")));
        ran += 1;
        let err = match result {
            Err(_) => {
                failures.push(format!("{name}: specgen panicked"));
                continue;
            }
            Ok(Ok(_)) => {
                failures.push(format!("{name}: accepted, expected `{}`", case.expect));
                continue;
            }
            Ok(Err(e)) => e,
        };
        let Some(d) = err.diag() else {
            failures.push(format!("{name}: not a located diagnostic: {err}"));
            continue;
        };
        let short = d.short();
        if bless {
            let rest: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with("# expect: "))
                .collect();
            std::fs::write(path, format!("# expect: {short}\n{}\n", rest.join("\n")))
                .expect("bless");
            continue;
        }
        if short != case.expect {
            failures.push(format!(
                "{name}:\n    expected {}\n    got      {short}",
                case.expect
            ));
        }
        let rendered = d.render();
        let (line, _) = d.line_col();
        if !rendered.contains(&format!("{}:{line}:", d.source.name))
            || !rendered.contains('^') && !rendered.contains('┬')
        {
            failures.push(format!(
                "{name}: rendering lacks location or caret:\n{rendered}"
            ));
        }
        if d.hint.is_empty() || !rendered.contains(&d.hint[..d.hint.len().min(20)]) {
            failures.push(format!("{name}: no hint in:\n{rendered}"));
        }
    }
    assert!(ran >= 25, "only {ran} cases found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
