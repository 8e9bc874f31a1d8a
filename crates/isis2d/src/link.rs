//! isis2d's link to the local gcsd. One background thread keeps this server registered
//! (`join`, a `heartbeat` every interval, `leave` at the end) over one connection, and keeps
//! the newest serverlist, pushed over a second (`subscribe`) connection, as an immutable
//! snapshot that `INFORMATION_SCHEMA.ISIS2IS` copies without waiting on anything.
//!
//! Every socket operation has a short timeout and the stop flag is checked between them, so
//! the thread ends within a bounded time whatever gcsd does (down, hung, slow, garbage).
//!
//! gcsd is reached over TCP (the Isis2 contract) or over a Unix socket. Over the socket the
//! link first checks who serves it (`SO_PEERCRED`): a socket served by another user is a
//! squatter, and nothing is sent to it.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::{Mutex, RwLock};
use proto::{
    parse_history_header, served_version, BlockReader, Command, Errno, HistoryRow, LineBuffer,
    Reply, Role, ServerKey, ServerRow, Status, SERVERLIST_VERSION,
};

/// Bound on connecting to gcsd (loopback: it answers at once or not at all).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// Bound on a reply: gcsd answers a change only once it is committed, which it allows up to
/// its `propose_timeout_ms` (2 s by default). `stop` does not wait for this: it cuts the socket.
const REPLY_TIMEOUT: Duration = Duration::from_millis(2500);
/// Bound on each of the goodbye's operations (`heartbeat stopping`, `leave`).
const GOODBYE_TIMEOUT: Duration = Duration::from_millis(150);
/// How often the thread looks at the stop flag while it waits for pushes.
const POLL: Duration = Duration::from_millis(50);
/// Retrying loopback is cheap, and a restarted gcsd should see its server again within a second.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What the server tells the link about itself.
pub trait Server: Send + Sync {
    /// The server accepts connections (until then the status announced is `starting`).
    fn started(&self) -> bool;
    /// The role to announce now (a sysvar the DBA may change at runtime).
    fn role(&self) -> Role;
    fn log(&self, level: LogLevel, message: &str);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Note,
    Warning,
    Error,
}

/// Where gcsd listens for the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Daemon {
    Tcp(SocketAddr),
    /// A Unix socket, served only by a process of one of `uids`.
    Unix {
        path: PathBuf,
        uids: Vec<u32>,
    },
}

impl fmt::Display for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Daemon::Tcp(addr) => write!(f, "{addr}"),
            Daemon::Unix { path, .. } => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Where gcsd is and who this server is.
#[derive(Debug, Clone)]
pub struct Settings {
    pub daemon: Daemon,
    pub server: ServerKey,
    pub heartbeat: Duration,
}

/// The counters behind the `Isis2d_*` status variables. Static, because the server reads them
/// through pointers; reset by each plugin init and deinit.
#[derive(Default)]
pub struct Stats {
    pub connected: AtomicBool,
    pub heartbeats_sent: AtomicU64,
    pub heartbeats_failed: AtomicU64,
    pub reconnects: AtomicU64,
    pub last_error: Mutex<String>,
}

impl Stats {
    pub const fn new() -> Self {
        Self {
            connected: AtomicBool::new(false),
            heartbeats_sent: AtomicU64::new(0),
            heartbeats_failed: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
        }
    }

    /// Back to zero, with nothing left on the heap: the plugin resets them at deinit too, as
    /// its library may be unloaded next and a static is never dropped.
    pub fn reset(&self) {
        self.connected.store(false, Ordering::Relaxed);
        self.heartbeats_sent.store(0, Ordering::Relaxed);
        self.heartbeats_failed.store(0, Ordering::Relaxed);
        self.reconnects.store(0, Ordering::Relaxed);
        *self.last_error.lock() = String::new();
    }
}

/// The newest serverlist and what is known about its freshness.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub rows: Vec<ServerRow>,
    /// gcsd's own warning about the list (errno 7: it has no quorum), if any.
    pub gcsd_warning: Option<String>,
}

/// The link's copy of the history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistorySnapshot {
    /// gcsd's revision of it; none before the first answer.
    pub rev: Option<u64>,
    pub rows: Vec<HistoryRow>,
    /// Why gcsd cannot send it (it predates the history), if so.
    pub unsupported: Option<String>,
}

