//! rpc-report: writes benches/results/rpc.md and the SVG plots from the run records
//! scripts/bench.sh collected.
//!
//!   rpc-report --input runs.jsonl --out benches/results [--preamble FILE]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "rpc-report",
    version,
    about = "RPC benchmark table and plots from run records"
)]
struct Args {
    /// Run records, one JSON object per line.
    #[arg(long)]
    input: PathBuf,
    /// Directory for rpc.md and the SVG files.
    #[arg(long)]
    out: PathBuf,
    /// Markdown put above the tables (the command, the machine, notes).
    #[arg(long)]
    preamble: Option<PathBuf>,
}

fn run(a: &Args) -> anyhow::Result<()> {
    let runs = rpc_report::load(&a.input)?;
    let preamble = match &a.preamble {
        Some(p) => {
            std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => String::new(),
    };
    for p in rpc_report::write_all(&runs, &a.out, &preamble)? {
        eprintln!("rpc-report: wrote {}", p.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rpc-report: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
