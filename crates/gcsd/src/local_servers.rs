//! The servers registered through this member, and the loop that keeps the group's committed
//! list true to them.
//!
//! This member owns its servers' heartbeats: they are judged by its monotonic clock, never by
//! comparing two hosts' wall clocks. A heartbeat that changes nothing is only recorded here and
//! published to the group at most every `heartbeat_publish_ms`, batched into one `Touch`.
//!
//! Each reconcile pass decides with [`plan`], without I/O, then commits what it decided.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use parking_lot::Mutex;
use proto::{Role, ServerKey, Status};

use crate::group::Group;
use crate::state::{Applied, Command, GroupState, MemberId, ServerRecord};
use crate::wire::ProposeError;

#[derive(Debug, Clone)]
struct LocalServer {
    status: Status,
    role: Role,
    last_heartbeat: Instant,
    /// A heartbeat arrived since the last published `Touch`.
    unpublished: bool,
}

impl LocalServer {
    /// A committed registration of ours, taken back with a fresh TTL.
    fn adopt(rec: &ServerRecord, now: Instant) -> Self {
        Self {
            status: rec.status,
            role: rec.role,
            last_heartbeat: now,
            unpublished: false,
        }
    }
}

/// What one reconcile pass must commit for this member's servers.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// Committed as ours, silent past the TTL: expire them.
    expired: Vec<ServerKey>,
    /// Known here but missing from the committed list, or listed differently (the list lost
    /// them while this member was down): register them again.
    missing: Vec<(ServerKey, Status, Role)>,
    /// Heartbeats arrived since the last publication, and it is time to publish: touch them.
    touched: Vec<ServerKey>,
}

/// The rules of one pass.
#[derive(Debug, Clone, Copy)]
struct Pass {
    now: Instant,
    ttl: Duration,
    /// False while this gcsd catches up after being held up: no one expires.
    may_expire: bool,
    /// Whether this pass publishes heartbeats.
    publish: bool,
}

/// Brings `local` (this member's table) in line with the committed `state` and decides what to
/// commit. Committed servers of ours unknown here are adopted (gcsd restarted, or a leave that
/// did not commit) and get one TTL for their plugin to resume heartbeats; servers another
/// member registered since are dropped here; silent ones are expired.
fn plan(
    local: &mut HashMap<ServerKey, LocalServer>,
    state: &GroupState,
    me: MemberId,
    pass: Pass,
) -> Plan {
    let mut plan = Plan::default();
    for (key, rec) in state.servers.iter().filter(|(_, r)| r.member == me) {
        local
            .entry(key.clone())
            .or_insert_with(|| LocalServer::adopt(rec, pass.now));
    }
    local.retain(|key, server| {
        let committed = state.servers.get(key);
        if committed.is_some_and(|c| c.member != me) {
            return false;
        }
        if pass.may_expire && pass.now.saturating_duration_since(server.last_heartbeat) > pass.ttl {
            if committed.is_some() {
                plan.expired.push(key.clone());
            }
            return false;
        }
        match committed {
            Some(c) if c.status == server.status && c.role == server.role => {
                if pass.publish && server.unpublished {
                    server.unpublished = false;
                    plan.touched.push(key.clone());
                }
            }
            _ => plan.missing.push((key.clone(), server.status, server.role)),
        }
        true
    });
    // The table is a hash map: a plan in key order reads the same every time.
    plan.expired.sort();
    plan.missing.sort_by(|a, b| a.0.cmp(&b.0));
    plan.touched.sort();
    plan
}

/// What a heartbeat needs the group to do.
pub enum HeartbeatOutcome {
    /// Recorded here; nothing to commit.
    Recorded,
    /// The status changed: this registration must be committed.
    Changed(Command),
    /// This member has no such server: the client must join first.
    Unknown,
}

pub struct LocalServers {
    group: Arc<Group>,
    servers: Mutex<HashMap<ServerKey, LocalServer>>,
    /// Held across every change this member commits for its servers (join, leave, status
    /// change, and each reconcile pass), so they never interleave: a reconcile pass always
    /// sees the outcome of a leave that came before it, and cannot undo it.
    changes: tokio::sync::Mutex<()>,
}

