//! What the plugin's tests read from a server: the rows of `INFORMATION_SCHEMA.ISIS2IS`, the
//! `Isis2d_*` status variables, the options that load the plugin, and signs of a crash in the
//! error log.

use std::fmt;
use std::time::{Duration, Instant};

use isis2d::table::{Column, COLUMNS};

use super::mariadb::MariaDb;
use super::PLUGIN_SONAME;

/// The table's errnos, from the plugin's own definitions.
pub const ERRNO_OK: u32 = 0;
#[allow(unused_imports)] // each test binary uses some of them
pub use isis2d::table::errno::{
    NO_DAEMON as ERRNO_NO_DAEMON, NO_QUORUM as ERRNO_NO_QUORUM, STALE as ERRNO_STALE,
    UNREACHABLE as ERRNO_UNREACHABLE,
};

pub const SELECT_ISIS2IS: &str = "SELECT * FROM INFORMATION_SCHEMA.ISIS2IS";

/// One row of `INFORMATION_SCHEMA.ISIS2IS`; SQL NULL is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isis2isRow {
    pub error: Option<String>,
    pub errno: u32,
    pub member: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub status: Option<String>,
    pub role: Option<String>,
    pub ttl: Option<u32>,
    pub last_update: Option<String>,
    pub mpp_pool: Option<String>,
    pub mpp_type: Option<String>,
    pub mpp_state: Option<String>,
    pub mpp_status: Option<String>,
    pub mpp_message: Option<String>,
    pub mpp_epoch: Option<u64>,
}

impl Isis2isRow {
    /// A row as the `mariadb` client printed it (a column each, `"NULL"` for SQL NULL), read
    /// by the plugin's own column list.
    pub fn parse(columns: &[String]) -> Self {
        assert_eq!(
            columns.len(),
            COLUMNS,
            "ISIS2IS has {COLUMNS} columns: {columns:?}"
        );
        let text = |c: Column| (columns[c as usize] != "NULL").then(|| columns[c as usize].clone());
        let number = |c: Column| {
            text(c).map(|t| {
                t.parse::<u64>()
                    .unwrap_or_else(|_| panic!("{} {t:?} is not a number", c.name()))
            })
        };
        Self {
            error: text(Column::Error),
            errno: number(Column::Errno).expect("ERRNO is never NULL") as u32,
            member: text(Column::Member),
            host: text(Column::Host),
            port: text(Column::Port),
            status: text(Column::Status),
            role: text(Column::Role),
            ttl: number(Column::Ttl).map(|n| n as u32),
            last_update: text(Column::LastUpdate),
            mpp_pool: text(Column::MppPool),
            mpp_type: text(Column::MppType),
            mpp_state: text(Column::MppState),
            mpp_status: text(Column::MppStatus),
            mpp_message: text(Column::MppMessage),
            mpp_epoch: number(Column::MppEpoch),
        }
    }

    /// `host port`, as gcsd names a server; empty for an error-only row.
    pub fn server(&self) -> String {
        match (&self.host, &self.port) {
            (Some(h), Some(p)) => format!("{h} {p}"),
            _ => String::new(),
        }
    }

    /// Whether this row is the server at 127.0.0.1:`port`.
    pub fn is_server(&self, port: u16) -> bool {
        self.host.as_deref() == Some("127.0.0.1") && self.port == Some(port.to_string())
    }

    /// A healthy row: no error, status `on`.
    pub fn is_healthy(&self) -> bool {
        self.errno == ERRNO_OK && self.error.is_none() && self.status.as_deref() == Some("on")
    }
}

impl fmt::Display for Isis2isRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "NULL".into());
        write!(
            f,
            "[{} {} {} {} {} {} {} {} {} | {} {} {} {} {} {}]",
            self.errno,
            s(&self.member),
            s(&self.host),
            s(&self.port),
            s(&self.status),
            s(&self.role),
            self.ttl.map_or("NULL".into(), |t| t.to_string()),
            s(&self.last_update),
            s(&self.error),
            s(&self.mpp_pool),
            s(&self.mpp_type),
            s(&self.mpp_state),
            s(&self.mpp_status),
            self.mpp_epoch.map_or("NULL".into(), |e| e.to_string()),
            s(&self.mpp_message),
        )
    }
}

