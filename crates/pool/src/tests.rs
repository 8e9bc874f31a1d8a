//! Scenario tables: given a pool and what the members observed, the decision and the
//! commands' effects. Each of MPP's defects that this crate fixes has a test named after it.

use chrono::{DateTime, TimeZone, Utc};
use proto::{Health, PoolState, ServerKey};

use crate::fence::{self, CatchUp, Want};
use crate::{
    caught_up, decide, grade, messages, FailureKind, Judge, Pool, PoolCommand, Pools, Probe,
    ProbeFacts, RecoverTarget, ReplicaFacts, Seen, ServerHealth, SettingChange, Settings,
};

use PoolState::{
    Active as A, FailedOffline as FOFF, FailedOnline as FON, Standby as S, Unknown as U,
};

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

fn db(n: usize) -> ServerKey {
    ServerKey::new(format!("db{n}"), "3306")
}

/// What a member observed about a server, in one word.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Obs {
    /// Never probed, registered: a report is on its way.
    None,
    /// Never probed, registered nowhere.
    Unseen,
    /// Clean probe, read_only=ON.
    Ro,
    /// Clean probe, writable.
    Rw,
    /// Failing probes below the threshold (OK_WARN), read-only.
    Warn,
    /// FAIL: connect timeouts (hung), process may still be there.
    Hung,
    /// FAIL: connection refused (the process is gone).
    Gone,
    /// FAIL: connected, checks failed, read-only.
    Broken,
    /// Its gcsd is cut off (committed down).
    Cut,
}

fn health(obs: Obs) -> Option<ServerHealth> {
    let base = ServerHealth {
        gtid: Some("0-1-10".into()),
        ..ServerHealth::clean_replica(1, at(0))
    };
    let fail = |kind, gone, ro, msg: &str| ServerHealth {
        health: Health::Fail,
        failures: 4,
        failure: Some(kind),
        gone,
        read_only: ro,
        message: msg.into(),
        ..base.clone()
    };
    Some(match obs {
        Obs::None | Obs::Unseen | Obs::Cut => return None,
        Obs::Ro => base,
        Obs::Rw => ServerHealth {
            read_only: Some(false),
            ..base
        },
        Obs::Warn => ServerHealth {
            health: Health::OkWarn,
            failures: 2,
            failure: Some(FailureKind::Offline),
            message: "Could not connect".into(),
            ..base
        },
        Obs::Hung => fail(
            FailureKind::Offline,
            false,
            Some(false),
            "connect timed out",
        ),
        Obs::Gone => fail(FailureKind::Offline, true, None, "Connection refused"),
        Obs::Broken => fail(
            FailureKind::Online,
            false,
            Some(true),
            "Slave Error: Slave SQL is not running, Slave_SQL_Running=No.",
        ),
    })
}

fn pool_of(states: &[PoolState]) -> (Pools, String) {
    let mut pools = Pools::default();
    pools
        .apply(&PoolCommand::Init {
            name: "app".into(),
            primary: db(1),
            secondaries: (2..=states.len()).map(db).collect(),
            settings: Settings::default(),
            at: at(0),
        })
        .unwrap();
    let pool = pools.pools.get_mut("app").unwrap();
    for (m, s) in pool.members.iter_mut().zip(states) {
        m.state = *s;
    }
    (pools, "app".into())
}

/// One decision over a pool in `states` with the members observed as `obs`.
fn step(pool: &Pool, obs: &[Obs]) -> Pool {
    let healths: Vec<Option<ServerHealth>> = obs.iter().map(|o| health(*o)).collect();
    let seen = |k: &ServerKey| {
        let i = pool.members.iter().position(|m| &m.server == k).unwrap();
        Seen {
            health: healths[i].as_ref(),
            cut_off: obs[i] == Obs::Cut,
            registered: !matches!(obs[i], Obs::Cut | Obs::Unseen),
        }
    };
    decide("app", pool, &seen, at(10)).unwrap_or_else(|| pool.clone())
}

fn states(pool: &Pool) -> Vec<PoolState> {
    pool.members.iter().map(|m| m.state).collect()
}

fn msg(pool: &Pool, i: usize) -> &str {
    &pool.members[i].message
}

