//! Crash points for the fault-injection tests: in a gcsd built with the `fault-injection`
//! feature, reaching the point that `GCSD_CRASH_AT` names kills the process with SIGKILL, as
//! `kill -9` or a power cut would at that instant (no destructor, no flush). Without the
//! feature, a point is nothing.

/// Where a crash point is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// A snapshot of the state is taken, not yet written.
    SnapshotBuilt,
    /// A snapshot (built or received) is in the write transaction, not yet committed.
    SnapshotWriteBeforeCommit,
    /// A snapshot this member built is written, and openraft does not know it yet.
    SnapshotBuildWritten,
    /// A snapshot from the leader is received, not yet written.
    SnapshotReceived,
    /// A snapshot from the leader is written, not yet applied in memory or acknowledged.
    SnapshotInstallWritten,
    /// The purge mark is written; the log entries it covers are not deleted yet.
    PurgeMarked,
}

impl Point {
    /// The name GCSD_CRASH_AT uses (read only by a build with the feature).
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    pub fn name(self) -> &'static str {
        match self {
            Point::SnapshotBuilt => "snapshot-built",
            Point::SnapshotWriteBeforeCommit => "snapshot-write-before-commit",
            Point::SnapshotBuildWritten => "snapshot-build-written",
            Point::SnapshotReceived => "snapshot-received",
            Point::SnapshotInstallWritten => "snapshot-install-written",
            Point::PurgeMarked => "purge-marked",
        }
    }
}

#[cfg(feature = "fault-injection")]
pub fn at(point: Point) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let named = AT.get_or_init(|| std::env::var("GCSD_CRASH_AT").ok());
    if named.as_deref() == Some(point.name()) {
        eprintln!("gcsd: GCSD_CRASH_AT={}: SIGKILL", point.name());
        let me = rustix::process::getpid();
        let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn at(_point: Point) {}
