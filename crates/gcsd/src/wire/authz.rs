//! Which member may ask what on the group wire: a pure decision from the peer's identity (its
//! certificate's member id with TLS; its hello's claim without), the request, and what this
//! member knows of the group.
//!
//! The rules (a table test below holds each):
//! - **Vote**: only for the peer itself as candidate, and only from a voter. Refusing a vote is
//!   always safe.
//! - **AppendEntries, FullSnapshot**: only with the peer itself as leader, and never from a
//!   removed member. Not "only from a voter we know": a follower that was away while the current
//!   leader was promoted would refuse it forever and never catch up; the leader's vote is
//!   checked by Raft as usual.
//! - **Propose**: a member proposes for itself (its servers, heartbeats, expiries, its own
//!   up/left, its probe reports, hook steps it runs); the leader's duties (a member down for
//!   silence, removals, pool decisions and notes) only from a voter; operators' pool commands
//!   from any member (their admin API checked the token).
//! - **AddMember**: a member adding itself (its join), or any member forwarding an operator's
//!   request; never a removed id. **RemoveMember**: forwarded by a member.

use std::collections::BTreeSet;

use pool::PoolCommand;

use super::Request;
use crate::state::{Command, DownReason, MemberId};

/// What this member knows of the group, to judge a request by.
#[derive(Debug, Default)]
pub struct Known {
    /// Voters of the latest membership this member has (applied or not).
    pub voters: BTreeSet<MemberId>,
    /// Every member (voters and non-voters) of that membership.
    pub members: BTreeSet<MemberId>,
    /// Members removed for good.
    pub removed: BTreeSet<MemberId>,
}

/// Whether `peer` may make `req`; `Err` says why not.
pub fn authorize(peer: MemberId, req: &Request, known: &Known) -> Result<(), String> {
    if known.removed.contains(&peer) {
        return Err(format!(
            "member {peer} was removed from the group; it takes no further part"
        ));
    }
    let itself = |who: Option<MemberId>, what: &str| match who {
        Some(id) if id == peer => Ok(()),
        other => Err(format!(
            "member {peer} sent {what} on behalf of member {}",
            other.map_or("none".to_owned(), |id| id.to_string())
        )),
    };
    let voter = |what: &str| {
        if known.voters.contains(&peer) {
            Ok(())
        } else {
            Err(format!("member {peer} is not a voter and may not {what}"))
        }
    };
    let member = |what: &str| {
        if known.members.contains(&peer) {
            Ok(())
        } else {
            Err(format!(
                "member {peer} is not in the group and may not {what}"
            ))
        }
    };
    match req {
        Request::Vote(rpc) => {
            itself(rpc.vote.leader_id().voted_for(), "a vote request")?;
            voter("ask for votes")
        }
        Request::AppendEntries(rpc) => itself(rpc.vote.leader_id().voted_for(), "entries"),
        Request::FullSnapshot { vote, .. } => itself(vote.leader_id().voted_for(), "a snapshot"),
        Request::Propose(cmd) => match own_member(cmd) {
            Some(Ok(owner)) => itself(Some(owner), "a change"),
            Some(Err(())) => voter("commit the leader's decisions"),
            None => member("propose an operator's change"),
        },
        Request::AddMember { id, .. } if *id == peer => Ok(()),
        Request::AddMember { .. } => member("add another member"),
        Request::RemoveMember { .. } => member("remove a member"),
    }
}

