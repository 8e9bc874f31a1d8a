//! gcsd's configuration: a TOML file, then command-line overrides, then validation. Unknown keys
//! are rejected, and every problem is reported in one message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::state::MemberId;

/// The commented sample printed by `--print-sample-config`; it is also the documentation of
/// every key, and a test checks that it parses to the defaults.
pub const SAMPLE: &str = r#"# gcsd configuration. Every key is optional; the values shown are the defaults.

# This member's Raft id: unique in the group, never reused, 1 or more.
node_id = 1
# The name shown as <member> in the serverlist (default: "gcsd" followed by node_id).
# name = "gcsd1"
# Where the Raft log, vote and snapshots are kept.
data_dir = "/var/lib/gcsd"

# The plugin port: the line protocol the isis2d plugin (and telnet) speaks.
plugin_listen = "127.0.0.1:2200"
# The member-to-member listener. Other members must reach this address.
group_listen = "127.0.0.1:2300"
# The address other members use for this one, when it differs from group_listen
# (for example group_listen = "0.0.0.0:2300"). Default: group_listen.
# group_advertise = "10.0.0.11:2300"
# Admin HTTP: /live, /ready, /cluster, /metrics, member changes. Keep it on loopback.
admin_listen = "127.0.0.1:2280"

# The group-listen address of any member of an existing group. Used only on the first start
# (an empty data_dir); without it, the first start creates a new group of one.
# join = "10.0.0.11:2300"

# How many voters the group grows to as members join: 1, 3 or 5. Members beyond that join as
# non-voting members. Voters are never removed automatically (see `gcsctl remove-member`).
voters = 3
# A member silent for longer than this is committed as down, and its servers leave the list.
member_timeout_ms = 1000
# A server whose heartbeats stop for this long is expired.
server_ttl_secs = 3
# How often heartbeats that change nothing are published to the group (as last_update).
heartbeat_publish_ms = 1000

# Raft timing. Election timeouts must exceed the heartbeat; failover takes about
# election_timeout_max_ms plus a random election timeout.
raft_heartbeat_ms = 100
election_timeout_min_ms = 400
election_timeout_max_ms = 800
# How long a client's join/leave/heartbeat waits for its change to commit.
propose_timeout_ms = 2000
# Take a snapshot after this many log entries (older entries are then purged).
snapshot_every_entries = 5000

# Plugin port limits.
max_plugin_connections = 10000
plugin_idle_timeout_secs = 600

# On SIGTERM: how long to wait for the clean leave and for connections to drain.
shutdown_grace_ms = 2000
"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node_id: MemberId,
    pub name: Option<String>,
    pub data_dir: PathBuf,
    pub plugin_listen: String,
    pub group_listen: String,
    pub group_advertise: Option<String>,
    pub admin_listen: String,
    pub join: Option<String>,
    pub voters: usize,
    pub member_timeout_ms: u64,
    pub server_ttl_secs: u32,
    pub heartbeat_publish_ms: u64,
    pub raft_heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub propose_timeout_ms: u64,
    pub snapshot_every_entries: u64,
    pub max_plugin_connections: usize,
    pub plugin_idle_timeout_secs: u64,
    pub shutdown_grace_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: 1,
            name: None,
            data_dir: PathBuf::from("/var/lib/gcsd"),
            plugin_listen: "127.0.0.1:2200".into(),
            group_listen: "127.0.0.1:2300".into(),
            group_advertise: None,
            admin_listen: "127.0.0.1:2280".into(),
            join: None,
            voters: 3,
            member_timeout_ms: 1000,
            server_ttl_secs: 3,
            heartbeat_publish_ms: 1000,
            raft_heartbeat_ms: 100,
            election_timeout_min_ms: 400,
            election_timeout_max_ms: 800,
            propose_timeout_ms: 2000,
            snapshot_every_entries: 5000,
            max_plugin_connections: 10000,
            plugin_idle_timeout_secs: 600,
            shutdown_grace_ms: 2000,
        }
    }
}

