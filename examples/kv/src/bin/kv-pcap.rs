//! kv-pcap: writes a pcap of real kv-client traffic for replaying against a kv-server.
//!
//!   kv-pcap --op get|set --count N --out FILE [--tag-seed S] [--user alice]
//!           [--udp-checksum full|zero]
//!
//! The frames go from 10.77.1.1:7001 (02:00:00:77:01:01) to 10.77.1.2:7000
//! (02:00:00:77:01:02): a Connect, the client's ConnectAck confirmation, then N requests.
//! Replay it to a kv-server with `[transport] tag_seed = S` and that address (see
//! `kv_example::replay` and `scripts/bench.sh --only kvpcap`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use kv_example::replay::{self, ReplayOp, ReplaySpec};

#[derive(Parser)]
#[command(
    name = "kv-pcap",
    version,
    about = "Record a replayable pcap of KV requests"
)]
struct Args {
    /// Which requests to record.
    #[arg(long, value_enum, default_value = "get")]
    op: ReplayOp,
    /// Requests (SET: a power of two in 4 x window (128)..=65536).
    #[arg(long, default_value_t = 1024)]
    count: usize,
    /// Output pcap file.
    #[arg(long)]
    out: PathBuf,
    /// The replaying server's `[transport] tag_seed`.
    #[arg(long, default_value_t = 1)]
    tag_seed: u64,
    /// The requests' `user`.
    #[arg(long, default_value = "alice")]
    user: String,
    /// Distinct keys, used round robin.
    #[arg(long, default_value_t = 64)]
    keys: usize,
    /// SET value size, bytes.
    #[arg(long, default_value_t = 32)]
    value_size: usize,
    /// UDP checksums of the recorded requests: "full", or "zero" as a client with
    /// `[net] udp_checksum = "zero"` sends them.
    #[arg(long, value_enum, default_value = "full")]
    udp_checksum: Checksum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Checksum {
    Full,
    Zero,
}

fn run(a: Args) -> Result<()> {
    let spec = ReplaySpec {
        op: a.op,
        count: a.count,
        user: a.user,
        keys: a.keys,
        value_size: a.value_size,
        tag_seed: a.tag_seed,
    };
    let mut frames = replay::generate(&spec)?;
    if a.udp_checksum == Checksum::Zero {
        replay::zero_udp_checksums(&mut frames)?;
    }
    let file =
        std::fs::File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    replay::write_pcap(std::io::BufWriter::new(file), &frames)?;
    eprintln!(
        "kv-pcap: wrote {} frames ({} {:?} requests) to {}",
        frames.len(),
        spec.count,
        spec.op,
        a.out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv-pcap: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
