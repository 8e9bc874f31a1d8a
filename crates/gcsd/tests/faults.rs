//! Storage faults with real processes (as root): a member whose disk fills up ends cleanly with
//! exit code 74 and one log line, and the rest of the group goes on.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::history::History;
use common::{start_group, wait_for, Gcsd};

const WAIT: Duration = Duration::from_secs(10);

/// A tmpfs of `size`, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount (the fault tests run as root)");
        assert!(status.success(), "mount tmpfs: {status}");
        Tmpfs(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes a file until the filesystem is full.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.path().join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        // The last partial block, byte by byte.
        while f.write_all(&[0]).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// Member `victim` (1-based) gets a disk that fills up while member `via` takes joins: the
/// victim ends with exit code 74 and one log line; the other two go on committing.
fn disk_full(victim: u64, via: usize) {
    let disk = Tmpfs::mount("16m");
    let mut members = start_group(3, |g: Gcsd| {
        if g.id == victim {
            std::os::unix::fs::symlink(disk.path(), g.dir.path().join("data")).unwrap();
        }
        g
    });
    let v = victim as usize - 1;
    let other = (0..3).find(|&i| i != v && i != via).unwrap();
    disk.fill();
    let mut c = members[via].connect();
    let mut joined = 0;
    let status = wait_for("the member with the full disk to end", WAIT * 3, || {
        if c.cmd(&format!("join h{joined} 3306 on slave"))
            .starts_with("0 ")
        {
            joined += 1;
        }
        members[v].exited()
    });
    assert_eq!(status.code(), Some(74), "{}", members[v].log());
    let log = members[v].log();
    assert_eq!(
        log.matches("storage failure, this member stops").count(),
        1,
        "{log}"
    );
    // The two others still commit (after an election, if the victim led).
    wait_for("a join committed by the two others", WAIT, || {
        (c.cmd("join after 3306 on slave") == "0 OK\n").then_some(())
    });
    wait_for("the join at the third member", WAIT, || {
        members[other]
            .servers()
            .iter()
            .any(|s| s.contains("after"))
            .then_some(())
    });
    eprintln!("member {victim} ended after {joined} joins with {status}");
}

#[test]
fn a_follower_whose_disk_fills_up_exits_74_and_the_group_goes_on() {
    disk_full(3, 0);
}

#[test]
fn a_leader_whose_disk_fills_up_exits_74_and_the_group_goes_on() {
    // Member 1 founds the group and leads it.
    disk_full(1, 1);
}

/// How `raft.redb` is damaged.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// 64 random bytes in the middle of the file flipped.
    Flipped,
    /// Cut to half its length.
    Truncated,
    /// Its first 4 KiB zeroed (redb's header).
    ZeroedHeader,
}

