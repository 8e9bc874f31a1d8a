//! The rows of `INFORMATION_SCHEMA.ISIS2IS`, made from the link's snapshot. Pure: no I/O, no
//! waiting; the error columns say when the list cannot be trusted.

use std::time::{Duration, Instant};

use proto::ServerRow;

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
    /// The local gcsd predates the history (ISIS2IS_HISTORY only).
    pub const NO_HISTORY: u32 = 1004;
}

pub use crate::columns::Kind;

// The first nine columns are the Isis2 contract, in this order; extensions go after them.
columns! {
    /// The columns of `INFORMATION_SCHEMA.ISIS2IS`, in table order: the one list. The shim's
    /// field list is generated from it (build.rs), and a row is one value per column, indexed
    /// by `Column`.
    Column;
    /// The problem every row carries, NULL on a healthy row.
    Error => "ERROR", Kind::Text { width: proto::MAX_TOKEN }, true;
    /// 0 on a healthy row, else one of [`errno`].
    Errno => "ERRNO", Kind::Unsigned, false;
    /// The gcsd the server registered through.
    Member => "ISIS2_MEMBER", Kind::Text { width: proto::MAX_MEMBER_NAME }, true;
    Host => "MYSQL_HOST", Kind::Text { width: proto::MAX_TOKEN }, true;
    Port => "MYSQL_PORT_OR_SOCKET", Kind::Text { width: proto::MAX_TOKEN }, true;
    Status => "MYSQL_STATUS", Kind::Text { width: 16 }, true;
    Role => "MYSQL_ROLE", Kind::Text { width: 16 }, true;
    /// Seconds.
    Ttl => "MYSQL_HEARTBEAT_TTL", Kind::Unsigned, true;
    /// UTC, milliseconds.
    LastUpdate => "MYSQL_HEARTBEAT_LAST", Kind::Text { width: 32 }, true;
    /// The pool of this row's verdicts; NULL (like the five after it) for a server in no pool.
    MppPool => "MPP_POOL", Kind::Text { width: proto::MAX_POOL_NAME }, true;
    /// PRIMARY or SECONDARY.
    MppType => "MPP_TYPE", Kind::Text { width: 16 }, true;
    /// UNKNOWN, STANDBY, ACTIVE, FAILED_OFFLINE or FAILED_ONLINE.
    MppState => "MPP_STATE", Kind::Text { width: 16 }, true;
    /// OK, OK_INFO, OK_WARN, OK_CRITICAL or FAIL; NULL before the first probe.
    MppStatus => "MPP_STATUS", Kind::Text { width: 16 }, true;
    MppMessage => "MPP_MESSAGE", Kind::Text { width: proto::MAX_MESSAGE }, true;
    /// Grows with every change of the pool's ACTIVE: of two answers, the higher is newer.
    MppEpoch => "MPP_EPOCH", Kind::Unsigned, true;
}

/// How many columns the table has.
pub const COLUMNS: usize = Column::ALL.len();

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Text(String),
    Unsigned(u64),
}

impl Value {
    fn fits(&self, column: Column) -> bool {
        match (self, column.kind()) {
            (Value::Null, _) => column.nullable(),
            (Value::Text(_), Kind::Text { .. }) | (Value::Unsigned(_), Kind::Unsigned) => true,
            _ => false,
        }
    }
}

/// One row: a value per column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row([Value; COLUMNS]);

impl Row {
    /// The row whose value in each column is `value(column)`. Panics if a value does not fit
    /// its column (a text in a number column, NULL where NULL is not allowed): that is a bug in
    /// the row builder, which the tests of every builder catch.
    fn with(value: impl Fn(Column) -> Value) -> Self {
        let row = Row(Column::ALL.map(&value));
        for column in Column::ALL {
            assert!(
                row[column].fits(column),
                "{column:?} cannot hold {:?}",
                row[column]
            );
        }
        row
    }

    fn error_only(errno: u32, error: String) -> Self {
        Row::with(|column| match column {
            Column::Error => Value::Text(error.clone()),
            Column::Errno => Value::Unsigned(errno.into()),
            _ => Value::Null,
        })
    }

