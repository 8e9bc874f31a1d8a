//! The replicated group state and the commands that change it.
//!
//! Everything here is pure: `GroupState::apply` is the only way the state changes, and every
//! member applies the same committed commands in the same order, so every member holds the same
//! state. No clocks are read here; times arrive inside the commands.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use pool::{PoolCommand, Pools, Seen};
use proto::{is_token, MppFields, Role, ServerKey, ServerRow, Status, MAX_TOKEN};
use serde::{Deserialize, Serialize};

/// A time as the serverlist shows it (to the millisecond): commands carry the clock's finer
/// time, and a listed row must print back to itself. A time no serverlist can write (a year
/// outside 0 to 9999, from a broken clock) is listed as the Unix epoch.
fn listed(t: DateTime<Utc>) -> DateTime<Utc> {
    proto::listed_time(t).unwrap_or(DateTime::UNIX_EPOCH)
}

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
    /// A server left on purpose, asked through `member` (none in entries written before
    /// servers had protected owners: those apply as before).
    Leave {
        server: ServerKey,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<MemberId>,
    },
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
    /// A change to the pools: an operator's command, a member's probe reports, or the leader's
    /// decision (see the `pool` crate, which checks it).
    Pool(Box<PoolCommand>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownReason {
    /// Silent for longer than `member_timeout`, as seen by the leader.
    Timeout,
    /// Shut down cleanly (SIGTERM).
    Left,
}

impl DownReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DownReason::Timeout => "timeout",
            DownReason::Left => "left",
        }
    }
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
    pub servers: Servers,
    /// Bumped on every change of the liveness view (Isis2's view id).
    pub view_id: u64,
    /// The pools, the probed health of their servers, and their history.
    #[serde(default)]
    pub pools: Pools,
    /// Members removed for good: their ids are never used again, and a removed member (whose
    /// certificate may still be valid) is refused on the group wire.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub removed: BTreeSet<MemberId>,
}

/// The registered servers, in key order. A persistent map: the state is published to the rest
/// of gcsd after every applied batch, and cloning it must not cost a copy of every server (at
/// 10,000 servers that copy, per commit, starved the runtime of a member under load).
pub type Servers = imbl::OrdMap<ServerKey, ServerRecord>;

/// The most servers the group lists, and the most one member may register: bounds on the
/// replicated state (and on every serverlist and snapshot), enforced in [`GroupState::apply`].
pub const MAX_SERVERS: usize = 10_000;
pub const MAX_SERVERS_PER_MEMBER: usize = 1_000;

impl GroupState {
    /// Why `cmd` must not be applied, if it must not: a key or name that breaks the protocol's
    /// rules (a proposal that did not come through the plugin port's parser), or a registration
    /// beyond [`MAX_SERVERS`] or [`MAX_SERVERS_PER_MEMBER`]. Deterministic, like `apply`.
    pub fn refusal(&self, cmd: &Command) -> Option<String> {
        let key = |k: &ServerKey| {
            (!is_token(&k.host) || !is_token(&k.port)).then(|| {
                format!(
                    "server {:?} {:?}: host and port must be 1 to {MAX_TOKEN} printable ASCII characters",
                    k.host, k.port
                )
            })
        };
        match cmd {
            Command::Register { member, server, .. } => key(server)
                .or_else(|| self.owner_problem(*member, server))
                .or_else(|| self.server_cap_problem(*member, server)),
            Command::Leave {
                server,
                member: Some(member),
            } => key(server).or_else(|| self.owner_problem(*member, server)),
            Command::Leave { server, .. } | Command::Expire { server, .. } => key(server),
            Command::Touch { servers, .. } => servers.iter().find_map(key),
            Command::MemberUp { name, .. } => proto::member_name_problem(name),
            _ => None,
        }
    }

    /// Removes every server registered through `member`.
    fn drop_servers_of(&mut self, member: MemberId) {
        let theirs: Vec<ServerKey> = (self.servers.iter())
            .filter(|(_, s)| s.member == member)
            .map(|(k, _)| k.clone())
            .collect();
        for key in theirs {
            self.servers.remove(&key);
        }
    }

