//! The servers registered through this member, and the loop that keeps the group's committed
//! list true to them.
//!
//! This member owns its servers' heartbeats: they are judged by its monotonic clock, never by
//! comparing two hosts' wall clocks. A heartbeat that changes nothing is only recorded here and
//! published to the group at most every `heartbeat_publish_ms`, batched into one `Touch`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use parking_lot::Mutex;
use proto::{Role, ServerKey, Status};

use crate::group::{Group, ProposeError};
use crate::state::{Applied, Command, ServerRecord};

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
    fn adopt(rec: &ServerRecord) -> Self {
        Self {
            status: rec.status,
            role: rec.role,
            last_heartbeat: Instant::now(),
            unpublished: false,
        }
    }
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
        self.commit(Command::Leave { server }).await
    }

    /// `heartbeat`: refreshes the server's clock; commits only a change of status.
    pub fn heartbeat(&self, server: &ServerKey, status: Status) -> HeartbeatOutcome {
        let mut servers = self.servers.lock();
        if !servers.contains_key(server) {
            // Not joined here, unless the committed list says it is ours (gcsd restarted).
            let state = self.group.state();
            match state.servers.get(server) {
                Some(rec) if rec.member == self.group.me => {
                    servers.insert(server.clone(), LocalServer::adopt(rec));
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
        let mut last_pass = Instant::now();
        let mut no_expiry_until = Instant::now();
        loop {
            tokio::time::sleep(tick).await;
            // If this gcsd itself was held up (slow disk, no CPU), heartbeats may be waiting
            // unread in its sockets: judge no one silent until they have had one TTL again.
            let gap = last_pass.elapsed();
            last_pass = Instant::now();
            if gap > tick * 10 {
                tracing::warn!(
                    stalled_ms = gap.as_millis() as u64,
                    "this gcsd was held up; no server expires for one TTL"
                );
                no_expiry_until = last_pass + ttl;
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
            let state = self.group.state();
            let me = self.group.me;

            let mut expired = Vec::new();
            let mut missing = Vec::new();
            let mut touched = Vec::new();
            let publish = last_publish.elapsed() >= publish_every;
            {
                let mut servers = self.servers.lock();
                // Committed as ours but unknown here (gcsd restarted, or a leave that did not
                // commit): adopt it, and let its plugin resume heartbeats within one TTL.
                for (key, rec) in state.servers.iter().filter(|(_, r)| r.member == me) {
                    servers
                        .entry(key.clone())
                        .or_insert_with(|| LocalServer::adopt(rec));
                }
                servers.retain(|key, local| {
                    let committed = state.servers.get(key);
                    if committed.is_some_and(|c| c.member != me) {
                        // Registered through another member since: that member owns it now.
                        return false;
                    }
                    if may_expire && local.last_heartbeat.elapsed() > ttl {
                        if committed.is_some() {
                            expired.push(key.clone());
                        }
                        return false;
                    }
                    match committed {
                        Some(c) if c.status == local.status && c.role == local.role => {
                            if publish && local.unpublished {
                                local.unpublished = false;
                                touched.push(key.clone());
                            }
                        }
                        _ => missing.push((key.clone(), local.status, local.role)),
                    }
                    true
                });
            }
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
