//! The `pool_apply` fuzz target's check (`pool::checks`), on stable: random sequences of pool
//! commands, as log entries carry them.

use chrono::DateTime;
use pool::{PoolCommand, ServerHealth, Settings};
use proptest::prelude::*;
use proptest::sample::select;
use proto::{Health, PoolState, ServerKey};

fn server() -> impl Strategy<Value = ServerKey> {
    (1..=4u8).prop_map(|i| ServerKey::new(format!("db{i}"), "3306"))
}

fn name() -> impl Strategy<Value = String> {
    select(vec!["app".to_owned(), "other".to_owned()])
}

fn health() -> impl Strategy<Value = ServerHealth> {
    (
        1..=3u64,
        select(vec![Health::Ok, Health::OkWarn, Health::Fail]),
        0..5u32,
        any::<bool>(),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(member, health, failures, gone, read_only)| ServerHealth {
            health,
            failures,
            gone,
            read_only,
            ..ServerHealth::clean_replica(member, DateTime::from_timestamp(0, 0).unwrap())
        })
}

fn command() -> impl Strategy<Value = PoolCommand> {
    let at = (0..1000i64).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap());
    prop_oneof![
        (
            name(),
            server(),
            proptest::collection::vec(server(), 0..3),
            at.clone()
        )
            .prop_map(|(name, primary, secondaries, at)| PoolCommand::Init {
                name,
                primary,
                secondaries,
                settings: Settings::default(),
                at,
            }),
        (name(), any::<bool>(), at.clone()).prop_map(|(name, paused, at)| PoolCommand::Pause {
            name,
            paused,
            at
        }),
        (name(), proptest::option::of(server()), at.clone())
            .prop_map(|(name, to, at)| PoolCommand::Handover { name, to, at }),
        (
            name(),
            server(),
            proptest::option::of(select(vec![
                PoolState::Active,
                PoolState::Standby,
                PoolState::FailedOffline,
            ])),
            at.clone()
        )
            .prop_map(|(name, server, state, at)| PoolCommand::ManualSet {
                name,
                server,
                state,
                status: None,
                at,
            }),
        (name(), at).prop_map(|(name, at)| PoolCommand::Delete { name, at }),
        proptest::collection::vec((server(), health()), 1..3)
            .prop_map(|reports| PoolCommand::Observe { reports }),
    ]
}

proptest! {
    #[test]
    fn fuzz_check_pool_commands(commands in proptest::collection::vec(command(), 0..12)) {
        let json = serde_json::to_vec(&commands).unwrap();
        pool::checks::check_pool_commands(&json);
    }

    #[test]
    fn fuzz_check_pool_commands_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        pool::checks::check_pool_commands(&bytes);
    }
}
