//! The group: this member's Raft instance and everything that needs the whole group's view.
//!
//! It owns: proposing commands (forwarded to the leader when this member is not it), knowing
//! whether this member can currently commit (quorum), the leader's duties (committing silent
//! members as down, growing the voter set), membership changes, and the published serverlist.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use parking_lot::Mutex;
use proto::admin::{ClusterReport, MemberReport, ServerReport};
use proto::ServerRow;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::raft::network::{Contacts, Network};
use crate::raft::store::{self, AppliedState, Identity};
use crate::raft::{MemberNode, Raft};
use crate::state::{Applied, Command, DownReason, GroupState, MemberId};
use crate::wire::{Connection, Request, Response};

/// Why a change was not committed.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum ProposeError {
    #[error("{}", proto::no_quorum_text(.0))]
    NoQuorum(String),
    #[error("{0}")]
    Rejected(String),
    #[error("this member is not the leader")]
    NotLeader { leader: Option<MemberNode> },
    #[error("{0}")]
    Failed(String),
}

/// A command the leader committed, and where in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Committed {
    pub applied: Applied,
    pub index: u64,
}

/// The serverlist as clients see it: the committed rows, and why they may be stale.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerListView {
    pub rows: Vec<ServerRow>,
    /// Set when this member cannot commit: the rows are the last list it knew.
    pub stale: Option<String>,
}

pub struct Group {
    pub me: MemberId,
    pub node: MemberNode,
    pub raft: Raft,
    pub metrics: Arc<Metrics>,
    pub identity: Identity,
    cfg: Arc<Config>,
    applied: watch::Receiver<AppliedState>,
    /// When each peer last answered us (what a leader knows about its followers).
    contacts: Contacts,
    /// When a leader last reached us (what a follower knows about its leader).
    leader_heard: Mutex<Option<Instant>>,
    serverlist: watch::Sender<Arc<ServerListView>>,
}

/// Snapshot of the Raft facts the group logic needs, taken in one borrow of the metrics.
struct RaftView {
    state: ServerState,
    leader: Option<MemberId>,
    term: u64,
    voters: BTreeSet<MemberId>,
    nodes: BTreeMap<MemberId, MemberNode>,
}

impl Group {
    /// Opens the store, starts Raft and the group listener, and bootstraps or joins.
    pub async fn start(cfg: Arc<Config>, metrics: Arc<Metrics>) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create data_dir {}", cfg.data_dir.display()))?;
        let me = cfg.node_id;
        let (log_store, sm, identity) = store::open(&cfg.data_dir, me)
            .with_context(|| format!("cannot open the Raft store in {}", cfg.data_dir.display()))?;
        let applied = sm.subscribe();
        let contacts = Contacts::default();
        let network = Network {
            me: identity.clone(),
            contacts: contacts.clone(),
            connect_timeout: Duration::from_millis(cfg.raft_heartbeat_ms.max(100)),
        };
        let raft_cfg = Arc::new(cfg.raft_config().validate().context("raft timing")?);
        let raft = Raft::new(me, raft_cfg, network, log_store, sm)
            .await
            .context("cannot start Raft")?;
        let listener = TcpListener::bind(&cfg.group_listen)
            .await
            .with_context(|| format!("cannot listen on group_listen {}", cfg.group_listen))?;
        let node = MemberNode {
            name: cfg.member_name(),
            group_addr: cfg.group_advertise().to_owned(),
            admin_addr: cfg.admin_listen.clone(),
        };
        let group = Arc::new(Self {
            me,
            node,
            raft,
            metrics,
            identity,
            cfg: cfg.clone(),
            applied,
            contacts,
            leader_heard: Mutex::new(None),
            serverlist: watch::channel(Arc::new(ServerListView::default())).0,
        });
        tokio::spawn(crate::group_listener::serve(listener, group.clone()));