/// Whose command `cmd` is: `Ok(member)` for a member's own change, `Err(())` for a leader's
/// duty, none for an operator's pool command. A probe report names its prober; a report of
/// several probers is no one's.
fn own_member(cmd: &Command) -> Option<Result<MemberId, ()>> {
    Some(match cmd {
        Command::Register { member, .. }
        | Command::Touch { member, .. }
        | Command::Expire { member, .. }
        | Command::MemberUp { member, .. }
        | Command::MemberDown {
            member,
            reason: DownReason::Left,
            ..
        } => Ok(*member),
        Command::Leave { member, .. } => member.ok_or(()),
        Command::MemberDown { .. } | Command::MemberRemoved { .. } => Err(()),
        Command::Pool(cmd) => match &**cmd {
            PoolCommand::Observe { reports } => {
                let mut probers = reports.iter().map(|(_, h)| h.member);
                match probers.next() {
                    Some(first) if probers.all(|m| m == first) => Ok(first),
                    _ => Err(()),
                }
            }
            PoolCommand::Hook { member, .. } => Ok(*member),
            PoolCommand::Decided { .. } | PoolCommand::Note { .. } => Err(()),
            PoolCommand::Init { .. }
            | PoolCommand::Configure { .. }
            | PoolCommand::Delete { .. }
            | PoolCommand::Recover { .. }
            | PoolCommand::Handover { .. }
            | PoolCommand::Pause { .. }
            | PoolCommand::ManualSet { .. } => return None,
        },
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use openraft::raft::{AppendEntriesRequest, VoteRequest};
    use openraft::{SnapshotMeta, Vote};
    use pool::ServerHealth;
    use proto::{Role, ServerKey, Status};

    use super::*;

    fn known() -> Known {
        Known {
            voters: [1, 2, 3].into(),
            members: [1, 2, 3, 4].into(),
            removed: [9].into(),
        }
    }

    fn vote(candidate: MemberId) -> Request {
        Request::Vote(VoteRequest::new(Vote::new(5, candidate), None))
    }

    fn append(leader: MemberId) -> Request {
        Request::AppendEntries(AppendEntriesRequest {
            vote: Vote::new_committed(5, leader),
            prev_log_id: None,
            entries: vec![],
            leader_commit: None,
        })
    }

    fn snapshot(leader: MemberId) -> Request {
        Request::FullSnapshot {
            vote: Vote::new_committed(5, leader),
            meta: SnapshotMeta::default(),
            state: Box::default(),
        }
    }

    fn propose(cmd: Command) -> Request {
        Request::Propose(cmd)
    }

    fn register(member: MemberId) -> Command {
        Command::Register {
            member,
            server: ServerKey::new("db1", "3306"),
            status: Status::On,
            role: Role::Master,
            ttl_secs: 3,
            at: Utc::now(),
        }
    }

    fn observe(probers: &[MemberId]) -> Command {
        let reports = probers
            .iter()
            .map(|&member| {
                let health = ServerHealth::clean_replica(member, Utc::now());
                (ServerKey::new("db1", "3306"), health)
            })
            .collect();
        Command::Pool(Box::new(PoolCommand::Observe { reports }))
    }

    /// Each row: who asks, what, allowed?
    #[test]
    fn scenarios() {
        let rows: Vec<(&str, MemberId, Request, bool)> = vec![
            ("a voter asks votes for itself", 2, vote(2), true),
            ("a voter asks votes for another", 2, vote(1), false),
            ("a non-voter asks votes", 4, vote(4), false),
            ("the leader sends entries", 1, append(1), true),
            ("a member impersonates the leader", 2, append(1), false),
            (
                "a leader this member does not know yet sends entries (it lagged behind)",
                7,
                append(7),
                true,
            ),
            ("a removed member claims to lead", 9, append(9), false),
            ("the leader sends a snapshot", 1, snapshot(1), true),
            ("a forged snapshot in another's name", 4, snapshot(1), false),
            (
                "a member registers its server",
                2,
                propose(register(2)),
                true,
            ),
            (
                "a member registers for another",
                2,
                propose(register(1)),
                false,
            ),
            (
                "a member leaves its server",
                2,
                propose(Command::Leave {
                    server: ServerKey::new("db1", "3306"),
                    member: Some(2),
                }),
                true,
            ),
            (
                "a member leaves in another's name",
                2,
                propose(Command::Leave {
                    server: ServerKey::new("db1", "3306"),
                    member: Some(3),
                }),
                false,
            ),
            (
                "a voter commits a member down for silence",
                2,
                propose(Command::MemberDown {
                    member: 3,
                    reason: DownReason::Timeout,
                    at: Utc::now(),
                }),
                true,
            ),
            (
                "a non-voter commits a member down for silence",
                4,
                propose(Command::MemberDown {
                    member: 3,
                    reason: DownReason::Timeout,
                    at: Utc::now(),
                }),
                false,
            ),
            (
                "a member says it left",
                4,
                propose(Command::MemberDown {
                    member: 4,
                    reason: DownReason::Left,
                    at: Utc::now(),
                }),
                true,
            ),
            (
                "a member reports its probes",
                3,
                propose(observe(&[3])),
                true,
            ),
            (
                "probe reports in another's name",
                3,
                propose(observe(&[2])),
                false,
            ),
            (
                "probe reports of several probers (from a voter)",
                3,
                propose(observe(&[3, 2])),
                true,
            ),
            (
                "an operator's pool command from any member",
                4,
                propose(Command::Pool(Box::new(PoolCommand::Pause {
                    name: "app".into(),
                    paused: true,
                    at: Utc::now(),
                }))),
                true,
            ),
            (
                "an operator's pool command from outside the group",
                8,
                propose(Command::Pool(Box::new(PoolCommand::Pause {
                    name: "app".into(),
                    paused: true,
                    at: Utc::now(),
                }))),
                false,
            ),
            (
                "a newcomer adds itself",
                8,
                Request::AddMember {
                    id: 8,
                    node: Default::default(),
                },
                true,
            ),
            (
                "a newcomer adds another",
                8,
                Request::AddMember {
                    id: 10,
                    node: Default::default(),
                },
                false,
            ),
            (
                "a member forwards an operator's add",
                4,
                Request::AddMember {
                    id: 10,
                    node: Default::default(),
                },
                true,
            ),
            (
                "a removed member adds itself back",
                9,
                Request::AddMember {
                    id: 9,
                    node: Default::default(),
                },
                false,
            ),
            (
                "a member forwards a removal",
                3,
                Request::RemoveMember { id: 2 },
                true,
            ),
            (
                "an outsider removes a member",
                8,
                Request::RemoveMember { id: 2 },
                false,
            ),
        ];
        for (name, peer, req, allowed) in rows {
            let got = authorize(peer, &req, &known());
            assert_eq!(got.is_ok(), allowed, "{name}: {got:?}");
        }
    }
}
