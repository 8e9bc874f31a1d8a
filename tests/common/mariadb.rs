//! Throwaway MariaDB servers: each [`MariaDb`] is one `mariadbd` with its own datadir, loopback
//! port and unix socket, whose plugin dir is [`plugin_dir`]; it is killed and removed on drop.
//!
//! The servers run as root (`--user=root`), keep their grant tables (the plugin's privilege
//! checks are under test) and are driven with the `mariadb` command-line client, so a test sees
//! exactly what an operator would.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::gcsd::free_port;
use super::{plugin_dir, scratch_dir};

/// How long a server may take from launch to answering its first query.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a clean shutdown (SIGTERM) may take.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one client invocation may take: a hung statement fails the test instead of hanging it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Seconds the client waits for a connection: long for statements, so a busy server is not
/// mistaken for a dead one, and short while polling a starting server.
const CONNECT_TIMEOUT_S: u32 = 10;
const POLL_CONNECT_TIMEOUT_S: u32 = 1;
/// How often a server is asked whether it is up yet.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Longest socket path kept inside the server's dir: `sun_path` holds 108 bytes with the NUL,
/// and mariadbd also needs room for the `.lock` file next to it.
const MAX_SOCKET_PATH: usize = 100;
/// How many error-log lines a failure shows.
const LOG_TAIL_LINES: usize = 60;

/// A datadir made by `mariadb-install-db`, once per test process; every server starts from a
/// copy of it.
pub struct PristineDatadir {
    pub path: PathBuf,
    /// How long `mariadb-install-db` took.
    pub install_took: Duration,
}

static INSTALL_DB_RUNS: AtomicUsize = AtomicUsize::new(0);

/// How many times this process ran `mariadb-install-db` (once, when the cache works).
pub fn install_db_runs() -> usize {
    INSTALL_DB_RUNS.load(Ordering::SeqCst)
}

