//! gcsd's configuration: a TOML file, then command-line overrides, then validation. Unknown keys
//! are rejected, and every problem is reported in one message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};

use proto::is_token;

use crate::state::MemberId;

/// The admin token's file name in data_dir, when `admin_token_file` is not set.
pub const DEFAULT_TOKEN_FILE: &str = "admin.token";

/// The commented sample printed by `--print-sample-config`; it is also the documentation of
/// every key, and a test checks that it parses to the defaults.
pub const SAMPLE: &str = r#"# gcsd configuration. Every key is optional; the values shown are the defaults.

# This member's Raft id: unique in the group, never reused, 1 or more.
node_id = 1
# The name shown as <member> in the serverlist (default: "gcsd" followed by node_id).
# name = "gcsd1"
# Where the Raft log, vote and snapshots are kept.
data_dir = "/var/lib/gcsd"

# The plugin port: the line protocol the isis2d plugin (and telnet) speaks, on TCP.
plugin_listen = "127.0.0.1:2200"
# Whether join, leave and heartbeat are taken on plugin_listen. With false they get errno 12
# ("Not allowed on this transport") and only plugin_socket takes them; serverlist, subscribe,
# history and quit keep working from telnet. Use false with plugin_socket.
plugin_tcp_writes = true
# A plugin_listen that is not loopback is refused while it takes writes (anyone who reaches it
# could register, change or remove servers), unless this is true (a warning at every start).
insecure_plugin_listen = false
# The same protocol on a Unix socket (mode 0666), for the plugin (isis2d_daemon_socket): gcsd
# serves only processes of plugin_allowed_uids (SO_PEERCRED); any other gets errno 12. Off
# unless set.
# plugin_socket = "/run/gcsd/plugin.sock"
# Default: root, the user gcsd runs as, and the user "mysql" if /etc/passwd has one.
# plugin_allowed_uids = [0, 106]
# The member-to-member listener. Other members must reach this address.
group_listen = "127.0.0.1:2300"
# The address other members use for this one, when it differs from group_listen
# (for example group_listen = "0.0.0.0:2300"). Default: group_listen.
# group_advertise = "10.0.0.11:2300"
# Mutual TLS between members (PEM files): the group's CA, this member's certificate (signed by
# that CA, with a URI SAN gcs://member/<node_id> and an IP SAN of its group address) and key,
# and optionally a certificate revocation list. A group_listen that is not loopback needs TLS,
# unless insecure_group_transport = true (plaintext; a warning at every start).
# tls_ca_file = "/etc/gcsd/tls/ca.pem"
# tls_cert_file = "/etc/gcsd/tls/member.pem"
# tls_key_file = "/etc/gcsd/tls/member.key"
# tls_crl_file = "/etc/gcsd/tls/crl.pem"
insecure_group_transport = false
# Admin HTTP: /live, /ready, /cluster, /metrics, member changes. Keep it on loopback.
admin_listen = "127.0.0.1:2280"
# The admin token: every admin request but /live, /ready and /metrics needs
# "Authorization: Bearer <token>" (gcsctl --token-file). The file holds one token of at least
# 32 printable characters and is readable by its owner (and at most its group) only: mode 0600,
# 0640, 0400 or 0440. Default: <data_dir>/admin.token, created (0600, 256 random bits) at the
# first start; gcsctl reads /var/lib/gcsd/admin.token unless told otherwise.
# admin_token_file = "/etc/gcsd/admin.token"
# Health checks for load balancers (/primary, /replica, /health, /pools/NAME,
# /servers/HOST:PORT): read-only, may listen on a non-loopback address. Off unless set.
# lb_listen = "0.0.0.0:2290"
# HAProxy's agent-check: HAProxy sends its agent-send line ("primary pool=NAME\n", "replica
# pool=NAME lag=10\n", "health\n"; see the README) and reads "up" or "down". Off unless set.
# agent_check_listen = "0.0.0.0:2291"
# A new ACTIVE is reported as the writer (HTTP /primary, agent-check "primary") only this long
# after its promotion. A load balancer checks each server on its own schedule: without the hold
# it could see the new writer up before it has seen the old one down. Set it to the load
# balancer's check interval plus its check timeout (contrib/haproxy: 100 ms + 200 ms).
primary_hold_ms = 400