/// The table: (scenario, states before, observations, states after, message of member i contains).
#[test]
fn decision_table() {
    type Row = (
        &'static str,
        Vec<PoolState>,
        Vec<Obs>,
        Vec<PoolState>,
        Option<(usize, &'static str)>,
    );
    let rows: Vec<Row> = vec![
        (
            "startup: UNKNOWN servers that probe clean become STANDBY",
            vec![U, U],
            vec![Obs::Rw, Obs::Rw],
            vec![S, S],
            None,
        ),
        (
            "startup: nobody is promoted while another is writable",
            vec![S, S],
            vec![Obs::Ro, Obs::Rw],
            vec![S, S],
            Some((0, "Waiting for db2:3306 to be confirmed read-only")),
        ),
        (
            "startup: the PRIMARY is instated once the others are read-only",
            vec![S, S],
            vec![Obs::Rw, Obs::Ro],
            vec![A, S],
            Some((0, messages::INSTATED)),
        ),
        (
            "startup: UNKNOWN to STANDBY and instated in one decision",
            vec![U, U],
            vec![Obs::Ro, Obs::Ro],
            vec![A, S],
            Some((0, messages::INSTATED)),
        ),
        (
            "startup with the PRIMARY down: the SECONDARY takes over",
            vec![U, U],
            vec![Obs::Gone, Obs::Ro],
            vec![FOFF, A],
            Some((1, messages::FAILOVER)),
        ),
        (
            "never probed: waits, decides nothing",
            vec![U, U],
            vec![Obs::None, Obs::None],
            vec![U, U],
            None,
        ),
        (
            "kill -9 of the ACTIVE: FAILED_OFFLINE and failover in one transition",
            vec![A, S],
            vec![Obs::Gone, Obs::Ro],
            vec![FOFF, A],
            Some((1, messages::FAILOVER)),
        ),
        (
            "a hung ACTIVE fails, but nobody takes writes until it is confirmed",
            vec![A, S],
            vec![Obs::Hung, Obs::Ro],
            vec![FOFF, S],
            Some((1, "Waiting for db1:3306")),
        ),
        (
            "a hung ACTIVE, later confirmed read-only: promotion",
            vec![FOFF, S],
            vec![Obs::Broken, Obs::Ro],
            vec![FON, A],
            Some((1, messages::FAILOVER)),
        ),
        (
            "the ACTIVE's host cut off past its lease: promotion",
            vec![A, S],
            vec![Obs::Cut, Obs::Ro],
            vec![FOFF, A],
            Some((0, "Cut off")),
        ),
        (
            "a degraded ACTIVE stays ACTIVE",
            vec![A, S],
            vec![Obs::Warn, Obs::Ro],
            vec![A, S],
            None,
        ),
        (
            "a STANDBY that fails becomes FAILED, the ACTIVE stays",
            vec![A, S],
            vec![Obs::Rw, Obs::Broken],
            vec![A, FON],
            Some((1, "Slave SQL is not running")),
        ),
        (
            "FAILED stays FAILED when it probes clean, and says so",
            vec![A, FOFF],
            vec![Obs::Rw, Obs::Ro],
            vec![A, FOFF],
            Some((1, messages::REPORTS_RECOVERY)),
        ),
        (
            "a FAILED PRIMARY says so in MPP's words",
            vec![FOFF, A],
            vec![Obs::Ro, Obs::Rw],
            vec![FOFF, A],
            Some((0, messages::PRIMARY_REPORTS_RECOVERY)),
        ),
        (
            "FAILED flips between OFFLINE and ONLINE with the latest failure",
            vec![FOFF, A],
            vec![Obs::Broken, Obs::Rw],
            vec![FON, A],
            None,
        ),
        (
            "three servers: the second fails over to the third",
            vec![FOFF, A, S],
            vec![Obs::Gone, Obs::Gone, Obs::Ro],
            vec![FOFF, FOFF, A],
            Some((2, messages::FAILOVER)),
        ),
        (
            "a recovered PRIMARY is reinstated: the SECONDARY stands down first",
            vec![S, A],
            vec![Obs::Ro, Obs::Rw],
            vec![S, S],
            Some((1, messages::RELINQUISH)),
        ),
        (
            "a STANDBY PRIMARY not recovered (after a switchover) stays STANDBY",
            vec![S, A],
            vec![Obs::Ro, Obs::Rw],
            vec![S, A],
            None,
        ),
        (
            "a registered server not yet probed holds the promotion up",
            vec![U, U],
            vec![Obs::Ro, Obs::None],
            vec![S, U],
            Some((0, "Waiting for db2:3306")),
        ),
        (
            "a server no gcsd has seen does not hold it up",
            vec![U, U],
            vec![Obs::Ro, Obs::Unseen],
            vec![A, U],
            Some((0, messages::INSTATED)),
        ),
        (
            "fencing off: promotion does not wait for read_only",
            vec![A, S],
            vec![Obs::Hung, Obs::Rw],
            vec![FOFF, A],
            None,
        ),
    ];
    for (name, before, obs, after, message) in rows {
        let (mut pools, _) = pool_of(&before);
        if name.starts_with("fencing off") {
            pools.pools.get_mut("app").unwrap().settings.fencing = false;
        }
        if name.starts_with("a recovered PRIMARY") {
            pools.pools.get_mut("app").unwrap().reinstate_primary = true;
        }
        let next = step(&pools.pools["app"], &obs);
        assert_eq!(states(&next), after, "{name}");
        if let Some((i, text)) = message {
            assert!(
                msg(&next, i).contains(text),
                "{name}: message {:?}",
                msg(&next, i)
            );
        }
        // Every decision is accepted by apply: the invariants hold.
        let mut applied = pools.clone();
        if next != pools.pools["app"] {
            applied
                .apply(&PoolCommand::Decided {
                    name: "app".into(),
                    revision: pools.pools["app"].revision,
                    next: next.clone(),
                    at: at(10),
                })
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            // With nothing new observed, the next decision changes no state: no flapping.
            let again = step(&applied.pools["app"], &obs);
            assert_eq!(states(&again), after, "{name}: the decision is not stable");
        }
    }
}

#[test]
fn a_waiting_message_goes_once_another_server_is_chosen() {
    let (pools, _) = pool_of(&[U, U]);
    // db2 is probed first and waits for db1, which is registered but not probed yet.
    let waiting = step(&pools.pools["app"], &[Obs::None, Obs::Ro]);
    assert!(
        msg(&waiting, 1).starts_with("Waiting for db1:3306"),
        "{}",
        msg(&waiting, 1)
    );
    // db1 is probed: the PRIMARY is instated, and db2 no longer says it waits.
    let done = step(&waiting, &[Obs::Ro, Obs::Ro]);
    assert_eq!(states(&done), [A, S]);
    assert_eq!(msg(&done, 1), "");
}

#[test]
fn d2_a_replica_connecting_to_its_dead_source_is_not_failing() {
    let judge = Judge {
        sources: vec![("db1:3306".into(), 1)],
        max_lag_secs: None,
    };
    let connecting = Probe::Answered(ProbeFacts {
        read_only: true,
        server_id: 2,
        gtid_binlog_pos: "0-1-10".into(),
        replica: Some(ReplicaFacts {
            io_running: "Connecting".into(),
            sql_running: "Yes".into(),
            source_server_id: 1,
            last_io_error: "error reconnecting to master".into(),
            ..Default::default()
        }),
    });
    let mut h = None;
    for _ in 0..10 {
        h = Some(grade(1, h.as_ref(), &connecting, &judge, 4, at(1)));
    }
    let h = h.unwrap();
    assert_eq!(
        (h.health, h.failures, h.message.as_str()),
        (Health::Ok, 0, "")
    );
    // So when the PRIMARY dies, the STANDBY is a candidate (MPP failed both: 0 of 12).
    let (pools, _) = pool_of(&[A, S]);
    assert_eq!(
        states(&step(&pools.pools["app"], &[Obs::Gone, Obs::Ro])),
        [FOFF, A]
    );
}

#[test]
fn d3_the_last_server_is_not_failed_and_the_message_is_true() {
    let (pools, _) = pool_of(&[A, FON]);
    let next = step(&pools.pools["app"], &[Obs::Gone, Obs::Broken]);
    assert_eq!(states(&next), [A, FON]);
    assert!(
        msg(&next, 0).ends_with(messages::NOT_FAILING),
        "{}",
        msg(&next, 0)
    );
    // When it comes back it is still ACTIVE, no recover needed, and the note goes.
    let back = step(&next, &[Obs::Rw, Obs::Broken]);
    assert_eq!(states(&back), [A, FON]);
    assert_eq!(msg(&back, 0), "");
}

#[test]
fn d4_d19_an_active_that_is_no_replica_is_healthy_and_others_are_judged_against_it() {
    let (mut pools, _) = pool_of(&[A, S]);
    pools.health.insert(db(1), health(Obs::Rw).unwrap());
    let not_a_replica = Probe::Answered(ProbeFacts {
        read_only: false,
        server_id: 1,
        gtid_binlog_pos: "0-1-10".into(),
        replica: None,
    });
    let active = grade(
        1,
        None,
        &not_a_replica,
        &Judge::of(&pools, &db(1)),
        4,
        at(1),
    );
    assert_eq!(active.health, Health::Ok);
    // The STANDBY must replicate from the ACTIVE's server_id.
    let judge = Judge::of(&pools, &db(2));
    assert_eq!(judge.sources, [("db1:3306".to_owned(), 1)]);
    let elsewhere = Probe::Answered(ProbeFacts {
        read_only: true,
        server_id: 2,
        gtid_binlog_pos: String::new(),
        replica: Some(ReplicaFacts {
            io_running: "Yes".into(),
            sql_running: "Yes".into(),
            source_server_id: 7,
            ..Default::default()
        }),
    });
    let standby = grade(1, None, &elsewhere, &judge, 4, at(1));
    assert_eq!(standby.failures, 1);
    assert!(
        standby.message.contains("not from the ACTIVE db1:3306"),
        "{}",
        standby.message
    );
    let alone = Probe::Answered(ProbeFacts {
        replica: None,
        server_id: 2,
        ..Default::default()
    });
    assert!(grade(1, None, &alone, &judge, 4, at(1))
        .message
        .contains("Not a replica of the ACTIVE"));
}

#[test]
fn d5_d6_d8_a_degraded_or_failed_server_above_does_not_block_a_healthy_one_below() {
    // P FAILED but reporting recovery, S ACTIVE dies, S2 healthy: S2 takes over (D-8).
    let (pools, _) = pool_of(&[FOFF, A, S]);
    let next = step(&pools.pools["app"], &[Obs::Ro, Obs::Gone, Obs::Ro]);
    assert_eq!(states(&next), [FOFF, FOFF, A]);
    // S degraded, S2 clean: S2 is preferred (D-6, V13b).
    let (pools, _) = pool_of(&[A, S, S]);
    let next = step(&pools.pools["app"], &[Obs::Gone, Obs::Warn, Obs::Ro]);
    assert_eq!(states(&next), [FOFF, S, A]);
    // Only degraded candidates left: the degraded one still beats no ACTIVE (D-6).
    let (pools, _) = pool_of(&[A, S, S]);
    let next = step(&pools.pools["app"], &[Obs::Gone, Obs::Ro, Obs::Broken]);
    assert_eq!(states(&next), [FOFF, A, FON]);
}

#[test]
fn d7_no_command_can_make_two_active() {
    let (mut pools, name) = pool_of(&[A, S]);
    // A decision (from a buggy or stale leader) with two ACTIVE is refused.
    let mut two = pools.pools[&name].clone();
    two.members[1].state = A;
    let err = pools
        .apply(&PoolCommand::Decided {
            name: name.clone(),
            revision: two.revision,
            next: two,
            at: at(1),
        })
        .unwrap_err();
    assert!(err.contains("2 ACTIVE"), "{err}");
    // activate-primary and switchover demote the old ACTIVE in the same transition.
    let mut pools2 = pool_of(&[S, A]).0;
    pools2
        .apply(&PoolCommand::Handover {
            name: name.clone(),
            to: None,
            at: at(1),
        })
        .unwrap();
    let p = &pools2.pools[&name];
    assert_eq!(states(p), [S, S]);
    assert_eq!(p.handover.as_ref().unwrap().to, db(1));
    // ... and the target takes over only once the old one is read-only.
    let waiting = step(p, &[Obs::Ro, Obs::Rw]);
    assert_eq!(states(&waiting), [S, S]);
    let done = step(p, &[Obs::Ro, Obs::Ro]);
    assert_eq!(states(&done), [A, S]);
    assert_eq!(msg(&done, 0), messages::ACTIVATED);
    assert_eq!(
        done.catch_up.as_deref(),
        Some("0-1-10"),
        "the target catches up first"
    );
    // A manual set of ACTIVE while paused demotes the other.
    pools
        .apply(&PoolCommand::Pause {
            name: name.clone(),
            paused: true,
            at: at(2),
        })
        .unwrap();
    pools
        .apply(&PoolCommand::ManualSet {
            name: name.clone(),
            server: db(2),
            state: Some(A),
            status: None,
            at: at(3),
        })
        .unwrap();
    assert_eq!(states(&pools.pools[&name]), [S, A]);
}

#[test]
fn d1_operator_commands_and_decisions_are_ordered_by_the_log() {
    // A decision made before a recover was committed is refused, not applied over it.
    let (mut pools, name) = pool_of(&[A, FOFF]);
    let before = pools.pools[&name].clone();
    let decision = step(&before, &[Obs::Warn, Obs::Gone]);
    pools.health.insert(db(2), health(Obs::Gone).unwrap());
    pools
        .apply(&PoolCommand::Recover {
            target: RecoverTarget::Server(db(2)),
            at: at(1),
        })
        .unwrap();
    assert_eq!(pools.pools[&name].members[1].state, U);
    assert!(
        !pools.health.contains_key(&db(2)),
        "recover forgets the old failures; the next probe tells"
    );
    let err = pools
        .apply(&PoolCommand::Decided {
            name: name.clone(),
            revision: before.revision,
            next: decision,
            at: at(2),
        })
        .unwrap_err();
    assert!(err.contains("changed since the decision"), "{err}");
    assert_eq!(pools.pools[&name].members[1].message, messages::RECOVERY);
}

#[test]
fn d12_d17_failures_count_only_failed_probes_and_every_probe_ends() {
    let judge = Judge::default();
    let ok = Probe::Answered(ProbeFacts::default());
    let down = Probe::Unreachable("timed out after 200 ms".into());
    // A takeover does not count as a failure: only failed probes move the level.
    let mut h = grade(1, None, &ok, &judge, 4, at(0));
    let mut levels = vec![h.health];
    for _ in 0..4 {
        h = grade(1, Some(&h), &down, &judge, 4, at(1));
        levels.push(h.health);
    }
    use Health::*;
    assert_eq!(levels, [Ok, OkInfo, OkWarn, OkCritical, Fail]);
    assert_eq!(grade(1, Some(&h), &ok, &judge, 4, at(2)).health, Ok);
    // A refused connection is FAIL at once (the process is gone).
    let refused = grade(
        1,
        None,
        &Probe::Refused("Connection refused".into()),
        &judge,
        4,
        at(3),
    );
    assert_eq!((refused.health, refused.gone), (Fail, true));
    // D-17: a hung query is a probe outcome like any other (the prober bounds every step).
    let hung = grade(
        1,
        None,
        &Probe::QueryFailed("query timed out after 200 ms".into()),
        &judge,
        4,
        at(3),
    );
    assert_eq!(
        (hung.health, hung.failure),
        (OkInfo, Some(FailureKind::Online))
    );
}

#[test]
fn d20_d21_members_change_only_by_committed_command_with_defined_effects() {
    let (mut pools, name) = pool_of(&[A, S, FOFF]);
    // Removing the ACTIVE is refused with the remedy.
    let err = pools
        .apply(&PoolCommand::Configure {
            name: name.clone(),
            changes: vec![SettingChange::Members(vec![db(2), db(3)])],
            at: at(1),
        })
        .unwrap_err();
    assert!(err.contains("db1:3306 is ACTIVE: switch over"), "{err}");
    // Reordering changes TYPE with the order; removed members leave; new ones start UNKNOWN.
    pools
        .apply(&PoolCommand::Configure {
            name: name.clone(),
            changes: vec![SettingChange::Members(vec![db(2), db(1), db(4)])],
            at: at(2),
        })
        .unwrap();
    let p = &pools.pools[&name];
    let shape: Vec<_> = p
        .members
        .iter()
        .map(|m| (m.server.host.as_str(), m.kind, m.state))
        .collect();
    use proto::PoolType::*;
    assert_eq!(
        shape,
        [
            ("db2", Primary, S),
            ("db1", Secondary, A),
            ("db4", Secondary, U)
        ]
    );
    let last: Vec<_> = pools
        .history
        .iter()
        .rev()
        .take(2)
        .map(|e| (e.server.host.clone(), e.from, e.to))
        .collect();
    assert!(last.contains(&("db3".into(), Some(FOFF), None)), "{last:?}");
    assert!(last.contains(&("db4".into(), None, Some(U))), "{last:?}");
}

#[test]
fn bad_operator_input_is_refused_and_changes_nothing() {
    let (pools, name) = pool_of(&[A, S]);
    let cases: Vec<(PoolCommand, &str)> = vec![
        (
            PoolCommand::Init {
                name: "solo".into(),
                primary: db(1),
                secondaries: vec![],
                settings: Settings::default(),
                at: at(1),
            },
            "at least one SECONDARY",
        ),
        (
            PoolCommand::Init {
                name: "dup".into(),
                primary: db(1),
                secondaries: vec![db(1)],
                settings: Settings::default(),
                at: at(1),
            },
            "listed twice",
        ),
        (
            PoolCommand::Init {
                name: name.clone(),
                primary: db(5),
                secondaries: vec![db(6)],
                settings: Settings::default(),
                at: at(1),
            },
            "exists already",
        ),
        (
            PoolCommand::Init {
                name: "a b".into(),
                primary: db(5),
                secondaries: vec![db(6)],
                settings: Settings::default(),
                at: at(1),
            },
            "pool name",
        ),
        (
            PoolCommand::Recover {
                target: RecoverTarget::Server(db(2)),
                at: at(1),
            },
            "is not FAILED (STANDBY in app): nothing to recover",
        ),
        (
            PoolCommand::Recover {
                target: RecoverTarget::Server(db(9)),
                at: at(1),
            },
            "db9:3306 is in no pool",
        ),
        (
            PoolCommand::Recover {
                target: RecoverTarget::Pool("nope".into()),
                at: at(1),
            },
            "no pool named \"nope\"",
        ),
        (
            PoolCommand::ManualSet {
                name: name.clone(),
                server: db(2),
                state: Some(A),
                status: None,
                at: at(1),
            },
            "is not paused",
        ),
        (
            PoolCommand::Handover {
                name: name.clone(),
                to: None,
                at: at(1),
            },
            "PRIMARY SERVER db1:3306 IS NOT READY",
        ),
        (
            PoolCommand::Handover {
                name: name.clone(),
                to: Some(db(9)),
                at: at(1),
            },
            "not a member of pool app",
        ),
        (
            PoolCommand::Pause {
                name: name.clone(),
                paused: false,
                at: at(1),
            },
            "running already",
        ),
    ];
    for (cmd, want) in cases {
        let mut after = pools.clone();
        let err = after.apply(&cmd).unwrap_err();
        assert!(err.contains(want), "{cmd:?}: {err}");
        assert_eq!(after, pools, "{cmd:?} changed something");
    }
    assert!(crate::parse_addr("db1").is_err());
    assert!(crate::parse_addr("db1:0").is_err());
    assert!(crate::parse_addr("db1:99999").is_err());
    assert!(crate::parse_addr(":3306").is_err());
    assert_eq!(crate::parse_addr("db1:3306"), Ok(db(1)));
    assert!(SettingChange::parse("fencing=maybe").is_err());
    assert!(SettingChange::parse("colour=blue")
        .unwrap_err()
        .contains("unknown pool setting"));
}

#[test]
fn epoch_grows_exactly_when_the_active_changes_and_history_records_it() {
    let (mut pools, name) = pool_of(&[U, U]);
    let mut epochs = Vec::new();
    for obs in [
        [Obs::Ro, Obs::Ro],
        [Obs::Rw, Obs::Ro],
        [Obs::Gone, Obs::Ro],
        [Obs::Gone, Obs::Rw],
    ] {
        let cur = pools.pools[&name].clone();
        let next = step(&cur, &obs);
        if next != cur {
            pools
                .apply(&PoolCommand::Decided {
                    name: name.clone(),
                    revision: cur.revision,
                    next,
                    at: at(5),
                })
                .unwrap();
        }
        epochs.push(pools.pools[&name].epoch);
    }
    assert_eq!(epochs, [1, 1, 2, 2]);
    let to: Vec<_> = pools
        .history
        .iter()
        .map(|e| (e.server.host.clone(), e.to, e.epoch))
        .collect();
    assert_eq!(
        to[to.len() - 2..],
        [("db1".into(), Some(FOFF), 2), ("db2".into(), Some(A), 2)]
    );
}

#[test]
fn lease_fencing_duty() {
    let (mut pools, name) = pool_of(&[A, S]);
    pools.pools.get_mut(&name).unwrap().epoch = 3;
    let lease = std::time::Duration::from_millis(500);
    let ms = std::time::Duration::from_millis;
    let fenced = health(Obs::Ro);
    let writable = health(Obs::Rw);
    let all_fenced = |_: &ServerKey| Seen {
        health: fenced.as_ref(),
        cut_off: false,
        registered: true,
    };
    let desired = |pools: &Pools, server: usize, no_quorum| {
        fence::desired(pools, &db(server), &all_fenced, no_quorum, lease)
    };
    assert!(matches!(
        desired(&pools, 1, None),
        Some(Want::Writable { epoch: 3, .. })
    ));
    assert!(matches!(
        desired(&pools, 1, Some(ms(499))),
        Some(Want::Writable { .. })
    ));
    assert!(matches!(
        desired(&pools, 1, Some(ms(500))),
        Some(Want::ReadOnly(_))
    ));
    assert!(matches!(desired(&pools, 2, None), Some(Want::ReadOnly(_))));
    assert_eq!(
        desired(&pools, 7, Some(ms(900))),
        None,
        "not in a pool: left alone"
    );
    // The ACTIVE stays read-only while another member may be writable (after an operator's
    // `set`, or a member restarted writable) until that one's gcsd has fenced it.
    let other_writable = |k: &ServerKey| Seen {
        health: if *k == db(2) {
            writable.as_ref()
        } else {
            fenced.as_ref()
        },
        cut_off: false,
        registered: true,
    };
    assert_eq!(
        fence::desired(&pools, &db(1), &other_writable, None, lease),
        Some(Want::ReadOnly(
            "another member of its pool may still be writable"
        ))
    );
    pools.pools.get_mut(&name).unwrap().settings.fencing = false;
    assert_eq!(desired(&pools, 2, None), None);
    use CatchUp::*;
    assert_eq!(fence::catch_up(true, ms(0), ms(10), false), Unfence);
    assert_eq!(fence::catch_up(false, ms(5), ms(10), false), Wait);
    assert_eq!(fence::catch_up(false, ms(10), ms(10), false), GiveUp);
    assert_eq!(fence::catch_up(false, ms(10), ms(10), true), Unfence);
}

#[test]
fn a_hung_server_is_killed_only_when_it_may_be_writable() {
    let (mut pools, name) = pool_of(&[A, S]);
    let hung = |ro| ServerHealth {
        read_only: ro,
        ..health(Obs::Hung).unwrap()
    };
    assert!(fence::must_kill(&pools, &db(1), &hung(Some(false)), true));
    assert!(
        fence::must_kill(&pools, &db(1), &hung(None), true),
        "never seen: may be writable"
    );
    assert!(
        !fence::must_kill(&pools, &db(2), &hung(Some(true)), true),
        "a fenced STANDBY is harmless"
    );
    assert!(
        !fence::must_kill(&pools, &db(1), &hung(Some(false)), false),
        "refused or failing, not hung"
    );
    let degraded = ServerHealth {
        health: Health::OkWarn,
        ..hung(Some(false))
    };
    assert!(
        !fence::must_kill(&pools, &db(1), &degraded, true),
        "not FAIL yet"
    );
    assert!(
        !fence::must_kill(&pools, &db(9), &hung(Some(false)), true),
        "in no pool"
    );
    pools.pools.get_mut(&name).unwrap().settings.fencing = false;
    assert!(
        !fence::must_kill(&pools, &db(1), &hung(Some(false)), true),
        "fencing off"
    );
}

#[test]
fn the_local_socket_fences_only_a_server_whose_address_cannot_be_reached() {
    let fence = Want::ReadOnly("lease expired: no quorum");
    let writable = Want::Writable {
        pool: "app".into(),
        epoch: 1,
        catch_up: None,
        hostile_takeover: false,
        catch_up_timeout: std::time::Duration::from_millis(10),
    };
    let why = || "no".to_owned();
    for (probe, want, expected, case) in [
        (
            Probe::Unreachable(why()),
            Some(&fence),
            true,
            "interface or address gone",
        ),
        (
            Probe::Refused(why()),
            Some(&fence),
            true,
            "nothing listens at the address",
        ),
        (
            Probe::Hung(why()),
            Some(&fence),
            false,
            "hung: no answer on the socket either",
        ),
        (
            Probe::QueryFailed(why()),
            Some(&fence),
            false,
            "reached: its own session",
        ),
        (
            Probe::Answered(ProbeFacts::default()),
            Some(&fence),
            false,
            "answered",
        ),
        (
            Probe::Unreachable(why()),
            Some(&writable),
            false,
            "never to make it writable",
        ),
        (Probe::Unreachable(why()), None, false, "no duty"),
    ] {
        assert_eq!(
            fence::over_socket(&probe, want).is_some(),
            expected,
            "{case}"
        );
    }
}

#[test]
fn gtid_catch_up() {
    assert!(caught_up("0-1-10", "0-1-10"));
    assert!(caught_up("0-2-12,1-1-3", "0-1-10"));
    assert!(!caught_up("0-2-9", "0-1-10"));
    assert!(!caught_up("1-1-100", "0-1-10"), "a domain it has not seen");
    assert!(caught_up("0-1-1", ""), "nothing required");
    assert!(!caught_up("garbage", "0-1-1"));
}

#[test]
fn state_round_trips_through_json() {
    let (mut pools, _) = pool_of(&[A, S]);
    pools.health.insert(db(1), health(Obs::Rw).unwrap());
    let text = serde_json::to_string(&pools).unwrap();
    assert_eq!(serde_json::from_str::<Pools>(&text).unwrap(), pools);
}

#[test]
fn deleting_a_pool_removes_it_and_says_so_in_the_history() {
    let (mut pools, name) = pool_of(&[A, S]);
    pools
        .apply(&PoolCommand::Delete {
            name: name.clone(),
            at: at(9),
        })
        .unwrap();
    assert!(pools.pools.is_empty());
    let last: Vec<_> = pools
        .history
        .iter()
        .rev()
        .take(2)
        .map(|e| (e.server.host.clone(), e.from, e.to, e.reason.clone()))
        .collect();
    assert_eq!(
        last,
        [
            ("db2".into(), Some(S), None, "pool deleted".into()),
            ("db1".into(), Some(A), None, "pool deleted".into())
        ]
    );
    let err = pools
        .apply(&PoolCommand::Delete { name, at: at(10) })
        .unwrap_err();
    assert_eq!(err, "no pool named \"app\"");
}

#[test]
fn a_server_joins_its_first_pool_with_a_clean_slate() {
    let mut pools = Pools::default();
    // Failures from before any pool (say, while it was being set up) are dropped.
    pools.health.insert(db(2), health(Obs::Broken).unwrap());
    pools.health.insert(db(3), health(Obs::Broken).unwrap());
    pools
        .apply(&PoolCommand::Init {
            name: "app".into(),
            primary: db(1),
            secondaries: vec![db(2)],
            settings: Settings::default(),
            at: at(0),
        })
        .unwrap();
    assert!(!pools.health.contains_key(&db(2)));
    pools
        .apply(&PoolCommand::Configure {
            name: "app".into(),
            changes: vec![SettingChange::Members(vec![db(1), db(2), db(3)])],
            at: at(1),
        })
        .unwrap();
    assert!(!pools.health.contains_key(&db(3)));
    // A server already in another pool keeps its report.
    pools.health.insert(db(2), health(Obs::Broken).unwrap());
    pools
        .apply(&PoolCommand::Init {
            name: "other".into(),
            primary: db(2),
            secondaries: vec![db(4)],
            settings: Settings::default(),
            at: at(2),
        })
        .unwrap();
    assert!(pools.health.contains_key(&db(2)));
}

#[test]
fn load_balancer_checks() {
    use crate::verdict::{check, Ask, Local, Refusal, Request, Standing};
    let (mut pools, _) = pool_of(&[A, S]);
    let standing = |no_quorum| Standing {
        no_quorum,
        now: at(100),
        hold: std::time::Duration::from_millis(400),
    };
    pools.health.insert(db(1), health(Obs::Rw).unwrap());
    pools.health.insert(db(2), health(Obs::Ro).unwrap());
    let local = |n: usize, lag: Option<u64>| Local {
        server: db(n),
        answered: true,
        lag_secs: lag,
    };
    let pass = |r: Result<String, Refusal>| r.is_ok();
    let primary = Ask::Primary;
    let replica = |max_lag| Ask::Replica { max_lag };
    /// What, pool, locals, no quorum, ask, passes.
    type Row<'a> = (
        &'a str,
        Option<&'a str>,
        Vec<Local>,
        Option<&'a str>,
        Ask,
        bool,
    );
    let rows: Vec<Row> = vec![
        (
            "the ACTIVE's member, with quorum",
            None,
            vec![local(1, None)],
            None,
            primary.clone(),
            true,
        ),
        (
            "the ACTIVE's member, in that pool",
            Some("app"),
            vec![local(1, None)],
            None,
            primary.clone(),
            true,
        ),
        (
            "the ACTIVE's member without quorum never claims a writer",
            None,
            vec![local(1, None)],
            Some("no leader"),
            primary.clone(),
            false,
        ),
        (
            "a STANDBY is no primary",
            None,
            vec![local(2, Some(0))],
            None,
            primary.clone(),
            false,
        ),
        (
            "a STANDBY is a replica",
            None,
            vec![local(2, Some(0))],
            None,
            replica(None),
            true,
        ),
        (
            "a STANDBY within the lag",
            None,
            vec![local(2, Some(3))],
            None,
            replica(Some(5)),
            true,
        ),
        (
            "a STANDBY too far behind",
            None,
            vec![local(2, Some(30))],
            None,
            replica(Some(5)),
            false,
        ),
        (
            "a STANDBY of unknown lag, when a lag is asked",
            None,
            vec![local(2, None)],
            None,
            replica(Some(5)),
            false,
        ),
        (
            "the ACTIVE is no replica",
            None,
            vec![local(1, None)],
            None,
            replica(None),
            false,
        ),
        (
            "a member without servers",
            None,
            vec![],
            None,
            Ask::Health,
            false,
        ),
        (
            "health: the server answers",
            None,
            vec![local(2, None)],
            None,
            Ask::Health,
            true,
        ),
    ];
    let request = |pool: Option<&str>, ask: Ask| Request {
        ask,
        pool: pool.map(str::to_owned),
        server: None,
    };
    for (what, pool, locals, no_quorum, ask, want) in rows {
        let got = check(&pools, &request(pool, ask), &locals, &standing(no_quorum));
        assert_eq!(pass(got.clone()), want, "{what}: {got:?}");
    }
    assert_eq!(
        check(
            &pools,
            &request(Some("nope"), Ask::Primary),
            &[local(1, None)],
            &standing(None)
        ),
        Err(Refusal::UnknownPool("no pool named \"nope\"".into()))
    );
    // A check about one server of a member with several.
    let both = [local(1, None), local(2, Some(0))];
    let about = |n: usize, ask: Ask| Request {
        server: Some(db(n)),
        ..request(None, ask)
    };
    assert!(check(&pools, &about(1, Ask::Primary), &both, &standing(None)).is_ok());
    assert!(check(&pools, &about(2, Ask::Primary), &both, &standing(None)).is_err());
    assert!(check(&pools, &about(2, replica(None)), &both, &standing(None)).is_ok());
    assert_eq!(
        check(&pools, &about(3, Ask::Health), &both, &standing(None)),
        Err(Refusal::No(format!(
            "{} is not a server of this member",
            crate::addr(&db(3))
        )))
    );
    let silent = Local {
        answered: false,
        ..local(2, None)
    };
    assert!(check(
        &pools,
        &request(None, Ask::Health),
        &[silent],
        &standing(None)
    )
    .is_err());
    assert_eq!(
        check(
            &pools,
            &request(None, Ask::Primary),
            &[local(2, None)],
            &standing(None)
        ),
        Err(Refusal::No(
            "not the ACTIVE: db2:3306 is STANDBY in app".into()
        ))
    ); // A new ACTIVE is the writer only once the hold is over.
    pools.pools.get_mut("app").unwrap().active_since =
        Some(at(100) - chrono::Duration::milliseconds(150));
    assert_eq!(
        check(&pools, &request(None, Ask::Primary), &[local(1, None)], &standing(None)),
        Err(Refusal::No(
            "db1:3306 became the ACTIVE of app 150 ms ago; it is the writer once the hold of 400 ms is over (primary_hold_ms)".into()
        ))
    );
    pools.pools.get_mut("app").unwrap().active_since =
        Some(at(100) - chrono::Duration::milliseconds(400));
    assert!(check(
        &pools,
        &request(None, Ask::Primary),
        &[local(1, None)],
        &standing(None)
    )
    .is_ok());
}

