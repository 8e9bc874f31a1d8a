//! Membership changes: adding and removing members (run on the leader, forwarded there from
//! any member), and a new member's request to join.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;

use super::{write_error, Group};
use crate::identity::wiped_problem;
use crate::raft::MemberNode;
use crate::state::{Command, MemberId};
use crate::wire::{MembershipChange, ProposeError, Request, Response};

impl Group {
    /// Adds a member (as a non-voter; the leader promotes voters up to `voters`).
    pub async fn add_member(&self, id: MemberId, node: MemberNode) -> Result<String, ProposeError> {
        self.on_leader(MembershipChange::AddMember { id, node })
            .await
    }

    /// Removes a member for good: out of the voters and learners, its servers out of the list.
    pub async fn remove_member(&self, id: MemberId) -> Result<String, ProposeError> {
        self.on_leader(MembershipChange::RemoveMember { id }).await
    }

    /// Runs `change` on the leader: here when this member leads, else forwarded.
    async fn on_leader(&self, change: MembershipChange) -> Result<String, ProposeError> {
        let view = self.raft_view();
        if view.is_leader(self.me) {
            return self.admin_here(change).await;
        }
        let Some(node) = view.leader_node() else {
            return Err(ProposeError::NoQuorum("no leader is known".into()));
        };
        match self.call(&node.group_addr, Request::from(change)).await {
            Ok(Response::Admin(r)) => r,
            Ok(other) => Err(ProposeError::Failed(format!(
                "leader answered {}",
                other.kind()
            ))),
            Err(e) => Err(ProposeError::NoQuorum(format!(
                "cannot reach the leader {}: {e:#}",
                node.name
            ))),
        }
    }

    /// Executes a membership change on the leader (here).
    pub async fn admin_here(&self, change: MembershipChange) -> Result<String, ProposeError> {
        let view = self.raft_view();
        if !view.is_leader(self.me) {
            return Err(ProposeError::NotLeader {
                leader: view.leader_node(),
            });
        }
        let timeout = self.cfg.propose_timeout() * 2;
        let in_time = |what: &'static str| {
            move |_| ProposeError::NoQuorum(format!("{what} did not commit within {timeout:?}"))
        };
        match change {
            MembershipChange::AddMember { id, node } => {
                if self.state().removed.contains(&id) {
                    return Err(ProposeError::Rejected(format!(
                        "member id {id} was removed from the group, and ids are never used again; choose a new node_id"
                    )));
                }
                if let Some(existing) = view.nodes.get(&id) {
                    // A member asking for itself says which data directory it has.
                    let offered = node.incarnation.as_deref();
                    if let Some(why) = offered.and_then(|offered| {
                        wiped_problem(id, existing.incarnation.as_deref(), Some(offered))
                    }) {
                        return Err(ProposeError::Rejected(why));
                    }
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
                    .map_err(write_error)?;
                tracing::info!(member = id, addr = %node.group_addr, "added member as non-voter");
                Ok(format!(
                    "member {id} ({}) added as a non-voting member",
                    node.name
                ))
            }
            MembershipChange::RemoveMember { id } => {
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
                    .map_err(write_error)?;
                self.propose(Command::MemberRemoved { member: id }).await?;
                let left = view.voters.len() - usize::from(view.voters.contains(&id));
                tracing::warn!(member = id, voters = left, "removed member from the group");
                Ok(format!(
                    "member {id} removed; the group has {left} voter(s)"
                ))
            }
        }
    }

    /// A new member asks any member of the group (given by `--join`) to add it, until it is in.
    pub(super) async fn ask_to_join(self: Arc<Self>, mut addr: String) {
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
                Ok(Response::Admin(Err(e))) => {
                    tracing::warn!(via = %addr, "join refused: {e}; retrying")
                }
                Ok(other) => tracing::warn!(
                    via = %addr,
                    "join refused: answered {}; retrying",
                    other.kind()
                ),
                Err(e) => tracing::warn!(via = %addr, "cannot join yet: {e:#}; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