/// Shared by the link thread, the table and the status variables.
pub struct Link {
    pub settings: Settings,
    pub stats: &'static Stats,
    stop: AtomicBool,
    snapshot: RwLock<Arc<Snapshot>>,
    /// The pools' history, as last fetched.
    history: RwLock<Arc<HistorySnapshot>>,
    /// When gcsd last vouched for the list (a pushed list or an acknowledged heartbeat); none
    /// before the first list. Kept apart from the snapshot, which changes only with the list.
    confirmed: Mutex<Option<Instant>>,
    /// Clones of the open sockets, so `stop` can cut a blocked operation short.
    sockets: Mutex<Vec<Stream>>,
    /// A problem was logged since the last "connected" note: the next connection says so.
    down_logged: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("cannot reach gcsd at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("lost gcsd at {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("gcsd at {addr} closed the connection")]
    Closed { addr: String },
    #[error(
        "gcsd at {addr} sent something that is not the protocol: {}",
        quote(line)
    )]
    Garbage { addr: String, line: String },
    #[error("gcsd at {addr} sent a line longer than {} bytes", proto::MAX_LINE)]
    LineTooLong { addr: String },
    #[error(
        "gcsd at {addr} sent a serverlist too large (more than {} rows or {} bytes); not kept",
        proto::MAX_BLOCK_ROWS,
        proto::MAX_BLOCK_BYTES
    )]
    TooLarge { addr: String },
    #[error(
        "{addr} is served by a process of uid {uid}, not gcsd's (uid {expected}): nothing is sent \
         to it (set isis2d_daemon_uid to gcsd's uid if that is gcsd)"
    )]
    Impostor {
        addr: String,
        uid: u32,
        expected: String,
    },
    #[error("gcsd at {addr} refused {command:?}: {reply}")]
    Refused {
        addr: String,
        command: String,
        reply: String,
    },
}

impl LinkError {
    /// What went wrong, without the details that change from one attempt to the next.
    fn kind(&self) -> &'static str {
        match self {
            LinkError::Connect { .. } => "connect",
            LinkError::Io { .. } => "io",
            LinkError::Closed { .. } => "closed",
            LinkError::Garbage { .. } | LinkError::LineTooLong { .. } => "not the protocol",
            LinkError::TooLarge { .. } => "too large",
            LinkError::Refused { .. } => "refused",
            LinkError::Impostor { .. } => "impostor",
        }
    }
}

/// A peer's bytes, shortened and escaped so they cannot flood a log line or an ERROR column.
fn quote(line: &str) -> String {
    const SHOWN: usize = 40;
    let shown: String = line.chars().take(SHOWN).collect();
    let more = if line.chars().count() > SHOWN {
        "..."
    } else {
        ""
    };
    format!("{shown:?}{more}")
}

impl Link {
    pub fn new(settings: Settings, stats: &'static Stats) -> Arc<Self> {
        stats.reset();
        Arc::new(Self {
            settings,
            stats,
            stop: AtomicBool::new(false),
            snapshot: RwLock::new(Arc::new(Snapshot {
                rows: Vec::new(),
                gcsd_warning: None,
            })),
            history: RwLock::new(Arc::new(HistorySnapshot::default())),
            confirmed: Mutex::new(None),
            sockets: Mutex::new(Vec::new()),
            down_logged: AtomicBool::new(false),
        })
    }

    /// The newest copy of the history.
    pub fn history(&self) -> Arc<HistorySnapshot> {
        self.history.read().clone()
    }

