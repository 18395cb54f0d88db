//! The RPC benchmark report: reads the run records scripts/bench.sh collects (one JSON
//! object per line: a stack, a mode, a payload size, the client's figures and the
//! stack's CPU) and writes the markdown table and the SVG plots (latency CDF per stack,
//! throughput bars, CPU/RPC bars, p50 against payload size).
//!
//! It only formats what it is given: no figure is computed here except ratios and
//! CPU per RPC (stack CPU seconds / RPCs). It must not run or time anything.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: cannot read or write")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a run record")]
    Parse {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("no run records")]
    Empty,
    #[error("plotting {what}: {message}")]
    Plot { what: &'static str, message: String },
}

/// What a run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One session, one RPC outstanding.
    Latency,
    /// S sessions × W outstanding.
    Throughput,
}

/// Which RPC a run issued: a GET's response carries the value, a SET's request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    #[default]
    Get,
    Set,
}

/// Which comparison a stack's row takes part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The layered reference (gRPC + sidecars): ratios are taken against it.
    Sidecar,
    /// The kernel UDP echo: median latency is compared against it.
    Kernel,
    /// A flatrpc stack (the targets apply to it).
    Flatrpc,
    /// A layered stack without sidecars (gRPC direct).
    Grpc,
    #[default]
    Other,
}

/// One measured run.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Run {
    pub stack: String,
    #[serde(default)]
    pub role: Role,
    pub mode: Mode,
    #[serde(default)]
    pub op: Op,
    /// Value bytes (GET response / SET request payload).
    pub size: usize,
    #[serde(default)]
    pub sessions: usize,
    #[serde(default)]
    pub window: usize,
    pub completed: u64,
    #[serde(default)]
    pub errors: u64,
    pub rps: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// CPU seconds (user + system) of every process of the stack during the run, and
    /// the RPCs they served in that time (fill and warm-up included).
    #[serde(default)]
    pub stack_cpu_s: Option<f64>,
    #[serde(default)]
    pub stack_rpcs: Option<u64>,
    /// (latency µs, quantile) points.
    #[serde(default)]
    pub cdf: Vec<(f64, f64)>,
}

impl Run {
    /// CPU µs per RPC over all the stack's processes.
    pub fn cpu_us_per_rpc(&self) -> Option<f64> {
        match (self.stack_cpu_s, self.stack_rpcs) {
            (Some(c), Some(n)) if n > 0 && c.is_finite() && c >= 0.0 => Some(c * 1e6 / n as f64),
            _ => None,
        }
    }
}

/// Reads run records, one JSON object per line; blank lines are skipped.
pub fn load(path: &Path) -> Result<Vec<Run>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|(line, source)| ReportError::Parse {
        path: path.to_owned(),
        line,
        source,
    })
}

/// Parses run records from text; the error carries the 1-based line.
pub fn parse(text: &str) -> Result<Vec<Run>, (usize, serde_json::Error)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| (i + 1, e)))
        .collect()
}

/// The stacks in first-seen order.
pub fn stacks(runs: &[Run]) -> Vec<String> {
    let mut seen = Vec::<String>::new();
    for r in runs {
        if !seen.contains(&r.stack) {
            seen.push(r.stack.clone());
        }
    }
    seen
}

/// The payload size of the main comparison: the smallest size measured.
pub fn main_size(runs: &[Run]) -> Option<usize> {
    runs.iter().map(|r| r.size).min()
}

/// The GET run of `stack` in `mode` at `size` (the main comparison is of GETs).
fn find<'a>(runs: &'a [Run], stack: &str, mode: Mode, size: usize) -> Option<&'a Run> {
    find_op(runs, stack, Op::Get, mode, size)
}

fn find_op<'a>(runs: &'a [Run], stack: &str, op: Op, mode: Mode, size: usize) -> Option<&'a Run> {
    runs.iter().find(|r| {
        r.stack == stack && r.op == op && r.mode == mode && r.size == size && r.completed > 0
    })
}

fn role_of(runs: &[Run], stack: &str) -> Role {
    runs.iter()
        .find(|r| r.stack == stack)
        .map(|r| r.role)
        .unwrap_or_default()
}

/// One row of the main table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub stack: String,
    pub role: Role,
    pub latency: Option<Run>,
    pub mrps: Option<f64>,
    /// From the throughput run when there is one, else from the latency run.
    pub cpu_us_per_rpc: Option<f64>,
}

impl Row {
    /// RPCs per CPU-second, thousands (throughput per core).
    pub fn krps_per_core(&self) -> Option<f64> {
        self.cpu_us_per_rpc.filter(|&c| c > 0.0).map(|c| 1e3 / c)
    }
}

