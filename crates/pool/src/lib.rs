//! MPP's pools on the consensus group: the replicated pool records, and every decision about them
//! as a pure function. No I/O, no clocks (times arrive as arguments), no unsafe.
//!
//! The invariants, each enforced in one place:
//! - **At most one ACTIVE per pool, in the committed state**: [`Pools::apply`] refuses any
//!   command whose result would have two, whoever proposed it (a stale leader, an operator).
//! - **The epoch grows by one exactly when the ACTIVE server of a pool changes** (computed by
//!   [`Pools::apply`], never taken from a proposal), so a client comparing two answers can tell
//!   which is newer.
//! - **A new ACTIVE is committed only when every other reachable pool member is confirmed
//!   unable to write** ([`decide`]): observed `read_only=ON`, its process gone (the probe was
//!   refused), or its gcsd cut off from the group. A gcsd that cannot reach a quorum for
//!   `fence_after_ms` sets its servers read-only by itself ([`fence::desired`]), and the group
//!   commits a silent gcsd as down only after `member_timeout_ms`; gcsd's configuration refuses
//!   `fence_after_ms + query_timeout_ms >= member_timeout_ms`, so "cut off" means "fenced".
//! - **Nothing is decided for a paused pool**: only the operator's `set` changes it.
//! - **A FAILED server stays FAILED until an operator recovers it.**
//!
//! Where MPP 1.0.3 behaved differently, the code says which of its defects (D-n, numbered as in
//! the team's note on MPP) the rule fixes, and a scenario test of the same name shows it.

#![forbid(unsafe_code)]

pub mod checks;
mod decide;
pub mod fence;
mod health;
pub mod hooks;
mod ops;
pub mod push;
pub mod verdict;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use chrono::{DateTime, Utc};
use proto::{Health, PoolState, PoolType, ServerKey};
use serde::{Deserialize, Serialize};

pub use decide::{decide, Seen};
pub use health::{caught_up, grade, Judge, Probe, ProbeFacts, ReplicaFacts};
pub use hooks::{HookDuty, HookState, HookStep};
pub use ops::{PoolCommand, RecoverTarget, SettingChange};

pub use proto::{MAX_MESSAGE, MAX_POOL_NAME};
/// Longest pool: more members than this is a configuration mistake.
pub const MAX_POOL_MEMBERS: usize = 16;
/// How many committed transitions the history keeps (oldest dropped first).
pub const HISTORY_LEN: usize = proto::MAX_HISTORY_ROWS;

/// MPP's messages, where the same thing happens.
pub mod messages {
    pub const INSTATED: &str = "PRIMARY instatement to ACTIVE complete.";
    pub const FAILOVER: &str = "FAILOVER: Taking over ACTIVE state.";
    pub const RECOVERY: &str = "Manual Recovery Initiated.";
    pub const REPORTS_RECOVERY: &str =
        "FAILED server is reporting recovery. Manual intervention required.";
    pub const PRIMARY_REPORTS_RECOVERY: &str =
        "FAILED PRIMARY server is reporting recovery. Manual intervention required.";
    pub const RELINQUISH: &str = "Relinquishing ACTIVE state to PRIMARY.";
    pub const ACTIVATED: &str = "PRIMARY Manually reinstated as ACTIVE.";
    pub const SWITCHED_OVER: &str = "SWITCHOVER: Taking over ACTIVE state.";
    pub const NOT_FAILING: &str =
        "Not failing from ACTIVE state because no other server is on standby";
}

/// A server as operators write it: `host:port`.
pub fn addr(server: &ServerKey) -> String {
    format!("{}:{}", server.host, server.port)
}

/// Parses `host:port` (the port a number from 1 to 65535; the host a token without ':').
pub fn parse_addr(text: &str) -> Result<ServerKey, String> {
    let bad = || format!("{text:?} is not HOST:PORT (for example db1:3306)");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0) && !port.starts_with('0');
    if host.is_empty() || host.contains(':') || !proto::is_token(host) || !port_ok {
        return Err(bad());
    }
    Ok(ServerKey::new(host, port))
}

