//! Hooks with real processes: `on_transition` runs exactly once per committed transition, also
//! when the leader running it is killed; `pre_promote` vetoes a failover until it agrees; a hook
//! past its timeout is killed; a hook that cannot run is reported. Every outcome is in the
//! history.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

/// The transition hook: records the event first (so a hook that outlives a killed gcsd is still
/// counted), then works for a while; `slow` makes it outlast its timeout.
const ON_TRANSITION: &str = r#"#!/bin/sh
echo "$GCS_EVENT_ID $GCS_POOL $GCS_SERVER $GCS_OLD_STATE>$GCS_NEW_STATE epoch=$GCS_EPOCH member=$GCS_MEMBER" >> "$DIR/ran"
echo "transition $GCS_EVENT_ID: $GCS_SERVER $GCS_OLD_STATE -> $GCS_NEW_STATE"
if [ -e "$DIR/slow" ]; then sleep 30; fi
sleep 0.3
"#;

/// Vetoes while `veto` exists.
const PRE_PROMOTE: &str = r#"#!/bin/sh
if [ -e "$DIR/veto" ]; then echo "cannot fence $GCS_OLD_ACTIVE before $GCS_SERVER takes over"; exit 1; fi
echo "$GCS_POOL $GCS_SERVER epoch=$GCS_EPOCH" >> "$DIR/promoted"
"#;

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body.replace("$DIR", &dir.display().to_string())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Every history entry with a hook: (seq, the hook's description).
fn hooks_of(lab: &Lab, m: usize) -> Vec<(u64, String)> {
    let raw = lab.gcsctl_ok(m, &["history", "app", "--json"]);
    let v: Value = serde_json::from_str(&raw).unwrap();
    v["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["hook"].as_str().unwrap_or("").is_empty())
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["hook"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn settled(hooks: &[(u64, String)]) -> bool {
    hooks
        .iter()
        .all(|(_, h)| h != "pending" && !h.starts_with("running"))
}

/// How many times each event id was run, from the hook's own record.
fn runs(dir: &Path) -> BTreeMap<u64, usize> {
    let mut runs = BTreeMap::new();
    for line in std::fs::read_to_string(dir.join("ran"))
        .unwrap_or_default()
        .lines()
    {
        let seq: u64 = line.split(' ').next().unwrap().parse().unwrap();
        *runs.entry(seq).or_default() += 1;
    }
    runs
}

fn wait_settled(lab: &Lab, m: usize) -> Vec<(u64, String)> {
    wait_for("every hook to finish", WITHIN * 2, || {
        let hooks = hooks_of(lab, m);
        settled(&hooks).then_some(hooks)
    })
}

#[test]
fn hooks_run_exactly_once_across_a_leader_kill_and_pre_promote_vetoes() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let on_transition = script(dir.path(), "on-transition", ON_TRANSITION);
    let pre_promote = script(dir.path(), "pre-promote", PRE_PROMOTE);
    let config = format!(
        "[hooks]\non_transition = {on_transition:?}\npre_promote = {pre_promote:?}\ntimeout_ms = 2000\n"
    );
    let (mut lab, sampler) = Lab::with_member_config(3, &|_, _| config.clone()).with_pool(0);
    let hooks = wait_settled(&lab, 0);
    assert!(hooks.len() >= 4, "pool defined and instated: {hooks:?}");
    assert!(
        hooks.iter().all(|(_, h)| h.starts_with("ok: exit 0")),
        "{hooks:?}"
    );
    assert!(lab
        .gcsctl_ok(2, &["history", "app"])
        .contains("    hook: ok: exit 0 after"));

    // pre_promote vetoes the failover: nothing is promoted, the veto is in the history, and
    // the promotion goes through once the hook agrees.
    std::fs::write(dir.path().join("veto"), "").unwrap();
    lab.dbs[0].kill9();
    wait_for("the veto in the history", WITHIN, || {
        lab.gcsctl_ok(1, &["history", "app"])
            .contains("Promotion to ACTIVE vetoed by pre_promote: failed: exit 1")
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        lab.verdict(1, "app", 1).0,
        "STANDBY",
        "vetoed: not promoted"
    );
    assert!(lab.read_only(1));
    let vetoes = lab
        .gcsctl_ok(1, &["history", "app"])
        .matches("vetoed by pre_promote")
        .count();
    assert_eq!(
        vetoes, 1,
        "one note for the same veto, however often it is tried"
    );

    // The veto lifted: the failover commits; the leader is killed while its hooks run.
    let before = runs(dir.path()).len();
    std::fs::remove_file(dir.path().join("veto")).unwrap();
    lab.wait_state("app", 1, "ACTIVE", &[1, 2]);
    let leader = lab.gcsds[1].leader().expect("a leader") as usize - 1;
    wait_for(
        "the leader to start the failover's first hook",
        WITHIN,
        || (runs(dir.path()).len() > before).then_some(()),
    );
    lab.gcsds[leader].kill9();
    let other = (leader + 1) % 3;
    std::thread::sleep(Duration::from_millis(500));
    lab.gcsds[leader].launch();
    let hooks = wait_settled(&lab, other);
    let ran = runs(dir.path());
    for (seq, hook) in &hooks {
        assert_eq!(
            ran.get(seq),
            Some(&1),
            "event {seq} ({hook}) ran {:?} times: {ran:?}",
            ran.get(seq)
        );
    }
    assert_eq!(
        ran.len(),
        hooks.len(),
        "a hook ran for an entry the history does not show: {ran:?} {hooks:?}"
    );
    eprintln!(
        "hooks after killing the leader (member {}): {hooks:?}",
        leader + 1
    );
    // The same history on every member.
    wait_for("every member to show the same hooks", WITHIN, || {
        (0..3).all(|m| hooks_of(&lab, m) == hooks).then_some(())
    });
    let promoted = std::fs::read_to_string(dir.path().join("promoted")).unwrap();
    assert!(
        promoted.contains(&format!("app {} epoch=", lab.addr(1))),
        "{promoted}"
    );

    // A hook past its timeout is killed, and says so.
    std::fs::write(dir.path().join("slow"), "").unwrap();
    lab.dbs[0].launch();
    lab.wait_replicating(0);
    wait_for("the old ACTIVE to report recovery", WITHIN, || {
        lab.gcsctl_ok(0, &["report", &lab.addr(0)])
            .contains("reporting recovery")
            .then_some(())
    });
    lab.gcsctl_ok(2, &["recover", &lab.addr(0)]);
    let hooks = wait_settled(&lab, 2);
    assert!(
        hooks
            .iter()
            .any(|(_, h)| h.starts_with("timed out after 2000 ms on member")),
        "{hooks:?}"
    );
    // A hook that cannot be run (made non-executable after start): reported, nothing else
    // changes.
    std::fs::remove_file(dir.path().join("slow")).unwrap();
    std::fs::set_permissions(&on_transition, std::fs::Permissions::from_mode(0o644)).unwrap();
    let db0 = lab.addr(0);
    lab.gcsctl_ok(2, &["pause", "app"]);
    lab.gcsctl_ok(
        2,
        &["set", &db0, "--pool", "app", "--state", "FAILED_ONLINE"],
    );
    let hooks = wait_settled(&lab, 2);
    assert!(
        hooks.last().unwrap().1.contains("Permission denied"),
        "{hooks:?}"
    );
    lab.gcsctl_ok(2, &["set", &db0, "--pool", "app", "--state", "STANDBY"]);
    lab.gcsctl_ok(2, &["resume", "app"]);

    // The history in SQL: the same on every server, hook outcomes included.
    let in_sql = |i: usize| -> Vec<(u64, String)> {
        lab.dbs[i]
            .sql(
                "SELECT SEQ, HOOK_OUTCOME FROM INFORMATION_SCHEMA.ISIS2IS_HISTORY \
                 WHERE ERRNO = 0 AND MPP_POOL = 'app' AND HOOK_OUTCOME <> '' ORDER BY SEQ",
            )
            .unwrap()
            .into_iter()
            .map(|r| (r[0].parse().unwrap(), r[1].clone()))
            .collect()
    };
    let started = Instant::now();
    loop {
        let hooks = hooks_of(&lab, 0);
        if settled(&hooks) && (0..3).all(|i| in_sql(i) == hooks) {
            break;
        }
        assert!(
            started.elapsed() < WITHIN * 2,
            "ISIS2IS_HISTORY differs from gcsctl history {hooks:?}: {:?}",
            (0..3).map(in_sql).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let transitions = lab.dbs[2].query_one(&format!(
        "SELECT COUNT(*) FROM INFORMATION_SCHEMA.ISIS2IS_HISTORY \
         WHERE MYSQL_PORT_OR_SOCKET = '{}' AND FROM_STATE = 'STANDBY' AND TO_STATE = 'ACTIVE'",
        lab.dbs[1].port
    ));
    assert_eq!(transitions, "1", "the failover, once");
    sampler.assert_never_two_writable();
}
