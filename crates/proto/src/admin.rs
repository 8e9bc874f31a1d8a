//! The JSON shapes of gcsd's admin HTTP API, shared by gcsd (which serves them) and gcsctl
//! (which reads them). Readers ignore fields they do not know, so gcsd can report more later.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Role, Status};

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
