//! gcsctl: the operator CLI of mysql-gcs, speaking HTTP to a gcsd admin address.
//!
//! Exit codes, for scripts: 0 ok, 1 the operation failed (gcsd answered an error, or
//! `status` found no quorum), 2 usage, 3 cannot reach gcsd.

#![forbid(unsafe_code)]

mod cluster;
mod error;
mod gcsd;
mod pool;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::error::CtlError;
use crate::gcsd::Gcsd;
use proto::admin::{parse_token, AddMemberRequest, PoolRequest, DEFAULT_TOKEN_PATH};

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

    /// The admin token's file (gcsd creates <data_dir>/admin.token at its first start).
    /// Default: /var/lib/gcsd/admin.token when it is readable.
    #[arg(long, global = true, env = "GCSCTL_TOKEN_FILE")]
    token_file: Option<PathBuf>,

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
    /// Declare, change or delete a pool.
    #[command(subcommand)]
    Pool(PoolCommand),
    /// MPP's list: every server of every pool (or of POOL) with type, failures, last probe,
    /// status, state and message.
    List {
        pool: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One server's verdicts, in every pool it belongs to.
    Report {
        /// HOST:PORT
        server: String,
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 (printing OK) if HOST:PORT is the committed ACTIVE of a pool and the answering
    /// member has quorum, else 1 (printing NO): for LVS/keepalived MISC_CHECK.
    IsActive {
        /// HOST:PORT
        server: String,
    },
    /// Take FAILED servers back into their pools (as UNKNOWN, then STANDBY once healthy).
    Recover {
        /// HOST:PORT: recover it in every pool where it is FAILED.
        server: Option<String>,
        /// Recover every FAILED server of this pool.
        #[arg(long, conflicts_with = "server")]
        pool: Option<String>,
    },
    /// Hand ACTIVE back to the pool's PRIMARY (a planned handover).
    ActivatePrimary { pool: String },
    /// Planned handover of ACTIVE to another server; prints the write-unavailable time.
    Switchover {
        pool: String,
        /// HOST:PORT of the new ACTIVE.
        #[arg(long)]
        to: String,
    },
    /// Turn the pool's automation off (only `set` changes it then).
    Pause { pool: String },
    /// Turn the pool's automation back on.
    Resume { pool: String },
    /// Set a server's state or status by hand (only while its pool is paused).
    Set {
        /// HOST:PORT
        server: String,
        #[arg(long)]
        pool: String,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        status: Option<String>,
    },
    /// The committed transitions, newest last.
    History {
        pool: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PoolCommand {
    /// Declare a pool: one PRIMARY, then SECONDARY servers in priority order.
    Init {
        name: String,
        #[arg(long)]
        primary: String,
        #[arg(long = "secondary", required = true)]
        secondaries: Vec<String>,
        /// KEY=VALUE: fencing=on|off, hostile_takeover=on|off, max_lag_secs=N|none,
        /// catch_up_timeout_ms=N.
        #[arg(long = "set")]
        settings: Vec<String>,
    },
    /// Change settings: KEY=VALUE... (also members=H:P,H:P,... to reorder, add or remove).
    Set {
        name: String,
        #[arg(required = true)]
        settings: Vec<String>,
    },
    /// Delete a pool (needs --yes).
    Delete {
        name: String,
        #[arg(long)]
        yes: bool,
    },
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

/// The admin token: from the file named (which must be readable and valid), else from the
/// default file when this user can read it, else none (gcsd then answers 401 where it needs one).
fn admin_token(named: Option<&Path>) -> Result<Option<String>, CtlError> {
    let (path, required) = match named {
        Some(path) => (path, true),
        None => (Path::new(DEFAULT_TOKEN_PATH), false),
    };
    match std::fs::read_to_string(path) {
        Ok(text) => parse_token(&text)
            .map(Some)
            .map_err(|why| CtlError::Usage(format!("--token-file {}: {why}", path.display()))),
        Err(_) if !required => Ok(None),
        Err(e) => Err(CtlError::Usage(format!(
            "cannot read --token-file {}: {e}",
            path.display()
        ))),
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
    let token = admin_token(cli.token_file.as_deref())?;
    let gcsd = Gcsd::new(&cli.gcsd, Duration::from_millis(cli.timeout_ms), token);
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
        Command::Pool(cmd) => {
            let (action, req) = match cmd {
                PoolCommand::Init {
                    name,
                    primary,
                    secondaries,
                    settings,
                } => (
                    format!("define pool {name}"),
                    PoolRequest::Init {
                        name,
                        primary,
                        secondaries,
                        settings,
                    },
                ),
                PoolCommand::Set { name, settings } => (
                    format!("change pool {name}"),
                    PoolRequest::Set { name, settings },
                ),
                PoolCommand::Delete { name, yes } => {
                    if !yes {
                        return Err(CtlError::Usage(format!(
                            "deleting pool {name} stops its failover management; repeat with --yes"
                        ))
                        .into());
                    }
                    (format!("delete pool {name}"), PoolRequest::Delete { name })
                }
            };
            out_line(&gcsd.pool_request(&action, &req)?)?;
        }
        Command::List { pool, json } => {
            let (report, raw) = gcsd.pools()?;
            if let Some(name) = &pool {
                if !report.pools.iter().any(|p| &p.name == name) {
                    return Err(CtlError::NotFound(format!("no pool named {name:?}")).into());
                }
            }
            if json {
                out_json(&raw)?;
            } else {
                out(&pool::render_list(&report, pool.as_deref()))?;
            }
        }
        Command::Report { server, json } => {
            let (report, raw) = gcsd.pools()?;
            let Some(text) = pool::render_report(&report, &server) else {
                return Err(CtlError::NotFound(format!("{server} is in no pool")).into());
            };
            if json {
                let pools: Vec<_> = raw["pools"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| {
                        p["servers"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|s| s["server"] == server.as_str())
                    })
                    .cloned()
                    .collect();
                out_json(&serde_json::json!({ "pools": pools }))?;
            } else {
                out(&text)?;
            }
        }
        Command::IsActive { server } => {
            let (report, _) = gcsd.pools()?;
            let active = pool::is_active(&report, &server);
            out_line(if active { "OK" } else { "NO" })?;
            return Ok(ExitCode::from(if active { 0 } else { 1 }));
        }
        Command::Recover { server, pool } => {
            let action = match (&server, &pool) {
                (Some(s), _) => format!("recover {s}"),
                (None, Some(p)) => format!("recover pool {p}"),
                (None, None) => {
                    return Err(
                        CtlError::Usage("recover needs HOST:PORT or --pool NAME".into()).into(),
                    )
                }
            };
            out_line(&gcsd.pool_request(&action, &PoolRequest::Recover { server, pool })?)?;
        }
        Command::ActivatePrimary { pool } => {
            let action = format!("activate the PRIMARY of {pool}");
            out_line(&gcsd.pool_request(&action, &PoolRequest::ActivatePrimary { pool })?)?;
        }
        Command::Switchover { pool, to } => {
            let action = format!("switch pool {pool} over to {to}");
            gcsd.pool_request(
                &action,
                &PoolRequest::Switchover {
                    pool: pool.clone(),
                    to: to.clone(),
                },
            )?;
            let started = std::time::Instant::now();
            let deadline = started + Duration::from_secs(30);
            loop {
                let (report, _) = gcsd.pools()?;
                let writable = report
                    .pools
                    .iter()
                    .filter(|p| p.name == pool)
                    .flat_map(|p| &p.servers)
                    .any(|s| {
                        s.server == to
                            && s.state == proto::PoolState::Active
                            && s.read_only == Some(false)
                    });
                if writable {
                    out_line(&format!(
                        "switchover of {pool} to {to} done: writes were unavailable for at most {} ms (from the handover's commit until {to} reported read_only=OFF)",
                        started.elapsed().as_millis()
                    ))?;
                    break;
                }
                if std::time::Instant::now() > deadline {
                    return Err(CtlError::NotFound(format!(
                        "the handover to {to} was committed, but {to} did not report read_only=OFF within 30 s: see gcsctl list {pool}"
                    ))
                    .into());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Command::Pause { pool } => {
            let action = format!("pause pool {pool}");
            out_line(&gcsd.pool_request(&action, &PoolRequest::Pause { pool })?)?;
        }
        Command::Resume { pool } => {
            let action = format!("resume pool {pool}");
            out_line(&gcsd.pool_request(&action, &PoolRequest::Resume { pool })?)?;
        }
        Command::Set {
            server,
            pool,
            state,
            status,
        } => {
            let action = format!("set {server} in pool {pool}");
            let req = PoolRequest::ManualSet {
                pool,
                server,
                state,
                status,
            };
            out_line(&gcsd.pool_request(&action, &req)?)?;
        }
        Command::History { pool, json } => {
            let (report, raw) = gcsd.history(pool.as_deref())?;
            if json {
                out_json(&raw)?;
            } else {
                out(&pool::render_history(&report))?;
            }
        }
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
