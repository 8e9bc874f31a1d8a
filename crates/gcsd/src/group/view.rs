//! What the group's decisions are made from: one instant's snapshot of Raft's facts and of who
//! this member heard from when. Plain data, so the decisions can be tested from tables.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::{RaftMetrics, ServerState};

use crate::raft::MemberNode;
use crate::state::MemberId;

/// The Raft facts the group logic needs, taken in one borrow of openraft's metrics.
#[derive(Debug, Clone)]
pub struct RaftView {
    pub state: ServerState,
    pub leader: Option<MemberId>,
    pub term: u64,
    pub voters: BTreeSet<MemberId>,
    pub nodes: BTreeMap<MemberId, MemberNode>,
}

impl RaftView {
    pub fn of(m: &RaftMetrics<MemberId, MemberNode>) -> Self {
        let membership = m.membership_config.membership();
        RaftView {
            state: m.state,
            leader: m.current_leader,
            term: m.current_term,
            voters: membership.voter_ids().collect(),
            nodes: membership.nodes().map(|(id, n)| (*id, n.clone())).collect(),
        }
    }

    pub fn is_leader(&self, me: MemberId) -> bool {
        self.state == ServerState::Leader && self.leader == Some(me)
    }

    /// Where the leader is, if one is known.
    pub fn leader_node(&self) -> Option<MemberNode> {
        self.leader.and_then(|l| self.nodes.get(&l).cloned())
    }
}

/// How long ago this member last heard from others.
#[derive(Debug, Clone, Default)]
pub struct Heard {
    /// Since each peer last answered a request of ours (what a leader knows of its followers).
    pub peers: BTreeMap<MemberId, Duration>,
    /// Since a leader last reached us (what a follower knows of its leader).
    pub leader: Option<Duration>,
}