/// Rows for messages: one per line.
pub fn show(rows: &[Isis2isRow]) -> String {
    rows.iter()
        .map(|r| format!("  {r}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `SELECT * FROM INFORMATION_SCHEMA.ISIS2IS` as root, or the client's error.
pub fn try_isis2is(db: &MariaDb) -> Result<Vec<Isis2isRow>, String> {
    db.sql(SELECT_ISIS2IS)
        .map(|rows| rows.iter().map(|r| Isis2isRow::parse(r)).collect())
}

/// The table's rows as root; panics on an error.
pub fn isis2is(db: &MariaDb) -> Vec<Isis2isRow> {
    try_isis2is(db).unwrap_or_else(|e| panic!("{SELECT_ISIS2IS} failed on port {}: {e}", db.port))
}

/// The table's rows and how long the server took to produce them (see [`server_timed`]).
pub fn timed_isis2is(db: &MariaDb) -> (Vec<Isis2isRow>, Duration) {
    let (rows, took) = server_timed(db, SELECT_ISIS2IS)
        .unwrap_or_else(|e| panic!("{SELECT_ISIS2IS} failed on port {}: {e}", db.port));
    (rows.iter().map(|r| Isis2isRow::parse(r)).collect(), took)
}

/// Runs `q` (one statement) as root between two readings of the server's clock, and returns
/// its rows and how long the server took from just before it to just after it. The client's
/// process spawn and connect are left out: on a loaded machine they take seconds that measure
/// the load, not the statement.
pub fn server_timed(db: &MariaDb, q: &str) -> Result<(Vec<Vec<String>>, Duration), String> {
    const CLOCK: &str = "SELECT UNIX_TIMESTAMP(SYSDATE(6))";
    let mut rows = db.sql(&format!("{CLOCK}; {q}; {CLOCK}"))?;
    assert!(rows.len() >= 2, "two clock readings around {q}: {rows:?}");
    let after = micros(&rows.pop().unwrap()[0]);
    let before = micros(&rows.remove(0)[0]);
    Ok((rows, Duration::from_micros(after.saturating_sub(before))))
}

/// `1795741694.149573` as microseconds.
fn micros(unix_time: &str) -> u64 {
    let (secs, frac) = unix_time
        .split_once('.')
        .unwrap_or_else(|| panic!("{unix_time:?} is not UNIX_TIMESTAMP(SYSDATE(6))"));
    let secs: u64 = secs.parse().expect("seconds");
    let frac = format!("{frac:0<6}");
    secs * 1_000_000 + frac[..6].parse::<u64>().expect("microseconds")
}

/// Start and shutdown times of a few restarts of one server.
#[derive(Debug, Default)]
pub struct Restarts {
    pub starts: Vec<Duration>,
    pub shutdowns: Vec<Duration>,
}

impl Restarts {
    /// The fastest start: what the server needs, without what the machine's other load adds.
    pub fn start(&self) -> Duration {
        *self.starts.iter().min().expect("at least one restart")
    }

    /// The fastest shutdown.
    pub fn shutdown(&self) -> Duration {
        *self.shutdowns.iter().min().expect("at least one restart")
    }
}

/// Shuts the running `db` down and starts it again, `runs` times, calling `after_start` after
/// each start (to bring the plugin into the state the next shutdown should find).
pub fn restarts(db: &mut MariaDb, runs: usize, mut after_start: impl FnMut(&MariaDb)) -> Restarts {
    let mut r = Restarts::default();
    for _ in 0..runs {
        r.shutdowns.push(db.shutdown());
        r.starts.push(db.launch());
        after_start(db);
    }
    r
}

/// Start and shutdown of a server without the plugin, measured `runs` times.
pub fn baseline(runs: usize) -> Restarts {
    let mut db = MariaDb::new().start();
    let r = restarts(&mut db, runs, |_| {});
    eprintln!(
        "baseline without the plugin: starts {:?}, shutdowns {:?}",
        r.starts, r.shutdowns
    );
    r
}

/// One `Isis2d_*` status variable (`SHOW GLOBAL STATUS`); panics if it does not exist.
pub fn status_var(db: &MariaDb, name: &str) -> String {
    let rows = db
        .sql(&format!("SHOW GLOBAL STATUS LIKE '{name}'"))
        .unwrap_or_else(|e| panic!("SHOW GLOBAL STATUS LIKE '{name}': {e}"));
    match rows.as_slice() {
        [row] if row.len() == 2 => row[1].clone(),
        _ => panic!("SHOW GLOBAL STATUS LIKE '{name}' returned {rows:?}"),
    }
}

/// A numeric `Isis2d_*` status variable.
pub fn status_num(db: &MariaDb, name: &str) -> u64 {
    let value = status_var(db, name);
    value
        .parse()
        .unwrap_or_else(|_| panic!("{name} = {value:?} is not a number"))
}

/// Every `Isis2d_*` status variable, `name=value` on one line, for messages.
pub fn status_line(db: &MariaDb) -> String {
    db.sql("SHOW GLOBAL STATUS LIKE 'Isis2d%'")
        .map(|rows| {
            rows.iter()
                .map(|r| r.join("="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|e| e)
}

/// The options that load both plugins at start and point isis2d at the gcsd plugin port
/// `daemon_port` on loopback, announcing the server as `127.0.0.1 <its port>`.
pub fn with_plugin(db: MariaDb, daemon_port: u16) -> MariaDb {
    db.with_option(format!("--plugin-load-add={PLUGIN_SONAME}"))
        .with_option(format!("--isis2d-daemon-port={daemon_port}"))
        .with_option("--isis2d-mysql-host=127.0.0.1")
}

/// The options that load both plugins at start and point isis2d at gcsd's Unix socket
/// `socket`, announcing the server as `127.0.0.1 <its port>`.
pub fn with_plugin_socket(db: MariaDb, socket: &std::path::Path) -> MariaDb {
    db.with_option(format!("--plugin-load-add={PLUGIN_SONAME}"))
        .with_option(format!("--isis2d-daemon-socket={}", socket.display()))
        .with_option("--isis2d-mysql-host=127.0.0.1")
}

/// Lines of a server's error log that show a crash or a failed assertion.
pub fn crash_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("got signal")
                || l.contains("signal ")
                || l.contains("Assertion")
                || l.contains("assertion")
                || l.contains("stack_bottom")
                || l.contains("Segmentation fault")
                || l.contains("panicked")
                || l.contains("internal error (panic)")
        })
        .collect()
}

/// Panics if the server's error log shows a crash.
pub fn assert_no_crash(db: &MariaDb) {
    let log = db.error_log();
    let bad = crash_lines(&log);
    assert!(
        bad.is_empty(),
        "the error log of mariadbd on port {} shows a crash:\n{}",
        db.port,
        bad.join("\n")
    );
}

/// Polls `check` every 20 ms until it returns `Ok`; returns its value and how long that took.
/// Panics after `timeout` with `what` and the last `Err` (what was still wrong).
pub fn poll_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> (T, Duration) {
    let started = Instant::now();
    loop {
        match check() {
            Ok(v) => return (v, started.elapsed()),
            Err(why) => assert!(
                started.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; last seen:\n{why}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The plugin's warnings in a server's error log.
pub fn isis2d_warnings(db: &MariaDb) -> Vec<String> {
    db.error_log()
        .lines()
        .filter(|l| l.contains("[Warning]") && l.contains("isis2d: "))
        .map(str::to_owned)
        .collect()
}