# The group-listen address of any member of an existing group. Used only on the first start
# (an empty data_dir); without it, the first start creates a new group of one.
# join = "10.0.0.11:2300"
# Creating a new group on a group_listen that is not loopback must be asked for (here or with
# --bootstrap): a member meant to join that lost its data_dir or its join line must not found
# a group of its own. Only read on the first start (an empty data_dir) without join.
bootstrap = false

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
# How long the leader gives a snapshot to reach a member and be installed there (serialized,
# sent, fsynced, answered): a member that was away past the purged log catches up this way.
snapshot_send_timeout_ms = 10000

# Plugin port limits (TCP and Unix socket together). Each connection's commands are paced to
# plugin_commands_per_sec on average (twice as many at once): beyond that they wait, they are
# not refused. A plugin sends about two a second.
max_plugin_connections = 10000
max_plugin_subscribers = 1000
plugin_commands_per_sec = 50
plugin_idle_timeout_secs = 600

# On SIGTERM: how long to wait for the clean leave and for connections to drain.
shutdown_grace_ms = 2000

# The lease: a gcsd that cannot reach a quorum for this long sets its servers read_only=ON by
# itself. Must be shorter than member_timeout_ms minus [probe] query_timeout_ms, so that the
# group promotes another server only after a cut-off host has surely fenced its own.
fence_after_ms = 500

# Probing the database servers of pools (gcsctl pool init). This gcsd probes the servers
# registered through it (by the plugin) and the ones listed here, over SQL.
[probe]
# The probe account. It needs SLAVE MONITOR (SHOW SLAVE STATUS) and READ_ONLY ADMIN (to set
# read_only for fencing); see the README.
user = "gcsd_probe"
# A file holding its password (mode 0600 or stricter; no file: no password).
# password_file = "/etc/gcsd/probe.password"
# One probe every interval; each step of a probe has its own deadline.
interval_ms = 250
connect_timeout_ms = 200
query_timeout_ms = 200
# Consecutive failed probes that make a server FAIL (OK, OK_INFO, OK_WARN, OK_CRITICAL, FAIL).
max_failures = 4
# Servers without the plugin that this gcsd registers and probes as their owner.
servers = []
# Kill (SIGKILL) a pool member on this host that hangs while it may be writable (an ACTIVE
# whose probes time out until FAIL), so that another server can take over at once. Off: no
# other server is made writable until the hung one answers again and is fenced.
kill_hung = false
# Unix sockets of this host's database servers. A server registered through this gcsd that
# must be read-only but cannot be reached at its address (its interface or address gone) is
# fenced over the socket whose server has its port and server_id, so that it takes no writes
# from this host either. The account is the probe user at 'localhost' (see the README).
fence_sockets = []

# Executables run by the group on pool transitions. Configure the same on every member: the
# leader runs them, and the history says which member ran each one and what came of it.
[hooks]
# Run once per committed transition (exactly once in the group, in commit order), with the
# transition in GCS_* environment variables (see the README). Its outcome shows in
# "gcsctl history" and ISIS2IS_HISTORY; its output is logged.
# on_transition = "/usr/local/lib/gcsd/on-transition"
# Run before the group makes a server ACTIVE by itself (failover, instatement); a non-zero exit
# or a timeout vetoes that promotion (for external fencing). Tried again every second.
# pre_promote = "/usr/local/lib/gcsd/pre-promote"
# Each run is killed (its whole process group) after this long.
timeout_ms = 5000

