//! The `specgen` CLI: `check SPEC`, `build SPEC -o DIR`, `layout SPEC`. Diagnostics go
//! to stderr; the exit code is 1 on any error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "specgen",
    about = "Compile .proto + AppNet elements + a service spec into a flat Rust pipeline"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check a spec (proto, elements, chains, types) and report the first error.
    Check {
        /// The spec file.
        spec: PathBuf,
    },
    /// Generate `<module>.rs` into DIR.
    Build {
        /// The spec file.
        spec: PathBuf,
        /// Output directory.
        #[arg(short = 'o', long = "out-dir")]
        out: PathBuf,
        /// Path of the runtime API in the generated code.
        #[arg(long, default_value = specgen::DEFAULT_RUNTIME)]
        runtime: String,
    },
    /// Print each message's byte layout (field, offset, size, why).
    Layout {
        /// The spec file.
        spec: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Check { spec } => specgen::check(&spec).map(|()| eprintln!("{}: ok", spec.display())),
        Cmd::Build { spec, out, runtime } => specgen::Builder::new()
            .runtime_path(runtime)
            .out_dir(out)
            .compile(&spec)
            .map(|p| eprintln!("wrote {}", p.display())),
        Cmd::Layout { spec } => specgen::layout_table(&spec).map(|t| print!("{t}")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.render());
            ExitCode::FAILURE
        }
    }
}
