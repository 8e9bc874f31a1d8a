//! The group: this member's Raft instance and everything that needs the whole group's view.
//!
//! Here: opening the group (store and Raft, no sockets) and bootstrapping it, proposing
//! commands (forwarded to the leader when this member is not it) and the published
//! serverlist. Beside it: whether this member can commit ([`quorum`]), the leader's duties
//! ([`leader`]), membership changes ([`membership`]) and the admin report ([`report`]). The
//! member-to-member listener is not the group's: `app` binds it and serves it with
//! `wire::server`.

mod hooks;
mod leader;
mod membership;
mod pools;
mod quorum;
mod report;
mod view;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use openraft::error::{ClientWriteError, RaftError};
use parking_lot::Mutex;
use proto::ServerRow;
use tokio::sync::watch;

use crate::config::Config;
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::raft::network::{Contacts, Network};
use crate::raft::store::{self, AppliedState};
use crate::raft::{MemberNode, Raft};
use crate::state::{Applied, Command, DownReason, GroupState, MemberId};
use crate::wire::transport::Transport;
use crate::wire::{Committed, Connection, ProposeError, Request, Response};
use view::{Heard, RaftView};

/// The serverlist as clients see it: the committed rows, and why they may be stale.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerListView {
    /// Version 1 rows: one per registered server.
    pub rows: Vec<ServerRow>,
    /// Version 2 rows: one per server and pool.
    pub rows_v2: Vec<ServerRow>,
    /// Set when this member cannot commit: the rows are the last list it knew.
    pub stale: Option<String>,
}

impl ServerListView {
    /// The list of `state`; `stale` says why this member cannot commit, if it cannot.
    pub fn of(state: &GroupState, stale: Option<String>) -> Self {
        ServerListView {
            rows: state.server_rows(),
            rows_v2: state.server_rows_v2(),
            stale,
        }
    }

    /// The rows of serverlist `version`.
    pub fn rows(&self, version: u32) -> &[ServerRow] {
        if version >= 2 {
            &self.rows_v2
        } else {
            &self.rows
        }
    }
}

pub struct Group {
    pub me: MemberId,
    pub node: MemberNode,
    pub raft: Raft,
    pub metrics: Arc<Metrics>,
    pub identity: Identity,
    cfg: Arc<Config>,
    transport: Arc<dyn Transport>,
    applied: watch::Receiver<AppliedState>,
    /// When each peer last answered us (what a leader knows about its followers).
    contacts: Contacts,
    /// When a leader last reached us (what a follower knows about its leader).
    leader_heard: Mutex<Option<Instant>>,
    serverlist: watch::Sender<Arc<ServerListView>>,
    /// Set once this member has started its clean leave: it must not announce itself again.
    leaving: std::sync::atomic::AtomicBool,
    /// Install snapshots from the leader through it (see `store::SnapshotGate`).
    pub snapshot_gate: store::SnapshotGate,
}