        if !group.raft.is_initialized().await? {
            match &cfg.join {
                None => {
                    let id = group.identity.create_group()?;
                    tracing::info!(
                        member = me,
                        group = %id,
                        "no group yet and no join address: starting a new group of one"
                    );
                    let mut members = BTreeMap::new();
                    members.insert(me, group.node.clone());
                    group.raft.initialize(members).await?;
                }
                Some(addr) => {
                    tokio::spawn(group.clone().ask_to_join(addr.clone()));
                }
            }
        }
        tokio::spawn(group.clone().publish_serverlist());
        tokio::spawn(group.clone().lead());
        Ok(group)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn state(&self) -> Arc<GroupState> {
        self.applied.borrow().state.clone()
    }

    pub fn last_applied_index(&self) -> Option<u64> {
        self.applied.borrow().last_applied.map(|l| l.index)
    }

    /// The published serverlist, for subscribers: changes whenever the rows or their staleness
    /// change.
    pub fn serverlist(&self) -> watch::Receiver<Arc<ServerListView>> {
        self.serverlist.subscribe()
    }

    /// The serverlist as of now, including every change this member has applied.
    pub fn current_serverlist(&self) -> ServerListView {
        ServerListView {
            rows: self.state().server_rows(),
            stale: self.quorum_problem(),
        }
    }

    fn raft_view(&self) -> RaftView {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        RaftView {
            state: m.state,
            leader: m.current_leader,
            term: m.current_term,
            voters: membership.voter_ids().collect(),
            nodes: membership.nodes().map(|(id, n)| (*id, n.clone())).collect(),
        }
    }

    fn is_leader(view: &RaftView, me: MemberId) -> bool {
        view.state == ServerState::Leader && view.leader == Some(me)
    }

    /// A leader reached us (AppendEntries or a snapshot that we accepted).
    pub fn heard_from_leader(&self) {
        *self.leader_heard.lock() = Some(Instant::now());
    }

    /// `None` if this member can commit now; otherwise why not, in words for an operator.
    pub fn quorum_problem(&self) -> Option<String> {
        let view = self.raft_view();
        let timeout = self.cfg.member_timeout();
        if view.voters.is_empty() {
            return Some("this member has not joined a group yet".into());
        }
        if Self::is_leader(&view, self.me) {
            let need = view.voters.len() / 2 + 1;
            let heard = view
                .voters
                .iter()
                .filter(|&&v| {
                    v == self.me
                        || self
                            .contacts
                            .last(v)
                            .is_some_and(|t| t.elapsed() <= timeout)
                })
                .count();
            return (heard < need).then(|| {
                format!(
                    "the leader hears from {heard} of {} voters and needs {need}",
                    view.voters.len()
                )
            });
        }
        // The texts do not tick with time: a change of text is a change of the published list.
        match *self.leader_heard.lock() {
            Some(t) if t.elapsed() <= timeout => None,
            Some(_) => Some(format!(
                "no word from a leader for more than {} ms",
                timeout.as_millis()
            )),
            None => Some("no leader heard from since start".into()),
        }
    }