/// What is wrong with `name` as a pool name, if anything.
pub fn pool_name_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_POOL_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    (!ok).then(|| {
        format!("pool name {name:?} must be 1 to {MAX_POOL_NAME} characters from A-Z a-z 0-9 _ - .")
    })
}

/// A pool's settings, given at `pool init` and changed with `pool set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Keep every member but the ACTIVE at `read_only=ON`, and make the ACTIVE writable only
    /// when the others are confirmed unable to write.
    pub fencing: bool,
    /// In a planned handover, make the target writable even when it did not catch up with its
    /// predecessor within `catch_up_timeout_ms` (transactions it has not applied are then lost
    /// to it). Off: it stays read-only, counts as failing, and the pool fails over to a healthy
    /// STANDBY (normally its predecessor).
    pub hostile_takeover: bool,
    /// A STANDBY further behind its source than this fails its checks (none: lag is shown only).
    pub max_lag_secs: Option<u32>,
    /// How long a handover's target waits to apply everything its predecessor wrote.
    pub catch_up_timeout_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            fencing: true,
            hostile_takeover: false,
            max_lag_secs: None,
            catch_up_timeout_ms: 5000,
        }
    }
}

/// One server in one pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolMember {
    pub server: ServerKey,
    #[serde(rename = "type")]
    pub kind: PoolType,
    pub state: PoolState,
    /// Why the state is what it is (MPP's messages), empty when there is nothing to say.
    pub message: String,
    /// A status the operator set while the pool was paused (shown instead of the probed one).
    pub status_override: Option<Health>,
}

/// Why a planned handover happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoverKind {
    /// The recovered PRIMARY takes ACTIVE back from a SECONDARY.
    Reinstatement,
    /// `gcsctl activate-primary`.
    ActivatePrimary,
    /// `gcsctl switchover --to`.
    Switchover,
}

/// A planned handover under way: `from` has been told to stand down; `to` becomes ACTIVE once
/// `from` is confirmed read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    pub from: ServerKey,
    pub to: ServerKey,
    pub kind: HandoverKind,
    pub started: DateTime<Utc>,
}

/// A pool: its members in priority order (the PRIMARY first) and what the group decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub members: Vec<PoolMember>,
    pub settings: Settings,
    /// Automation is off: only the operator's `set` changes states.
    pub paused: bool,
    /// Grows by one with every change of the ACTIVE server.
    pub epoch: u64,
    /// Grows with every committed change of this record; a leader's decision names the
    /// revision it was made from, and is refused if the pool changed since.
    pub revision: u64,
    pub handover: Option<Handover>,
    /// The GTID position the ACTIVE must have applied before it is made writable: its
    /// predecessor's last position, when a planned handover knew it.
    pub catch_up: Option<String>,
    /// When the current ACTIVE was committed.
    pub active_since: Option<DateTime<Utc>>,
    /// The PRIMARY was recovered while a SECONDARY is ACTIVE: hand ACTIVE back to it once it
    /// is healthy (MPP's reinstatement). A switchover chooses otherwise and clears it.
    #[serde(default)]
    pub reinstate_primary: bool,
}

impl Pool {
    pub fn active(&self) -> Option<&PoolMember> {
        self.members.iter().find(|m| m.state == PoolState::Active)
    }

    pub fn member(&self, server: &ServerKey) -> Option<&PoolMember> {
        self.members.iter().find(|m| &m.server == server)
    }

    fn position(&self, server: &ServerKey) -> Option<usize> {
        self.members.iter().position(|m| &m.server == server)
    }
}

/// The kind of a failed probe: MPP's FAILED_OFFLINE or FAILED_ONLINE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Could not connect.
    Offline,
    /// Connected, but its checks failed (a query, replication).
    Online,
}

impl FailureKind {
    pub fn failed_state(self) -> PoolState {
        match self {
            FailureKind::Offline => PoolState::FailedOffline,
            FailureKind::Online => PoolState::FailedOnline,
        }
    }
}

