//! The table and plot writer on a small fixed set of runs: every file is made, the SVGs
//! are well-formed (balanced tags) and name every stack, the markdown table has a row
//! per stack with the ratios computed from the inputs.

use rpc_report::{markdown, parse, write_all, Mode, Op, Role, Run, FILES};

fn run(
    stack: &str,
    role: Role,
    mode: Mode,
    size: usize,
    p50: f64,
    rps: f64,
    cpu: Option<f64>,
) -> Run {
    Run {
        stack: stack.into(),
        role,
        mode,
        op: Op::Get,
        size,
        sessions: if mode == Mode::Latency { 1 } else { 4 },
        window: if mode == Mode::Latency { 1 } else { 16 },
        completed: 1000,
        errors: 0,
        rps,
        p50_us: p50,
        p90_us: p50 * 1.2,
        p99_us: p50 * 2.0,
        p999_us: p50 * 4.0,
        stack_cpu_s: cpu,
        stack_rpcs: cpu.map(|_| 1000),
        cdf: vec![
            (p50 * 0.8, 0.0),
            (p50, 0.5),
            (p50 * 2.0, 0.99),
            (p50 * 5.0, 1.0),
        ],
    }
}

fn fixture() -> Vec<Run> {
    vec![
        run(
            "kernel UDP echo",
            Role::Kernel,
            Mode::Latency,
            64,
            20.0,
            50e3,
            Some(0.02),
        ),
        run(
            "gRPC + HAProxy sidecars",
            Role::Sidecar,
            Mode::Latency,
            64,
            200.0,
            5e3,
            Some(0.2),
        ),
        run(
            "gRPC + HAProxy sidecars",
            Role::Sidecar,
            Mode::Throughput,
            64,
            900.0,
            20e3,
            Some(0.1),
        ),
        run(
            "flatrpc afpacket",
            Role::Flatrpc,
            Mode::Latency,
            64,
            10.0,
            100e3,
            Some(0.01),
        ),
        run(
            "flatrpc afpacket",
            Role::Flatrpc,
            Mode::Throughput,
            64,
            90.0,
            400e3,
            Some(0.005),
        ),
        run(
            "flatrpc afpacket",
            Role::Flatrpc,
            Mode::Latency,
            65536,
            120.0,
            8e3,
            None,
        ),
        Run {
            op: Op::Set,
            ..run(
                "flatrpc afpacket",
                Role::Flatrpc,
                Mode::Latency,
                64,
                11.0,
                90e3,
                None,
            )
        },
        Run {
            op: Op::Set,
            ..run(
                "flatrpc afpacket",
                Role::Flatrpc,
                Mode::Latency,
                1024,
                13.0,
                80e3,
                None,
            )
        },
        Run {
            op: Op::Set,
            ..run(
                "gRPC (tonic) direct",
                Role::Grpc,
                Mode::Latency,
                1024,
                100.0,
                9e3,
                None,
            )
        },
    ]
}

/// Start/end tags balance (self-closing, declarations and comments skipped).
fn well_formed(svg: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        let after = &rest[i + 1..];
        let j = after.find('>').ok_or("unterminated tag")?;
        let tag = &after[..j];
        rest = &after[j + 1..];
        if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
            continue;
        }
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        if tag.starts_with('/') {
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else {
            stack.push(name);
        }
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed {stack:?}"))
    }
}

#[test]
fn writes_every_file_with_every_stack() {
    let dir = std::env::temp_dir().join(format!("rpc-report-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runs = fixture();
    let paths = write_all(&runs, &dir, "preamble line\n\n").expect("report");
    assert_eq!(paths.len(), FILES.len());
    for p in &paths {
        let text = std::fs::read_to_string(p).expect("written");
        if p.extension().is_some_and(|e| e == "svg") {
            assert!(text.contains("<svg"), "{}: not SVG", p.display());
            well_formed(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
    let svg = |name: &str| std::fs::read_to_string(dir.join(name)).expect("svg");
    for stack in [
        "kernel UDP echo",
        "gRPC + HAProxy sidecars",
        "flatrpc afpacket",
    ] {
        assert!(svg("latency_cdf.svg").contains(stack), "cdf lacks {stack}");
        assert!(
            svg("throughput.svg").contains(stack),
            "throughput lacks {stack}"
        );
        assert!(svg("cpu_per_rpc.svg").contains(stack), "cpu lacks {stack}");
    }
    let md = std::fs::read_to_string(dir.join("rpc.md")).expect("md");
    assert!(md.starts_with("preamble line"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_table_has_a_row_per_stack_and_the_ratios_of_the_inputs() {
    let md = markdown(&fixture()).expect("markdown");
    let row = |stack: &str| -> Vec<String> {
        md.lines()
            .find(|l| l.starts_with(&format!("| {stack} |")))
            .unwrap_or_else(|| panic!("no row for {stack} in\n{md}"))
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let f = row("flatrpc afpacket");
    // | stack | p50 | p90 | p99 | p99.9 | Mrps | CPU | kRPS/core | p50 vs sc | CPU vs sc | core vs sc | p50 vs kernel |
    assert_eq!(f[2], "10.0");
    assert_eq!(f[6], "0.400");
    assert_eq!(f[7], "5.00"); // 0.005 s / 1000 RPCs
    assert_eq!(f[9], "20.00×"); // 200 / 10
    assert_eq!(f[10], "20.00×"); // 100 µs / 5 µs
    assert_eq!(f[11], "20.00×");
    assert_eq!(f[12], "2.00×"); // kernel 20 / 10
    let k = row("kernel UDP echo");
    assert_eq!(k[6], "–", "no throughput run for the kernel echo");
    assert!(md.contains("64 KiB"), "size sweep table:\n{md}");
    // The main table is of GETs: the SET runs (64 B at 11 µs) do not replace the GET's.
    assert_eq!(
        md.matches("| flatrpc afpacket |").count(),
        3,
        "main, GET sweep, SET sweep:\n{md}"
    );
    let set_table = &md[md.find("SET (the request").expect("SET sweep")..];
    assert!(
        set_table.contains("| flatrpc afpacket | 11.0 | 13.0 |"),
        "{set_table}"
    );
    assert!(
        set_table.contains("| gRPC (tonic) direct | – | 100 |"),
        "{set_table}"
    );
    assert!(!set_table.contains("kernel UDP echo"), "{set_table}");
    row("gRPC + HAProxy sidecars");
}

#[test]
fn bad_records_are_errors_with_their_line() {
    let good = serde_json::to_string(&fixture()[0]).expect("json");
    let text = format!("{good}\n\n{{\"stack\": 3}}\n");
    let (line, _) = parse(&text).expect_err("bad record");
    assert_eq!(line, 3);
    assert!(markdown(&[]).is_err());
}