    /// The values in table order.
    pub fn values(&self) -> &[Value; COLUMNS] {
        &self.0
    }
}

impl std::ops::Index<Column> for Row {
    type Output = Value;

    fn index(&self, column: Column) -> &Value {
        &self.0[column as usize]
    }
}

/// The error of the one row shown while isis2d is not installed (Isis2's text).
pub const NO_DAEMON_TEXT: &str = "You must install the isis2d daemon plugin first.";

/// The one row shown while isis2d is not installed.
pub fn no_daemon() -> Vec<Row> {
    vec![Row::error_only(errno::NO_DAEMON, NO_DAEMON_TEXT.into())]
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
        .map(|r| {
            Row::with(|column| match column {
                Column::Error => error.clone().map_or(Value::Null, Value::Text),
                Column::Errno => Value::Unsigned(errno.into()),
                Column::Member => Value::Text(r.member.clone()),
                Column::Host => Value::Text(r.server.host.clone()),
                Column::Port => Value::Text(r.server.port.clone()),
                Column::Status => Value::Text(r.status.to_string()),
                Column::Role => Value::Text(r.role.to_string()),
                Column::Ttl => Value::Unsigned(r.ttl_secs.into()),
                Column::LastUpdate => {
                    Value::Text(r.last_update.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                }
                Column::MppPool => mpp(r, |m| Value::Text(m.pool.clone())),
                Column::MppType => mpp(r, |m| Value::Text(m.kind.to_string())),
                Column::MppState => mpp(r, |m| Value::Text(m.state.to_string())),
                Column::MppStatus => mpp(r, |m| {
                    m.status.map_or(Value::Null, |s| Value::Text(s.to_string()))
                }),
                Column::MppMessage => mpp(r, |m| Value::Text(m.message.clone())),
                Column::MppEpoch => mpp(r, |m| Value::Unsigned(m.epoch)),
            })
        })
        .collect()
}

/// A verdict column's value: NULL for a server in no pool.
fn mpp(row: &ServerRow, value: impl Fn(&proto::MppFields) -> Value) -> Value {
    row.mpp.as_ref().map_or(Value::Null, value)
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
                    mpp: None,
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
        assert_eq!(rows[0][Column::Errno], Value::Unsigned(0));
        assert_eq!(rows[0][Column::Error], Value::Null);
        assert_eq!(
            rows[0][Column::LastUpdate],
            Value::Text("2027-01-15 08:00:00.005".into())
        );
        assert_eq!(rows[1][Column::Host], Value::Text("db1".into()));
        assert_eq!(rows[1][Column::Ttl], Value::Unsigned(3));
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
                assert_eq!(r[Column::Errno], Value::Unsigned(want_errno.into()));
                let Value::Text(error) = &r[Column::Error] else {
                    panic!("no error in {r:?}")
                };
                assert!(error.contains(want_text), "{r:?}");
            }
        }
    }

    #[test]
    fn the_column_list() {
        let names: Vec<_> = Column::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "ERROR",
                "ERRNO",
                "ISIS2_MEMBER",
                "MYSQL_HOST",
                "MYSQL_PORT_OR_SOCKET",
                "MYSQL_STATUS",
                "MYSQL_ROLE",
                "MYSQL_HEARTBEAT_TTL",
                "MYSQL_HEARTBEAT_LAST",
                "MPP_POOL",
                "MPP_TYPE",
                "MPP_STATE",
                "MPP_STATUS",
                "MPP_MESSAGE",
                "MPP_EPOCH"
            ],
            "the first nine columns are the Isis2 contract; MPP's verdicts follow"
        );
        // A member name or a token always fits its column whole.
        assert_eq!(
            Column::Member.kind(),
            Kind::Text {
                width: proto::MAX_MEMBER_NAME
            }
        );
        assert_eq!(
            Column::Host.kind(),
            Kind::Text {
                width: proto::MAX_TOKEN
            }
        );
        for (i, column) in Column::ALL.into_iter().enumerate() {
            assert_eq!(column as usize, i);
        }
    }

    #[test]
    #[should_panic(expected = "Errno cannot hold Null")]
    fn a_value_that_does_not_fit_its_column_is_a_bug() {
        Row::with(|_| Value::Null);
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