/// gcsd: the mysql-gcs group sidecar.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// TOML config file (see --print-sample-config).
    #[arg(long, short = 'c', env = "GCSD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print a commented sample config and exit.
    #[arg(long)]
    pub print_sample_config: bool,
    /// Check the config, print the effective values and exit (0 if valid, 64 if not).
    #[arg(long)]
    pub config_check: bool,
    /// This member's Raft id (unique, never reused).
    #[arg(long)]
    pub node_id: Option<MemberId>,
    /// Name shown as <member> in the serverlist.
    #[arg(long)]
    pub name: Option<String>,
    /// Where the Raft log, vote and snapshots are kept.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Plugin port (line protocol), IP:port.
    #[arg(long)]
    pub plugin_listen: Option<String>,
    /// Member-to-member listener, IP:port.
    #[arg(long)]
    pub group_listen: Option<String>,
    /// Address other members use for this one, if not group_listen.
    #[arg(long)]
    pub group_advertise: Option<String>,
    /// Admin HTTP listener, IP:port (keep it on loopback).
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// Group-listen address of any member of the group to join (first start only).
    #[arg(long)]
    pub join: Option<String>,
    /// Voters the group grows to: 1, 3 or 5.
    #[arg(long)]
    pub voters: Option<usize>,
    /// A member silent this long is committed as down.
    #[arg(long)]
    pub member_timeout_ms: Option<u64>,
    /// A server without heartbeats this long is expired.
    #[arg(long)]
    pub server_ttl_secs: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Reads the file (if any), applies the command-line overrides and validates the result.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        let mut cfg = match &cli.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        macro_rules! override_with {
            ($($field:ident),*) => {$(
                if let Some(v) = &cli.$field { cfg.$field = v.clone().into(); }
            )*};
        }
        override_with!(
            node_id,
            name,
            data_dir,
            plugin_listen,
            group_listen,
            group_advertise,
            admin_listen,
            join,
            voters,
            member_timeout_ms,
            server_ttl_secs
        );
        cfg.validate()?;
        Ok(cfg)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.node_id == 0 {
            problems.push("node_id must be 1 or more".to_owned());
        }
        let name = self.member_name();
        problems.extend(proto::member_name_problem(&name));
        for (key, addr) in [
            ("plugin_listen", Some(&self.plugin_listen)),
            ("group_listen", Some(&self.group_listen)),
            ("admin_listen", Some(&self.admin_listen)),
            ("group_advertise", self.group_advertise.as_ref()),
        ] {
            if let Some(addr) = addr {
                if addr.parse::<SocketAddr>().is_err() {
                    problems.push(format!("{key} {addr:?} is not an IP:port address"));
                }
            }
        }
        if let Some(join) = &self.join {
            if join.parse::<SocketAddr>().is_err() {
                problems.push(format!("join {join:?} is not an IP:port address"));
            }
        }
        if ![1, 3, 5].contains(&self.voters) {
            problems.push(format!("voters must be 1, 3 or 5, not {}", self.voters));
        }
        if self.raft_heartbeat_ms == 0 {
            problems.push("raft_heartbeat_ms must be 1 or more".to_owned());
        }
        if self.election_timeout_min_ms <= self.raft_heartbeat_ms
            || self.election_timeout_max_ms <= self.election_timeout_min_ms
        {
            problems.push(format!(
                "need raft_heartbeat_ms ({}) < election_timeout_min_ms ({}) < election_timeout_max_ms ({})",
                self.raft_heartbeat_ms, self.election_timeout_min_ms, self.election_timeout_max_ms
            ));
        }
        if self.member_timeout_ms < 3 * self.raft_heartbeat_ms {
            problems.push(format!(
                "member_timeout_ms ({}) must be at least 3 raft heartbeats ({} ms)",
                self.member_timeout_ms,
                3 * self.raft_heartbeat_ms
            ));
        }
        if self.server_ttl_secs == 0 {
            problems.push("server_ttl_secs must be 1 or more".to_owned());
        }
        for (key, v) in [
            ("heartbeat_publish_ms", self.heartbeat_publish_ms),
            ("propose_timeout_ms", self.propose_timeout_ms),
            ("snapshot_every_entries", self.snapshot_every_entries),
            ("plugin_idle_timeout_secs", self.plugin_idle_timeout_secs),
            ("shutdown_grace_ms", self.shutdown_grace_ms),
            ("max_plugin_connections", self.max_plugin_connections as u64),
        ] {
            if v == 0 {
                problems.push(format!("{key} must be 1 or more"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    pub fn member_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| proto::default_member_name(self.node_id))
    }

    pub fn group_advertise(&self) -> &str {
        self.group_advertise
            .as_deref()
            .unwrap_or(&self.group_listen)
    }

    pub fn member_timeout(&self) -> Duration {
        Duration::from_millis(self.member_timeout_ms)
    }

    pub fn propose_timeout(&self) -> Duration {
        Duration::from_millis(self.propose_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    pub fn raft_config(&self) -> openraft::Config {
        openraft::Config {
            cluster_name: "mysql-gcs".into(),
            heartbeat_interval: self.raft_heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            // Keep a tenth of a snapshot's worth of log, so a member that was briefly away
            // catches up from the log rather than needing a whole snapshot.
            max_in_snapshot_log_to_keep: self.snapshot_every_entries / 10,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_parses_to_the_defaults() {
        let parsed: Config = toml::from_str(SAMPLE).expect("sample parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Config>("node_idd = 2").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `node_idd`"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let cfg = Config {
            node_id: 0,
            voters: 2,
            plugin_listen: "nowhere".into(),
            ..Config::default()
        };
        let msg = cfg.validate().unwrap_err().to_string();
        for needle in [
            "node_id must be 1",
            "voters must be 1, 3 or 5",
            "plugin_listen \"nowhere\"",
        ] {
            assert!(msg.contains(needle), "{needle} missing in {msg}");
        }
    }
}