    /// Why `member` may not register or remove `server`: another member that is up owns it. A
    /// server moves to another member only once its owner is down (or the server has left).
    pub fn owner_problem(&self, member: MemberId, server: &ServerKey) -> Option<String> {
        let owner = self.servers.get(server)?.member;
        (owner != member && self.is_up(owner)).then(|| {
            format!(
                "{} {} is registered through member {owner}, which is up; only that member may change or remove it",
                server.host, server.port
            )
        })
    }

    /// Why `member` may not register `server` now: the group or the member is full. A server
    /// already listed may always register again (a status or role change).
    pub fn server_cap_problem(&self, member: MemberId, server: &ServerKey) -> Option<String> {
        if self.servers.contains_key(server) {
            return None;
        }
        let owned = self.servers.values().filter(|s| s.member == member).count();
        if self.servers.len() >= MAX_SERVERS {
            Some(format!("the group lists {MAX_SERVERS} servers, its most"))
        } else if owned >= MAX_SERVERS_PER_MEMBER {
            Some(format!(
                "member {member} has registered {MAX_SERVERS_PER_MEMBER} servers, the most one member may"
            ))
        } else {
            None
        }
    }

    /// Applies one committed command. Deterministic: depends on nothing but `self` and `cmd`.
    pub fn apply(&mut self, cmd: &Command) -> Applied {
        if let Some(why) = self.refusal(cmd) {
            return Applied::Rejected(why);
        }
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
                // A server that registers is running: a report that its process was gone is
                // out of date (its next probe says how it is).
                if self.pools.health.get(server).is_some_and(|h| h.gone) {
                    self.pools.health.remove(server);
                }
            }
            Command::Leave { server, .. } => {
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
                    // Its reports are from before it was away (or from an earlier life): out
                    // of date. Its servers' next probes tell how they are now; meanwhile a stale
                    // "writable" must not make an ACTIVE elsewhere step back.
                    self.pools.health.retain(|_, h| h.member != *member);
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
                self.drop_servers_of(*member);
            }
            Command::MemberRemoved { member } => {
                if self.members.remove(member).is_some() {
                    self.view_id += 1;
                }
                self.removed.insert(*member);
                self.drop_servers_of(*member);
            }
            Command::Pool(cmd) => {
                if let Err(why) = self.pools.apply(cmd) {
                    return Applied::Rejected(why);
                }
                if let PoolCommand::Observe { reports } = &**cmd {
                    // A server whose process is gone is `off` in every list at once, rather
                    // than after its heartbeat TTL.
                    for (server, health) in reports {
                        if let Some(rec) = self.servers.get_mut(server) {
                            if health.gone {
                                rec.status = Status::Off;
                            }
                        }
                    }
                }
            }
        }
        Applied::Done
    }

    /// What the group knows about `server` for the pool decision: its committed health, and
    /// whether its owner is cut off (registered through a member that is committed down, or
    /// last probed by one).
    pub fn seen(&self, server: &ServerKey) -> Seen<'_> {
        let owner = self
            .servers
            .get(server)
            .map(|r| r.member)
            .or_else(|| self.pools.health.get(server).map(|h| h.member));
        Seen {
            health: self.pools.health.get(server),
            cut_off: owner.is_some_and(|m| !self.is_up(m)),
            registered: self
                .servers
                .get(server)
                .is_some_and(|r| self.is_up(r.member)),
        }
    }

    pub fn is_up(&self, member: MemberId) -> bool {
        self.members.get(&member).is_some_and(|m| m.up)
    }

    /// The serverlist of version 1, as the admin API shows it too: one row per registered
    /// server.
    pub fn server_rows(&self) -> Vec<ServerRow> {
        self.servers
            .iter()
            .map(|(key, rec)| self.registered_row(key, rec))
            .collect()
    }

    fn registered_row(&self, key: &ServerKey, rec: &ServerRecord) -> ServerRow {
        ServerRow {
            member: self.member_name(rec.member),
            server: key.clone(),
            status: rec.status,
            role: rec.role,
            ttl_secs: rec.ttl_secs,
            last_update: listed(rec.last_update),
            mpp: None,
        }
    }

    /// The serverlist of version 2: a row per server and pool (a server in no pool has one
    /// row without verdicts). A pool member that is not registered (its server died and
    /// expired, or its gcsd is down) is listed `off`, with TTL 0, as its last prober saw it,
    /// so that every server shows its FAILED verdict; one that no member ever saw is not
    /// listed.
    pub fn server_rows_v2(&self) -> Vec<ServerRow> {
        let keys: BTreeSet<&ServerKey> = self
            .servers
            .keys()
            .chain(
                self.pools
                    .pools
                    .values()
                    .flat_map(|p| p.members.iter().map(|m| &m.server)),
            )
            .collect();
        let mut rows = Vec::new();
        for key in keys {
            let health = self.pools.health.get(key);
            let base = match (self.servers.get(key), health) {
                (Some(rec), _) => self.registered_row(key, rec),
                (None, Some(h)) => ServerRow {
                    member: self.member_name(h.member),
                    server: key.clone(),
                    status: Status::Off,
                    role: if h.replica == Some(true) {
                        Role::Slave
                    } else {
                        Role::Master
                    },
                    ttl_secs: 0,
                    last_update: listed(h.last_probe),
                    mpp: None,
                },
                (None, None) => continue,
            };
            let before = rows.len();
            for (name, pool, m) in self.pools.memberships(key) {
                rows.push(ServerRow {
                    mpp: Some(MppFields {
                        pool: name.to_owned(),
                        kind: m.kind,
                        state: m.state,
                        status: self.pools.status(m),
                        epoch: pool.epoch,
                        message: m.message.clone(),
                    }),
                    ..base.clone()
                });
            }
            if rows.len() == before {
                rows.push(base);
            }
        }
        rows
    }

    pub fn member_name(&self, member: MemberId) -> String {
        self.members
            .get(&member)
            .map_or_else(|| proto::default_member_name(member), |m| m.name.clone())
    }
}