# Push the pools' verdicts into a running HAProxy through its runtime API, on every committed
# change: the ACTIVE "ready" in writer backends and every other member "maint"; healthy
# STANDBYs "ready" in reader backends (OK_CRITICAL: "drain"). Read back with "show servers
# state" every reconcile_ms, so a restarted HAProxy is put right. One [[haproxy]] section per
# HAProxy instance on this host; none by default.
# [[haproxy]]
# socket = "/run/haproxy/admin.sock"     # its "stats socket ... level admin"
# reconcile_ms = 1000
# backends = [
#   { pool = "main", backend = "mysql_writer", role = "primary" },
#   { pool = "main", backend = "mysql_readers", role = "replica" },
# ]
# # Each pool member's server name in those backends.
# servers = { "10.0.0.11:3306" = "db1", "10.0.0.12:3306" = "db2" }
"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node_id: MemberId,
    pub name: Option<String>,
    pub data_dir: PathBuf,
    pub plugin_listen: String,
    pub plugin_tcp_writes: bool,
    pub insecure_plugin_listen: bool,
    pub plugin_socket: Option<PathBuf>,
    pub plugin_allowed_uids: Option<Vec<u32>>,
    pub group_listen: String,
    pub group_advertise: Option<String>,
    pub tls_ca_file: Option<PathBuf>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_crl_file: Option<PathBuf>,
    pub insecure_group_transport: bool,
    pub admin_listen: String,
    pub admin_token_file: Option<PathBuf>,
    pub lb_listen: Option<String>,
    pub agent_check_listen: Option<String>,
    pub primary_hold_ms: u64,
    pub join: Option<String>,
    pub bootstrap: bool,
    pub voters: usize,
    pub member_timeout_ms: u64,
    pub server_ttl_secs: u32,
    pub heartbeat_publish_ms: u64,
    pub raft_heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub propose_timeout_ms: u64,
    pub snapshot_every_entries: u64,
    pub snapshot_send_timeout_ms: u64,
    pub max_plugin_connections: usize,
    pub max_plugin_subscribers: usize,
    pub plugin_commands_per_sec: u32,
    pub plugin_idle_timeout_secs: u64,
    pub shutdown_grace_ms: u64,
    pub fence_after_ms: u64,
    pub probe: ProbeConfig,
    pub hooks: HooksConfig,
    pub haproxy: Vec<HaproxyConfig>,
}

/// The `[hooks]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    pub on_transition: Option<PathBuf>,
    pub pre_promote: Option<PathBuf>,
    pub timeout_ms: u64,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            on_transition: None,
            pre_promote: None,
            timeout_ms: 5000,
        }
    }
}

impl HooksConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    fn problems(&self) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt;
        let mut problems = Vec::new();
        if self.timeout_ms == 0 {
            problems.push("[hooks] timeout_ms must be 1 or more".to_owned());
        }
        for (key, path) in [
            ("on_transition", &self.on_transition),
            ("pre_promote", &self.pre_promote),
        ] {
            let Some(path) = path else { continue };
            let shown = path.display();
            if !path.is_absolute() {
                problems.push(format!("[hooks] {key} {shown:?} must be an absolute path"));
                continue;
            }
            match std::fs::metadata(path) {
                Err(e) => problems.push(format!("[hooks] {key} {shown}: {e}")),
                Ok(m) if !m.is_file() => {
                    problems.push(format!("[hooks] {key} {shown} is not a file"))
                }
                Ok(m) if m.permissions().mode() & 0o111 == 0 => problems.push(format!(
                    "[hooks] {key} {shown} is not executable (mode {:04o}; chmod +x it)",
                    m.permissions().mode() & 0o7777
                )),
                Ok(_) => {}
            }
        }
        problems
    }
}

/// One `[[haproxy]]` section: an HAProxy instance whose runtime API this member pushes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyConfig {
    /// Its runtime API (a `stats socket ... level admin`).
    pub socket: PathBuf,
    /// How often HAProxy's own state is read back and put right.
    #[serde(default = "default_reconcile_ms")]
    pub reconcile_ms: u64,
    pub backends: Vec<BackendMap>,
    /// Database server (`HOST:PORT`) → its server name in those backends.
    pub servers: BTreeMap<String, String>,
}

fn default_reconcile_ms() -> u64 {
    1000
}

/// One HAProxy backend that serves a pool in one role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendMap {
    pub pool: String,
    pub backend: String,
    pub role: pool::push::Role,
}

/// HAProxy's proxy and server names: letters, digits and `-_.:`.
fn haproxy_name_problem(what: &str, name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    (!ok).then(|| {
        format!("[[haproxy]] {what} {name:?} is not an HAProxy name (letters, digits, -_.:)")
    })
}

