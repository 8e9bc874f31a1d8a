//! The leader's pool duty: after every applied change (and every Raft heartbeat), decide each
//! pool with [`pool::decide`] and commit what changed. Only a leader that can commit decides;
//! a decision made from a pool that changed meanwhile is refused by `apply` and made again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use pool::{Pool, PoolCommand, PoolMember};
use proto::{PoolState, ServerKey};

use tokio::sync::watch;

use super::{quorum, Group};
use crate::raft::store::AppliedState;
use crate::state::{Applied, Command, GroupState};

impl Group {
    /// How long ago this member last knew a quorum was with it (the fencing lease's clock);
    /// `Duration::MAX` if it never did.
    pub fn lease_age(&self) -> Duration {
        quorum::contact_age(&self.raft_view(), self.me, &self.heard()).unwrap_or(Duration::MAX)
    }

    /// Why this member cannot vouch for the committed pools right now, if it cannot: no quorum,
    /// or none heard within the lease (another ACTIVE may have been committed since). Such a
    /// member never tells a load balancer that a server takes writes.
    pub fn vouch_problem(&self) -> Option<String> {
        self.quorum_problem().or_else(|| {
            let lease = self.cfg.fence_after();
            (self.lease_age() >= lease)
                .then(|| format!("no quorum heard for {} ms (the lease)", lease.as_millis()))
        })
    }

    /// Waits for the next applied change or Raft heartbeat at which this member leads with a
    /// quorum, and returns the state then; none once the state machine is gone.
    pub(super) async fn leader_turn(
        &self,
        applied: &mut watch::Receiver<AppliedState>,
    ) -> Option<Arc<GroupState>> {
        let tick = Duration::from_millis(self.cfg.raft_heartbeat_ms);
        loop {
            tokio::select! {
                r = applied.changed() => if r.is_err() { return None },
                () = tokio::time::sleep(tick) => {}
            }
            if self.raft_view().is_leader(self.me) && self.quorum_problem().is_none() {
                return Some(self.state());
            }
        }
    }

    /// Runs for the life of the process.
    pub(super) async fn decide_pools(self: Arc<Self>) {
        let mut applied = self.applied.clone();
        // Promotions pre_promote vetoed: not tried again before the instant; the last outcome.
        let mut vetoed: HashMap<(String, ServerKey), (Instant, String)> = HashMap::new();
        while let Some(state) = self.leader_turn(&mut applied).await {
            for (name, current) in &state.pools.pools {
                let started = Instant::now();
                let decided = pool::decide(name, current, &|k| state.seen(k), Utc::now());
                self.metrics
                    .pool_decision_seconds
                    .observe(started.elapsed().as_secs_f64());
                let Some(next) = decided else { continue };
                if let Some(promoted) = promotion(current, &next) {
                    let key = (name.clone(), promoted.server.clone());
                    if vetoed
                        .get(&key)
                        .is_some_and(|(until, _)| Instant::now() < *until)
                    {
                        continue;
                    }
                    let env = promote_env(name, current, promoted);
                    if let Err(veto) = self.pre_promote(&env).await {
                        let outcome = veto.outcome;
                        let again = vetoed.get(&key).is_some_and(|(_, last)| *last == veto.gist);
                        vetoed.insert(key, (Instant::now() + VETO_RETRY, veto.gist));
                        tracing::warn!(pool = %name, server = %pool::addr(&promoted.server), "pre_promote vetoed the promotion: {outcome}");
                        if !again {
                            let note = Command::Pool(Box::new(PoolCommand::Note {
                                name: name.clone(),
                                server: promoted.server.clone(),
                                reason: format!(
                                    "Promotion to ACTIVE vetoed by pre_promote: {outcome}"
                                ),
                                at: Utc::now(),
                            }));
                            if let Err(e) = self.propose_here(note).await {
                                tracing::debug!("cannot record the veto: {e}");
                            }
                        }
                        continue;
                    }
                    vetoed.remove(&key);
                }
                for (before, after) in current.members.iter().zip(&next.members) {
                    if before.state != after.state {
                        tracing::info!(
                            pool = %name,
                            server = %pool::addr(&after.server),
                            from = %before.state,
                            to = %after.state,
                            "{}",
                            after.message
                        );
                    }
                }
                let cmd = Command::Pool(Box::new(PoolCommand::Decided {
                    name: name.clone(),
                    revision: current.revision,
                    next,
                    at: Utc::now(),
                }));
                match self.propose_here(cmd).await {
                    Ok(c) if c.applied == Applied::Done => {}
                    Ok(c) => tracing::debug!(pool = %name, "decision refused: {:?}", c.applied),
                    Err(e) => tracing::debug!(pool = %name, "cannot commit the decision: {e}"),
                }
            }
        }
    }
}

/// How soon a vetoed promotion is tried again.
const VETO_RETRY: Duration = Duration::from_secs(1);

/// The member `next` makes ACTIVE that `current` did not have ACTIVE, if any.
fn promotion<'a>(current: &Pool, next: &'a Pool) -> Option<&'a PoolMember> {
    next.members.iter().find(|m| {
        m.state == PoolState::Active
            && current.member(&m.server).map(|c| c.state) != Some(PoolState::Active)
    })
}

/// The environment of `pre_promote`.
fn promote_env(name: &str, current: &Pool, promoted: &PoolMember) -> Vec<(String, String)> {
    vec![
        ("GCS_EVENT".into(), "pre_promote".into()),
        ("GCS_POOL".into(), name.to_owned()),
        ("GCS_SERVER".into(), pool::addr(&promoted.server)),
        (
            "GCS_OLD_ACTIVE".into(),
            current
                .active()
                .map(|m| pool::addr(&m.server))
                .unwrap_or_default(),
        ),
        (
            "GCS_OLD_STATE".into(),
            current
                .member(&promoted.server)
                .map(|m| m.state.to_string())
                .unwrap_or_default(),
        ),
        ("GCS_NEW_STATE".into(), PoolState::Active.to_string()),
        ("GCS_EPOCH".into(), (current.epoch + 1).to_string()),
        ("GCS_REASON".into(), promoted.message.clone()),
    ]
}
