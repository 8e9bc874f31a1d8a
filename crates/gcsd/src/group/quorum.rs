//! Whether this member can commit now. Pure: judged from a [`RaftView`] and [`Heard`] taken at
//! one instant.
//!
//! A leader can commit while a majority of voters (itself included) answered it within the
//! timeout; a follower while a leader reached it within the timeout. The texts do not tick with
//! time: a change of text is a change of the published serverlist.

use std::time::Duration;

use super::view::{Heard, RaftView};
use crate::state::MemberId;

/// `None` if member `me` can commit; otherwise why not, in words for an operator.
pub fn problem(view: &RaftView, me: MemberId, heard: &Heard, timeout: Duration) -> Option<String> {
    if view.voters.is_empty() {
        return Some("this member has not joined a group yet".into());
    }
    if view.is_leader(me) {
        let need = view.voters.len() / 2 + 1;
        let answered = view
            .voters
            .iter()
            .filter(|&&v| v == me || heard.peers.get(&v).is_some_and(|&ago| ago <= timeout))
            .count();
        return (answered < need).then(|| {
            format!(
                "the leader hears from {answered} of {} voters and needs {need}",
                view.voters.len()
            )
        });
    }
    match heard.leader {
        Some(ago) if ago <= timeout => None,
        Some(_) => Some(format!(
            "no word from a leader for more than {} ms",
            timeout.as_millis()
        )),
        None => Some("no leader heard from since start".into()),
    }
}