/// HAProxy's agent-send lines, and the replies: a role, then options in any order; anything else
/// is a `down` that says what was expected.
#[test]
fn agent_check_lines() {
    use crate::verdict::{agent_reply, Ask, Refusal, Request};
    let ok = |line: &str, ask: Ask, pool: Option<&str>, server: Option<usize>| {
        assert_eq!(
            Request::parse_agent(line),
            Ok(Request {
                ask,
                pool: pool.map(str::to_owned),
                server: server.map(db),
            }),
            "{line:?}"
        );
    };
    ok("primary\n", Ask::Primary, None, None);
    ok("primary pool=app", Ask::Primary, Some("app"), None);
    ok(
        &format!("replica server={} lag=5 pool=app\r\n", crate::addr(&db(2))),
        Ask::Replica { max_lag: Some(5) },
        Some("app"),
        Some(2),
    );
    ok("health", Ask::Health, None, None);
    for (line, says) in [
        ("", "empty agent-send line"),
        ("   \n", "empty agent-send line"),
        ("writer", "unknown role \"writer\""),
        ("primary pool=", "unexpected \"pool=\""),
        ("primary lag=5", "unexpected \"lag=5\""),
        ("replica lag=soon", "lag=\"soon\" is not a number"),
        ("primary server=db1", "is not HOST:PORT"),
        ("primary pool=app extra", "unexpected \"extra\""),
        ("\u{0}\u{1}garbage\u{7f}", "unknown role"),
    ] {
        let err = Request::parse_agent(line).unwrap_err();
        assert!(err.contains(says), "{line:?}: {err}");
        assert!(
            err.contains("expected: primary|replica|health")
                || err.contains("HOST:PORT")
                || err.contains("number"),
            "{err}"
        );
    }
    assert_eq!(
        agent_reply(&Ok("x is the ACTIVE".into())),
        "up # x is the ACTIVE\n"
    );
    assert_eq!(
        agent_reply(&Err(Refusal::No("not\nthe ACTIVE".into()))),
        "down # not the ACTIVE\n"
    );
    assert_eq!(
        agent_reply(&Err(Refusal::UnknownPool("no pool named \"x\"".into()))),
        "down # no pool named \"x\"\n"
    );
    let long = agent_reply(&Err(Refusal::No("y".repeat(1000))));
    assert!(long.len() < 220 && long.ends_with('\n'), "{long}");
}