    /// Commits `cmd` through the leader, wherever it is. Fails fast when this member knows it
    /// has no quorum, and after `propose_timeout` otherwise.
    pub async fn propose(&self, cmd: Command) -> Result<Applied, ProposeError> {
        if let Some(why) = self.quorum_problem() {
            self.metrics.proposal("no_quorum");
            return Err(ProposeError::NoQuorum(why));
        }
        let started = Instant::now();
        let timeout = self.cfg.propose_timeout();
        let result = tokio::time::timeout(timeout, async {
            loop {
                let answer = match self.propose_here(cmd.clone()).await {
                    Err(ProposeError::NotLeader { leader: Some(node) }) => {
                        match self
                            .call(&node.group_addr, Request::Propose(cmd.clone()))
                            .await
                        {
                            Ok(Response::Propose(r)) => r,
                            Ok(other) => Err(ProposeError::Failed(format!(
                                "leader {} answered {other:?}",
                                node.name
                            ))),
                            Err(e) => {
                                Err(ProposeError::NotLeader { leader: None }).inspect_err(|_| {
                                    tracing::debug!("forwarding to the leader failed: {e}")
                                })
                            }
                        }
                    }
                    other => other,
                };
                match answer {
                    // An election is under way or the leader just moved: try again shortly.
                    Err(ProposeError::NotLeader { .. }) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Ok(committed) => {
                        self.applied_up_to(committed.index).await;
                        return Ok(committed.applied);
                    }
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(ProposeError::NoQuorum(format!(
                "the change did not commit within {} ms",
                timeout.as_millis()
            )))
        });
        self.metrics.proposal(match &result {
            Ok(Applied::Done) => "committed",
            Ok(Applied::Rejected(_)) => "rejected",
            Err(ProposeError::NoQuorum(_)) => "no_quorum",
            Err(_) => "failed",
        });
        if result.is_ok() {
            self.metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }

    /// Commits `cmd` if this member is the leader.
    pub async fn propose_here(&self, cmd: Command) -> Result<Committed, ProposeError> {
        match self.raft.client_write(cmd).await {
            Ok(resp) => Ok(Committed {
                applied: resp.data,
                index: resp.log_id.index,
            }),
            Err(e) => Err(self.write_error(e)),
        }
    }

    /// Waits until this member has applied the log up to `index`, so that whoever proposed
    /// through it reads its own write here.
    async fn applied_up_to(&self, index: u64) {
        let mut applied = self.applied.clone();
        // Err only when the state machine is gone (shutdown): nothing left to wait for.
        let _ = applied
            .wait_for(|a| a.last_applied.is_some_and(|l| l.index >= index))
            .await;
    }

    fn write_error(
        &self,
        e: RaftError<MemberId, ClientWriteError<MemberId, MemberNode>>,
    ) -> ProposeError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ProposeError::NotLeader {
                leader: f.leader_node,
            },
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                ProposeError::Rejected(e.to_string())
            }
            RaftError::Fatal(e) => ProposeError::Failed(format!("Raft stopped: {e}")),
        }
    }

    /// One request to another member over a fresh connection (rare: forwarding and admin).
    async fn call(&self, addr: &str, req: Request) -> anyhow::Result<Response> {
        let timeout = self.cfg.propose_timeout();
        let mut conn = Connection::open(addr, &self.identity, timeout).await?;
        Ok(conn.call(&req, timeout).await?)
    }

    /// Runs `req` on the leader: here when this member leads, else forwarded.
    async fn on_leader(&self, req: Request) -> Result<String, ProposeError> {
        let view = self.raft_view();
        if Self::is_leader(&view, self.me) {
            return self.admin_here(req).await;
        }
        let Some(node) = view.leader.and_then(|l| view.nodes.get(&l).cloned()) else {
            return Err(ProposeError::NoQuorum("no leader is known".into()));
        };
        match self.call(&node.group_addr, req).await {
            Ok(Response::Admin(r)) => r,
            Ok(other) => Err(ProposeError::Failed(format!("leader answered {other:?}"))),
            Err(e) => Err(ProposeError::NoQuorum(format!(
                "cannot reach the leader {}: {e:#}",
                node.name
            ))),
        }
    }

    /// Adds a member (as a non-voter; the leader promotes voters up to `voters`).
    pub async fn add_member(&self, id: MemberId, node: MemberNode) -> Result<String, ProposeError> {
        self.on_leader(Request::AddMember { id, node }).await
    }

    /// Removes a member for good: out of the voters and learners, its servers out of the list.
    pub async fn remove_member(&self, id: MemberId) -> Result<String, ProposeError> {
        self.on_leader(Request::RemoveMember { id }).await
    }