/// The main comparison's rows at `size`.
pub fn rows(runs: &[Run], size: usize) -> Vec<Row> {
    stacks(runs)
        .into_iter()
        .map(|stack| {
            let lat = find(runs, &stack, Mode::Latency, size).cloned();
            let thr = find(runs, &stack, Mode::Throughput, size);
            Row {
                role: role_of(runs, &stack),
                mrps: thr.map(|t| t.rps / 1e6),
                cpu_us_per_rpc: thr
                    .and_then(Run::cpu_us_per_rpc)
                    .or_else(|| lat.as_ref().and_then(Run::cpu_us_per_rpc)),
                latency: lat,
                stack,
            }
        })
        .collect()
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
        None => "–".into(),
    }
}

fn ratio(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.2}×"),
        _ => "–".into(),
    }
}

/// The markdown report: the main table at the smallest size, then p50 by size.
pub fn markdown(runs: &[Run]) -> Result<String, ReportError> {
    let size = main_size(runs).ok_or(ReportError::Empty)?;
    let rows = rows(runs, size);
    let sidecar = rows.iter().find(|r| r.role == Role::Sidecar);
    let kernel = rows.iter().find(|r| r.role == Role::Kernel);
    let p50 = |r: Option<&Row>| r.and_then(|r| r.latency.as_ref()).map(|l| l.p50_us);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### RPC tax: KV GET, {size} B values\n\n\
         Latency: one session, one RPC outstanding. Mrps and CPU: the throughput run \
         (S sessions × W outstanding). CPU µs/RPC: user + system time of every process of \
         the stack (client, server, proxies) over the RPCs they served, from the throughput \
         run (from the latency run for a stack without one); kRPS/core is its inverse. \
         Ratios: ×-better than the reference (above 1 is better for the row).\n"
    );
    md.push_str(
        "| stack | p50 µs | p90 µs | p99 µs | p99.9 µs | Mrps | CPU µs/RPC | kRPS/core \
         | p50 vs gRPC+sidecars | CPU vs gRPC+sidecars | per-core thr. vs gRPC+sidecars | p50 vs kernel UDP |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        let l = r.latency.as_ref();
        let lat_ratio = |reference: Option<&Row>| match (p50(reference), l.map(|l| l.p50_us)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let cpu_ratio = match (sidecar.and_then(|s| s.cpu_us_per_rpc), r.cpu_us_per_rpc) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let core_ratio = match (sidecar.and_then(Row::krps_per_core), r.krps_per_core()) {
            (Some(a), Some(b)) if a > 0.0 => Some(b / a),
            _ => None,
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.stack,
            num(l.map(|l| l.p50_us)),
            num(l.map(|l| l.p90_us)),
            num(l.map(|l| l.p99_us)),
            num(l.map(|l| l.p999_us)),
            r.mrps.map_or("–".into(), |m| format!("{m:.3}")),
            num(r.cpu_us_per_rpc),
            num(r.krps_per_core()),
            ratio(lat_ratio(sidecar)),
            ratio(cpu_ratio),
            ratio(core_ratio),
            ratio(lat_ratio(kernel)),
        );
    }
    for (op, what) in [
        (Op::Get, "GET (the response carries the value)"),
        (Op::Set, "SET (the request carries the value)"),
    ] {
        let sizes: BTreeSet<usize> = runs
            .iter()
            .filter(|r| r.mode == Mode::Latency && r.op == op)
            .map(|r| r.size)
            .collect();
        if sizes.len() < 2 {
            continue;
        }
        let _ = writeln!(
            md,
            "\n### p50 latency (µs) by value size, {what}, one RPC outstanding\n"
        );
        md.push_str("| stack |");
        for s in &sizes {
            let _ = write!(md, " {} |", human_size(*s));
        }
        md.push_str("\n|---|");
        for _ in &sizes {
            md.push_str("---:|");
        }
        md.push('\n');
        for stack in stacks(runs) {
            if !runs.iter().any(|r| r.stack == stack && r.op == op) {
                continue;
            }
            let _ = write!(md, "| {stack} |");
            for &s in &sizes {
                let _ = write!(
                    md,
                    " {} |",
                    num(find_op(runs, &stack, op, Mode::Latency, s).map(|r| r.p50_us))
                );
            }
            md.push('\n');
        }
    }
    let failed: Vec<&Run> = runs.iter().filter(|r| r.errors > 0).collect();
    if !failed.is_empty() {
        md.push_str("\nRuns with failed RPCs (counted, not in the percentiles): ");
        let list: Vec<String> = failed
            .iter()
            .map(|r| {
                format!(
                    "{} {:?} {} B: {} of {}",
                    r.stack,
                    r.mode,
                    r.size,
                    r.errors,
                    r.errors + r.completed
                )
            })
            .collect();
        md.push_str(&list.join("; "));
        md.push('\n');
    }
    Ok(md)
}