/// What a member pushes into HAProxy for each pool member, by role, state, health and whether
/// it can vouch for the committed state.
#[test]
fn runtime_push_states() {
    use crate::push::{desired, AdminState::*, Role};
    let (mut pools, name) = pool_of(&[A, S, S, FON]);
    let graded = |h: Health| ServerHealth {
        health: h,
        ..health(Obs::Ro).unwrap()
    };
    pools.health.insert(db(2), graded(Health::OkWarn));
    pools.health.insert(db(3), graded(Health::OkCritical));
    pools.health.insert(db(4), graded(Health::Fail));
    // server, role, vouch, wanted
    let rows = [
        (1, Role::Primary, true, Some(Ready)),
        (1, Role::Primary, false, Some(Maint)),
        (2, Role::Primary, true, Some(Maint)),
        (4, Role::Primary, true, Some(Maint)),
        (1, Role::Replica, true, Some(Maint)),
        (2, Role::Replica, true, Some(Ready)),
        (2, Role::Replica, false, Some(Ready)),
        (3, Role::Replica, true, Some(Drain)),
        (4, Role::Replica, true, Some(Maint)),
        (5, Role::Primary, true, None),
    ];
    for (n, role, vouch, want) in rows {
        assert_eq!(
            desired(&pools, &name, role, &db(n), vouch),
            want,
            "db{n} {role:?} vouch={vouch}"
        );
    }
    assert_eq!(desired(&pools, "nope", Role::Primary, &db(1), true), None);
    // A STANDBY never probed yet takes no reads; one the operator set while paused does.
    pools.health.remove(&db(2));
    assert_eq!(
        desired(&pools, &name, Role::Replica, &db(2), true),
        Some(Maint)
    );
    pools.pools.get_mut("app").unwrap().members[1].status_override = Some(Health::Ok);
    assert_eq!(
        desired(&pools, &name, Role::Replica, &db(2), true),
        Some(Ready)
    );
}