/// A small deterministic generator (xorshift), so a failing seed can be replayed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn damage(file: &Path, how: Damage, seed: u64) {
    let mut bytes = std::fs::read(file).unwrap();
    let len = bytes.len();
    match how {
        Damage::Flipped => {
            let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            for _ in 0..64 {
                let at = len / 4 + (next(&mut state) as usize % (len / 2));
                bytes[at] ^= (next(&mut state) % 255 + 1) as u8;
            }
        }
        Damage::Truncated => bytes.truncate(len / 2),
        Damage::ZeroedHeader => bytes[..4096.min(len)].fill(0),
    }
    std::fs::write(file, bytes).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A member whose `raft.redb` was damaged (bytes flipped, cut to half, header zeroed; several
/// seeds each, GCSD_FAULT_SEEDS, default 5) either refuses to start, naming the store and the
/// remedy, or starts and then lists exactly what the group lists. It never serves another list
/// and never dies by a signal.
#[test]
fn corrupted_store_is_refused_or_recovers_never_diverges() {
    let seeds: u64 = std::env::var("GCSD_FAULT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let config = "snapshot_every_entries = 50\nserver_ttl_secs = 3600\n";
    let mut g = start_group(3, |m| m.with_config(config));
    for i in 0..120 {
        assert_eq!(g[i % 3].cmd(&format!("join db{i} 3306 on slave")), "0 OK\n");
    }
    wait_for("120 servers at member 2", WAIT, || {
        (g[1].servers().len() == 120).then_some(())
    });
    g[1].terminate(Duration::from_secs(5));
    let data = g[1].dir.path().join("data");
    let pristine = g[1].dir.path().join("pristine");
    copy_dir(&data, &pristine);
    let (mut refused, mut recovered) = (0, 0);
    for how in [Damage::Flipped, Damage::Truncated, Damage::ZeroedHeader] {
        for seed in 1..=seeds {
            copy_dir(&pristine, &data);
            damage(&data.join("raft.redb"), how, seed);
            let case = format!("{how:?} seed {seed}");
            let mut child = Command::new(common::gcsd_binary())
                .arg("--config")
                .arg(g[1].config_path())
                .env("RUST_LOG", "info,openraft=off")
                .stderr(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let started = std::time::Instant::now();
            let exited = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break Some(status);
                }
                if started.elapsed() > Duration::from_secs(3) {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            match exited {
                Some(status) => {
                    let mut log = String::new();
                    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log)
                        .unwrap();
                    assert!(status.code().is_some(), "{case}: died by a signal: {log}");
                    assert!(
                        log.contains("raft.redb") && log.contains("gcsctl remove-member 2 --yes"),
                        "{case}: {log}"
                    );
                    if refused == 0 {
                        eprintln!("{case}: {}", log.lines().last().unwrap_or_default());
                    }
                    refused += 1;
                }
                None => {
                    // Running: whatever it serves must be the group's list, once caught up,
                    // and never another one on the way.
                    let want = g[0].servers();
                    wait_for(&format!("{case}: the group's list"), WAIT, || {
                        let mut c = common::PluginClient::connect(g[1].plugin);
                        let got: Vec<String> = c
                            .serverlist()
                            .rows
                            .iter()
                            .map(|r| r.server.to_string())
                            .collect();
                        // An earlier list of the group's (its state before a catch-up) is
                        // fine; a server the group never listed is not.
                        let foreign: Vec<&String> =
                            got.iter().filter(|s| !want.contains(s)).collect();
                        assert!(foreign.is_empty(), "{case}: serves {foreign:?}");
                        (got == want).then_some(())
                    });
                    child.kill().unwrap();
                    child.wait().unwrap();
                    recovered += 1;
                }
            }
        }
    }
    eprintln!("corrupted stores: {refused} refused to start, {recovered} started and caught up");
    // The group went on throughout.
    assert_eq!(g[0].cmd("join after 3306 on slave"), "0 OK\n");
}

/// A member killed (SIGKILL) at any moment of its very first start, while it creates its store,
/// starts the next time: a store is created whole or not at all. (Before, a kill while redb
/// wrote the new file's header left a `raft.redb` that was no database, refused as damaged.)
#[test]
fn a_member_killed_during_its_first_start_starts_next_time() {
    for round in 0..20u64 {
        let mut g = Gcsd::new(1);
        // From 0 to 57 ms after the spawn: before, during and after the store's creation.
        g.launch_and_kill_after(Duration::from_millis(round * 3));
        g.launch();
        wait_for("a leader after the killed first start", WAIT, || g.leader());
        assert_eq!(g.cmd("join after-kill 3306 on master"), "0 OK\n");
    }
}

// ---- crash points and a slow disk (G3, G4, G5) ----

/// Crash points where the victim builds a snapshot itself (it needs commits to get there),
/// and where it installs one from the leader (it needs to have missed the purged log).
#[cfg(feature = "fault-injection")]
const BUILD_POINTS: [&str; 4] = [
    "snapshot-built",
    "snapshot-write-before-commit",
    "snapshot-build-written",
    "purge-marked",
];
#[cfg(feature = "fault-injection")]
const INSTALL_POINTS: [&str; 2] = ["snapshot-received", "snapshot-install-written"];

/// Waits until `m` has ended, committing changes through `via` meanwhile; panics unless it was
/// killed by SIGKILL (its crash point) within `WAIT`.
#[cfg(feature = "fault-injection")]
fn commit_until_killed(
    m: &mut Gcsd,
    via: &Gcsd,
    history: &mut History,
    tag: &str,
) -> std::process::ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    let started = std::time::Instant::now();
    let mut i = 0;
    loop {
        if let Some(status) = m.exited() {
            assert_eq!(
                status.signal(),
                Some(9),
                "member {} ended otherwise ({status}):\n{}",
                m.id,
                m.log()
            );
            return status;
        }
        assert!(
            started.elapsed() < WAIT,
            "member {} did not reach its crash point:\n{}",
            m.id,
            m.log()
        );
        // Each round leaves one server behind: the state stays small however long it runs.
        history.send(via, &format!("join {tag}-{i} 3306 on slave"));
        if i > 0 {
            history.send(via, &format!("leave {tag}-{} 3306", i - 1));
        }
        i += 1;
    }
}

/// A member killed (SIGKILL) at each point of building, persisting and installing a snapshot
/// and of purging the log, `GCSD_FAULT_ROUNDS` times in all (default 12; 100 for the figures
/// in bench/README.md): restarted, it starts, catches up and lists every acknowledged change;
/// so does every other member at the end.
#[cfg(feature = "fault-injection")]
#[test]
fn killed_at_each_snapshot_point_loses_nothing() {
    let rounds: usize = std::env::var("GCSD_FAULT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let config = "snapshot_every_entries = 20\nserver_ttl_secs = 3600\n";
    let mut g = start_group(3, |m| m.with_config(config));
    let mut history = History::default();
    let points: Vec<(&str, bool)> = BUILD_POINTS
        .iter()
        .map(|p| (*p, false))
        .chain(INSTALL_POINTS.iter().map(|p| (*p, true)))
        .collect();
    let started = std::time::Instant::now();
    for round in 0..rounds {
        let (point, install) = points[round % points.len()];
        let leader = wait_for("a leader", WAIT, || g[0].leader().or_else(|| g[1].leader()));
        let v = leader as usize % 3; // the member after the leader
        let via = 3 - v - (leader as usize - 1); // the third one
        let tag = format!("r{round}");
        g[v].kill9();
        if install {
            // Away past a snapshot and the purge: it can only catch up by a snapshot.
            for _ in 0..25 {
                history.send(&g[via], &format!("join {tag}-away 3306 on slave"));
                history.send(&g[via], &format!("leave {tag}-away 3306"));
            }
        }
        g[v].env = vec![("GCSD_CRASH_AT".into(), point.into())];
        // Not `launch`: it may reach its crash point before it listens.
        g[v].spawn();
        let (victim, others) = split(&mut g, v);
        commit_until_killed(
            victim,
            others[via - usize::from(via > v)],
            &mut history,
            &tag,
        );
        victim.env.clear();
        victim.launch();
        wait_for(
            &format!("member {} caught up after {point}", v + 1),
            WAIT,
            || victim.leader().and_then(|_| history.check(victim).ok()),
        );
    }
    for m in &g {
        wait_for(&format!("every change at member {}", m.id), WAIT, || {
            history.check(m).ok()
        });
    }
    let (acked, unknown) = history.counts();
    eprintln!(
        "{rounds} crash rounds in {:?}: {acked} acknowledged changes all present, {unknown} unanswered",
        started.elapsed()
    );
}

/// `g[v]` and the others.
#[cfg(feature = "fault-injection")]
fn split(g: &mut [Gcsd], v: usize) -> (&mut Gcsd, Vec<&Gcsd>) {
    let (before, rest) = g.split_at_mut(v);
    let (victim, after) = rest.split_first_mut().unwrap();
    (victim, before.iter().chain(after.iter()).collect())
}

/// A new member killed while it installs its first snapshot (after writing it, before using
/// it) is a member of the group already: restarted, it gets the snapshot again and lists
/// every acknowledged change.
#[cfg(feature = "fault-injection")]
#[test]
fn a_joiner_killed_while_installing_its_first_snapshot_catches_up() {
    let config = "snapshot_every_entries = 20\nserver_ttl_secs = 3600\n";
    let g = start_group(3, |m| m.with_config(config));
    let mut history = History::default();
    for i in 0..60 {
        history.send(&g[i % 3], &format!("join before-{i} 3306 on slave"));
    }
    let mut joiner = Gcsd::new(4).joining(&g[0]).with_config(config);
    joiner.env = vec![("GCSD_CRASH_AT".into(), "snapshot-install-written".into())];
    joiner.spawn();
    commit_until_killed(&mut joiner, &g[0], &mut history, "during");
    joiner.env.clear();
    joiner.launch();
    wait_for("the joiner caught up", WAIT, || history.check(&joiner).ok());
    for i in 0..10 {
        history.send(&g[1], &format!("join after-{i} 3306 on slave"));
    }
    for m in g.iter().chain([&joiner]) {
        wait_for(&format!("every change at member {}", m.id), WAIT, || {
            history.check(m).ok()
        });
    }
}

/// A follower whose every fsync takes 150 ms (an LD_PRELOAD shim over fsync and fdatasync):
/// the other two still commit at their own pace, the slow one keeps up in the end, and no
/// acknowledged change is lost. openraft gives each AppendEntries one Raft heartbeat to be
/// answered, fsync included, so the timing is the README's "slow links" one (300 ms): at the
/// default 100 ms a member whose fsync takes longer cannot follow at all and is committed down.
#[test]
fn a_follower_with_a_slow_disk_holds_nobody_back_and_loses_nothing() {
    let shim = slow_fsync_shim();
    let config = "server_ttl_secs = 3600\nraft_heartbeat_ms = 300\n\
                  election_timeout_min_ms = 1200\nelection_timeout_max_ms = 2400\n\
                  member_timeout_ms = 3000\nfence_after_ms = 2000\n";
    let g = start_group(3, |m| {
        let mut m = m.with_config(config);
        if m.id == 3 {
            m.env = vec![
                ("LD_PRELOAD".into(), shim.path.display().to_string()),
                ("SLOW_FSYNC_MS".into(), "150".into()),
            ];
        }
        m
    });
    assert_eq!(
        g[0].leader(),
        Some(1),
        "member 1 founded the group and leads it"
    );
    let mut history = History::default();
    let mut took = Vec::new();
    for i in 0..100 {
        let via = &g[i % 2]; // the leader and the fast follower
        let start = std::time::Instant::now();
        assert_eq!(
            history.send(via, &format!("join slow-{i} 3306 on slave")),
            "0 OK\n"
        );
        took.push(start.elapsed());
    }
    // Through the slow member itself: its forwarded changes commit too.
    for i in 0..5 {
        let line = format!("join slow-own-{i} 3306 on slave");
        assert_eq!(history.send(&g[2], &line), "0 OK\n");
    }
    assert_eq!(history.send(&g[2], "leave slow-own-0 3306"), "0 OK\n");
    for m in &g {
        wait_for(&format!("every change at member {}", m.id), WAIT, || {
            history.check(m).ok()
        });
    }
    took.sort();
    let (p50, p99) = (took[took.len() / 2], took[took.len() * 99 / 100]);
    eprintln!("commits with one follower at 150 ms per fsync: p50 {p50:?}, p99 {p99:?}");
    // One fsync of the slow member is 150 ms: a commit waiting for it would take that long.
    assert!(
        p50 < Duration::from_millis(150),
        "commits wait for the slow follower: p50 {p50:?}"
    );
    assert!(
        g[2].log().contains("slow fsync shim"),
        "the shim was not loaded:\n{}",
        g[2].log()
    );
}

/// The LD_PRELOAD library that slows fsync and fdatasync down, built from
/// tests/slow_fsync.c with the system's C compiler.
struct Shim {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn slow_fsync_shim() -> Shim {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow_fsync.so");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slow_fsync.c");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&path)
        .arg(&source)
        .arg("-ldl")
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc {}: {}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Shim { path, _dir: dir }
}