fn human_size(s: usize) -> String {
    if s >= 1024 && s & 1023 == 0 {
        format!("{} KiB", s / 1024)
    } else {
        format!("{s} B")
    }
}

fn plot_err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> ReportError {
    move |e| ReportError::Plot {
        what,
        message: e.to_string(),
    }
}

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    C[i % C.len()]
}

/// Latency CDF (log x) per stack at `size`.
pub fn plot_cdf(runs: &[Run], size: usize, path: &Path) -> Result<(), ReportError> {
    const W: &str = "latency CDF";
    let series: Vec<(usize, &Run)> = stacks(runs)
        .iter()
        .enumerate()
        .filter_map(|(i, s)| find(runs, s, Mode::Latency, size).map(|r| (i, r)))
        .filter(|(_, r)| !r.cdf.is_empty())
        .collect();
    let lo = series
        .iter()
        .flat_map(|(_, r)| r.cdf.iter().map(|p| p.0))
        .filter(|&v| v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let hi = series
        .iter()
        .flat_map(|(_, r)| r.cdf.iter().map(|p| p.0))
        .fold(0.0_f64, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo * 0.8, hi * 1.25)
    } else {
        (1.0, 1000.0)
    };
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err(W))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("RPC latency CDF, one outstanding, {size} B"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0_f64)
        .map_err(plot_err(W))?;
    chart
        .configure_mesh()
        .x_desc("latency (µs, log scale)")
        .y_desc("fraction of RPCs")
        .draw()
        .map_err(plot_err(W))?;
    for (i, r) in series {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(
                r.cdf.iter().map(|&(v, q)| (v.max(lo), q)),
                c.stroke_width(2),
            ))
            .map_err(plot_err(W))?
            .label(r.stack.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err(W))?;
    root.present().map_err(plot_err(W))?;
    Ok(())
}

/// Horizontal bars, one per (stack, value); stacks without a value are listed as "–".
pub fn plot_bars(
    title: &str,
    unit: &str,
    bars: &[(String, Option<f64>)],
    log: bool,
    path: &Path,
) -> Result<(), ReportError> {
    const W: &str = "bars";
    let max = bars
        .iter()
        .filter_map(|b| b.1)
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let min = bars
        .iter()
        .filter_map(|b| b.1)
        .filter(|&v| v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let n = bars.len().max(1);
    let height = 90 + 46 * n as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err(W))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(290);
    let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    // Bars are drawn over x in [x0, v]; log charts start at a decade below the least.
    let (x0, x1) = if log && min.is_finite() {
        (10f64.powf((min.log10() - 0.3).floor()), max * 2.0)
    } else {
        (0.0, max * 1.15)
    };
    // Bar i is centred on y = n - 1 - i (the first at the top); the y labels at the
    // integers name them.
    let rows = -0.5..n as f64 - 0.5;
    let name_at = move |y: &f64| -> String {
        let i = n as f64 - 1.0 - y.round();
        if (y - y.round()).abs() > 1e-6 || i < 0.0 {
            return String::new();
        }
        names.get(i as usize).cloned().unwrap_or_default()
    };
    macro_rules! body {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(n + 1)
                .y_label_formatter(&name_at)
                .y_label_style(("sans-serif", 15))
                .x_desc(unit)
                .draw()
                .map_err(plot_err(W))?;
            for (i, (_, v)) in bars.iter().enumerate() {
                let y0 = n as f64 - 1.0 - i as f64 - 0.35;
                let y1 = n as f64 - 1.0 - i as f64 + 0.35;
                if let Some(v) = v {
                    let c = color(i);
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(x0, y0), (v.max(x0), y1)],
                            c.filled(),
                        )))
                        .map_err(plot_err(W))?;
                    chart
                        .draw_series(std::iter::once(Text::new(
                            format!(" {}", num(Some(*v))),
                            (v.max(x0), (y0 + y1) / 2.0),
                            ("sans-serif", 14).into_font(),
                        )))
                        .map_err(plot_err(W))?;
                } else {
                    chart
                        .draw_series(std::iter::once(Text::new(
                            " – (not measured)".to_string(),
                            (x0, (y0 + y1) / 2.0),
                            ("sans-serif", 14).into_font(),
                        )))
                        .map_err(plot_err(W))?;
                }
            }
        }};
    }
    if log && min.is_finite() {
        body!(builder
            .build_cartesian_2d((x0..x1).log_scale(), rows)
            .map_err(plot_err(W))?);
    } else {
        body!(builder
            .build_cartesian_2d(x0..x1, rows)
            .map_err(plot_err(W))?);
    }
    root.present().map_err(plot_err(W))?;
    Ok(())
}