/// How long ago member `me` last knew a quorum was with it: for a leader, since the last of
/// the freshest majority of voters (itself included) answered; for a follower, since a leader
/// last reached it. `None` if never. This is the clock of the fencing lease.
pub fn contact_age(view: &RaftView, me: MemberId, heard: &Heard) -> Option<Duration> {
    if view.voters.is_empty() {
        return None;
    }
    if view.is_leader(me) {
        let need = view.voters.len() / 2 + 1;
        let mut ages: Vec<Duration> = view
            .voters
            .iter()
            .filter_map(|&v| {
                if v == me {
                    Some(Duration::ZERO)
                } else {
                    heard.peers.get(&v).copied()
                }
            })
            .collect();
        ages.sort();
        return ages.get(need - 1).copied();
    }
    heard.leader
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::ServerState;

    use super::*;
    use crate::raft::MemberNode;

    pub(crate) fn view(
        state: ServerState,
        leader: Option<MemberId>,
        voters: &[MemberId],
        learners: &[MemberId],
    ) -> RaftView {
        RaftView {
            state,
            leader,
            term: 3,
            voters: voters.iter().copied().collect::<BTreeSet<_>>(),
            nodes: voters
                .iter()
                .chain(learners)
                .map(|&id| (id, MemberNode::default()))
                .collect(),
        }
    }

    pub(crate) fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    pub(crate) fn heard(peers: &[(MemberId, u64)], leader: Option<u64>) -> Heard {
        Heard {
            peers: peers
                .iter()
                .map(|&(id, ago)| (id, ms(ago)))
                .collect::<BTreeMap<_, _>>(),
            leader: leader.map(ms),
        }
    }

    /// Member 1 judges, with a timeout of 1000 ms: given its Raft view and whom it heard from
    /// how long ago, its verdict.
    #[test]
    fn scenarios() {
        use ServerState::{Candidate, Follower, Leader, Learner};
        let table: Vec<(&str, RaftView, Heard, Option<&str>)> = vec![
            (
                "not in a group yet",
                view(Learner, None, &[], &[1]),
                heard(&[], None),
                Some("this member has not joined a group yet"),
            ),
            (
                "the only voter leads alone",
                view(Leader, Some(1), &[1], &[]),
                heard(&[], None),
                None,
            ),
            (
                "a leader hearing both followers",
                view(Leader, Some(1), &[1, 2, 3], &[]),
                heard(&[(2, 100), (3, 900)], None),
                None,
            ),
            (
                "a leader hearing one of two followers",
                view(Leader, Some(1), &[1, 2, 3], &[]),
                heard(&[(2, 100), (3, 5000)], None),
                None,
            ),
            (
                "a leader isolated from both followers",
                view(Leader, Some(1), &[1, 2, 3], &[]),
                heard(&[(2, 1001), (3, 5000)], None),
                Some("the leader hears from 1 of 3 voters and needs 2"),
            ),
            (
                "a leader that never heard its followers",
                view(Leader, Some(1), &[1, 2, 3], &[]),
                heard(&[], None),
                Some("the leader hears from 1 of 3 voters and needs 2"),
            ),
            (
                "learners do not count towards a majority",
                view(Leader, Some(1), &[1, 2, 3], &[4, 5]),
                heard(&[(4, 10), (5, 10)], None),
                Some("the leader hears from 1 of 3 voters and needs 2"),
            ),
            (
                "five voters, two followers heard",
                view(Leader, Some(1), &[1, 2, 3, 4, 5], &[]),
                heard(&[(2, 10), (3, 10)], None),
                None,
            ),
            (
                "five voters, one follower heard",
                view(Leader, Some(1), &[1, 2, 3, 4, 5], &[]),
                heard(&[(2, 10)], None),
                Some("the leader hears from 2 of 5 voters and needs 3"),
            ),
            (
                "a follower with a recent leader",
                view(Follower, Some(2), &[1, 2, 3], &[]),
                heard(&[], Some(300)),
                None,
            ),
            (
                "a follower whose leader went silent",
                view(Follower, Some(2), &[1, 2, 3], &[]),
                heard(&[(2, 10)], Some(1500)),
                Some("no word from a leader for more than 1000 ms"),
            ),
            (
                "a follower that never heard a leader",
                view(Follower, None, &[1, 2, 3], &[]),
                heard(&[], None),
                Some("no leader heard from since start"),
            ),
            (
                "a candidate judges as a follower",
                view(Candidate, None, &[1, 2, 3], &[]),
                heard(&[(2, 10), (3, 10)], Some(1200)),
                Some("no word from a leader for more than 1000 ms"),
            ),
            (
                "a leader by state but not by id (stepping down)",
                view(Leader, Some(2), &[1, 2, 3], &[]),
                heard(&[], Some(10)),
                None,
            ),
        ];
        for (name, view, heard, want) in table {
            assert_eq!(
                problem(&view, 1, &heard, ms(1000)).as_deref(),
                want,
                "{name}"
            );
        }
    }

    /// The lease clock: how long since a quorum was last confirmed.
    #[test]
    fn contact_ages() {
        use ServerState::{Follower, Leader};
        let table = [
            (
                "alone",
                view(Leader, Some(1), &[1], &[]),
                heard(&[], None),
                Some(0),
            ),
            (
                "leader, freshest majority",
                view(Leader, Some(1), &[1, 2, 3], &[]),
                heard(&[(2, 700), (3, 40)], None),
                Some(40),
            ),
            (
                "leader, one follower never heard",
                view(Leader, Some(1), &[1, 2, 3], &[]),
                heard(&[(2, 90)], None),
                Some(90),
            ),
            (
                "leader, nobody heard",
                view(Leader, Some(1), &[1, 2, 3], &[]),
                heard(&[], None),
                None,
            ),
            (
                "five voters",
                view(Leader, Some(1), &[1, 2, 3, 4, 5], &[]),
                heard(&[(2, 10), (3, 600), (4, 20)], None),
                Some(20),
            ),
            (
                "follower",
                view(Follower, Some(2), &[1, 2, 3], &[]),
                heard(&[(2, 5)], Some(300)),
                Some(300),
            ),
            (
                "follower, never heard a leader",
                view(Follower, None, &[1, 2, 3], &[]),
                heard(&[], None),
                None,
            ),
        ];
        for (name, view, heard, want) in table {
            assert_eq!(contact_age(&view, 1, &heard), want.map(ms), "{name}");
        }
    }
}