    /// Membership requests, executed on the leader (here).
    pub async fn admin_here(&self, req: Request) -> Result<String, ProposeError> {
        let view = self.raft_view();
        if !Self::is_leader(&view, self.me) {
            let leader = view.leader.and_then(|l| view.nodes.get(&l).cloned());
            return Err(ProposeError::NotLeader { leader });
        }
        let timeout = self.cfg.propose_timeout() * 2;
        let in_time = |what: &'static str| {
            move |_| ProposeError::NoQuorum(format!("{what} did not commit within {timeout:?}"))
        };
        match req {
            Request::AddMember { id, node } => {
                if let Some(existing) = view.nodes.get(&id) {
                    if existing.group_addr != node.group_addr {
                        return Err(ProposeError::Rejected(format!(
                            "member id {id} is already in the group at {}; remove it first or choose another id",
                            existing.group_addr
                        )));
                    }
                    return Ok(format!(
                        "member {id} ({}) is already in the group",
                        node.name
                    ));
                }
                tokio::time::timeout(timeout, self.raft.add_learner(id, node.clone(), false))
                    .await
                    .map_err(in_time("adding the member"))?
                    .map_err(|e| self.write_error(e))?;
                tracing::info!(member = id, addr = %node.group_addr, "added member as non-voter");
                Ok(format!(
                    "member {id} ({}) added as a non-voting member",
                    node.name
                ))
            }
            Request::RemoveMember { id } => {
                if !view.nodes.contains_key(&id) {
                    return Err(ProposeError::Rejected(format!(
                        "member {id} is not in the group"
                    )));
                }
                if view.voters.len() == 1 && view.voters.contains(&id) {
                    return Err(ProposeError::Rejected(format!(
                        "member {id} is the group's only voter and cannot be removed"
                    )));
                }
                let change = if view.voters.contains(&id) {
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                };
                // Its servers leave before it does, so that no member ever lists the servers
                // of a member already out of the group; and once more after, in case it was
                // alive and registered some in between.
                self.propose(Command::MemberRemoved { member: id }).await?;
                tokio::time::timeout(timeout, self.raft.change_membership(change, false))
                    .await
                    .map_err(in_time("removing the member"))?
                    .map_err(|e| self.write_error(e))?;
                self.propose(Command::MemberRemoved { member: id }).await?;
                let left = view.voters.len() - usize::from(view.voters.contains(&id));
                tracing::warn!(member = id, voters = left, "removed member from the group");
                Ok(format!(
                    "member {id} removed; the group has {left} voter(s)"
                ))
            }
            other => Err(ProposeError::Failed(format!(
                "not a membership request: {other:?}"
            ))),
        }
    }

    /// A new member asks any member of the group (given by `--join`) to add it, until it is in.
    async fn ask_to_join(self: Arc<Self>, mut addr: String) {
        let req = || Request::AddMember {
            id: self.me,
            node: self.node.clone(),
        };
        loop {
            if self.raft_view().nodes.contains_key(&self.me) {
                return;
            }
            match self.call(&addr, req()).await {
                Ok(Response::Admin(Ok(msg))) => {
                    tracing::info!(via = %addr, "{msg}");
                    return;
                }
                Ok(Response::Admin(Err(ProposeError::NotLeader { leader: Some(l) }))) => {
                    addr = l.group_addr;
                    continue;
                }
                Ok(other) => tracing::warn!(via = %addr, "join refused: {other:?}; retrying"),
                Err(e) => tracing::warn!(via = %addr, "cannot join yet: {e:#}; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The leader's duties, every Raft heartbeat: commit silent members as down, and grow the
    /// voter set towards `voters` two at a time, so it stays odd.
    async fn lead(self: Arc<Self>) {
        let tick = Duration::from_millis(self.cfg.raft_heartbeat_ms);
        let mut leading_since: Option<Instant> = None;
        loop {
            tokio::time::sleep(tick).await;
            let view = self.raft_view();
            if !Self::is_leader(&view, self.me) {
                leading_since = None;
                continue;
            }
            let since = *leading_since.get_or_insert_with(Instant::now);
            if self.quorum_problem().is_some() {
                continue;
            }
            let state = self.state();
            for &id in view.nodes.keys().filter(|&&id| id != self.me) {
                let last = self.contacts.last(id).map_or(since, |t| t.max(since));
                if state.is_up(id) && last.elapsed() > self.cfg.member_timeout() {
                    tracing::warn!(
                        member = id,
                        silent_ms = last.elapsed().as_millis() as u64,
                        "member is silent; committing it as down"
                    );
                    let cmd = Command::MemberDown {
                        member: id,
                        reason: DownReason::Timeout,
                        at: Utc::now(),
                    };
                    if let Err(e) = self.propose(cmd).await {
                        tracing::warn!(member = id, "could not commit member down: {e}");
                    }
                }
            }
            self.grow_voters(&view, &state).await;
        }
    }

    async fn grow_voters(&self, view: &RaftView, state: &GroupState) {
        let missing = self.cfg.voters.saturating_sub(view.voters.len());
        let ready: BTreeSet<MemberId> = view
            .nodes
            .keys()
            .filter(|id| !view.voters.contains(id) && state.is_up(**id))
            .copied()
            .take(missing.min(2))
            .collect();
        if missing == 0 || ready.len() < 2.min(missing) {
            return;
        }
        tracing::info!(?ready, "promoting members to voters");
        let change = self
            .raft
            .change_membership(ChangeMembers::AddVoterIds(ready), true);
        match tokio::time::timeout(self.cfg.propose_timeout() * 2, change).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("promotion failed: {e}"),
            Err(_) => tracing::warn!("promotion did not commit in time"),
        }
    }

    /// Keeps the published serverlist current: after every apply, and every heartbeat for
    /// the staleness flag.
    async fn publish_serverlist(self: Arc<Self>) {
        let mut applied = self.applied.clone();
        let tick = Duration::from_millis(self.cfg.raft_heartbeat_ms);
        loop {
            applied.borrow_and_update();
            let view = self.current_serverlist();
            self.serverlist.send_if_modified(|cur| {
                match (&cur.stale, &view.stale) {
                    (None, Some(why)) => tracing::warn!("this member cannot commit: {why}"),
                    (Some(_), None) => tracing::info!("this member can commit again"),
                    _ => {}
                }
                let changed = **cur != view;
                if changed {
                    *cur = Arc::new(view);
                }
                changed
            });
            tokio::select! {
                r = applied.changed() => if r.is_err() { return },
                () = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// The clean leave on shutdown: commit this member as down so its servers leave every list
    /// now rather than after `member_timeout`.
    pub async fn leave(&self) {
        let cmd = Command::MemberDown {
            member: self.me,
            reason: DownReason::Left,
            at: Utc::now(),
        };
        match self.propose(cmd).await {
            Ok(_) => tracing::info!("left the group cleanly"),
            Err(e) => tracing::warn!("could not commit the leave: {e}"),
        }
    }

    /// The whole picture for `/cluster` and `gcsctl`.
    pub fn cluster(&self) -> ClusterReport {
        let view = self.raft_view();
        let state = self.state();
        let stale = self.quorum_problem();
        ClusterReport {
            me: self.me,
            name: self.node.name.clone(),
            role: match view.state {
                ServerState::Leader => "leader",
                ServerState::Candidate => "candidate",
                ServerState::Follower => "follower",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            }
            .to_owned(),
            leader: view.leader,
            term: view.term,
            quorum: stale.is_none(),
            quorum_problem: stale,
            last_applied: self.last_applied_index(),
            view_id: state.view_id,
            members: view
                .nodes
                .iter()
                .map(|(id, node)| {
                    let rec = state.members.get(id);
                    MemberReport {
                        id: *id,
                        name: node.name.clone(),
                        group_addr: node.group_addr.clone(),
                        admin_addr: node.admin_addr.clone(),
                        voter: view.voters.contains(id),
                        up: rec.is_some_and(|r| r.up),
                        down_reason: rec
                            .and_then(|r| r.down_reason)
                            .map(|d| d.as_str().to_owned()),
                        since: rec.map(|r| r.since),
                    }
                })
                .collect(),
            servers: state
                .servers
                .iter()
                .map(|(key, rec)| ServerReport {
                    member: state.member_name(rec.member),
                    member_id: rec.member,
                    host: key.host.clone(),
                    port: key.port.clone(),
                    status: rec.status,
                    role: rec.role,
                    ttl_secs: rec.ttl_secs,
                    last_update: rec.last_update,
                })
                .collect(),
        }
    }
}
