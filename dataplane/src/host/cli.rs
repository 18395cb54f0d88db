//! The `dataplane` command line (clap): `run`, `stats`, `reload`. The binary is a few
//! lines that call [`main`] with the service it links.
//!
//! Every failure is one `dataplane: error: ...` line on stderr and exit status 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use super::control::{self, Reply, Request};
use super::service::HostedService;
use super::DEFAULT_CONTROL;

#[derive(Parser, Debug)]
#[command(
    name = "dataplane",
    version,
    about = "The flatrpc host dataplane: serve a generated service, inspect and reload it"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the service on the configured port and cores until SIGINT/SIGTERM.
    Run {
        /// Dataplane configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Write every frame received and sent to this pcap file.
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Print the final counters as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the counters of a running instance.
    Stats {
        #[command(flatten)]
        target: Target,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make a running instance re-read its config file and swap its ANF tables.
    Reload {
        #[command(flatten)]
        target: Target,
    },
}

/// Which running instance: the one of a config file, or a control socket.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// The configuration the instance runs with (its `[host] control` socket).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The instance's control socket.
    #[arg(long)]
    control: Option<PathBuf>,
}

/// How long `stats`/`reload` wait for an answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl Target {
    /// The control socket: given, or read from the config's `[host] control` (the rest
    /// of the file is not validated, so a config being edited still names it).
    fn socket(&self) -> Result<PathBuf> {
        if let Some(p) = &self.control {
            return Ok(p.clone());
        }
        let path = self
            .config
            .as_deref()
            .ok_or_else(|| anyhow!("give --config or --control"))?;
        control_from_config_text(path)
    }
}

fn control_from_config_text(path: &Path) -> Result<PathBuf> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: toml::Table = toml::from_str(&text).map_err(|e| {
        anyhow!(
            "{}: cannot find the control socket: {} (give --control)",
            path.display(),
            e.to_string().trim().replace('\n', " ")
        )
    })?;
    match v.get("host").and_then(|h| h.get("control")) {
        None => Ok(PathBuf::from(DEFAULT_CONTROL)),
        Some(toml::Value::String(s)) if !s.is_empty() => Ok(PathBuf::from(s)),
        Some(_) => bail!("{}: `host.control`: expected a socket path", path.display()),
    }
}

fn call(target: &Target, req: Request) -> Result<Reply> {
    let socket = target.socket()?;
    Ok(control::call(&socket, req, CALL_TIMEOUT)?)
}

/// Runs a parsed command line.
pub fn run_cli<S: HostedService>(cli: Cli, service: impl FnOnce() -> S) -> Result<()> {
    match cli.command {
        Command::Run { config, pcap, json } => {
            let report = super::run::run(service(), &config, pcap.as_deref())?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("dataplane final counters");
                print!("{}", report.table());
            }
            Ok(())
        }
        Command::Stats { target, json } => match call(&target, Request::Stats)? {
            Reply::Stats { report } => {
                if json {
                    println!("{}", serde_json::to_string(&report)?);
                } else {
                    print!("{}", report.table());
                }
                Ok(())
            }
            Reply::Error { message } => bail!("{message}"),
            other => bail!("unexpected reply to stats: {other:?}"),
        },
        Command::Reload { target } => match call(&target, Request::Reload)? {
            Reply::Reloaded {
                applied,
                cores,
                generation,
            } => {
                println!(
                    "reloaded: generation {generation} applied on {applied} of {cores} core(s)"
                );
                if applied < cores {
                    bail!("only {applied} of {cores} core(s) applied the new tables");
                }
                Ok(())
            }
            Reply::Error { message } => bail!("{message}"),
            other => bail!("unexpected reply to reload: {other:?}"),
        },
    }
}

/// The `dataplane` binary's `main`: parses arguments, runs, prints one error line.
pub fn main<S: HostedService>(service: impl FnOnce() -> S) -> ExitCode {
    let cli = Cli::parse();
    match run_cli(cli, service) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("dataplane: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_socket_is_found_in_a_config_or_defaulted() {
        let dir = std::env::temp_dir().join(format!("flatrpc-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.toml");
        std::fs::write(
            &p,
            "[host]\ncontrol = \"/tmp/x.sock\"\n[tables.fw]\nrules = 3\n",
        )
        .unwrap();
        assert_eq!(
            control_from_config_text(&p).unwrap(),
            Path::new("/tmp/x.sock")
        );
        std::fs::write(&p, "cores = [1]\n").unwrap();
        assert_eq!(
            control_from_config_text(&p).unwrap(),
            Path::new(DEFAULT_CONTROL)
        );
        std::fs::write(&p, "[host]\ncontrol = 5\n").unwrap();
        let e = control_from_config_text(&p).unwrap_err().to_string();
        assert!(e.contains("host.control"), "{e}");
        std::fs::write(&p, "[host\n").unwrap();
        let e = control_from_config_text(&p).unwrap_err().to_string();
        assert!(e.contains("--control"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn arguments_parse() {
        let c = Cli::try_parse_from(["dataplane", "stats", "--json", "--control", "/x"]).unwrap();
        assert!(matches!(c.command, Command::Stats { json: true, .. }));
        assert!(Cli::try_parse_from(["dataplane", "stats"]).is_err());
        assert!(
            Cli::try_parse_from(["dataplane", "reload", "--config", "a", "--control", "b"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["dataplane", "run"]).is_err());
    }
}