/// The process's pristine datadir, made on first use. Initialising takes 0.5 to 1.5 s, a sparse
/// copy about 50 ms, so servers copy this instead of each running the installer.
pub fn pristine_datadir() -> &'static PristineDatadir {
    static PRISTINE: OnceLock<PristineDatadir> = OnceLock::new();
    PRISTINE.get_or_init(|| {
        let path = scratch_dir().join("pristine-datadir");
        let log_path = scratch_dir().join("install-db.log");
        let log = File::create(&log_path).expect("create the install-db log");
        let started = Instant::now();
        INSTALL_DB_RUNS.fetch_add(1, Ordering::SeqCst);
        let status = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", path.display()))
            .args([
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .status()
            .expect("run mariadb-install-db (is mariadb-server installed?)");
        assert!(
            status.success(),
            "mariadb-install-db failed ({status}):\n{}",
            read_lossy(&log_path)
        );
        PristineDatadir {
            path,
            install_took: started.elapsed(),
        }
    })
}

/// One mariadbd and everything it owns. Built with [`MariaDb::new`], configured with
/// [`MariaDb::with_option`], then [`MariaDb::start`]ed.
pub struct MariaDb {
    pub dir: tempfile::TempDir,
    /// TCP port on `host`, for non-root users.
    pub port: u16,
    /// The address it listens on: 127.0.0.1 unless [`MariaDb::listening_on`] says otherwise.
    pub host: String,
    /// Unix socket, for root (authenticated by `unix_socket`).
    pub socket: PathBuf,
    /// Extra mariadbd options, after the harness's own (so they override them).
    options: Vec<String>,
    /// A command that runs mariadbd (such as valgrind), with its arguments; empty for none.
    wrapper: Vec<String>,
    child: Option<Child>,
    /// Whether the server has run: the port is only changed before the first start.
    started_once: bool,
    last_start: Duration,
    datadir_copy_took: Duration,
    /// Whether a panic message already carried the error log.
    error_log_shown: bool,
}

impl MariaDb {
    /// A server with a fresh dir, port and socket; nothing runs until [`MariaDb::start`].
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mariadb-test-")
            .tempdir()
            .expect("create the server dir");
        let socket = socket_path(dir.path());
        Self {
            dir,
            port: free_port(),
            host: "127.0.0.1".into(),
            socket,
            options: Vec::new(),
            wrapper: Vec::new(),
            child: None,
            started_once: false,
            last_start: Duration::ZERO,
            datadir_copy_took: Duration::ZERO,
            error_log_shown: false,
        }
    }

    /// Listens on `host` (for example an address inside a network namespace) instead of
    /// 127.0.0.1.
    pub fn listening_on(mut self, host: &str) -> Self {
        self.host = host.to_owned();
        self.with_option(format!("--bind-address={host}"))
    }

    /// Adds a mariadbd option, such as `--plugin-load-add=libmysql_gcs.so`.
    pub fn with_option(mut self, option: impl Into<String>) -> Self {
        self.options.push(option.into());
        self
    }

    /// Runs mariadbd under `command` (such as valgrind and its options), which gets a longer
    /// time to start.
    pub fn with_wrapper(mut self, command: &[&str]) -> Self {
        self.wrapper = command.iter().map(|&a| a.to_owned()).collect();
        self
    }

    /// Starts the server and waits until it answers a query.
    pub fn start(mut self) -> Self {
        self.launch();
        self
    }

    pub fn datadir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn error_log_path(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    /// Everything the server logged, across restarts.
    pub fn error_log(&self) -> String {
        read_lossy(&self.error_log_path())
    }

    /// How long the last (re)start took, from spawn to the first answered query.
    pub fn last_start(&self) -> Duration {
        self.last_start
    }

    /// How long copying the pristine datadir took for this server.
    pub fn datadir_copy_took(&self) -> Duration {
        self.datadir_copy_took
    }

    /// Starts mariadbd (first start, or again after [`MariaDb::shutdown`] or
    /// [`MariaDb::kill9`]) and waits until it answers a query; returns how long that took.
    pub fn launch(&mut self) -> Duration {
        assert!(
            self.child.is_none(),
            "mariadbd on port {} is already running",
            self.port
        );
        if !self.datadir().exists() {
            self.copy_pristine_datadir();
        }
        // The port came from free_port(), which releases it before mariadbd binds it, so
        // another process may take it in between. Before the first start nobody has seen the
        // port yet, so pick another; later it must stay, as tests may hold on to it.
        for _ in 0..3 {
            match self.try_launch() {
                Ok(took) => {
                    self.started_once = true;
                    self.last_start = took;
                    return took;
                }
                Err(log) if !self.started_once && log.contains("Address already in use") => {
                    self.port = free_port();
                }
                Err(_) => self.fail(format!("mariadbd on port {} exited at start", self.port)),
            }
        }
        panic!("mariadbd found its port taken three times in a row")
    }

    fn copy_pristine_datadir(&mut self) {
        let pristine = pristine_datadir();
        let started = Instant::now();
        // Sparse, because ib_logfile0 is 96 MiB of mostly zeros: writing them as holes takes
        // ~50 ms and 6 MiB of disk per server instead of ~350 ms and 113 MiB.
        let out = Command::new("cp")
            .args(["--archive", "--sparse=always"])
            .arg(&pristine.path)
            .arg(self.datadir())
            .output()
            .expect("run cp");
        assert!(
            out.status.success(),
            "copying the pristine datadir failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.datadir_copy_took = started.elapsed();
    }

    /// One spawn; `Err` carries what the server logged if it exited before answering.
    fn try_launch(&mut self) -> Result<Duration, String> {
        let log_path = self.error_log_path();
        let log_before = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
        // mariadbd reopens its stderr onto --log-error, but only after parsing its options;
        // pointing stdout and stderr at the same file catches what it prints before that.
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the error log");
        let started = Instant::now();
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg("mariadbd");
                c
            }
            None => Command::new("mariadbd"),
        };
        let start_timeout = if self.wrapper.is_empty() {
            START_TIMEOUT
        } else {
            START_TIMEOUT * 4
        };
        let child = command
            .arg("--no-defaults")
            .args([
                "--user=root".to_owned(),
                format!("--datadir={}", self.datadir().display()),
                format!("--socket={}", self.socket.display()),
                format!("--port={}", self.port),
                "--bind-address=127.0.0.1".to_owned(),
                format!("--plugin-dir={}", plugin_dir().display()),
                format!("--log-error={}", log_path.display()),
                format!(
                    "--pid-file={}",
                    self.dir.path().join("mariadbd.pid").display()
                ),
                "--skip-log-bin".to_owned(),
                "--innodb-buffer-pool-size=16M".to_owned(),
                "--max-connections=200".to_owned(),
            ])
            .args(&self.options)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn mariadbd (is mariadb-server installed?)");
        self.child = Some(child);
        loop {
            let child = self.child.as_mut().expect("spawned");
            if child.try_wait().expect("poll mariadbd").is_some() {
                self.child = None;
                let log = read_lossy(&log_path);
                return Err(log.get(log_before..).unwrap_or(&log).to_owned());
            }
            // After a kill -9 the old socket file is still there, refusing connections until
            // the new server replaces it.
            if self.socket.exists() && self.root_query("SELECT 1", POLL_CONNECT_TIMEOUT_S).is_ok() {
                return Ok(started.elapsed());
            }
            if started.elapsed() > start_timeout {
                self.fail(format!(
                    "mariadbd on port {} did not answer within {start_timeout:?}",
                    self.port
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Kills the server and panics with `what` and the error log's tail, which the drop
    /// during unwinding then does not print again.
    fn fail(&mut self, what: String) -> ! {
        self.kill9();
        self.error_log_shown = true;
        panic!(
            "{what}; its error log ends:\n{}",
            tail(&self.error_log(), LOG_TAIL_LINES)
        )
    }

    fn child(&self) -> &Child {
        self.child
            .as_ref()
            .unwrap_or_else(|| panic!("mariadbd on port {} is not running", self.port))
    }

    pub fn pid(&self) -> i32 {
        self.child().id() as i32
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Resident memory of the server, from `/proc/<pid>/status`.
    pub fn rss_kb(&self) -> u64 {
        super::gcsd::rss_kb(self.pid())
    }

    /// `kill -9` (a crash, as far as the datadir is concerned), and reap it. No-op when stopped.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Clean shutdown by SIGTERM (what systemd sends), waiting for the exit; returns how long it
    /// took. Panics if the server does not exit in time or exits unsuccessfully, since a
    /// plugin that hangs or crashes on shutdown is a bug.
    pub fn shutdown(&mut self) -> Duration {
        let pid = self.pid();
        let started = Instant::now();
        // SAFETY: kill(2) on a child we spawned and have not reaped, so the pid is still ours.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM mariadbd");
        let status = loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("poll mariadbd") {
                break status;
            }
            if started.elapsed() > SHUTDOWN_TIMEOUT {
                self.fail(format!(
                    "mariadbd on port {} did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = started.elapsed();
        self.child = None;
        if !status.success() {
            self.fail(format!(
                "mariadbd on port {} exited with {status} on SIGTERM",
                self.port
            ));
        }
        took
    }

    /// Clean shutdown, then start again with the same datadir, port and options; returns how
    /// long the start took.
    pub fn restart(&mut self) -> Duration {
        self.shutdown();
        self.launch()
    }

    /// Runs `q` (one or more `;`-separated statements) as root over the unix socket and returns
    /// the rows of all result sets, each column as the client prints it; SQL NULL comes back as
    /// `"NULL"`. `Err` carries the client's message, e.g.
    /// `ERROR 1127 (HY000) at line 1: Can't find symbol ...`.
    pub fn sql(&self, q: &str) -> Result<Vec<Vec<String>>, String> {
        self.root_query(q, CONNECT_TIMEOUT_S)
    }

    /// [`MariaDb::sql`] as `user` (created with `CREATE USER ... IDENTIFIED BY password`),
    /// connecting over TCP to its `host` the way a remote application would.
    pub fn sql_as(&self, user: &str, password: &str, q: &str) -> Result<Vec<Vec<String>>, String> {
        let mut cmd = Command::new("mariadb");
        cmd.arg("--no-defaults")
            .arg("--protocol=TCP")
            .arg(format!("--host={}", self.host))
            .arg(format!("--port={}", self.port))
            .arg(format!("--user={user}"))
            .arg(format!("--password={password}"));
        run_client(cmd, q, CONNECT_TIMEOUT_S)
    }

    /// The single value `q` returns; panics with the error, or if there is not exactly one
    /// row of one column.
    pub fn query_one(&self, q: &str) -> String {
        let rows = self.sql(q).unwrap_or_else(|e| panic!("{q}\nfailed: {e}"));
        match rows.as_slice() {
            [row] if row.len() == 1 => row[0].clone(),
            _ => panic!("{q}\nreturned {rows:?}, not one value"),
        }
    }

    fn root_query(&self, q: &str, connect_timeout_s: u32) -> Result<Vec<Vec<String>>, String> {
        let mut cmd = Command::new("mariadb");
        cmd.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .arg("--user=root");
        run_client(cmd, q, connect_timeout_s)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() && !self.error_log_shown {
            eprintln!(
                "---- error log of mariadbd on port {} ({}) ----\n{}",
                self.port,
                self.dir.path().display(),
                tail(&self.error_log(), LOG_TAIL_LINES)
            );
        }
        if !self.socket.starts_with(self.dir.path()) {
            remove_socket_files(&self.socket);
        }
    }
}

/// The server's unix socket: inside its dir when that path is short enough, else a short
/// unique name in /tmp (a long `TMPDIR` would otherwise overflow `sun_path`).
fn socket_path(dir: &Path) -> PathBuf {
    let inside = dir.join("mariadbd.sock");
    if inside.as_os_str().len() <= MAX_SOCKET_PATH {
        return inside;
    }
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let path = PathBuf::from(format!(
        "/tmp/mariadb-{}-{}.sock",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    // Left behind by an earlier, killed process with our pid.
    remove_socket_files(&path);
    path
}

fn remove_socket_files(socket: &Path) {
    std::fs::remove_file(socket).ok();
    let mut lock = socket.as_os_str().to_owned();
    lock.push(".lock");
    std::fs::remove_file(lock).ok();
}

/// Runs the `mariadb` client `cmd` (already holding its login options) on `q` in batch mode
/// without column names, bounded by [`CLIENT_TIMEOUT`].
fn run_client(
    mut cmd: Command,
    q: &str,
    connect_timeout_s: u32,
) -> Result<Vec<Vec<String>>, String> {
    cmd.args([
        // The client otherwise converts to the locale's character set: with no locale (most
        // containers) "cassé ✗" arrives as "cass? ?".
        "--default-character-set=utf8mb4",
        "--batch",
        "--skip-column-names",
        // Otherwise a failing statement is echoed between dashes before the error line.
        "--skip-print-query-on-error",
    ])
    .arg(format!("--connect-timeout={connect_timeout_s}"))
    .arg("--execute")
    .arg(q);
    let out = output_within(cmd, q, CLIENT_TIMEOUT);
    if out.status.success() {
        Ok(parse_batch(&String::from_utf8_lossy(&out.stdout)))
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
        Err(if stderr.is_empty() {
            format!("mariadb client {}", out.status)
        } else {
            stderr
        })
    }
}

/// Rows of batch output: one line per row, tab-separated columns. Batch mode (unlike `--raw`)
/// escapes tab, newline, NUL and backslash inside values, so undoing that gives every value
/// back exactly, whatever it contains.
fn parse_batch(out: &str) -> Vec<Vec<String>> {
    out.split_terminator('\n')
        .map(|line| line.split('\t').map(unescape).collect())
        .collect()
}

fn unescape(field: &str) -> String {
    let mut value = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            value.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => value.push('\t'),
            Some('n') => value.push('\n'),
            Some('0') => value.push('\0'),
            Some(other) => value.push(other),
            None => value.push('\\'),
        }
    }
    value
}

/// Runs `cmd` to completion, reading its output; panics naming `what` if it takes longer
/// than `timeout` (after killing it).
fn output_within(mut cmd: Command, what: &str, timeout: Duration) -> Output {
    fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).ok();
            bytes
        })
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the mariadb client");
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the mariadb client") {
            break status;
        }
        if started.elapsed() > timeout {
            child.kill().ok();
            child.wait().ok();
            panic!("the mariadb client did not finish within {timeout:?}:\n{what}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