/// A failover's push: the old writer is taken out before the new one is let in, and nothing
/// already right is sent again.
#[test]
fn runtime_push_plan() {
    use crate::push::{plan, AdminState::*};
    use std::collections::BTreeMap;
    let map = |rows: &[(&'static str, crate::push::AdminState)]| -> BTreeMap<_, _> {
        rows.iter().copied().collect()
    };
    let current = map(&[("w/db1", Ready), ("w/db2", Maint), ("r/db2", Ready)]);
    let want = map(&[
        ("w/db1", Maint),
        ("w/db2", Ready),
        ("r/db2", Drain),
        ("r/db3", Ready),
    ]);
    assert_eq!(
        plan(&want, &current),
        vec![
            ("w/db1", Maint),
            ("r/db2", Drain),
            ("r/db3", Ready),
            ("w/db2", Ready)
        ]
    );
    assert!(plan(&want, &want).is_empty());
}

/// A pool whose ACTIVE failed over: two transitions, each with a pending hook.
fn failed_over() -> Pools {
    let (mut pools, _) = pool_of(&[A, S]);
    assert!(pools
        .history
        .iter()
        .all(|e| e.hook == crate::HookState::Pending));
    for e in &mut pools.history {
        e.hook = crate::HookState::None;
    }
    let mut next = pools.pools["app"].clone();
    next.members[0].state = FOFF;
    next.members[1].state = A;
    pools
        .apply(&PoolCommand::Decided {
            name: "app".into(),
            revision: next.revision,
            next,
            at: at(5),
        })
        .unwrap();
    pools
}

fn hook(pools: &mut Pools, seq: u64, member: u64, step: crate::HookStep) -> Result<(), String> {
    pools.apply(&PoolCommand::Hook {
        seq,
        member,
        step,
        at: at(6),
    })
}

/// Hooks: which duty the leader has, by the entries' hook states.
#[test]
fn hook_duties() {
    use crate::hooks::duties;
    use crate::{HookDuty, HookState, HookStep::*};
    use std::time::Duration;
    let mut pools = failed_over();
    let seqs: Vec<u64> = pools
        .history
        .iter()
        .filter(|e| e.hook == HookState::Pending)
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs.len(), 2, "{:?}", pools.history);
    let (first, second) = (seqs[0], seqs[1]);
    let patience = Duration::from_secs(7);
    let up = |_: u64| false;
    let down = |m: u64| m == 1;
    let d = |p: &Pools, me, configured, here, is_down: &dyn Fn(u64) -> bool, secs| {
        duties(p, me, configured, here, is_down, at(secs), patience)
    };
    assert_eq!(
        d(&pools, 2, true, None, &up, 6),
        vec![HookDuty::Run(first)],
        "one at a time, in order"
    );
    assert_eq!(
        d(&pools, 2, false, None, &up, 6),
        vec![HookDuty::Skip(first), HookDuty::Skip(second)]
    );

    hook(&mut pools, first, 1, Claim).unwrap();
    assert!(hook(&mut pools, first, 2, Claim).is_err(), "a second claim");
    assert_eq!(
        d(&pools, 1, true, Some(first), &up, 7),
        vec![],
        "running here"
    );
    assert_eq!(
        d(&pools, 1, true, None, &up, 7),
        vec![HookDuty::Abandon { seq: first, by: 1 }],
        "claimed here before a restart"
    );
    assert_eq!(
        d(&pools, 2, true, None, &up, 7),
        vec![],
        "the old leader may still report"
    );
    assert_eq!(
        d(&pools, 2, true, None, &down, 7),
        vec![HookDuty::Abandon { seq: first, by: 1 }]
    );
    assert_eq!(
        d(&pools, 2, true, None, &up, 20),
        vec![HookDuty::Abandon { seq: first, by: 1 }],
        "silent past its timeout"
    );

    assert!(
        hook(
            &mut pools,
            first,
            2,
            Finish {
                ok: true,
                outcome: "x".into()
            }
        )
        .is_err(),
        "not its claim"
    );
    hook(&mut pools, first, 1, Abandon { by: 1 }).unwrap();
    assert!(
        hook(
            &mut pools,
            first,
            1,
            Finish {
                ok: true,
                outcome: "late".into()
            }
        )
        .is_err(),
        "a report after the abandon is refused"
    );
    let e = pools.history.iter().find(|e| e.seq == first).unwrap();
    assert_eq!(
        e.hook.describe(),
        "interrupted: member 1 stopped before it reported; not run again"
    );
    assert_eq!(
        d(&pools, 2, true, None, &up, 8),
        vec![HookDuty::Run(second)]
    );
    hook(&mut pools, second, 2, Claim).unwrap();
    hook(
        &mut pools,
        second,
        2,
        Finish {
            ok: false,
            outcome: "exit 3".into(),
        },
    )
    .unwrap();
    assert_eq!(d(&pools, 2, true, None, &up, 9), vec![]);
    assert!(hook(&mut pools, second, 2, Skip).is_err());
    assert!(hook(&mut pools, 999, 2, Claim).is_err());
}