/// JSON maps need string keys, so the server map travels as a list of pairs.
mod server_map {
    use super::{ServerKey, ServerRecord, Servers};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(map: &Servers, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Servers, D::Error> {
        Ok(Vec::<(ServerKey, ServerRecord)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn key(host: &str) -> ServerKey {
        ServerKey::new(host, "3306")
    }

    fn up(member: MemberId) -> Command {
        Command::MemberUp {
            member,
            name: format!("m{member}"),
            at: at(0),
        }
    }

    fn register(member: MemberId, host: &str, status: Status) -> Command {
        Command::Register {
            member,
            server: key(host),
            status,
            role: Role::Slave,
            ttl_secs: 3,
            at: at(1),
        }
    }

    fn down(member: MemberId) -> Command {
        Command::MemberDown {
            member,
            reason: DownReason::Timeout,
            at: at(2),
        }
    }

    /// Keys and names that break the protocol's rules are refused by the state machine itself
    /// (a proposal need not come through the plugin port's parser), and nothing changes.
    #[test]
    fn malformed_keys_and_names_are_refused() {
        let mut state = GroupState::default();
        assert_eq!(state.apply(&up(1)), Applied::Done);
        let with_key = |host: &str, port: &str| Command::Register {
            member: 1,
            server: ServerKey::new(host, port),
            status: Status::On,
            role: Role::Slave,
            ttl_secs: 3,
            at: at(1),
        };
        let long = "9".repeat(256);
        for cmd in [
            with_key("a b", "3306"),
            with_key("a\n0 x", "3306"),
            with_key("a", &long),
            with_key("", "3306"),
            Command::Leave {
                server: ServerKey::new("a b", "1"),
                member: Some(1),
            },
            Command::Touch {
                member: 1,
                servers: vec![key("ok"), ServerKey::new("x", "\u{7f}")],
                at: at(2),
            },
            Command::MemberUp {
                member: 2,
                name: "x y".into(),
                at: at(0),
            },
        ] {
            let before = state.clone();
            assert!(
                matches!(state.apply(&cmd), Applied::Rejected(_)),
                "{cmd:?} was applied"
            );
            assert_eq!(state, before, "{cmd:?} changed the state");
        }
    }

    /// At most MAX_SERVERS_PER_MEMBER servers through one member and MAX_SERVERS in all; a
    /// server already listed may always register again (a status or role change).
    #[test]
    fn server_caps() {
        let mut state = GroupState::default();
        for m in 1..=11 {
            state.apply(&up(m));
        }
        for i in 0..MAX_SERVERS_PER_MEMBER {
            assert_eq!(
                state.apply(&register(1, &format!("h{i}"), Status::On)),
                Applied::Done
            );
        }
        let refused = state.apply(&register(1, "one-more", Status::On));
        assert_eq!(
            refused,
            Applied::Rejected(format!(
                "member 1 has registered {MAX_SERVERS_PER_MEMBER} servers, the most one member may"
            ))
        );
        assert_eq!(
            state.apply(&register(1, "h0", Status::Standby)),
            Applied::Done
        );
        for m in 2..=10 {
            for i in 0..MAX_SERVERS_PER_MEMBER {
                assert_eq!(
                    state.apply(&register(m, &format!("m{m}h{i}"), Status::On)),
                    Applied::Done
                );
            }
        }
        assert_eq!(state.servers.len(), MAX_SERVERS);
        assert_eq!(
            state.apply(&register(11, "x", Status::On)),
            Applied::Rejected(format!("the group lists {MAX_SERVERS} servers, its most"))
        );
    }

    /// Name, commands, expected outcome of the last one, expected servers as
    /// "host:member:status", expected view id.
    type Scenario = (&'static str, Vec<Command>, Applied, Vec<&'static str>, u64);

    #[test]
    fn scenarios() {
        let table: Vec<Scenario> = vec![
            (
                "a member up registers a server",
                vec![up(1), register(1, "a", Status::On)],
                Applied::Done,
                vec!["a:1:on"],
                1,
            ),
            (
                "a member not in the view cannot register",
                vec![register(1, "a", Status::On)],
                Applied::Rejected(
                    "member 1 is marked down; it must announce itself before registering servers"
                        .into(),
                ),
                vec![],
                0,
            ),
            (
                "re-registering replaces status (and the owner, once the old one is down)",
                vec![
                    up(1),
                    up(2),
                    register(1, "a", Status::Starting),
                    register(1, "a", Status::Off),
                    down(1),
                    register(2, "a", Status::On),
                ],
                Applied::Done,
                vec!["a:2:on"],
                3,
            ),
            (
                "member down drops only its servers and bumps the view",
                vec![
                    up(1),
                    up(2),
                    register(1, "a", Status::On),
                    register(2, "b", Status::On),
                    down(1),
                ],
                Applied::Done,
                vec!["b:2:on"],
                3,
            ),
            (
                "a down member must announce itself again",
                vec![up(1), down(1), register(1, "a", Status::On)],
                Applied::Rejected(
                    "member 1 is marked down; it must announce itself before registering servers"
                        .into(),
                ),
                vec![],
                2,
            ),
            (
                "back up, it registers again",
                vec![up(1), down(1), up(1), register(1, "a", Status::On)],
                Applied::Done,
                vec!["a:1:on"],
                3,
            ),
            (
                "expiry by a member that no longer owns the server is ignored",
                vec![
                    up(1),
                    up(2),
                    register(1, "a", Status::On),
                    down(1),
                    register(2, "a", Status::On),
                    Command::Expire {
                        member: 1,
                        server: key("a"),
                    },
                ],
                Applied::Done,
                vec!["a:2:on"],
                3,
            ),
            (
                "a server registered through a member that is up cannot be taken over",
                vec![
                    up(1),
                    up(2),
                    register(1, "a", Status::On),
                    register(2, "a", Status::Off),
                ],
                Applied::Rejected(
                    "a 3306 is registered through member 1, which is up; only that member may change or remove it".into(),
                ),
                vec!["a:1:on"],
                2,
            ),
            (
                "nor removed through another member",
                vec![
                    up(1),
                    up(2),
                    register(1, "a", Status::On),
                    Command::Leave {
                        server: key("a"),
                        member: Some(2),
                    },
                ],
                Applied::Rejected(
                    "a 3306 is registered through member 1, which is up; only that member may change or remove it".into(),
                ),
                vec!["a:1:on"],
                2,
            ),
            (
                "a leave through another member counts once the owner is down",
                vec![
                    up(1),
                    up(2),
                    register(1, "a", Status::On),
                    Command::MemberDown {
                        member: 1,
                        reason: DownReason::Timeout,
                        at: at(1),
                    },
                    Command::Leave {
                        server: key("a"),
                        member: Some(2),
                    },
                ],
                Applied::Done,
                vec![],
                3,
            ),
            (
                "expiry by the owner removes it",
                vec![
                    up(1),
                    register(1, "a", Status::On),
                    Command::Expire {
                        member: 1,
                        server: key("a"),
                    },
                ],
                Applied::Done,
                vec![],
                1,
            ),
            (
                "leave removes whoever owns it",
                vec![
                    up(1),
                    register(1, "a", Status::On),
                    Command::Leave {
                        server: key("a"),
                        member: Some(1),
                    },
                ],
                Applied::Done,
                vec![],
                1,
            ),
            (
                "down for an unknown member is rejected",
                vec![down(7)],
                Applied::Rejected("member 7 is not in the group".into()),
                vec![],
                0,
            ),
            (
                "removal drops the member and its servers",
                vec![
                    up(1),
                    up(2),
                    register(2, "b", Status::On),
                    Command::MemberRemoved { member: 2 },
                ],
                Applied::Done,
                vec![],
                3,
            ),
        ];
        for (name, cmds, last, servers, view_id) in table {
            let mut state = GroupState::default();
            let outcomes: Vec<Applied> = cmds.iter().map(|c| state.apply(c)).collect();
            assert_eq!(outcomes.last().unwrap(), &last, "{name}");
            let got: Vec<String> = state
                .servers
                .iter()
                .map(|(k, r)| format!("{}:{}:{}", k.host, r.member, r.status))
                .collect();
            assert_eq!(got, servers, "{name}");
            assert_eq!(state.view_id, view_id, "{name}");
        }
    }

    #[test]
    fn touch_only_moves_the_owners_timestamps_forward() {
        let mut state = GroupState::default();
        for c in [
            up(1),
            up(2),
            register(1, "a", Status::On),
            register(2, "b", Status::On),
        ] {
            state.apply(&c);
        }
        let touch = |member, secs| Command::Touch {
            member,
            servers: vec![key("a"), key("b")],
            at: at(secs),
        };
        state.apply(&touch(1, 10));
        state.apply(&touch(1, 5)); // late and out of order: ignored
        assert_eq!(state.servers[&key("a")].last_update, at(10));
        assert_eq!(
            state.servers[&key("b")].last_update,
            at(1),
            "b belongs to member 2"
        );
    }

    fn health(member: MemberId, gone: bool) -> pool::ServerHealth {
        pool::ServerHealth {
            member,
            health: if gone {
                proto::Health::Fail
            } else {
                proto::Health::Ok
            },
            failures: if gone { 4 } else { 0 },
            failure: None,
            gone,
            read_only: Some(true),
            replica: Some(true),
            server_id: Some(1),
            gtid: None,
            message: String::new(),
            last_probe: at(3),
        }
    }

    fn pool_cmd(cmd: PoolCommand) -> Command {
        Command::Pool(Box::new(cmd))
    }

    /// Pools in the group state: a crash is `off` in the list at once, a server that registers
    /// again sheds its stale crash report, a member's servers count as cut off once it is
    /// down, and version 2 rows list every server per pool.
    #[test]
    fn pools_in_the_group_state() {
        let mut state = GroupState::default();
        let observe = |member, server: &str, gone| {
            pool_cmd(PoolCommand::Observe {
                reports: vec![(key(server), health(member, gone))],
            })
        };
        for c in [
            up(1),
            up(2),
            register(1, "a", Status::On),
            register(2, "b", Status::On),
            register(1, "c", Status::On),
            pool_cmd(PoolCommand::Init {
                name: "app".into(),
                primary: key("a"),
                secondaries: vec![key("b")],
                settings: pool::Settings::default(),
                at: at(2),
            }),
            observe(1, "a", true),
        ] {
            assert_eq!(state.apply(&c), Applied::Done, "{c:?}");
        }
        assert_eq!(
            state.servers[&key("a")].status,
            Status::Off,
            "a crash is off at once"
        );
        assert!(!state.seen(&key("a")).cut_off);
        // Rows: a (off) and b in the pool, c outside it with no verdicts.
        let rows = state.server_rows_v2();
        let shape: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.server.host.as_str(),
                    r.status,
                    r.mpp.as_ref().map(|m| m.pool.as_str()),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("a", Status::Off, Some("app")),
                ("b", Status::On, Some("app")),
                ("c", Status::On, None)
            ]
        );
        // The crashed server expires from the list, yet stays listed (off, TTL 0) with its verdict.
        state.apply(&Command::Expire {
            member: 1,
            server: key("a"),
        });
        let a = state
            .server_rows_v2()
            .into_iter()
            .find(|r| r.server == key("a"))
            .unwrap();
        assert_eq!(
            (a.status, a.ttl_secs, a.member.as_str()),
            (Status::Off, 0, "m1")
        );
        assert_eq!(
            state.server_rows().len(),
            2,
            "version 1 lists registered servers only"
        );
        // It registers again: the crash report is dropped; its next probe tells.
        state.apply(&register(1, "a", Status::On));
        assert!(!state.pools.health.contains_key(&key("a")));
        // Member 2, which probes b, goes down: b is cut off.
        state.apply(&observe(2, "b", false));
        assert!(!state.seen(&key("b")).cut_off);
        state.apply(&down(2));
        assert!(state.seen(&key("b")).cut_off, "b's owner is down");
        assert!(!state.seen(&key("b")).registered);
        // It comes back: its reports from before are dropped; b's next probe tells.
        state.apply(&up(2));
        assert!(state.seen(&key("b")).health.is_none());
        assert!(!state.seen(&key("b")).cut_off);
    }

    #[test]
    fn state_round_trips_through_a_snapshot() {
        let mut state = GroupState::default();
        for c in [up(1), register(1, "a", Status::Standby)] {
            state.apply(&c);
        }
        let bytes = serde_json::to_vec(&state).unwrap();
        assert_eq!(serde_json::from_slice::<GroupState>(&bytes).unwrap(), state);
    }
}

/// The check of the `state_apply` fuzz target (which compiles this file into itself) and of the
/// property test below: `data` read as the commands a log carries (a JSON array) applies
/// deterministically, whatever it holds; every row the state lists prints and reads back as
/// itself; the state's snapshot reads back as itself. Input that is not such an array is
/// ignored.
#[cfg(any(test, fuzzing))]
pub fn check_commands(data: &[u8]) {
    let Ok(commands) = serde_json::from_slice::<Vec<Command>>(data) else {
        return;
    };
    let (mut one, mut other) = (GroupState::default(), GroupState::default());
    for cmd in &commands {
        assert_eq!(one.apply(cmd), other.apply(cmd), "{cmd:?}");
    }
    assert_eq!(one, other);
    for row in one.server_rows().into_iter().chain(one.server_rows_v2()) {
        assert_eq!(ServerRow::parse(&row.to_line()), Ok(row));
    }
    let snapshot = serde_json::to_vec(&one).expect("a state serializes");
    let back: GroupState = serde_json::from_slice(&snapshot).expect("a snapshot reads back");
    assert_eq!(back, one);
}

/// [`check_commands`] over generated command sequences, sensible or hostile, and the group
/// wire's decoding of any bytes (gcsd's wire is out of cargo-fuzz's reach: it needs the rest
/// of gcsd).
#[cfg(test)]
mod properties {
    use chrono::DateTime;
    use proptest::prelude::*;
    use proto::{Role, ServerKey, Status};