impl HaproxyConfig {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let socket = self.socket.display();
        if !self.socket.is_absolute() {
            problems.push(format!(
                "[[haproxy]] socket {socket:?} must be an absolute path"
            ));
        }
        if self.reconcile_ms == 0 {
            problems.push(format!(
                "[[haproxy]] {socket}: reconcile_ms must be 1 or more"
            ));
        }
        if self.backends.is_empty() {
            problems.push(format!("[[haproxy]] {socket}: backends is empty"));
        }
        let mut roles = BTreeMap::new();
        for b in &self.backends {
            problems.extend(pool::pool_name_problem(&b.pool));
            problems.extend(haproxy_name_problem("backend", &b.backend));
            if roles.insert(&b.backend, (&b.pool, b.role)).is_some() {
                problems.push(format!(
                    "[[haproxy]] {socket}: backend {:?} is listed twice",
                    b.backend
                ));
            }
        }
        if self.servers.is_empty() {
            problems.push(format!("[[haproxy]] {socket}: servers is empty"));
        }
        for (server, name) in &self.servers {
            if let Err(e) = pool::parse_addr(server) {
                problems.push(format!("[[haproxy]] servers: {e}"));
            }
            problems.extend(haproxy_name_problem("server name", name));
        }
        problems
    }
}

/// The `[probe]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    pub user: String,
    pub password_file: Option<PathBuf>,
    pub interval_ms: u64,
    pub connect_timeout_ms: u64,
    pub query_timeout_ms: u64,
    pub max_failures: u32,
    pub servers: Vec<String>,
    pub kill_hung: bool,
    pub fence_sockets: Vec<PathBuf>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            user: "gcsd_probe".into(),
            password_file: None,
            interval_ms: 250,
            connect_timeout_ms: 200,
            query_timeout_ms: 200,
            max_failures: 4,
            servers: Vec::new(),
            kill_hung: false,
            fence_sockets: Vec::new(),
        }
    }
}

impl ProbeConfig {
    /// The password from `password_file` (none without a file). Refuses a file that others
    /// can read or write; the error names the file and its mode, never its content.
    pub fn password(&self) -> Result<Option<String>, String> {
        use std::os::unix::fs::PermissionsExt;
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("probe password_file {}: {e}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "probe password_file {} has mode {mode:04o}; it must be 0600 or stricter (chmod 600 {})",
                path.display(),
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("probe password_file {}: {e}", path.display()))?;
        Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()))
    }

    pub fn servers(&self) -> Result<Vec<proto::ServerKey>, String> {
        self.servers
            .iter()
            .map(|s| pool::parse_addr(s).map_err(|e| format!("[probe] servers: {e}")))
            .collect()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: 1,
            name: None,
            data_dir: PathBuf::from("/var/lib/gcsd"),
            plugin_listen: "127.0.0.1:2200".into(),
            plugin_tcp_writes: true,
            insecure_plugin_listen: false,
            plugin_socket: None,
            plugin_allowed_uids: None,
            group_listen: "127.0.0.1:2300".into(),
            group_advertise: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_crl_file: None,
            insecure_group_transport: false,
            admin_listen: "127.0.0.1:2280".into(),
            admin_token_file: None,
            lb_listen: None,
            agent_check_listen: None,
            primary_hold_ms: 400,
            join: None,
            bootstrap: false,
            voters: 3,
            member_timeout_ms: 1000,
            server_ttl_secs: 3,
            heartbeat_publish_ms: 1000,
            raft_heartbeat_ms: 100,
            election_timeout_min_ms: 400,
            election_timeout_max_ms: 800,
            propose_timeout_ms: 2000,
            snapshot_every_entries: 5000,
            snapshot_send_timeout_ms: 10_000,
            max_plugin_connections: 10000,
            max_plugin_subscribers: 1000,
            plugin_commands_per_sec: 50,
            plugin_idle_timeout_secs: 600,
            shutdown_grace_ms: 2000,
            fence_after_ms: 500,
            probe: ProbeConfig::default(),
            hooks: HooksConfig::default(),
            haproxy: Vec::new(),
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
    /// Plugin Unix socket (the plugin's isis2d_daemon_socket).
    #[arg(long)]
    pub plugin_socket: Option<PathBuf>,
    /// Member-to-member listener, IP:port.
    #[arg(long)]
    pub group_listen: Option<String>,
    /// Address other members use for this one, if not group_listen.
    #[arg(long)]
    pub group_advertise: Option<String>,
    /// Admin HTTP listener, IP:port (keep it on loopback).
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// The admin token's file (default: <data_dir>/admin.token, created at the first start).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Health checks for load balancers, IP:port (off unless set).
    #[arg(long)]
    pub lb_listen: Option<String>,
    /// HAProxy agent-check responder, IP:port (off unless set).
    #[arg(long)]
    pub agent_check_listen: Option<String>,
    /// Group-listen address of any member of the group to join (first start only).
    #[arg(long)]
    pub join: Option<String>,
    /// Create a new group on the first start without --join (needed off loopback).
    #[arg(long)]
    pub bootstrap: bool,
    /// Voters the group grows to: 1, 3 or 5.
    #[arg(long)]
    pub voters: Option<usize>,
    /// A member silent this long is committed as down.
    #[arg(long)]
    pub member_timeout_ms: Option<u64>,
    /// A server without heartbeats this long is expired.
    #[arg(long)]
    pub server_ttl_secs: Option<u32>,
    /// Without quorum this long, this gcsd sets its servers read-only (the lease).
    #[arg(long)]
    pub fence_after_ms: Option<u64>,
}

