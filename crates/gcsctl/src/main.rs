//! gcsctl: the operator CLI of mysql-gcs, speaking HTTP to a gcsd admin address.
//!
//! Exit codes, for scripts: 0 ok, 1 the operation failed (gcsd answered an error, or
//! `status` found no quorum), 2 usage, 3 cannot reach gcsd.

#![forbid(unsafe_code)]

mod cluster;
mod error;
mod gcsd;

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::error::CtlError;
use crate::gcsd::Gcsd;
use proto::admin::AddMemberRequest;

#[derive(Debug, Parser)]
#[command(
    name = "gcsctl",
    version,
    about = "Operator CLI for mysql-gcs (talks to gcsd)"
)]
struct Cli {
    /// Admin address (host:port) of the gcsd to ask; any member will do.
    #[arg(
        long,
        global = true,
        env = "GCSCTL_GCSD",
        default_value = "127.0.0.1:2280",
        value_parser = parse_gcsd_addr
    )]
    gcsd: String,

    /// How long to wait for gcsd's answer, in milliseconds.
    #[arg(long, global = true, default_value_t = 3000,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One-screen summary of the group as this member sees it; exits 1 without quorum.
    Status,
    /// List the gcsd members of the group.
    Members {
        /// Print gcsd's members array as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the MySQL servers the group knows about.
    Servers {
        /// Print gcsd's servers array as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a gcsd host to the group (it joins as a non-voter; the leader promotes voters).
    AddMember {
        /// Member id of the new host; must be unique in the group.
        #[arg(long)]
        id: u64,
        /// IP:port the new host's gcsd listens on for group traffic.
        #[arg(long)]
        group_addr: String,
        /// Display name (gcsd defaults to "gcsd<id>").
        #[arg(long)]
        name: Option<String>,
        /// host:port of the new host's admin HTTP, shown to operators.
        #[arg(long)]
        admin_addr: Option<String>,
    },
    /// Remove a member from the group for good (needs --yes).
    RemoveMember {
        /// Member id to remove.
        id: u64,
        /// Confirm: removal is permanent.
        #[arg(long)]
        yes: bool,
    },
    /// Ask the gcsd at --gcsd to shut down cleanly.
    Shutdown,
}

/// Accepts `host:port` or `http://host:port`; gcsctl speaks plain HTTP only.
fn parse_gcsd_addr(s: &str) -> Result<String, String> {
    if s.starts_with("https://") {
        return Err("gcsd's admin address speaks plain HTTP; use host:port".into());
    }
    let addr = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(addr.to_string())
        }
        _ => Err(format!(
            "expected host:port such as 127.0.0.1:2280, got {s:?}"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(e.downcast_ref::<CtlError>().map_or(1, CtlError::exit_code))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let gcsd = Gcsd::new(&cli.gcsd, Duration::from_millis(cli.timeout_ms));
    match cli.command {
        Command::Status => {
            let (cluster, _) = gcsd.cluster()?;
            out(&cluster::render_status(&cluster))?;
            // Scripts can gate on `gcsctl status` alone.
            return Ok(ExitCode::from(if cluster.quorum { 0 } else { 1 }));
        }
        Command::Members { json } => {
            let (cluster, raw) = gcsd.cluster()?;
            warn_if_stale(&cluster);
            if json {
                out_json(&raw["members"])?;
            } else {
                out(&cluster::render_members(&cluster))?;
            }
        }
        Command::Servers { json } => {
            let (cluster, raw) = gcsd.cluster()?;
            warn_if_stale(&cluster);
            if json {
                out_json(&raw["servers"])?;
            } else {
                out(&cluster::render_servers(&cluster))?;
            }
        }
        Command::AddMember {
            id,
            group_addr,
            name,
            admin_addr,
        } => {
            let req = AddMemberRequest {
                id,
                group_addr,
                name,
                admin_addr,
            };
            out_line(&gcsd.add_member(&req)?)?;
        }
        Command::RemoveMember { id, yes } => {
            // Scripts have no terminal to answer a prompt, so ask for the flag instead.
            if !yes {
                return Err(CtlError::Unconfirmed { id }.into());
            }
            out_line(&gcsd.remove_member(id)?)?;
        }
        Command::Shutdown => out_line(&gcsd.shutdown()?)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn warn_if_stale(cluster: &proto::admin::ClusterReport) {
    if let Some(warning) = cluster::stale_warning(cluster) {
        eprintln!("{warning}");
    }
}

fn out_json(value: &serde_json::Value) -> anyhow::Result<()> {
    out_line(&serde_json::to_string_pretty(value).context("cannot format JSON")?)
}

fn out_line(s: &str) -> anyhow::Result<()> {
    out(&format!("{s}\n"))
}

/// Writes to stdout; a closed pipe (`gcsctl members | head`) is not an error.
fn out(s: &str) -> anyhow::Result<()> {
    match io::stdout().lock().write_all(s.as_bytes()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).context("cannot write to stdout"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcsd_address_forms() {
        assert_eq!(parse_gcsd_addr("10.0.0.5:2280").unwrap(), "10.0.0.5:2280");
        assert_eq!(parse_gcsd_addr("http://db1:2280/").unwrap(), "db1:2280");
        assert_eq!(parse_gcsd_addr("[::1]:2280").unwrap(), "[::1]:2280");
        assert!(parse_gcsd_addr("db1").is_err());
        assert!(parse_gcsd_addr(":2280").is_err());
        assert!(parse_gcsd_addr("https://db1:2280").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
