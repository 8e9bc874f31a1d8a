//! The JSON shapes of gcsd's admin HTTP API, shared by gcsd (which serves them) and gcsctl
//! (which reads them). Readers ignore fields they do not know, so gcsd can report more later.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Health, PoolState, PoolType, Role, Status};

/// The shortest admin token gcsd accepts (it creates 64 hex digits).
pub const MIN_TOKEN_LEN: usize = 32;
/// Where gcsd creates its admin token by default (`<data_dir>/admin.token` with the default
/// data_dir), and where gcsctl looks when not told.
pub const DEFAULT_TOKEN_PATH: &str = "/var/lib/gcsd/admin.token";

/// The admin token in a token file's text: one line of printable ASCII without spaces, at
/// least [`MIN_TOKEN_LEN`] long.
pub fn parse_token(text: &str) -> Result<String, String> {
    let token = text.trim();
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "the token must be at least {MIN_TOKEN_LEN} characters (it has {})",
            token.len()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token must be one line of printable characters without spaces".into());
    }
    Ok(token.to_owned())
}

/// `GET /cluster`: what one member knows about the group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterReport {
    pub me: u64,
    pub name: String,
    /// leader, follower, learner, candidate or shutdown (text, so new roles stay readable).
    pub role: String,
    pub leader: Option<u64>,
    pub term: u64,
    pub quorum: bool,
    /// Why this member cannot commit, when it cannot.
    pub quorum_problem: Option<String>,
    pub last_applied: Option<u64>,
    pub view_id: u64,
    pub members: Vec<MemberReport>,
    pub servers: Vec<ServerReport>,
}

/// A member (a gcsd host) in the view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberReport {
    pub id: u64,
    pub name: String,
    pub group_addr: String,
    #[serde(default)]
    pub admin_addr: String,
    pub voter: bool,
    pub up: bool,
    /// "timeout" or "left" when down.
    pub down_reason: Option<String>,
    /// When `up` last changed; none for a member that never announced itself.
    pub since: Option<DateTime<Utc>>,
}

/// A registered database server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerReport {
    /// Name of the member it registered through.
    pub member: String,
    pub member_id: u64,
    pub host: String,
    pub port: String,
    pub status: Status,
    pub role: Role,
    pub ttl_secs: u32,
    pub last_update: DateTime<Utc>,
}

/// `POST /members`: add a host to the group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    pub id: u64,
    pub group_addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_addr: Option<String>,
}

/// `GET /pools`: every pool as this member knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolsReport {
    /// Whether the answering member can commit; without quorum the verdicts are its last
    /// known ones, and `quorum_problem` says why.
    pub quorum: bool,
    pub quorum_problem: Option<String>,
    pub pools: Vec<PoolReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolReport {
    pub name: String,
    pub paused: bool,
    pub epoch: u64,
    pub fencing: bool,
    pub hostile_takeover: bool,
    pub max_lag_secs: Option<u32>,
    /// A planned handover under way, in words.
    pub handover: Option<String>,
    /// When the current ACTIVE was committed.
    pub active_since: Option<DateTime<Utc>>,
    pub servers: Vec<PoolServerReport>,
}

/// One server in one pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolServerReport {
    /// `host:port`.
    pub server: String,
    #[serde(rename = "type")]
    pub kind: PoolType,
    pub state: PoolState,
    /// The probed health, or the operator's while the pool is paused; none if never probed.
    pub status: Option<Health>,
    pub failures: u32,
    pub message: String,
    pub last_probe: Option<DateTime<Utc>>,
    pub read_only: Option<bool>,
}

/// `GET /history`: committed transitions, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryReport {
    pub history: Vec<HistoryRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub seq: u64,
    pub time: DateTime<Utc>,
    pub pool: String,
    pub server: String,
    pub from: Option<PoolState>,
    pub to: Option<PoolState>,
    pub status: Option<Health>,
    pub epoch: u64,
    pub reason: String,
    /// What came of the transition's hook: empty when none runs for it, `pending`, `running
    /// on member N`, or its outcome (beginning with [`HOOK_SKIPPED`] when the leader had none).
    #[serde(default)]
    pub hook: String,
}

/// How a hook outcome begins when the leader had no hook to run.
pub const HOOK_SKIPPED: &str = "skipped:";

/// `POST /pools`: an operator's pool command. Servers are `host:port`; settings `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum PoolRequest {
    Init {
        name: String,
        primary: String,
        secondaries: Vec<String>,
        #[serde(default)]
        settings: Vec<String>,
    },
    Set {
        name: String,
        settings: Vec<String>,
    },
    Delete {
        name: String,
    },
    Recover {
        server: Option<String>,
        pool: Option<String>,
    },
    ActivatePrimary {
        pool: String,
    },
    Switchover {
        pool: String,
        to: String,
    },
    Pause {
        pool: String,
    },
    Resume {
        pool: String,
    },
    ManualSet {
        pool: String,
        server: String,
        state: Option<String>,
        status: Option<String>,
    },
}