/// The uid of `user` in the text of /etc/passwd.
fn passwd_uid(passwd: &str, user: &str) -> Option<u32> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == user).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
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
            plugin_socket,
            group_listen,
            group_advertise,
            admin_listen,
            admin_token_file,
            lb_listen,
            agent_check_listen,
            join,
            voters,
            member_timeout_ms,
            server_ttl_secs,
            fence_after_ms
        );
        cfg.bootstrap |= cli.bootstrap;
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
            ("lb_listen", self.lb_listen.as_ref()),
            ("agent_check_listen", self.agent_check_listen.as_ref()),
        ] {
            if let Some(addr) = addr {
                if addr.parse::<SocketAddr>().is_err() {
                    problems.push(format!("{key} {addr:?} is not an IP:port address"));
                }
            }
        }
        match (&self.tls_ca_file, &self.tls_cert_file, &self.tls_key_file) {
            (Some(_), Some(_), Some(_)) | (None, None, None) => {}
            _ => problems.push(
                "tls_ca_file, tls_cert_file and tls_key_file go together: set all three or none"
                    .to_owned(),
            ),
        }
        if self.tls_crl_file.is_some() && self.tls_ca_file.is_none() {
            problems.push("tls_crl_file needs tls_ca_file, tls_cert_file and tls_key_file".into());
        }
        if !self.group_on_loopback() && self.tls_ca_file.is_none() && !self.insecure_group_transport
        {
            problems.push(format!(
                "group_listen {} is not loopback: set tls_ca_file, tls_cert_file and tls_key_file \
                 (mutual TLS between members), or insecure_group_transport = true to let members \
                 talk in plaintext",
                self.group_listen
            ));
        }
        if !self.plugin_on_loopback() && self.plugin_tcp_writes && !self.insecure_plugin_listen {
            problems.push(format!(
                "plugin_listen {} is not loopback and takes join, leave and heartbeat from \
                 whoever reaches it: listen on 127.0.0.1, or set plugin_tcp_writes = false (the \
                 plugin then uses plugin_socket), or insecure_plugin_listen = true",
                self.plugin_listen
            ));
        }
        if let Some(socket) = &self.plugin_socket {
            if !socket.is_absolute() {
                problems.push(format!(
                    "plugin_socket {:?} must be an absolute path",
                    socket.display()
                ));
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
            ("snapshot_send_timeout_ms", self.snapshot_send_timeout_ms),
            ("plugin_idle_timeout_secs", self.plugin_idle_timeout_secs),
            ("shutdown_grace_ms", self.shutdown_grace_ms),
            ("max_plugin_connections", self.max_plugin_connections as u64),
            ("max_plugin_subscribers", self.max_plugin_subscribers as u64),
            (
                "plugin_commands_per_sec",
                u64::from(self.plugin_commands_per_sec),
            ),
        ] {
            if v == 0 {
                problems.push(format!("{key} must be 1 or more"));
            }
        }
        let p = &self.probe;
        for (key, v) in [
            ("fence_after_ms", self.fence_after_ms),
            ("[probe] interval_ms", p.interval_ms),
            ("[probe] connect_timeout_ms", p.connect_timeout_ms),
            ("[probe] query_timeout_ms", p.query_timeout_ms),
            ("[probe] max_failures", u64::from(p.max_failures)),
        ] {
            if v == 0 {
                problems.push(format!("{key} must be 1 or more"));
            }
        }
        if self.fence_after_ms + p.query_timeout_ms >= self.member_timeout_ms {
            problems.push(format!(
                "fence_after_ms ({}) + [probe] query_timeout_ms ({}) must be less than member_timeout_ms ({}): a cut-off gcsd must have fenced its servers before the group promotes another",
                self.fence_after_ms, p.query_timeout_ms, self.member_timeout_ms
            ));
        }
        if !is_token(&p.user) {
            problems.push(format!(
                "[probe] user {:?} must be a name without spaces",
                p.user
            ));
        }
        if let Err(e) = p.password() {
            problems.push(e);
        }
        if let Err(e) = p.servers() {
            problems.push(e);
        }
        for path in p.fence_sockets.iter().filter(|p| !p.is_absolute()) {
            problems.push(format!(
                "[probe] fence_sockets: {:?} must be an absolute path",
                path.display().to_string()
            ));
        }
        problems.extend(self.hooks.problems());
        for h in &self.haproxy {
            problems.extend(h.problems());
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

    /// Why this member may not create a new group (it has no group and no `join`): its
    /// group_listen is not loopback and `bootstrap` was not asked for.
    pub fn bootstrap_problem(&self) -> Option<String> {
        (!self.group_on_loopback() && !self.bootstrap).then(|| {
            format!(
                "no group in data_dir {} and no join address: set join to a member of the group \
                 to join it, or bootstrap = true (--bootstrap) to create a new group here \
                 (group_listen {} is not loopback, so this is never done silently)",
                self.data_dir.display(),
                self.group_listen
            )
        })
    }

    /// Who may use plugin_socket: as configured, or root, the user gcsd runs as and the user
    /// `mysql` (the database server's) if /etc/passwd has one.
    pub fn plugin_allowed_uids(&self) -> Vec<u32> {
        if let Some(uids) = &self.plugin_allowed_uids {
            return uids.clone();
        }
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let mut uids = vec![0, rustix::process::geteuid().as_raw()];
        uids.extend(passwd_uid(&passwd, "mysql"));
        uids.sort_unstable();
        uids.dedup();
        uids
    }

    /// Whether the plugin port is on a loopback address.
    pub fn plugin_on_loopback(&self) -> bool {
        self.plugin_listen
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
    }

    /// Whether the group listener is on a loopback address (one host: no peer can reach it).
    pub fn group_on_loopback(&self) -> bool {
        self.group_listen
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
    }

    /// The TLS files, when TLS is configured.
    pub fn tls_files(&self) -> Option<crate::wire::tls::TlsFiles<'_>> {
        Some(crate::wire::tls::TlsFiles {
            ca: self.tls_ca_file.as_deref()?,
            cert: self.tls_cert_file.as_deref()?,
            key: self.tls_key_file.as_deref()?,
            crl: self.tls_crl_file.as_deref(),
        })
    }

    /// Where the admin token is read from (and created, when it is the default).
    pub fn admin_token_path(&self) -> PathBuf {
        self.admin_token_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(DEFAULT_TOKEN_FILE))
    }

    pub fn member_timeout(&self) -> Duration {
        Duration::from_millis(self.member_timeout_ms)
    }

    pub fn propose_timeout(&self) -> Duration {
        Duration::from_millis(self.propose_timeout_ms)
    }

    pub fn primary_hold(&self) -> Duration {
        Duration::from_millis(self.primary_hold_ms)
    }

    pub fn fence_after(&self) -> Duration {
        Duration::from_millis(self.fence_after_ms)
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
            // openraft's default (200 ms) is too short for a state of thousands of servers,
            // which would then be resent forever.
            install_snapshot_timeout: self.snapshot_send_timeout_ms,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `mysql` user's uid, from /etc/passwd's text; other users and broken lines do not
    /// match.
    #[test]
    fn passwd_uid_reads_the_users_line() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nmysqlx:x:7:7::/:/bin/false\n\
                      broken\nmysql:x:103:107:MariaDB:/nonexistent:/bin/false\n";
        assert_eq!(passwd_uid(passwd, "mysql"), Some(103));
        assert_eq!(passwd_uid(passwd, "root"), Some(0));
        assert_eq!(passwd_uid(passwd, "gcsd"), None);
        assert_eq!(passwd_uid("mysql:x:notanumber:1::/:/x\n", "mysql"), None);
    }

    /// A plugin port off loopback is refused while it takes writes, unless asked for.
    #[test]
    fn a_plugin_port_off_loopback_takes_no_writes_unless_asked() {
        let off = |extra: &str| -> Result<(), ConfigError> {
            let mut cfg: Config =
                toml::from_str(&format!("plugin_listen = \"10.1.2.3:2200\"\n{extra}")).unwrap();
            cfg.data_dir = std::env::temp_dir();
            cfg.validate()
        };
        let err = off("").unwrap_err().to_string();
        assert!(
            err.contains("plugin_listen 10.1.2.3:2200 is not loopback"),
            "{err}"
        );
        off("plugin_tcp_writes = false").unwrap();
        off("insecure_plugin_listen = true").unwrap();
    }

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
    fn the_lease_must_end_before_the_group_promotes() {
        let cfg = Config {
            fence_after_ms: 900,
            ..Config::default()
        };
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.contains("fence_after_ms (900) + [probe] query_timeout_ms (200) must be less than member_timeout_ms (1000)"), "{msg}");
    }

    #[test]
    fn a_probe_password_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut cfg = Config::default();
        cfg.probe.password_file = Some(path.clone());
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(
            msg.contains("has mode 0644; it must be 0600 or stricter"),
            "{msg}"
        );
        assert!(!msg.contains("s3cret"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(cfg.probe.password(), Ok(Some("s3cret".into())));
        cfg.validate().unwrap();
    }

    /// The sample's [[haproxy]] example, uncommented, is valid; each mistake is named.
    #[test]
    fn haproxy_sections() {
        let start = SAMPLE.find("# [[haproxy]]").unwrap();
        let example: String = SAMPLE[start..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let cfg: Config = toml::from_str(&example).expect("the example parses");
        assert_eq!(cfg.haproxy.len(), 1);
        assert_eq!(cfg.haproxy[0].backends[1].role, pool::push::Role::Replica);
        cfg.validate().unwrap();
        let bad = r#"
            [[haproxy]]
            socket = "admin.sock"
            reconcile_ms = 0
            backends = [
              { pool = "main", backend = "w w", role = "primary" },
              { pool = "main", backend = "r", role = "replica" },
              { pool = "main", backend = "r", role = "primary" },
            ]
            servers = { "db1" = "a/b" }
        "#;
        let msg = toml::from_str::<Config>(bad)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        for needle in [
            "socket \"admin.sock\" must be an absolute path",
            "reconcile_ms must be 1 or more",
            "backend \"w w\" is not an HAProxy name",
            "backend \"r\" is listed twice",
            "\"db1\" is not HOST:PORT",
            "server name \"a/b\" is not an HAProxy name",
        ] {
            assert!(msg.contains(needle), "{needle} missing in {msg}");
        }
        let role = "[[haproxy]]\nsocket = \"/s\"\nbackends = [{ pool = \"m\", backend = \"w\", role = \"writer\" }]\nservers = {}";
        let err = toml::from_str::<Config>(role).unwrap_err().to_string();
        assert!(err.contains("unknown variant `writer`"), "{err}");
    }

    #[test]
    fn hooks_must_be_executable_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hook");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut cfg = Config::default();
        cfg.hooks.on_transition = Some(script.clone());
        cfg.hooks.pre_promote = Some(dir.path().join("nope"));
        let msg = cfg.validate().unwrap_err().to_string();
        for needle in [
            "is not executable (mode 0644; chmod +x it)",
            "pre_promote",
            "No such file or directory",
        ] {
            assert!(msg.contains(needle), "{needle} missing in {msg}");
        }
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        cfg.hooks.pre_promote = Some("relative".into());
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(
            msg.contains("pre_promote \"relative\" must be an absolute path"),
            "{msg}"
        );
        cfg.hooks.pre_promote = None;
        cfg.validate().unwrap();
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let cfg = Config {
            node_id: 0,
            voters: 2,
            plugin_listen: "nowhere".into(),
            probe: ProbeConfig {
                fence_sockets: vec!["run/mysqld/mysqld.sock".into()],
                ..ProbeConfig::default()
            },
            ..Config::default()
        };
        let msg = cfg.validate().unwrap_err().to_string();
        for needle in [
            "node_id must be 1",
            "voters must be 1, 3 or 5",
            "plugin_listen \"nowhere\"",
            "fence_sockets: \"run/mysqld/mysqld.sock\" must be an absolute path",
        ] {
            assert!(msg.contains(needle), "{needle} missing in {msg}");
        }
    }
}
