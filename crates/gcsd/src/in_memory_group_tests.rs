//! A whole group of three in one test process, on the in-memory network: partitions that the
//! network-namespace test (`tests/partition.rs`, the real-world proof) needs root and many
//! seconds for, here in about a second each and without root. Every member is wired as `app`
//! wires it (group, its wire server, bootstrap, the local-servers loop) on short timings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use openraft::ServerState;

use crate::config::Config;
use crate::group::Group;
use crate::local_servers::LocalServers;
use crate::metrics::Metrics;
use crate::state::{Applied, Command, DownReason, GroupState, MemberId};
use crate::wire::server;
use crate::wire::transport::memory::Network;
use crate::wire::transport::Transport;
use crate::wire::ProposeError;

const HEARTBEAT_MS: u64 = 30;
const MEMBER_TIMEOUT: Duration = Duration::from_millis(300);

struct Member {
    group: Arc<Group>,
    _dir: tempfile::TempDir,
}

struct Lab {
    net: Network,
    members: Vec<Member>,
}

fn addr(id: MemberId) -> String {
    format!("m{id}")
}

impl Lab {
    /// Three members, 1 first, 2 and 3 joining through it; returns once all three are voters
    /// and agree on a leader that can commit.
    async fn start() -> Lab {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let net = Network::default();
        let mut members = Vec::new();
        for id in 1..=3 {
            members.push(Self::member(&net, id).await);
        }
        let lab = Lab { net, members };
        // Three voters in a settled configuration: a group still in the joint configuration of
        // the promotion would need member 1 for every election.
        lab.until(
            "three settled voters and an agreed leader",
            Duration::from_secs(10),
            |lab| {
                lab.members.iter().all(|m| {
                    let metrics = m.group.raft.metrics().borrow().clone();
                    let membership = metrics.membership_config.membership();
                    membership.get_joint_config().len() == 1 && membership.voter_ids().count() == 3
                }) && lab.leader().is_some()
            },
        )
        .await;
        lab
    }

    async fn member(net: &Network, id: MemberId) -> Member {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = Config {
            node_id: id,
            data_dir: dir.path().to_owned(),
            group_listen: addr(id),
            join: (id > 1).then(|| addr(1)),
            bootstrap: id == 1,
            raft_heartbeat_ms: HEARTBEAT_MS,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            member_timeout_ms: MEMBER_TIMEOUT.as_millis() as u64,
            propose_timeout_ms: 1000,
            ..Config::default()
        };
        let transport = Arc::new(net.endpoint(&addr(id)));
        let listener = transport.bind(&addr(id)).await.expect("bind");
        let group = Group::open(Arc::new(cfg), Arc::new(Metrics::new()), transport)
            .await
            .expect("open the group");
        tokio::spawn(server::serve(listener, group.clone()));
        group.bootstrap().await.expect("bootstrap");
        tokio::spawn(LocalServers::new(group.clone()).reconcile());
        Member { group, _dir: dir }
    }

    fn group(&self, id: MemberId) -> &Arc<Group> {
        &self.members[id as usize - 1].group
    }

    /// The leader every member agrees on, if it can commit.
    fn leader(&self) -> Option<MemberId> {
        let leaders: Vec<_> = self
            .members
            .iter()
            .map(|m| m.group.raft.metrics().borrow().current_leader)
            .collect();
        let leader = leaders[0]?;
        (leaders.iter().all(|l| *l == Some(leader))
            && self.group(leader).quorum_problem().is_none())
        .then_some(leader)
    }

    fn others(leader: MemberId) -> (MemberId, MemberId) {
        let mut rest = (1..=3).filter(|&id| id != leader);
        (rest.next().unwrap(), rest.next().unwrap())
    }

