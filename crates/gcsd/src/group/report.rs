//! The whole picture of the group as this member sees it, for `/cluster` and `gcsctl`, and its
//! figures for `/metrics`.

use openraft::ServerState;
use proto::admin::{ClusterReport, MemberReport, ServerReport};

use super::Group;
use crate::metrics::GroupGauges;

impl Group {
    pub fn gauges(&self) -> GroupGauges {
        let view = self.raft_view();
        let state = self.state();
        GroupGauges {
            is_leader: view.is_leader(self.me),
            quorum: self.quorum_problem().is_none(),
            term: view.term,
            last_applied: self.last_applied_index(),
            members_up: view.nodes.keys().filter(|&&id| state.is_up(id)).count(),
            members: view.nodes.len(),
            servers: state.servers.len(),
        }
    }

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
