//! Storage faults with real processes (as root): a member whose disk fills up ends cleanly with
//! exit code 74 and one log line, and the rest of the group goes on.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

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