impl LocalServers {
    pub fn new(group: Arc<Group>) -> Arc<Self> {
        Arc::new(Self {
            group,
            servers: Mutex::new(HashMap::new()),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    fn register_command(&self, server: &ServerKey, status: Status, role: Role) -> Command {
        Command::Register {
            member: self.group.me,
            server: server.clone(),
            status,
            role,
            ttl_secs: self.group.config().server_ttl_secs,
            at: Utc::now(),
        }
    }

    /// Commits this member as up if the view has it down (new, restarted, or back from a
    /// partition): servers can only be registered through a member that is up.
    async fn announce(&self) -> Result<(), ProposeError> {
        if self.group.is_leaving() {
            return Err(ProposeError::Rejected(
                "this gcsd is shutting down and has left the group".into(),
            ));
        }
        if self.group.state().is_up(self.group.me) {
            return Ok(());
        }
        self.commit(Command::MemberUp {
            member: self.group.me,
            name: self.group.node.name.clone(),
            at: Utc::now(),
        })
        .await?;
        tracing::info!("announced this member to the group");
        Ok(())
    }

    /// `join`: commits the registration, then owns the server's heartbeats here. A join that
    /// did not commit leaves nothing behind, so it cannot be committed later by surprise.
    pub async fn join(
        &self,
        server: ServerKey,
        status: Status,
        role: Role,
    ) -> Result<(), ProposeError> {
        let _changing = self.changes.lock().await;
        // The state machine refuses it anyway; asked here first, the plugin gets its own errno.
        if let Some(why) = self
            .group
            .state()
            .server_cap_problem(self.group.me, &server)
        {
            return Err(ProposeError::Full(why));
        }
        self.announce().await?;
        self.commit(self.register_command(&server, status, role))
            .await?;
        self.servers.lock().insert(
            server,
            LocalServer {
                status,
                role,
                last_heartbeat: Instant::now(),
                unpublished: false,
            },
        );
        Ok(())
    }

    /// `leave`: forgets the server and commits its removal.
    pub async fn leave(&self, server: ServerKey) -> Result<(), ProposeError> {
        let _changing = self.changes.lock().await;
        self.servers.lock().remove(&server);
        self.commit(Command::Leave {
            server,
            member: Some(self.group.me),
        })
        .await
    }

    /// `heartbeat`: refreshes the server's clock; commits only a change of status.
    pub fn heartbeat(&self, server: &ServerKey, status: Status) -> HeartbeatOutcome {
        let mut servers = self.servers.lock();
        if !servers.contains_key(server) {
            // Not joined here, unless the committed list says it is ours (gcsd restarted).
            let state = self.group.state();
            match state.servers.get(server) {
                Some(rec) if rec.member == self.group.me => {
                    servers.insert(server.clone(), LocalServer::adopt(rec, Instant::now()));
                }
                _ => return HeartbeatOutcome::Unknown,
            }
        }
        let local = servers.get_mut(server).expect("present or inserted above");
        local.last_heartbeat = Instant::now();
        local.unpublished = true;
        if local.status == status {
            return HeartbeatOutcome::Recorded;
        }
        local.status = status;
        let role = local.role;
        drop(servers);
        HeartbeatOutcome::Changed(self.register_command(server, status, role))
    }

    /// The server's process is gone (its probe was refused): it is `off` here too, so that the
    /// next reconcile pass does not register it back as it was.
    pub fn mark_off(&self, server: &ServerKey) {
        if let Some(local) = self.servers.lock().get_mut(server) {
            local.status = Status::Off;
        }
    }

    /// Commits the status change a heartbeat reported (`HeartbeatOutcome::Changed`).
    pub async fn commit_status_change(&self, cmd: Command) -> Result<(), ProposeError> {
        let _changing = self.changes.lock().await;
        self.commit(cmd).await
    }

    async fn commit(&self, cmd: Command) -> Result<(), ProposeError> {
        match self.group.propose(cmd).await? {
            Applied::Done => Ok(()),
            Applied::Rejected(why) => Err(ProposeError::Rejected(why)),
        }
    }

    /// Runs for the life of the process. Each pass: announce this member if the view has it
    /// down, adopt committed servers of ours that are not known here, expire silent servers,
    /// re-register servers the committed list lost (after this member was down), and publish
    /// heartbeats.
    pub async fn reconcile(self: Arc<Self>) {
        let cfg = self.group.config();
        let tick = Duration::from_millis(cfg.raft_heartbeat_ms);
        let ttl = Duration::from_secs(u64::from(cfg.server_ttl_secs));
        let publish_every = Duration::from_millis(cfg.heartbeat_publish_ms);
        let mut last_publish = Instant::now();
        let mut no_expiry_until = Instant::now();
        loop {
            let asleep = Instant::now();
            tokio::time::sleep(tick).await;
            // If this gcsd itself was held up (slow disk, no CPU), heartbeats may be waiting
            // unread in its sockets: judge no one silent until they have had one TTL again.
            // Only the sleep counts: waiting for its own proposals (up to propose_timeout_ms
            // without a quorum) is not being held up.
            let gap = asleep.elapsed();
            if gap > tick * 10 {
                tracing::warn!(
                    stalled_ms = gap.as_millis() as u64,
                    "this gcsd was held up; no server expires for one TTL"
                );
                no_expiry_until = Instant::now() + ttl;
            }
            let may_expire = Instant::now() >= no_expiry_until;
            if self.group.quorum_problem().is_some() {
                continue;
            }
            let _changing = self.changes.lock().await;
            if let Err(e) = self.announce().await {
                tracing::debug!("cannot announce this member yet: {e}");
                continue;
            }
            let publish = last_publish.elapsed() >= publish_every;
            let pass = Pass {
                now: Instant::now(),
                ttl,
                may_expire,
                publish,
            };
            let me = self.group.me;
            let Plan {
                expired,
                missing,
                touched,
            } = plan(&mut self.servers.lock(), &self.group.state(), me, pass);
            for server in expired {
                tracing::info!(%server, "no heartbeat within the TTL; expiring");
                let cmd = Command::Expire { member: me, server };
                if let Err(e) = self.group.propose(cmd).await {
                    tracing::warn!("cannot commit the expiry: {e}");
                }
            }
            for (server, status, role) in missing {
                tracing::info!(%server, "re-registering a server the group's list lost");
                if let Err(e) = self
                    .commit(self.register_command(&server, status, role))
                    .await
                {
                    tracing::warn!(%server, "cannot re-register: {e}");
                }
            }
            if publish {
                last_publish = Instant::now();
                if !touched.is_empty() {
                    let cmd = Command::Touch {
                        member: me,
                        servers: touched,
                        at: Utc::now(),
                    };
                    if let Err(e) = self.group.propose(cmd).await {
                        tracing::debug!("cannot publish heartbeats: {e}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    const ME: MemberId = 1;
    const TTL: Duration = Duration::from_secs(3);

    fn key(host: &str) -> ServerKey {
        ServerKey::new(host, "3306")
    }

    /// The committed list: (host, owner, status).
    fn committed(servers: &[(&str, MemberId, Status)]) -> GroupState {
        let mut s = GroupState::default();
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for member in [1, 2] {
            s.apply(&Command::MemberUp {
                member,
                name: format!("m{member}"),
                at,
            });
        }
        for &(host, member, status) in servers {
            s.apply(&Command::Register {
                member,
                server: key(host),
                status,
                role: Role::Slave,
                ttl_secs: 3,
                at,
            });
        }
        s
    }

    /// This member's table: (host, status, seconds since its last heartbeat, unpublished).
    fn table(
        now: Instant,
        servers: &[(&str, Status, u64, bool)],
    ) -> HashMap<ServerKey, LocalServer> {
        servers
            .iter()
            .map(|&(host, status, ago, unpublished)| {
                let server = LocalServer {
                    status,
                    role: Role::Slave,
                    last_heartbeat: now - Duration::from_secs(ago),
                    unpublished,
                };
                (key(host), server)
            })
            .collect()
    }

    /// Given the committed list, this member's table and the pass's rules: the plan, and the
    /// hosts the table holds afterwards.
    #[test]
    fn scenarios() {
        use Status::{On, Standby};
        type Scenario = (
            &'static str,
            GroupState,
            &'static [(&'static str, Status, u64, bool)],
            (bool, bool),
            Plan,
            &'static [&'static str],
        );
        let (expire, publish) = ((true, false), (true, true));
        let hosts = |h: &[&str]| h.iter().map(|h| key(h)).collect::<Vec<_>>();
        let table_rows: Vec<Scenario> = vec![
            (
                "in line with the list, nothing to publish: nothing to do",
                committed(&[("db1", ME, On)]),
                &[("db1", On, 1, false)],
                publish,
                Plan::default(),
                &["db1"],
            ),
            (
                "a heartbeat since the last publication is touched when it is time",
                committed(&[("db1", ME, On), ("db2", ME, On)]),
                &[("db1", On, 1, true), ("db2", On, 1, false)],
                publish,
                Plan {
                    touched: hosts(&["db1"]),
                    ..Plan::default()
                },
                &["db1", "db2"],
            ),
            (
                "and waits while it is not time",
                committed(&[("db1", ME, On)]),
                &[("db1", On, 1, true)],
                expire,
                Plan::default(),
                &["db1"],
            ),
            (
                "silent past the TTL: expired and forgotten",
                committed(&[("db1", ME, On)]),
                &[("db1", On, 4, true)],
                publish,
                Plan {
                    expired: hosts(&["db1"]),
                    ..Plan::default()
                },
                &[],
            ),
            (
                "silent, but this gcsd was held up: kept for now",
                committed(&[("db1", ME, On)]),
                &[("db1", On, 4, false)],
                (false, false),
                Plan::default(),
                &["db1"],
            ),
            (
                "silent and no longer listed: forgotten without a commit",
                committed(&[]),
                &[("db1", On, 4, false)],
                publish,
                Plan::default(),
                &[],
            ),
            (
                "committed as ours but unknown here: adopted with a fresh TTL",
                committed(&[("db1", ME, On)]),
                &[],
                publish,
                Plan::default(),
                &["db1"],
            ),
            (
                "registered through another member since: dropped here",
                committed(&[("db1", 2, On)]),
                &[("db1", On, 1, true)],
                publish,
                Plan::default(),
                &[],
            ),
            (
                "lost from the list (this member was down): registered again",
                committed(&[]),
                &[("db1", Standby, 1, true)],
                publish,
                Plan {
                    missing: vec![(key("db1"), Standby, Role::Slave)],
                    ..Plan::default()
                },
                &["db1"],
            ),
            (
                "listed with another status: registered again, not touched",
                committed(&[("db1", ME, On)]),
                &[("db1", Standby, 1, true)],
                publish,
                Plan {
                    missing: vec![(key("db1"), Standby, Role::Slave)],
                    ..Plan::default()
                },
                &["db1"],
            ),
            (
                "everything at once, in key order",
                committed(&[
                    ("db1", ME, On),
                    ("db2", ME, On),
                    ("db4", 2, On),
                    ("db5", ME, On),
                ]),
                &[
                    ("db2", On, 9, false),
                    ("db3", On, 0, true),
                    ("db1", On, 0, true),
                    ("db4", On, 0, true),
                ],
                publish,
                Plan {
                    expired: hosts(&["db2"]),
                    missing: vec![(key("db3"), On, Role::Slave)],
                    touched: hosts(&["db1"]),
                },
                &["db1", "db3", "db5"],
            ),
        ];
        for (name, state, local, (may_expire, publish), want, kept) in table_rows {
            let now = Instant::now() + Duration::from_secs(60);
            let mut local = table(now, local);
            let pass = Pass {
                now,
                ttl: TTL,
                may_expire,
                publish,
            };
            assert_eq!(plan(&mut local, &state, ME, pass), want, "{name}");
            let mut left: Vec<_> = local.keys().map(|k| k.host.as_str()).collect();
            left.sort();
            assert_eq!(left, kept, "{name}: the table afterwards");
            if name.starts_with("committed as ours") {
                assert_eq!(local[&key("db1")].last_heartbeat, now, "{name}");
            }
        }
    }
}