    use super::{Command, DownReason, MemberId};

    /// Found by the state_apply fuzz target: a registration at a time finer than a millisecond
    /// (as `Utc::now()` gives) was listed at that time but printed to the millisecond, so its
    /// row did not print back to itself.
    #[test]
    fn a_time_finer_than_a_millisecond_is_listed_to_the_millisecond() {
        let crash = include_bytes!("../../../fuzz/corpus/state_apply/sub-millisecond-time");
        super::check_commands(crash);
    }

    /// Found by the state_apply fuzz target: a registration in the year -26 was listed with a
    /// time RFC 3339 cannot write, so its row did not read back.
    #[test]
    fn a_time_no_serverlist_can_write_is_listed_as_the_epoch() {
        let crash = include_bytes!("../../../fuzz/corpus/state_apply/negative-year");
        super::check_commands(crash);
    }

    /// The fuzz target's committed seed is a log's worth of commands.
    #[test]
    fn the_fuzz_seed_is_commands() {
        let seed = include_bytes!("../../../fuzz/corpus/state_apply/seed1");
        let commands: Vec<Command> = serde_json::from_slice(seed).unwrap();
        assert_eq!(commands.len(), 7);
        super::check_commands(seed);
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-c]{1,3}",
            "[ -~]{0,6}",
            ".{0,4}",
            proptest::string::string_regex("[!-~]{255,257}").unwrap(),
        ]
    }

    fn key() -> impl Strategy<Value = ServerKey> {
        (text(), text()).prop_map(|(host, port)| ServerKey { host, port })
    }

    fn member() -> impl Strategy<Value = MemberId> {
        1..4u64
    }

    fn command() -> impl Strategy<Value = Command> {
        let at = (0..100_000i64).prop_map(|ms| DateTime::from_timestamp_millis(ms).unwrap());
        prop_oneof![
            (member(), key(), at.clone()).prop_map(|(member, server, at)| Command::Register {
                member,
                server,
                status: Status::On,
                role: Role::Slave,
                ttl_secs: 3,
                at,
            }),
            (key(), proptest::option::of(member()))
                .prop_map(|(server, member)| Command::Leave { server, member }),
            (member(), proptest::collection::vec(key(), 0..3), at.clone()).prop_map(
                |(member, servers, at)| Command::Touch {
                    member,
                    servers,
                    at
                }
            ),
            (member(), key()).prop_map(|(member, server)| Command::Expire { member, server }),
            (member(), text(), at.clone()).prop_map(|(member, name, at)| Command::MemberUp {
                member,
                name,
                at
            }),
            (member(), any::<bool>(), at).prop_map(|(member, left, at)| Command::MemberDown {
                member,
                reason: if left {
                    DownReason::Left
                } else {
                    DownReason::Timeout
                },
                at,
            }),
            member().prop_map(|member| Command::MemberRemoved { member }),
        ]
    }

    proptest! {
        #[test]
        fn any_commands_apply_deterministically_and_list_only_valid_rows(
            commands in proptest::collection::vec(command(), 0..40),
        ) {
            super::check_commands(&serde_json::to_vec(&commands).unwrap());
        }

        /// Any bytes as a log entry's commands: decoded or ignored, never a panic.
        #[test]
        fn any_bytes_as_commands_are_checked_or_ignored(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            super::check_commands(&bytes);
        }

        /// Whatever arrives on the group port decodes or fails; it never panics.
        #[test]
        fn any_bytes_on_the_group_wire_decode_or_fail(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = serde_json::from_slice::<crate::wire::Request>(&bytes);
            let _ = serde_json::from_slice::<crate::wire::Hello>(&bytes);
            let _ = serde_json::from_slice::<crate::wire::Response>(&bytes);
        }
    }
}