/// A server's health as its owner's probes found it; committed when it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHealth {
    /// The member (gcsd node id) that probed it: its owner.
    pub member: u64,
    pub health: Health,
    /// Consecutive failed probes.
    pub failures: u32,
    /// The kind of the latest failure, while there are failures.
    pub failure: Option<FailureKind>,
    /// The last probe was refused: no process listens, so the server cannot write.
    pub gone: bool,
    pub read_only: Option<bool>,
    /// Whether it is a replica (has replica status), as last seen.
    #[serde(default)]
    pub replica: Option<bool>,
    pub server_id: Option<u32>,
    /// `@@gtid_binlog_pos`: what this server has written to its binary log.
    pub gtid: Option<String>,
    /// What the last probe found wrong (empty when nothing).
    pub message: String,
    /// The owner's wall clock at the probe (display only).
    pub last_probe: DateTime<Utc>,
}

impl ServerHealth {
    /// A clean probe of a read-only replica by `member` at `last_probe`: the starting point of
    /// tests and examples, which change what they need.
    pub fn clean_replica(member: u64, last_probe: DateTime<Utc>) -> Self {
        ServerHealth {
            member,
            health: Health::Ok,
            failures: 0,
            failure: None,
            gone: false,
            read_only: Some(true),
            replica: Some(true),
            server_id: Some(1),
            gtid: None,
            message: String::new(),
            last_probe,
        }
    }
}

/// One committed change of a server's STATE in a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Grows by one per entry, across all pools.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub pool: String,
    pub server: ServerKey,
    pub from: Option<PoolState>,
    pub to: Option<PoolState>,
    pub status: Option<Health>,
    pub epoch: u64,
    pub reason: String,
    /// The transition's hook ([`hooks`]).
    #[serde(default)]
    pub hook: HookState,
}

impl HistoryEntry {
    /// The entry as the plugin port sends it.
    pub fn row(&self) -> proto::HistoryRow {
        proto::HistoryRow {
            seq: self.seq,
            at: self.at,
            pool: self.pool.clone(),
            server: self.server.clone(),
            from: self.from,
            to: self.to,
            status: self.status,
            epoch: self.epoch,
            reason: self.reason.clone(),
            hook: self.hook.describe(),
        }
    }
}

/// Every pool, every probed server's health, and the recent transitions: the part of the
/// group state this crate owns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pools {
    pub pools: BTreeMap<String, Pool>,
    #[serde(with = "key_list")]
    pub health: BTreeMap<ServerKey, ServerHealth>,
    pub history: VecDeque<HistoryEntry>,
    pub history_seq: u64,
    /// Grows with every change of the history (an entry, a hook's step): what the plugin
    /// compares to know whether its copy is current.
    #[serde(default)]
    pub history_rev: u64,
}

impl Pools {
    /// The status shown for a pool member: the operator's while the pool is paused, else the
    /// last probe's grade (none before its first report).
    pub fn status(&self, member: &PoolMember) -> Option<Health> {
        member
            .status_override
            .or(self.health.get(&member.server).map(|h| h.health))
    }

    /// The pools `server` belongs to, with its record in each.
    pub fn memberships<'a>(
        &'a self,
        server: &'a ServerKey,
    ) -> impl Iterator<Item = (&'a str, &'a Pool, &'a PoolMember)> + 'a {
        self.pools
            .iter()
            .filter_map(move |(name, pool)| pool.member(server).map(|m| (name.as_str(), pool, m)))
    }
}

impl fmt::Display for HandoverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandoverKind::Reinstatement => "reinstatement",
            HandoverKind::ActivatePrimary => "activate-primary",
            HandoverKind::Switchover => "switchover",
        })
    }
}

/// Cuts `text` to [`MAX_MESSAGE`] bytes (on a character boundary) and maps control
/// characters to spaces, so a message fits one line and one bounded column.
pub fn bounded_message(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// JSON maps need string keys, so a map keyed by server travels as a list of pairs.
mod key_list {
    use std::collections::BTreeMap;

    use proto::ServerKey;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<V: Serialize, S: Serializer>(
        map: &BTreeMap<ServerKey, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, V: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<ServerKey, V>, D::Error> {
        Ok(Vec::<(ServerKey, V)>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests;