/// Leaders that come and go at every step: every transition's hook ends `Done`, and none is
/// run twice (each run needs a granted claim, and a claim is granted once).
#[test]
fn hooks_run_at_most_once_and_none_is_skipped_across_leader_changes() {
    use crate::hooks::duties;
    use crate::{HookDuty, HookState, HookStep};
    use std::collections::BTreeMap;
    use std::time::Duration;
    for crash_every in 1..6u64 {
        let mut pools = failed_over();
        let mut runs: BTreeMap<u64, u32> = BTreeMap::new();
        let (mut leader, mut running, mut step) = (1u64, None::<u64>, 0u64);
        let mut down = vec![];
        while pools
            .history
            .iter()
            .any(|e| !matches!(e.hook, HookState::Done { .. } | HookState::None))
        {
            step += 1;
            assert!(step < 100, "no progress: {:?}", pools.history);
            if step % crash_every == 0 {
                // The leader dies (its running hook, if any, with it); the next one takes over.
                down.push(leader);
                leader = leader % 3 + 1;
                running = None;
            }
            let is_down = |m: u64| down.contains(&m) && m != leader;
            if let Some(seq) = running.take() {
                hook(
                    &mut pools,
                    seq,
                    leader,
                    HookStep::Finish {
                        ok: true,
                        outcome: "ok".into(),
                    },
                )
                .unwrap();
                continue;
            }
            let now = at(10 + step as i64);
            for duty in duties(
                &pools,
                leader,
                true,
                running,
                &is_down,
                now,
                Duration::from_secs(5),
            ) {
                match duty {
                    HookDuty::Run(seq) => {
                        if hook(&mut pools, seq, leader, HookStep::Claim).is_ok() {
                            *runs.entry(seq).or_default() += 1;
                            running = Some(seq);
                        }
                    }
                    HookDuty::Abandon { seq, by } => {
                        hook(&mut pools, seq, leader, HookStep::Abandon { by }).unwrap()
                    }
                    HookDuty::Skip(_) => unreachable!("configured"),
                }
            }
        }
        assert!(
            runs.values().all(|&n| n == 1),
            "crash every {crash_every}: {runs:?}"
        );
    }
}
