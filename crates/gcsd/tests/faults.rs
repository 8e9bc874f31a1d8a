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
