//! The leader's pool duty: after every applied change (and every Raft heartbeat), decide each
//! pool with [`pool::decide`] and commit what changed. Only a leader that can commit decides;
//! a decision made from a pool that changed meanwhile is refused by `apply` and made again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use pool::PoolCommand;

use super::{quorum, Group};
use crate::state::{Applied, Command};

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

    /// Runs for the life of the process.
    pub(super) async fn decide_pools(self: Arc<Self>) {
        let mut applied = self.applied.clone();
        let tick = Duration::from_millis(self.cfg.raft_heartbeat_ms);
        loop {
            tokio::select! {
                r = applied.changed() => if r.is_err() { return },
                () = tokio::time::sleep(tick) => {}
            }
            if !self.raft_view().is_leader(self.me) || self.quorum_problem().is_some() {
                continue;
            }
            let state = self.state();
            for (name, current) in &state.pools.pools {
                let started = Instant::now();
                let decided = pool::decide(name, current, &|k| state.seen(k), Utc::now());
                self.metrics
                    .pool_decision_seconds
                    .observe(started.elapsed().as_secs_f64());
                let Some(next) = decided else { continue };
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