    /// Polls `done` every 10 ms; panics after `within`, naming `what`. Returns the time taken.
    async fn until(&self, what: &str, within: Duration, done: impl Fn(&Lab) -> bool) -> Duration {
        let start = Instant::now();
        while !done(self) {
            assert!(start.elapsed() < within, "{what}: not within {within:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        start.elapsed()
    }

    /// Heals the network and waits until all three agree on a leader, on the committed state,
    /// and see every member up; then checks that a change proposed at each member commits.
    async fn heal_and_converge(&self) {
        self.net.heal();
        let took = self
            .until(
                "convergence after the heal",
                Duration::from_secs(10),
                |lab| {
                    let states: Vec<_> = lab.members.iter().map(|m| m.group.state()).collect();
                    lab.leader().is_some()
                        && states.iter().all(|s| *s == states[0])
                        && (1..=3).all(|id| states[0].is_up(id))
                        && lab
                            .members
                            .iter()
                            .all(|m| m.group.quorum_problem().is_none())
                },
            )
            .await;
        eprintln!("converged {took:?} after the heal");
        for m in &self.members {
            let cmd = Command::MemberUp {
                member: m.group.me,
                name: m.group.node.name.clone(),
                at: Utc::now(),
            };
            assert_eq!(m.group.propose(cmd).await, Ok(Applied::Done));
        }
    }
}

/// A change that any member may propose and that changes nothing (leaving a server that is not
/// there), to see whether a member can commit.
fn any_change() -> Command {
    Command::Leave {
        server: proto::ServerKey::new("db9", "3306"),
        member: None,
    }
}

/// Whether `state` has `member` committed down for its silence.
fn silent_and_down(state: &GroupState, member: MemberId) -> bool {
    state
        .members
        .get(&member)
        .is_some_and(|m| !m.up && m.down_reason == Some(DownReason::Timeout))
}

fn is_leader(group: &Group) -> bool {
    group.raft.metrics().borrow().state == ServerState::Leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_loses_quorum_and_says_so() {
    let lab = Lab::start().await;
    let old = lab.leader().unwrap();
    lab.net.isolate(&addr(old));
    let isolated = lab.group(old);
    let took = lab
        .until(
            "the isolated leader reports no quorum",
            Duration::from_secs(3),
            |_| isolated.quorum_problem().is_some(),
        )
        .await;
    eprintln!("isolated leader lost quorum after {took:?}");
    let why = isolated.quorum_problem().unwrap();
    assert!(
        why == "the leader hears from 1 of 3 voters and needs 2"
            || why.starts_with("no word from a leader"),
        "{why}"
    );
    // The last answers may have come up to two Raft heartbeats before the isolation.
    let earliest = MEMBER_TIMEOUT - Duration::from_millis(2 * HEARTBEAT_MS);
    assert!(took >= earliest, "quorum judged lost too early: {took:?}");
    // It says so to its clients and commits nothing.
    assert!(isolated.current_serverlist().stale.is_some());
    let refused = isolated.propose(any_change()).await;
    assert!(
        matches!(refused, Err(ProposeError::NoQuorum(_))),
        "{refused:?}"
    );
    // The majority moves on: a new leader, which commits the old one as down.
    let (a, b) = Lab::others(old);
    lab.until(
        "the majority commits the old leader down",
        Duration::from_secs(3),
        |lab| {
            let state = lab.group(a).state();
            silent_and_down(&state, old)
                && lab.group(b).state() == state
                && (is_leader(lab.group(a)) || is_leader(lab.group(b)))
        },
    )
    .await;
    lab.heal_and_converge().await;
}

/// The leader can no longer reach one follower, which can still reach the leader (a one-way
/// cut): the follower hears no leader and calls elections, but cannot depose a leader that a
/// majority still hears; the leader, still in a majority with the third member, commits the
/// unreachable follower as down. After the heal the follower announces itself again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_cut_marks_the_unreachable_follower_down() {
    let lab = Lab::start().await;
    let leader = lab.leader().unwrap();
    let (follower, third) = Lab::others(leader);
    let term = lab.group(leader).raft.metrics().borrow().current_term;
    lab.net.cut_one_way(&addr(leader), &addr(follower));
    lab.until(
        "the leader commits the unreachable follower down",
        Duration::from_secs(3),
        |lab| {
            [leader, third]
                .iter()
                .all(|&id| silent_and_down(&lab.group(id).state(), follower))
        },
    )
    .await;
    let f = lab.group(follower);
    let l = lab.group(leader);
    assert!(f.quorum_problem().is_some(), "the follower hears no leader");
    assert_eq!(l.quorum_problem(), None, "the leader still has a majority");
    assert!(is_leader(l));
    assert_eq!(
        l.raft.metrics().borrow().current_term,
        term,
        "the leader was never deposed"
    );
    assert_eq!(lab.group(third).quorum_problem(), None);
    lab.heal_and_converge().await;
}

/// The other way round: a follower that the leader still reaches (so it hears the leader and
/// answers it) but that cannot reach the leader itself. It stays in the view and believes it can
/// commit, but its own changes, forwarded to the leader, do not get through: they fail after
/// `propose_timeout` with a quorum error that says so, and nothing else changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_cannot_reach_its_leader_cannot_commit_and_says_so() {
    let lab = Lab::start().await;
    let leader = lab.leader().unwrap();
    let (follower, _) = Lab::others(leader);
    lab.net.cut_one_way(&addr(follower), &addr(leader));
    let f = lab.group(follower);
    let started = Instant::now();
    let refused = f.propose(any_change()).await;
    assert_eq!(
        refused,
        Err(ProposeError::NoQuorum(
            "the change did not commit within 1000 ms".into()
        ))
    );
    assert!(started.elapsed() >= Duration::from_millis(1000));
    assert_eq!(f.quorum_problem(), None, "it still hears its leader");
    assert!(
        lab.group(leader).state().is_up(follower),
        "the leader still hears its answers"
    );
    assert_eq!(lab.leader(), Some(leader));
    lab.heal_and_converge().await;
}

/// The leader is isolated; while the two others elect a new one, they are cut from each other
/// too. No majority exists anywhere: nothing commits and every member says it cannot commit.
/// After the heal, one leader emerges and all converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_during_an_election_leaves_no_one_able_to_commit() {
    let lab = Lab::start().await;
    let old = lab.leader().unwrap();
    let (a, b) = Lab::others(old);
    lab.net.isolate(&addr(old));
    lab.until("an election starts", Duration::from_secs(3), |lab| {
        [a, b].iter().any(|&id| {
            let m = lab.group(id).raft.metrics().borrow().clone();
            m.state == ServerState::Candidate || m.current_leader.is_some_and(|l| l != old)
        })
    })
    .await;
    lab.net.cut(&addr(a), &addr(b));
    lab.until("no member can commit", Duration::from_secs(3), |lab| {
        lab.members
            .iter()
            .all(|m| m.group.quorum_problem().is_some())
    })
    .await;
    let probe = any_change();
    for m in &lab.members {
        let refused = m.group.propose(probe.clone()).await;
        assert!(
            matches!(refused, Err(ProposeError::NoQuorum(_))),
            "{refused:?}"
        );
    }
    let applied: Vec<_> = lab
        .members
        .iter()
        .map(|m| m.group.last_applied_index())
        .collect();
    tokio::time::sleep(MEMBER_TIMEOUT * 2).await;
    let later: Vec<_> = lab
        .members
        .iter()
        .map(|m| m.group.last_applied_index())
        .collect();
    assert_eq!(applied, later, "something was applied without a majority");
    lab.heal_and_converge().await;
}
