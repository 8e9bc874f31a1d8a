//! The leader's duties: commit members that went silent as down, and grow the voter set towards
//! `voters` two at a time, so it stays odd. [`duties`] decides, without I/O; the loop in
//! [`Group::lead`] takes a snapshot every Raft heartbeat, calls it and carries the duties out.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use openraft::ChangeMembers;

use super::quorum;
use super::view::{Heard, RaftView};
use super::Group;
use crate::state::{Command, DownReason, GroupState, MemberId};

/// What the leader must do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duty {
    /// Commit `member` as down: it has been silent for `silent`.
    MarkDown { member: MemberId, silent: Duration },
    /// Make these non-voters voters.
    PromoteVoters(BTreeSet<MemberId>),
}

/// The configuration the duties depend on.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub member_timeout: Duration,
    /// The voter count the group grows to.
    pub voters: usize,
}

/// The duties of member `me` given one instant's facts; `leading_for` is how long it has been
/// the leader. A member that is not the leader, or cannot commit, has none. A member counts as
/// silent from when this leader took over at the earliest: a new leader gives everyone a full
/// `member_timeout`.
pub fn duties(
    view: &RaftView,
    me: MemberId,
    state: &GroupState,
    heard: &Heard,
    leading_for: Duration,
    rules: Rules,
) -> Vec<Duty> {
    if !view.is_leader(me) || quorum::problem(view, me, heard, rules.member_timeout).is_some() {
        return Vec::new();
    }
    let mut duties: Vec<Duty> = view
        .nodes
        .keys()
        .filter(|&&id| id != me && state.is_up(id))
        .filter_map(|&id| {
            let silent = heard
                .peers
                .get(&id)
                .map_or(leading_for, |&ago| ago.min(leading_for));
            (silent > rules.member_timeout).then_some(Duty::MarkDown { member: id, silent })
        })
        .collect();
    let missing = rules.voters.saturating_sub(view.voters.len());
    let ready: BTreeSet<MemberId> = view
        .nodes
        .keys()
        .filter(|id| !view.voters.contains(id) && state.is_up(**id))
        .copied()
        .take(missing.min(2))
        .collect();
    if missing > 0 && ready.len() >= 2.min(missing) {
        duties.push(Duty::PromoteVoters(ready));
    }
    duties
}

impl Group {
    /// Runs for the life of the process.
    pub(super) async fn lead(self: Arc<Self>) {
        let tick = Duration::from_millis(self.cfg.raft_heartbeat_ms);
        let rules = Rules {
            member_timeout: self.cfg.member_timeout(),
            voters: self.cfg.voters,
        };
        // Since when this member leads, in which term. A leader that lost its term and won a
        // new one between two ticks (an isolated leader back after a heal) leads anew: what it
        // heard of the others before is no measure of their silence now.
        let mut leading_since: Option<(u64, Instant)> = None;
        loop {
            tokio::time::sleep(tick).await;
            let view = self.raft_view();
            if !view.is_leader(self.me) {
                leading_since = None;
                continue;
            }
            if leading_since.is_some_and(|(term, _)| term != view.term) {
                leading_since = None;
            }
            let leading_for = leading_since
                .get_or_insert_with(|| (view.term, Instant::now()))
                .1
                .elapsed();
            let state = self.state();
            for duty in duties(&view, self.me, &state, &self.heard(), leading_for, rules) {
                self.carry_out(duty, view.term).await;
            }
        }
    }

