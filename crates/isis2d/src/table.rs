//! The rows of `INFORMATION_SCHEMA.ISIS2IS`, made from the link's snapshot. Pure: no I/O, no
//! waiting; the error columns say when the list cannot be trusted.

use std::time::{Duration, Instant};

use crate::link::{Link, Snapshot};

/// The table's errnos (ERRNO column); 0 on a healthy row.
pub mod errno {
    /// The isis2d daemon plugin is not installed.
    pub const NO_DAEMON: u32 = 1000;
    /// isis2d cannot reach the local gcsd; rows (if any) are the last list it had.
    pub const UNREACHABLE: u32 = 1001;
    /// gcsd says its group has no quorum; rows are its last known list.
    pub const NO_QUORUM: u32 = 1002;
    /// gcsd has not confirmed the list for three heartbeat intervals.
    pub const STALE: u32 = 1003;
}

/// One row, as text for the shim. `None` is SQL NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub error: Option<String>,
    pub errno: u32,
    pub member: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub status: Option<String>,
    pub role: Option<String>,
    pub ttl: Option<u32>,
    pub last_update: Option<String>,
}

impl Row {
    fn error_only(errno: u32, error: String) -> Self {
        Row {
            error: Some(error),
            errno,
            member: None,
            host: None,
            port: None,
            status: None,
            role: None,
            ttl: None,
            last_update: None,
        }
    }
}

/// The one row shown while isis2d is not installed.
pub fn no_daemon() -> Vec<Row> {
    vec![Row::error_only(
        errno::NO_DAEMON,
        "You must install the isis2d daemon plugin first.".into(),
    )]
}

/// What is wrong with the link's snapshot `snap` at `now`, if anything: (errno, text).
pub fn problem(link: &Link, snap: &Snapshot, now: Instant) -> Option<(u32, String)> {
    let connected = link
        .stats
        .connected
        .load(std::sync::atomic::Ordering::Relaxed);
    // Read only when it is shown: this runs for every SELECT.
    let disconnected = (!connected).then(|| link.stats.last_error.lock().clone());
    assess(
        snap,
        link.confirmed(),
        disconnected.as_deref(),
        link.settings.heartbeat,
        now,
    )
}

/// `confirmed`: when gcsd last vouched for the list (none before the first list arrived).
/// `disconnected`: the link's last error while it is down, none while it is up.
fn assess(
    snap: &Snapshot,
    confirmed: Option<Instant>,
    disconnected: Option<&str>,
    heartbeat: Duration,
    now: Instant,
) -> Option<(u32, String)> {
    let age = confirmed.map(|t| now.saturating_duration_since(t));
    let as_of = || match age {
        Some(age) => format!("the list is from {:.1} s ago", age.as_secs_f64()),
        None => "no list received yet".into(),
    };
    if let Some(last_error) = disconnected {
        let why = if last_error.is_empty() {
            "not connected yet"
        } else {
            last_error
        };
        return Some((errno::UNREACHABLE, format!("isis2d: {why}; {}", as_of())));
    }
    if let Some(warning) = &snap.gcsd_warning {
        return Some((errno::NO_QUORUM, format!("gcsd: {warning}")));
    }
    match age {
        Some(age) if age > heartbeat * 3 => Some((
            errno::STALE,
            format!(
                "isis2d: gcsd has not confirmed the list for {:.1} s",
                age.as_secs_f64()
            ),
        )),
        None => Some((errno::STALE, format!("isis2d: {}", as_of()))),
        Some(_) => None,
    }
}

/// The rows for `snap`, each carrying `problem` if there is one.
pub fn rows_with(snap: &Snapshot, problem: Option<(u32, String)>) -> Vec<Row> {
    if snap.rows.is_empty() {
        return problem
            .map(|(errno, error)| vec![Row::error_only(errno, error)])
            .unwrap_or_default();
    }
    let (errno, error) = match problem {
        Some((errno, error)) => (errno, Some(error)),
        None => (0, None),
    };
    snap.rows
        .iter()
        .map(|r| Row {
            error: error.clone(),
            errno,
            member: Some(r.member.clone()),
            host: Some(r.server.host.clone()),
            port: Some(r.server.port.clone()),
            status: Some(r.status.to_string()),
            role: Some(r.role.to_string()),
            ttl: Some(r.ttl_secs),
            last_update: Some(r.last_update.format("%Y-%m-%d %H:%M:%S%.3f").to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{Role, ServerKey, ServerRow, Status};

    fn snap(
        rows: usize,
        warning: Option<&str>,
        confirmed: Option<Instant>,
    ) -> (Snapshot, Option<Instant>) {
        let snap = Snapshot {
            rows: (0..rows)
                .map(|i| ServerRow {
                    member: "gcsd1".into(),
                    server: ServerKey::new(format!("db{i}"), "3306"),
                    status: Status::On,
                    role: Role::Slave,
                    ttl_secs: 3,
                    last_update: chrono::DateTime::from_timestamp(1_800_000_000, 5_000_000)
                        .unwrap(),
                })
                .collect(),
            gcsd_warning: warning.map(str::to_owned),
        };
        (snap, confirmed)
    }

    const HB: Duration = Duration::from_secs(1);

    #[test]
    fn healthy_rows_have_no_error() {
        let now = Instant::now();
        let (s, confirmed) = snap(2, None, Some(now));
        let rows = rows_with(&s, assess(&s, confirmed, None, HB, now));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].errno, 0);
        assert_eq!(rows[0].error, None);
        assert_eq!(
            rows[0].last_update.as_deref(),
            Some("2027-01-15 08:00:00.005")
        );
        assert_eq!(rows[1].host.as_deref(), Some("db1"));
    }

    #[test]
    fn each_problem_marks_every_row_or_stands_alone() {
        let now = Instant::now();
        let cases = [
            (
                snap(2, None, Some(now)),
                false,
                errno::UNREACHABLE,
                "isis2d: cannot reach",
            ),
            (
                snap(2, Some("Stale serverlist: x"), Some(now)),
                true,
                errno::NO_QUORUM,
                "gcsd: Stale",
            ),
            (
                snap(2, None, Some(now - HB * 4)),
                true,
                errno::STALE,
                "not confirmed the list for 4.0 s",
            ),
            (
                snap(0, None, None),
                false,
                errno::UNREACHABLE,
                "no list received yet",
            ),
        ];
        for ((s, confirmed), connected, want_errno, want_text) in cases {
            let rows = rows_with(
                &s,
                assess(
                    &s,
                    confirmed,
                    (!connected).then_some("cannot reach gcsd at x: refused"),
                    HB,
                    now,
                ),
            );
            assert_eq!(rows.len(), s.rows.len().max(1));
            for r in &rows {
                assert_eq!(r.errno, want_errno);
                assert!(r.error.as_deref().unwrap().contains(want_text), "{r:?}");
            }
        }
    }

    #[test]
    fn without_the_daemon_plugin_one_row_says_so() {
        assert_eq!(
            no_daemon(),
            vec![Row::error_only(
                1000,
                "You must install the isis2d daemon plugin first.".into()
            )]
        );
    }
}