    /// The newest snapshot. The lock is held only to clone an `Arc`.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().clone()
    }

    pub fn confirmed(&self) -> Option<Instant> {
        *self.confirmed.lock()
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Asks the thread to say goodbye and end.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Unblocks whatever socket operation the thread is in; it then ends at once.
    pub fn cut(&self) {
        for s in self.sockets.lock().drain(..) {
            s.shutdown();
        }
    }

    /// The thread's body: sessions with gcsd, reconnecting with backoff, until stopped.
    pub fn run(&self, server: &dyn Server) {
        let mut backoff = Duration::from_millis(100);
        // The kinds of problem logged since the link was last up.
        let mut reported: Vec<&'static str> = Vec::new();
        while !self.stopping() {
            let before = self.confirmed();
            let result = self.session(server);
            // Only a session that got gcsd's word on the list counts as the link having been
            // up: one that connects and then fails the same way each time (a list too large,
            // say) is the same problem, logged once.
            let served = self.confirmed() != before;
            if self.stats.connected.swap(false, Ordering::Relaxed) && served {
                reported.clear();
            }
            self.sockets.lock().clear();
            let Err(e) = result else { return };
            let message = e.to_string();
            *self.stats.last_error.lock() = message.clone();
            if self.stopping() {
                return;
            }
            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            // One log line per kind of problem, not one per retry (a peer sending junk would
            // otherwise get a new line for each new junk).
            if !reported.contains(&e.kind()) {
                server.log(LogLevel::Warning, &format!("{message}; retrying"));
                reported.push(e.kind());
                self.down_logged.store(true, Ordering::Relaxed);
            }
            self.sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn sleep(&self, total: Duration) {
        let until = Instant::now() + total;
        while !self.stopping() && Instant::now() < until {
            std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
        }
    }

    fn connect(&self) -> Result<Conn, LinkError> {
        let addr = self.settings.daemon.to_string();
        let connect_error = |source| LinkError::Connect {
            addr: addr.clone(),
            source,
        };
        let stream = Stream::connect(&self.settings.daemon).map_err(connect_error)?;
        if let Daemon::Unix { uids, .. } = &self.settings.daemon {
            let uid = stream.peer_uid().map_err(connect_error)?;
            if !uids.contains(&uid) {
                let expected: Vec<String> = uids.iter().map(u32::to_string).collect();
                return Err(LinkError::Impostor {
                    addr,
                    uid,
                    expected: expected.join(" or "),
                });
            }
        }
        stream.set_timeouts(REPLY_TIMEOUT).map_err(connect_error)?;
        if let Ok(clone) = stream.try_clone() {
            self.sockets.lock().push(clone);
        }
        Ok(Conn {
            addr,
            stream,
            lines: LineBuffer::new(proto::MAX_LINE),
        })
    }

    fn status(&self, server: &dyn Server) -> Status {
        if self.stopping() {
            Status::Stopping
        } else if server.started() {
            Status::On
        } else {
            Status::Starting
        }
    }

    fn session(&self, server: &dyn Server) -> Result<(), LinkError> {
        let key = &self.settings.server;
        let mut role = server.role();
        let mut cmd = self.connect()?;
        let join = |status, role| Command::Join {
            server: key.clone(),
            status,
            role,
        };
        cmd.request_ok(&join(self.status(server), role))?;

        let mut sub = self.connect()?;
        let version = sub.subscribe()?;
        sub.stream
            .set_read_timeout(POLL)
            .map_err(|source| cmd.io(source))?;
        self.stats.connected.store(true, Ordering::Relaxed);
        if self.down_logged.swap(false, Ordering::Relaxed) {
            server.log(
                LogLevel::Note,
                &format!("connected to gcsd at {}", cmd.addr),
            );
        }

        let mut blocks = BlockReader::of_version(version);
        let mut next_heartbeat = Instant::now() + self.settings.heartbeat;
        // Another gcsd (or a restarted one) may have another history: fetch it whole.
        let mut history_since = None;
        let mut history_due = true;
        loop {
            if self.stopping() {
                self.goodbye(&mut cmd);
                return Ok(());
            }
            if history_due {
                history_since = self.fetch_history(&mut cmd, history_since)?;
                history_due = false;
            }
            for line in sub.poll_lines()? {
                let list = blocks.push_line(&line).map_err(|e| match e.reason {
                    proto::TOO_LARGE => LinkError::TooLarge {
                        addr: sub.addr.clone(),
                    },
                    _ => LinkError::Garbage {
                        addr: sub.addr.clone(),
                        line: line.clone(),
                    },
                })?;
                if let Some(list) = list {
                    let gcsd_warning =
                        (list.header.errno != Errno::Ok).then(|| list.header.text.clone());
                    *self.snapshot.write() = Arc::new(Snapshot {
                        rows: list.rows,
                        gcsd_warning,
                    });
                    *self.confirmed.lock() = Some(Instant::now());
                    // A pool transition changes the list: its history entry is new too.
                    history_due = true;
                }
            }
            if Instant::now() < next_heartbeat {
                continue;
            }
            next_heartbeat += self.settings.heartbeat;
            let (new_status, new_role) = (self.status(server), server.role());
            let beat = if new_role != role {
                // A role change is a new registration.
                role = new_role;
                join(new_status, role)
            } else {
                Command::Heartbeat {
                    server: key.clone(),
                    status: new_status,
                }
            };
            self.stats.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
            let reply = cmd.request(&beat).inspect_err(|_| {
                self.stats.heartbeats_failed.fetch_add(1, Ordering::Relaxed);
            })?;
            match reply.errno {
                Errno::Ok => {
                    self.confirm();
                    // Hook outcomes change the history without changing the list.
                    history_due = true;
                }
                // gcsd restarted (or expired us): register again.
                Errno::UnknownServer => cmd.request_ok(&join(new_status, role))?,
                // gcsd is up but its group cannot commit: the list says so; keep beating.
                Errno::NoQuorum => {
                    self.stats.heartbeats_failed.fetch_add(1, Ordering::Relaxed);
                    *self.stats.last_error.lock() = reply.text;
                }
                _ => {
                    self.stats.heartbeats_failed.fetch_add(1, Ordering::Relaxed);
                    return Err(cmd.refused(&beat, &reply));
                }
            }
        }
    }

    /// Asks for the history unless gcsd still has revision `since`; keeps what it answers.
    /// Returns the revision now held. A gcsd that predates the history is asked once per
    /// session; the table then says so.
    fn fetch_history(&self, cmd: &mut Conn, since: Option<u64>) -> Result<Option<u64>, LinkError> {
        if since.is_some() && self.history().unsupported.is_some() {
            return Ok(since);
        }
        let ask = Command::History { since };
        let reply = cmd.request(&ask)?;
        // The history is an extra: a gcsd that does not serve it (an old one answers errno 1)
        // or answers something else keeps serving the list; the table says why it is empty.
        let unsupported = |why: String| {
            *self.history.write() = Arc::new(HistorySnapshot {
                rev: None,
                rows: Vec::new(),
                unsupported: Some(why),
            });
            Ok(Some(0))
        };
        let header = match reply.errno {
            Errno::Ok => parse_history_header(&reply.text),
            Errno::InvalidCommand => {
                return unsupported(format!(
                    "gcsd at {} does not serve the history (it is older than this plugin)",
                    cmd.addr
                ))
            }
            _ => return Err(cmd.refused(&ask, &reply)),
        };
        let (rev, count) = match header {
            Ok(Some(header)) => header,
            Ok(None) => return Ok(since),
            Err(why) => {
                return unsupported(format!(
                    "gcsd at {} answered `history` with something else: {why}",
                    cmd.addr
                ))
            }
        };
        let mut rows = Vec::with_capacity(count);
        for _ in 0..count {
            let line = cmd.read_line()?;
            rows.push(HistoryRow::parse(&line).map_err(|_| LinkError::Garbage {
                addr: cmd.addr.clone(),
                line,
            })?);
        }
        *self.history.write() = Arc::new(HistorySnapshot {
            rev: Some(rev),
            rows,
            unsupported: None,
        });
        Ok(Some(rev))
    }

    /// An acknowledged heartbeat vouches for the list we have, but only once one has arrived:
    /// until then, no list is not an empty list.
    fn confirm(&self) {
        let mut confirmed = self.confirmed.lock();
        if confirmed.is_some() {
            *confirmed = Some(Instant::now());
        }
    }

    /// `heartbeat ... stopping`, then `leave`, each with a short bound; best effort.
    fn goodbye(&self, cmd: &mut Conn) {
        let key = &self.settings.server;
        cmd.stream.set_timeouts(GOODBYE_TIMEOUT).ok();
        let _ = cmd.request(&Command::Heartbeat {
            server: key.clone(),
            status: Status::Stopping,
        });
        let _ = cmd.request(&Command::Leave {
            server: key.clone(),
        });
    }
}

/// A connection to gcsd, over TCP or a Unix socket.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn connect(daemon: &Daemon) -> std::io::Result<Stream> {
        match daemon {
            Daemon::Tcp(addr) => {
                let stream = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)?;
                stream.set_nodelay(true).ok();
                Ok(Stream::Tcp(stream))
            }
            Daemon::Unix { path, .. } => {
                use rustix::net::{sockopt, AddressFamily, SocketAddrUnix, SocketType};
                // A Unix connect waits while the listener's queue is full (a hung gcsd), for
                // as long as the send timeout allows: bound it like a TCP connect.
                let fd = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None)?;
                sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, Some(CONNECT_TIMEOUT))?;
                rustix::net::connect(&fd, &SocketAddrUnix::new(path.as_path())?)?;
                Ok(Stream::Unix(UnixStream::from(fd)))
            }
        }
    }

    /// The uid of the process that serves the socket (as it was when it called `listen`).
    fn peer_uid(&self) -> std::io::Result<u32> {
        match self {
            Stream::Tcp(_) => Err(std::io::ErrorKind::Unsupported.into()),
            Stream::Unix(s) => Ok(rustix::net::sockopt::socket_peercred(s)?.uid.as_raw()),
        }
    }

    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(timeout)?;
        match self {
            Stream::Tcp(s) => s.set_write_timeout(Some(timeout)),
            Stream::Unix(s) => s.set_write_timeout(Some(timeout)),
        }
    }

    fn set_read_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(timeout)),
            Stream::Unix(s) => s.set_read_timeout(Some(timeout)),
        }
    }

    fn try_clone(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One connection to gcsd with its bounded line framing.
struct Conn {
    addr: String,
    stream: Stream,
    lines: LineBuffer,
}

impl Conn {
    fn io(&self, source: std::io::Error) -> LinkError {
        LinkError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    fn refused(&self, command: &Command, reply: &Reply) -> LinkError {
        LinkError::Refused {
            addr: self.addr.clone(),
            command: command.to_line().trim_end().to_owned(),
            reply: reply.to_line().trim_end().to_owned(),
        }
    }

    /// Sends one command that must be answered `0`.
    /// Subscribes to the newest serverlist version this plugin reads; returns the version
    /// served. A gcsd from before versions answers errno 2 (wrong number of parameters) and is
    /// asked again without one.
    fn subscribe(&mut self) -> Result<u32, LinkError> {
        let newest = Command::Subscribe {
            version: SERVERLIST_VERSION,
        };
        let reply = self.request(&newest)?;
        match reply.errno {
            Errno::Ok => Ok(served_version(&reply.text).min(SERVERLIST_VERSION)),
            Errno::WrongParameterCount => {
                self.request_ok(&Command::Subscribe { version: 1 })?;
                Ok(1)
            }
            _ => Err(self.refused(&newest, &reply)),
        }
    }

    fn request_ok(&mut self, command: &Command) -> Result<(), LinkError> {
        let reply = self.request(command)?;
        match reply.errno {
            Errno::Ok => Ok(()),
            _ => Err(self.refused(command, &reply)),
        }
    }

    /// Sends one command and reads its one-line reply.
    fn request(&mut self, command: &Command) -> Result<Reply, LinkError> {
        self.stream
            .write_all(command.to_line().as_bytes())
            .map_err(|e| self.io(e))?;
        let line = self.read_line()?;
        Reply::parse(&line).map_err(|_| LinkError::Garbage {
            addr: self.addr.clone(),
            line,
        })
    }

    /// The next line, waiting for it within the socket's read timeout.
    fn read_line(&mut self) -> Result<String, LinkError> {
        loop {
            if let Some(line) = self.next_line()? {
                return Ok(line);
            }
            self.fill()?;
        }
    }

    fn next_line(&mut self) -> Result<Option<String>, LinkError> {
        match self.lines.next_line() {
            None => Ok(None),
            Some(Ok(bytes)) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Some(Err(_)) => Err(LinkError::LineTooLong {
                addr: self.addr.clone(),
            }),
        }
    }

    /// Reads what is there into the line buffer; a timeout is an error (gcsd is too slow).
    fn fill(&mut self) -> Result<(), LinkError> {
        let mut buf = [0u8; 4096];
        // A signal (a debugger attaching, say) interrupts the read; that is no error.
        let read = loop {
            match self.stream.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match read {
            Ok(0) => Err(LinkError::Closed {
                addr: self.addr.clone(),
            }),
            Ok(n) => {
                self.lines.push(&buf[..n]);
                Ok(())
            }
            Err(e) => Err(self.io(e)),
        }
    }

    /// The complete lines that arrive within one poll interval (none is fine).
    fn poll_lines(&mut self) -> Result<Vec<String>, LinkError> {
        match self.fill() {
            Ok(()) => {}
            Err(LinkError::Io { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
        let mut lines = Vec::new();
        while let Some(line) = self.next_line()? {
            lines.push(line);
        }
        Ok(lines)
    }
}