    /// Carries out a duty decided as leader in `term`. A decision is committed by this member
    /// only while it still leads in that term, never forwarded: a leader deposed meanwhile
    /// (cut off, then healed) judged silence by what it could not hear, and its new leader
    /// must not commit that.
    async fn carry_out(&self, duty: Duty, term: u64) {
        let now = self.raft_view();
        if !now.is_leader(self.me) || now.term != term {
            return;
        }
        match duty {
            Duty::MarkDown { member, silent } => {
                tracing::warn!(
                    member,
                    silent_ms = silent.as_millis() as u64,
                    "member is silent; committing it as down"
                );
                let cmd = Command::MemberDown {
                    member,
                    reason: DownReason::Timeout,
                    at: Utc::now(),
                };
                if let Err(e) = self.propose_here(cmd).await {
                    tracing::warn!(member, "could not commit member down: {e}");
                }
            }
            Duty::PromoteVoters(ready) => {
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
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use openraft::ServerState::{Follower, Leader};

    use super::*;
    use crate::group::quorum::tests::{heard, ms, view};

    fn state(up: &[MemberId], down: &[MemberId]) -> GroupState {
        let mut s = GroupState::default();
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for &member in up.iter().chain(down) {
            s.apply(&Command::MemberUp {
                member,
                name: format!("m{member}"),
                at,
            });
        }
        for &member in down {
            s.apply(&Command::MemberDown {
                member,
                reason: DownReason::Timeout,
                at,
            });
        }
        s
    }

    fn down(member: MemberId, silent: u64) -> Duty {
        Duty::MarkDown {
            member,
            silent: ms(silent),
        }
    }

    fn promote(ids: &[MemberId]) -> Duty {
        Duty::PromoteVoters(ids.iter().copied().collect())
    }

    /// Member 1 decides, with `member_timeout` 1000 ms and 3 voters wanted: given its Raft
    /// view, the committed state, whom it heard from how long ago and how long it has led,
    /// its duties.
    #[test]
    fn scenarios() {
        let rules = Rules {
            member_timeout: ms(1000),
            voters: 3,
        };
        type Scenario = (&'static str, RaftView, GroupState, Heard, u64, Vec<Duty>);
        let table: Vec<Scenario> = vec![
            (
                "a follower has no duties",
                view(Follower, Some(2), &[1, 2, 3], &[]),
                state(&[1, 2, 3], &[]),
                heard(&[(2, 5000), (3, 5000)], Some(10)),
                60_000,
                vec![],
            ),
            (
                "everyone answers: nothing to do",
                view(Leader, Some(1), &[1, 2, 3], &[]),
                state(&[1, 2, 3], &[]),
                heard(&[(2, 100), (3, 100)], None),
                60_000,
                vec![],
            ),
            (
                "a silent follower is committed down",
                view(Leader, Some(1), &[1, 2, 3], &[]),
                state(&[1, 2, 3], &[]),
                heard(&[(2, 100), (3, 1500)], None),
                60_000,
                vec![down(3, 1500)],
            ),
            (
                "a member already down is not committed down again",
                view(Leader, Some(1), &[1, 2, 3], &[]),
                state(&[1, 2], &[3]),
                heard(&[(2, 100), (3, 9000)], None),
                60_000,
                vec![],
            ),
            (
                "a new leader gives everyone a full timeout",
                view(Leader, Some(1), &[1, 2, 3], &[]),
                state(&[1, 2, 3], &[]),
                heard(&[(2, 100)], None),
                800,
                vec![],
            ),
            (
                "a member never heard is silent since the leader took over",
                view(Leader, Some(1), &[1, 2, 3], &[]),
                state(&[1, 2, 3], &[]),
                heard(&[(2, 100)], None),
                1200,
                vec![down(3, 1200)],
            ),
            (
                "a leader without quorum decides nothing",
                view(Leader, Some(1), &[1, 2, 3], &[]),
                state(&[1, 2, 3], &[]),
                heard(&[(2, 3000), (3, 3000)], None),
                60_000,
                vec![],
            ),
            (
                "two members that are up become voters together",
                view(Leader, Some(1), &[1], &[2, 3]),
                state(&[1, 2, 3], &[]),
                heard(&[(2, 10), (3, 10)], None),
                60_000,
                vec![promote(&[2, 3])],
            ),
            (
                "one member alone is not promoted: the voter count stays odd",
                view(Leader, Some(1), &[1], &[2]),
                state(&[1, 2], &[]),
                heard(&[(2, 10)], None),
                60_000,
                vec![],
            ),
            (
                "a learner that is down is not promoted",
                view(Leader, Some(1), &[1], &[2, 3]),
                state(&[1, 2], &[3]),
                heard(&[(2, 10)], None),
                60_000,
                vec![],
            ),
            (
                "no more voters than wanted",
                view(Leader, Some(1), &[1, 2, 3], &[4, 5]),
                state(&[1, 2, 3, 4, 5], &[]),
                heard(&[(2, 10), (3, 10), (4, 10), (5, 10)], None),
                60_000,
                vec![],
            ),
            (
                "a silent learner goes down, and the others are promoted",
                view(Leader, Some(1), &[1], &[2, 3, 4]),
                state(&[1, 2, 3, 4], &[]),
                heard(&[(2, 10), (3, 10), (4, 4000)], None),
                60_000,
                vec![down(4, 4000), promote(&[2, 3])],
            ),
        ];
        for (name, view, state, heard, leading_for, want) in table {
            assert_eq!(
                duties(&view, 1, &state, &heard, ms(leading_for), rules),
                want,
                "{name}"
            );
        }
    }
}