/// p50 latency against value size (log–log), one line per stack and RPC (GET thick,
/// SET thin) measured at two or more sizes.
pub fn plot_sizes(runs: &[Run], path: &Path) -> Result<(), ReportError> {
    const W: &str = "size sweep";
    let lat: Vec<&Run> = runs
        .iter()
        .filter(|r| r.mode == Mode::Latency && r.completed > 0 && r.p50_us > 0.0)
        .collect();
    let xs = lat.iter().map(|r| r.size as f64);
    let (xlo, xhi) = xs
        .clone()
        .fold((f64::INFINITY, 0.0_f64), |(a, b), x| (a.min(x), b.max(x)));
    let ys = lat.iter().map(|r| r.p50_us);
    let (ylo, yhi) = ys.fold((f64::INFINITY, 0.0_f64), |(a, b), y| (a.min(y), b.max(y)));
    let (xlo, xhi) = if xlo.is_finite() && xhi > xlo {
        (xlo / 1.5, xhi * 1.5)
    } else {
        (32.0, 131072.0)
    };
    let (ylo, yhi) = if ylo.is_finite() && yhi > ylo {
        (ylo / 1.5, yhi * 1.5)
    } else {
        (1.0, 1000.0)
    };
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err(W))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "p50 latency by value size, one outstanding (GET thick, SET thin)",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d((xlo..xhi).log_scale(), (ylo..yhi).log_scale())
        .map_err(plot_err(W))?;
    chart
        .configure_mesh()
        .x_desc("value bytes (log scale)")
        .y_desc("p50 µs (log scale)")
        .draw()
        .map_err(plot_err(W))?;
    let series = stacks(runs)
        .into_iter()
        .enumerate()
        .flat_map(|(i, st)| [(i, st.clone(), Op::Get), (i, st, Op::Set)]);
    for (i, stack, op) in series {
        let mut pts: Vec<(f64, f64)> = lat
            .iter()
            .filter(|r| r.stack == stack && r.op == op)
            .map(|r| (r.size as f64, r.p50_us))
            .collect();
        // A stack measured at one size only has no line to draw (and no legend entry).
        if pts.len() < 2 {
            continue;
        }
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let c = color(i);
        // GETs solid, SETs thinner.
        let width = if op == Op::Get { 2 } else { 1 };
        let name = format!("{stack} {}", if op == Op::Get { "GET" } else { "SET" });
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(width)))
            .map_err(plot_err(W))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(width))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err(W))?;
    root.present().map_err(plot_err(W))?;
    Ok(())
}

/// The files `write_all` makes, relative to its directory.
pub const FILES: [&str; 5] = [
    "rpc.md",
    "latency_cdf.svg",
    "throughput.svg",
    "cpu_per_rpc.svg",
    "size_sweep.svg",
];

/// Writes every file of `FILES` into `dir`; `preamble` goes above the tables.
pub fn write_all(runs: &[Run], dir: &Path, preamble: &str) -> Result<Vec<PathBuf>, ReportError> {
    let size = main_size(runs).ok_or(ReportError::Empty)?;
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let paths: Vec<PathBuf> = FILES.iter().map(|f| dir.join(f)).collect();
    let md = format!("{preamble}{}", markdown(runs)?);
    let [md_path, cdf, thr, cpu, sweep] = [0, 1, 2, 3, 4].map(|i| paths[i].as_path());
    std::fs::write(md_path, md).map_err(|source| ReportError::Io {
        path: md_path.to_owned(),
        source,
    })?;
    plot_cdf(runs, size, cdf)?;
    let rows = rows(runs, size);
    let thr_bars: Vec<(String, Option<f64>)> =
        rows.iter().map(|r| (r.stack.clone(), r.mrps)).collect();
    plot_bars(
        &format!("Throughput, {size} B GETs (S sessions × W outstanding)"),
        "Mrps",
        &thr_bars,
        false,
        thr,
    )?;
    let cpu_bars: Vec<(String, Option<f64>)> = rows
        .iter()
        .map(|r| (r.stack.clone(), r.cpu_us_per_rpc))
        .collect();
    plot_bars(
        &format!("CPU per RPC, all processes of the stack, {size} B GETs"),
        "CPU µs per RPC (log scale)",
        &cpu_bars,
        true,
        cpu,
    )?;
    plot_sizes(runs, sweep)?;
    Ok(paths)
}
