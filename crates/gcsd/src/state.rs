//! The replicated group state and the commands that change it.
//!
//! Everything here is pure: `GroupState::apply` is the only way the state changes, and every
//! member applies the same committed commands in the same order, so every member holds the same
//! state. No clocks are read here; times arrive inside the commands.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proto::{Role, ServerKey, ServerRow, Status};
use serde::{Deserialize, Serialize};

/// A member's Raft node id.
pub type MemberId = u64;

/// A change to the group state, committed through the Raft log before anyone acts on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// A server registered (or re-registered) through `member`; replaces any earlier entry.
    Register {
        member: MemberId,
        server: ServerKey,
        status: Status,
        role: Role,
        ttl_secs: u32,
        at: DateTime<Utc>,
    },
    /// A server left on purpose.
    Leave { server: ServerKey },
    /// Heartbeats for these servers arrived at their owner `member` up to `at`.
    Touch {
        member: MemberId,
        servers: Vec<ServerKey>,
        at: DateTime<Utc>,
    },
    /// The owner saw no heartbeat for the server's TTL (judged by the owner's monotonic clock).
    Expire { member: MemberId, server: ServerKey },
    /// A member announces itself alive (after start, restart or a healed partition).
    MemberUp {
        member: MemberId,
        name: String,
        at: DateTime<Utc>,
    },
    /// A member went silent past `member_timeout` (committed by the leader) or left cleanly
    /// (committed by itself). Its servers leave the serverlist.
    MemberDown {
        member: MemberId,
        reason: DownReason,
        at: DateTime<Utc>,
    },
    /// An operator removed the member from the group for good.
    MemberRemoved { member: MemberId },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownReason {
    /// Silent for longer than `member_timeout`, as seen by the leader.
    Timeout,
    /// Shut down cleanly (SIGTERM).
    Left,
}

/// What applying a command did. Rejections are deterministic, so every member agrees on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    Done,
    /// Not applied; the text says why, for the operator or client.
    Rejected(String),
}

/// One member in the liveness view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub name: String,
    pub up: bool,
    /// Why it is down, when it is.
    pub down_reason: Option<DownReason>,
    /// When `up` last changed, by the wall clock of whoever committed the change (display only).
    pub since: DateTime<Utc>,
}

/// One registered database server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    pub member: MemberId,
    pub status: Status,
    pub role: Role,
    pub ttl_secs: u32,
    /// The owner's wall clock at the last committed registration or heartbeat (display only).
    pub last_update: DateTime<Utc>,
}

/// The state every member agrees on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub members: BTreeMap<MemberId, MemberRecord>,
    #[serde(with = "server_map")]
    pub servers: BTreeMap<ServerKey, ServerRecord>,
    /// Bumped on every change of the liveness view (Isis2's view id).
    pub view_id: u64,
}

impl GroupState {
    /// Applies one committed command. Deterministic: depends on nothing but `self` and `cmd`.
    pub fn apply(&mut self, cmd: &Command) -> Applied {
        match cmd {
            Command::Register {
                member,
                server,
                status,
                role,
                ttl_secs,
                at,
            } => {
                if !self.is_up(*member) {
                    return Applied::Rejected(format!(
                        "member {member} is marked down; it must announce itself before registering servers"
                    ));
                }
                self.servers.insert(
                    server.clone(),
                    ServerRecord {
                        member: *member,
                        status: *status,
                        role: *role,
                        ttl_secs: *ttl_secs,
                        last_update: *at,
                    },
                );
            }
            Command::Leave { server } => {
                self.servers.remove(server);
            }
            Command::Touch {
                member,
                servers,
                at,
            } => {
                for key in servers {
                    if let Some(rec) = self.servers.get_mut(key) {
                        if rec.member == *member && rec.last_update < *at {
                            rec.last_update = *at;
                        }
                    }
                }
            }
            Command::Expire { member, server } => {
                // Only the owner's expiry counts: another member may have taken the server over.
                if self
                    .servers
                    .get(server)
                    .is_some_and(|r| r.member == *member)
                {
                    self.servers.remove(server);
                }
            }
            Command::MemberUp { member, name, at } => {
                let changed = !self.is_up(*member);
                self.members.insert(
                    *member,
                    MemberRecord {
                        name: name.clone(),
                        up: true,
                        down_reason: None,
                        since: if changed {
                            *at
                        } else {
                            self.members[member].since
                        },
                    },
                );
                if changed {
                    self.view_id += 1;
                }
            }
            Command::MemberDown { member, reason, at } => {
                let Some(rec) = self.members.get_mut(member) else {
                    return Applied::Rejected(format!("member {member} is not in the group"));
                };
                if rec.up {
                    rec.up = false;
                    rec.down_reason = Some(*reason);
                    rec.since = *at;
                    self.view_id += 1;
                }
                self.servers.retain(|_, s| s.member != *member);
            }
            Command::MemberRemoved { member } => {
                if self.members.remove(member).is_some() {
                    self.view_id += 1;
                }
                self.servers.retain(|_, s| s.member != *member);
            }
        }
        Applied::Done
    }

    pub fn is_up(&self, member: MemberId) -> bool {
        self.members.get(&member).is_some_and(|m| m.up)
    }

    /// The serverlist as the plugin port and admin API show it.
    pub fn server_rows(&self) -> Vec<ServerRow> {
        self.servers
            .iter()
            .map(|(key, rec)| ServerRow {
                member: self.member_name(rec.member),
                server: key.clone(),
                status: rec.status,
                role: rec.role,
                ttl_secs: rec.ttl_secs,
                last_update: rec.last_update,
            })
            .collect()
    }

    pub fn member_name(&self, member: MemberId) -> String {
        self.members
            .get(&member)
            .map_or_else(|| format!("gcsd{member}"), |m| m.name.clone())
    }
}

/// JSON maps need string keys, so the server map travels as a list of pairs.
mod server_map {
    use super::{ServerKey, ServerRecord};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<ServerKey, ServerRecord>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<ServerKey, ServerRecord>, D::Error> {
        Ok(Vec::<(ServerKey, ServerRecord)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}