impl Group {
    /// Opens the store and starts Raft, reaching other members through `transport`. Binds
    /// nothing: until `wire::server` serves this group, no member can reach it.
    pub async fn open(
        cfg: Arc<Config>,
        metrics: Arc<Metrics>,
        transport: Arc<dyn Transport>,
    ) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create data_dir {}", cfg.data_dir.display()))?;
        let me = cfg.node_id;
        let open_store = async || -> anyhow::Result<_> {
            let (log_store, sm, group_id) = store::open(&cfg.data_dir)?;
            let identity = Identity::new(me, group_id, sm.subscribe()).await?;
            Ok((log_store, sm, identity))
        };
        let (log_store, sm, identity) = open_store()
            .await
            .with_context(|| Self::store_problem(&cfg))?;
        let applied = sm.subscribe();
        let snapshot_gate = log_store.snapshot_gate();
        let contacts = Contacts::default();
        let network = Network {
            me: identity.clone(),
            transport: transport.clone(),
            contacts: contacts.clone(),
            connect_timeout: Duration::from_millis(cfg.raft_heartbeat_ms.max(100)),
        };
        let raft_cfg = Arc::new(cfg.raft_config().validate().context("raft timing")?);
        let raft = Raft::new(me, raft_cfg, network, log_store, sm)
            .await
            .with_context(|| Self::store_problem(&cfg))?;
        let node = MemberNode {
            name: cfg.member_name(),
            group_addr: cfg.group_advertise().to_owned(),
            admin_addr: cfg.admin_listen.clone(),
            incarnation: Some(identity.incarnation.clone()),
        };
        Ok(Arc::new(Self {
            me,
            node,
            raft,
            metrics,
            identity,
            cfg,
            transport,
            applied,
            contacts,
            leader_heard: Mutex::new(None),
            serverlist: watch::channel(Arc::new(ServerListView::default())).0,
            leaving: std::sync::atomic::AtomicBool::new(false),
            snapshot_gate,
        }))
    }

    /// What to say when this member's store cannot be read, with the only safe remedy.
    pub fn store_problem(cfg: &Config) -> String {
        format!(
            "cannot open the Raft store {}: if the file is damaged, this member's data is lost \
             and it must not rejoin under its id; remove it (gcsctl remove-member {} --yes), \
             then start it with a new node_id, an empty data_dir and --join",
            cfg.data_dir.join("raft.redb").display(),
            cfg.node_id
        )
    }

    /// Starts a new group of one, or asks to join the group at `join`, unless this member is
    /// in a group already; then starts the background duties. The group must be served
    /// (`wire::server`) first: joining needs the leader to reach this member.
    pub async fn bootstrap(self: &Arc<Self>) -> anyhow::Result<()> {
        if !self.raft.is_initialized().await? {
            match &self.cfg.join {
                None => {
                    if let Some(why) = self.cfg.bootstrap_problem() {
                        return Err(crate::app::Usage(why).into());
                    }
                    let id = self.identity.create_group().await?;
                    tracing::info!(
                        member = self.me,
                        group = %id,
                        "no group yet and no join address: starting a new group of one"
                    );
                    let members = BTreeMap::from([(self.me, self.node.clone())]);
                    self.raft.initialize(members).await?;
                }
                Some(addr) => {
                    tokio::spawn(self.clone().ask_to_join(addr.clone()));
                }
            }
        }
        tokio::spawn(self.clone().publish_serverlist());
        tokio::spawn(self.clone().lead());
        tokio::spawn(self.clone().decide_pools());
        tokio::spawn(self.clone().run_hooks());
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn state(&self) -> Arc<GroupState> {
        self.applied.borrow().state.clone()
    }

    /// Changes whenever this member applies a command.
    pub fn applied_changes(&self) -> watch::Receiver<AppliedState> {
        self.applied.clone()
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
        ServerListView::of(&self.state(), self.quorum_problem())
    }

    /// What this member knows of the group, to authorize a peer's request by.
    pub fn known(&self) -> crate::wire::authz::Known {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        crate::wire::authz::Known {
            voters: membership.voter_ids().collect(),
            members: membership.nodes().map(|(id, _)| *id).collect(),
            removed: self.state().removed.clone(),
        }
    }

    fn raft_view(&self) -> RaftView {
        RaftView::of(&self.raft.metrics().borrow())
    }

    /// Whom this member heard from, how long ago.
    fn heard(&self) -> Heard {
        Heard {
            peers: self.contacts.ages(),
            leader: self.leader_heard.lock().map(|t| t.elapsed()),
        }
    }

    /// A leader reached us (AppendEntries or a snapshot that we accepted).
    pub fn heard_from_leader(&self) {
        *self.leader_heard.lock() = Some(Instant::now());
    }

    /// `None` if this member can commit now; otherwise why not, in words for an operator.
    pub fn quorum_problem(&self) -> Option<String> {
        quorum::problem(
            &self.raft_view(),
            self.me,
            &self.heard(),
            self.cfg.member_timeout(),
        )
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
                                "leader {} answered {}",
                                node.name,
                                other.kind()
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
            Err(e) => Err(write_error(e)),
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

    /// One request to another member over a fresh connection (rare: forwarding and admin).
    async fn call(&self, addr: &str, req: Request) -> anyhow::Result<Response> {
        let timeout = self.cfg.propose_timeout();
        let mut conn = Connection::open(&*self.transport, addr, &self.identity, timeout).await?;
        Ok(conn.call(&req, timeout).await?)
    }

    /// Keeps the published serverlist current: after every apply, and every heartbeat for
    /// the staleness flag.
    async fn publish_serverlist(self: Arc<Self>) {
        let mut applied = self.applied.clone();
        let tick = Duration::from_millis(self.cfg.raft_heartbeat_ms);
        loop {
            applied.borrow_and_update();
            let started = Instant::now();
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
            // A list of thousands of servers takes milliseconds to build: at a high commit
            // rate, let changes gather for as long as the last build took (at most half a core
            // here), rather than rebuilding after every commit.
            let spent = started.elapsed();
            if spent >= Duration::from_millis(1) {
                tokio::time::sleep(spent).await;
            }
            tokio::select! {
                r = applied.changed() => if r.is_err() { return },
                () = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// Whether the clean leave has begun (nothing may announce this member again).
    pub fn is_leaving(&self) -> bool {
        self.leaving.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The clean leave on shutdown: commit this member as down so its servers leave every list
    /// now rather than after `member_timeout`.
    pub async fn leave(&self) {
        self.leaving
            .store(true, std::sync::atomic::Ordering::SeqCst);
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
}

fn write_error(e: RaftError<MemberId, ClientWriteError<MemberId, MemberNode>>) -> ProposeError {
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
