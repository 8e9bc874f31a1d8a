//! The plugin port: the Isis2 line protocol on TCP, for the isis2d plugin and for telnet, and
//! on a Unix socket, where gcsd knows who the peer is (`SO_PEERCRED`) and serves only the users
//! it allows.
//!
//! One task per connection. Input is framed by `proto::LineBuffer` with a hard bound, so no
//! input can grow memory; connections and subscribers are capped, each connection's commands
//! are paced, idle ones are closed, and a client that stops reading is dropped after a write
//! timeout rather than holding a task forever.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proto::{
    block_of, version_reply_text, Command, Errno, LineBuffer, Reply, ServerKey, MAX_LINE,
    SERVERLIST_VERSION,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::group::{Group, ServerListView};
use crate::local_servers::{HeartbeatOutcome, LocalServers};
use crate::probe::Probes;
use crate::state::GroupState;
use crate::warn_limit::WarnLimiter;
use crate::wire::ProposeError;

/// A client that does not take a reply within this time is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Where plugin connections come from.
pub enum Listener {
    /// The Isis2 TCP port (`plugin_listen`).
    Tcp(TcpListener),
    /// The Unix socket (`plugin_socket`).
    Unix(UnixListener),
}

/// How a connection reached gcsd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    /// The Unix socket, from a process of this uid.
    Unix {
        uid: u32,
    },
}

impl Listener {
    /// The next connection, split, with how it came and who it is (for the log).
    async fn accept(&self) -> std::io::Result<(Reader, Writer, Transport, String)> {
        match self {
            Listener::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                let (r, w) = stream.into_split();
                Ok((Box::new(r), Box::new(w), Transport::Tcp, peer.to_string()))
            }
            Listener::Unix(l) => {
                let (stream, _) = l.accept().await?;
                let cred = stream.peer_cred()?;
                let (uid, pid) = (cred.uid(), cred.pid().unwrap_or(0));
                let (r, w) = stream.into_split();
                let peer = format!("uid {uid} pid {pid}");
                Ok((Box::new(r), Box::new(w), Transport::Unix { uid }, peer))
            }
        }
    }
}

/// Binds the plugin's Unix socket at `path`, mode 0666: who may use it is decided by its
/// peer's uid, checked on every connection (so a refused user gets a reply that says why,
/// rather than a bare "permission denied"). A socket left behind by a gcsd that died is
/// replaced; one that another process still serves is not.
pub fn bind_unix(path: &Path) -> anyhow::Result<UnixListener> {
    use anyhow::{bail, Context};
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!("another process serves it (is another gcsd running?)");
            }
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
        }
        Ok(_) => bail!("it exists and is not a socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot look at {}", path.display())),
    }
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("cannot chmod 0666 {}", path.display()))?;
    Ok(listener)
}

/// Removes the plugin socket gcsd bound, when it stops.
pub struct SocketFile(pub PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The limits and rules of the plugin port, from the configuration.
pub struct Rules {
    pub max_connections: usize,
    pub max_subscribers: usize,
    pub idle_timeout: Duration,
    /// Commands each connection may send per second, on average (a burst of twice as many is
    /// served at once); beyond it they are served late, never refused.
    pub commands_per_sec: u32,
    /// Whether `join`, `leave` and `heartbeat` are taken over TCP.
    pub tcp_writes: bool,
    /// Who may use the Unix socket.
    pub allowed_uids: Vec<u32>,
}

pub struct PluginPort {
    pub group: Arc<Group>,
    pub local: Arc<LocalServers>,
    pub probes: Arc<Probes>,
    pub rules: Rules,
    /// One permit per open connection; all permits back means every connection has closed.
    pub connections: Arc<Semaphore>,
    /// One permit per subscriber.
    pub subscribers: Arc<Semaphore>,
    pub shutdown: CancellationToken,
    /// Every connection's task, so that shutdown can wait for them to end.
    pub tasks: TaskTracker,
    rendered: Rendered,
    /// The current list and its blocks, for `serverlist` and a new subscriber's first list.
    current: Current,
    refused_uids: WarnLimiter,
}

/// How a connection ends.
enum Next {
    Continue,
    Close,
    /// Push serverlists of this version from now on, holding a subscriber's permit.
    Subscribe(u32, OwnedSemaphorePermit),
}

/// Binds the plugin port with a deep accept queue: a burst of (re)connecting plugins, say after
/// a network blip, must not overflow the default backlog of 128.
pub fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

impl PluginPort {
    pub fn new(
        group: Arc<Group>,
        local: Arc<LocalServers>,
        probes: Arc<Probes>,
        rules: Rules,
        shutdown: CancellationToken,
    ) -> Self {
        PluginPort {
            group,
            local,
            probes,
            connections: Arc::new(Semaphore::new(rules.max_connections)),
            subscribers: Arc::new(Semaphore::new(rules.max_subscribers)),
            rules,
            shutdown,
            tasks: TaskTracker::new(),
            rendered: Rendered::default(),
            current: Current::default(),
            refused_uids: WarnLimiter::default(),
        }
    }

    pub async fn serve(self: Arc<Self>, listener: Listener) {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = self.shutdown.cancelled() => return,
            };
            let (reader, writer, transport, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("plugin port cannot accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let port = self.clone();
            self.tasks.spawn(async move {
                let mut servers = Vec::new();
                if let Err(e) = port
                    .connection(reader, writer, transport, &mut servers)
                    .await
                {
                    tracing::debug!(%peer, "plugin connection ended: {e}");
                }
                // A server that did not say goodbye may have crashed: look at once.
                if !port.shutdown.is_cancelled() {
                    for server in servers {
                        port.probes.dropped(server);
                    }
                }
            });
        }
    }

    pub fn open_connections(&self) -> usize {
        self.rules.max_connections - self.connections.available_permits()
    }

    /// Serves one connection; `servers` collects the servers it joined or sent heartbeats
    /// for, and did not leave.
    async fn connection(
        &self,
        mut reader: Reader,
        mut writer: Writer,
        transport: Transport,
        servers: &mut Vec<ServerKey>,
    ) -> std::io::Result<()> {
        let Ok(_permit) = self.connections.clone().try_acquire_owned() else {
            self.group.metrics.plugin_refused("connections");
            let reply = Reply::too_many_connections(self.rules.max_connections);
            return send(&mut writer, &reply.to_line()).await;
        };
        if let Transport::Unix { uid } = transport {
            if !self.rules.allowed_uids.contains(&uid) {
                self.group.metrics.plugin_refused("uid");
                self.warn_refused_uid(uid);
                let reply = Reply::uid_not_allowed(uid).to_line();
                return refuse(&mut reader, &mut writer, &reply).await;
            }
        }
        let mut lines = LineBuffer::new(MAX_LINE);
        let mut pace = Pace::new(self.rules.commands_per_sec, Instant::now());
        let mut buf = [0u8; 4096];
        loop {
            while let Some(line) = lines.next_line() {
                if let Some(wait) = pace.take(Instant::now()) {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.shutdown.cancelled() => {
                            return send(&mut writer, &Reply::shutting_down().to_line()).await;
                        }
                    }
                }
                let next = match line {
                    Ok(line) => self.command(&line, &mut writer, transport, servers).await?,
                    Err(too_long) => {
                        send(&mut writer, &Reply::from(&too_long).to_line()).await?;
                        Next::Close
                    }
                };
                match next {
                    Next::Continue => {}
                    Next::Close => return Ok(()),
                    Next::Subscribe(version, _subscriber) => {
                        return self.push_serverlists(reader, writer, version).await;
                    }
                }
            }
            let read = tokio::select! {
                r = tokio::time::timeout(self.rules.idle_timeout, reader.read(&mut buf)) => r,
                () = self.shutdown.cancelled() => {
                    return send(&mut writer, &Reply::shutting_down().to_line()).await;
                }
            };
            match read {
                Err(_) => return Ok(()), // idle too long
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(n)) => lines.push(&buf[..n]),
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// One warning per refused uid per 10 s: a misconfigured plugin retries every second.
    fn warn_refused_uid(&self, uid: u32) {
        self.refused_uids.warn(|count| {
            tracing::warn!(
                uid,
                allowed = ?self.rules.allowed_uids,
                count,
                "plugin socket: refused a process of a uid not in plugin_allowed_uids"
            )
        });
    }

    async fn command(
        &self,
        line: &[u8],
        writer: &mut Writer,
        transport: Transport,
        servers: &mut Vec<ServerKey>,
    ) -> std::io::Result<Next> {
        let cmd = match Command::parse(line) {
            Ok(Some(cmd)) => cmd,
            Ok(None) => return Ok(Next::Continue),
            Err(e) => {
                self.group.metrics.plugin_command("invalid");
                send(writer, &Reply::from(&e).to_line()).await?;
                return Ok(Next::Continue);
            }
        };
        self.group.metrics.plugin_command(cmd.verb().word());
        let writes = matches!(
            cmd,
            Command::Join { .. } | Command::Leave { .. } | Command::Heartbeat { .. }
        );
        if writes && transport == Transport::Tcp && !self.rules.tcp_writes {
            self.group.metrics.plugin_refused("transport");
            send(writer, &Reply::not_on_this_transport().to_line()).await?;
            return Ok(Next::Continue);
        }
        match &cmd {
            Command::Join { server, .. } | Command::Heartbeat { server, .. }
                if !servers.contains(server) =>
            {
                servers.push(server.clone());
            }
            Command::Leave { server } => servers.retain(|s| s != server),
            _ => {}
        }
        let reply = match cmd {
            Command::Join {
                server,
                status,
                role,
            } => committed(self.local.join(server, status, role).await),
            Command::Leave { server } => committed(self.local.leave(server).await),
            Command::Heartbeat { server, status } => match self.local.heartbeat(&server, status) {
                HeartbeatOutcome::Recorded => match self.group.quorum_problem() {
                    None => Reply::ok(),
                    Some(why) => Reply::heartbeat_without_quorum(&why),
                },
                HeartbeatOutcome::Changed(cmd) => {
                    committed(self.local.commit_status_change(cmd).await)
                }
                HeartbeatOutcome::Unknown => Reply::unknown_server(&server),
            },
            Command::Serverlist { version } => {
                let version = version.min(SERVERLIST_VERSION);
                send(writer, &self.current.block(&self.group, version)).await?;
                return Ok(Next::Continue);
            }
            Command::Subscribe { version } => {
                let Ok(permit) = self.subscribers.clone().try_acquire_owned() else {
                    self.group.metrics.plugin_refused("subscribers");
                    let reply = Reply::too_many_subscribers(self.rules.max_subscribers);
                    send(writer, &reply.to_line()).await?;
                    return Ok(Next::Close);
                };
                // A plain `subscribe` gets the Isis2 reply and rows; a versioned one is told
                // which version it gets.
                let reply = match version.min(SERVERLIST_VERSION) {
                    1 => Reply::ok(),
                    v => Reply::new(Errno::Ok, version_reply_text(v)),
                };
                send(writer, &reply.to_line()).await?;
                return Ok(Next::Subscribe(version.min(SERVERLIST_VERSION), permit));
            }
            Command::History { since } => {
                send(writer, &history_block(&self.group.state().pools, since)).await?;
                return Ok(Next::Continue);
            }
            Command::Quit => {
                send(writer, &Reply::bye().to_line()).await?;
                return Ok(Next::Close);
            }
        };
        send(writer, &reply.to_line()).await?;
        Ok(Next::Continue)
    }

    /// After `subscribe`: the current list at once, then every change. Input is read only to
    /// notice the client closing; it is discarded.
    async fn push_serverlists(
        &self,
        mut reader: Reader,
        mut writer: Writer,
        version: u32,
    ) -> std::io::Result<()> {
        let mut lists = self.group.serverlist();
        lists.borrow_and_update();
        let mut sink = [0u8; 1024];
        // The first list is the current one (the published copy may lag by a tick); after that
        // each published change, except one that equals what this subscriber already has.
        let (first, text) = self.current.list_and_block(&self.group, version);
        send(&mut writer, &text).await?;
        let mut sent = first;
        loop {
            tokio::select! {
                changed = lists.changed() => {
                    if changed.is_err() { return Ok(()); }
                    let view = lists.borrow_and_update().clone();
                    if *view != *sent {
                        send(&mut writer, &self.rendered.block(&view, version)).await?;
                        sent = view;
                    }
                }
                read = reader.read(&mut sink) => {
                    if read? == 0 { return Ok(()); }
                }
                () = self.shutdown.cancelled() => {
                    return send(&mut writer, &Reply::shutting_down().to_line()).await;
                }
            }
        }
    }
}

fn committed(result: Result<(), ProposeError>) -> Reply {
    match result {
        Ok(()) => Reply::ok(),
        Err(ProposeError::NoQuorum(why)) => Reply::no_quorum(&why),
        Err(ProposeError::Rejected(why)) => Reply::rejected(&why),
        Err(ProposeError::Full(why)) => Reply::too_many_servers(&why),
        // `propose` follows a moving leader until its timeout, so `NotLeader` does not reach
        // here; if it ever did, it is a failure of this member, not an answer of the group.
        Err(e @ (ProposeError::NotLeader { .. } | ProposeError::Failed(_))) => {
            Reply::failed(&e.to_string())
        }
    }
}

/// A serverlist block of `version`; a stale list says so in its header (errno 7) and still
/// lists the rows.
fn block(view: &ServerListView, version: u32) -> String {
    let header = match &view.stale {
        None => Reply::new(Errno::Ok, ""),
        Some(why) => Reply::stale(why),
    };
    block_of(&header, view.rows(version), version)
}

/// The blocks last rendered for a published list, by version: every subscriber is sent the same
/// text, so it is rendered once per change, not once per subscriber (at 10,000 servers a block
/// is megabytes and milliseconds).
#[derive(Default)]
pub struct Rendered(parking_lot::Mutex<Option<RenderedList>>);

/// A published list and its blocks, version 1 and version 2, once rendered.
type RenderedList = (Arc<ServerListView>, [Option<Arc<str>>; 2]);

impl Rendered {
    fn block(&self, view: &Arc<ServerListView>, version: u32) -> Arc<str> {
        let slot = usize::from(version >= 2);
        let mut cache = self.0.lock();
        if !cache
            .as_ref()
            .is_some_and(|(seen, _)| Arc::ptr_eq(seen, view))
        {
            *cache = Some((view.clone(), [None, None]));
        }
        let (_, blocks) = cache.as_mut().expect("set above");
        blocks[slot]
            .get_or_insert_with(|| block(view, version).into())
            .clone()
    }
}

/// The current list (the applied state, stale or not), built and rendered once per change
/// whoever asks: a burst of `serverlist` requests costs one rendering, not one each.
#[derive(Default)]
struct Current {
    list: parking_lot::Mutex<Option<CurrentList>>,
    rendered: Rendered,
}

/// The state a list was built from, why it was stale then, and the list.
type CurrentList = (Arc<GroupState>, Option<String>, Arc<ServerListView>);

impl Current {
    fn block(&self, group: &Group, version: u32) -> Arc<str> {
        self.list_and_block(group, version).1
    }

    fn list_and_block(&self, group: &Group, version: u32) -> (Arc<ServerListView>, Arc<str>) {
        let (state, stale) = (group.state(), group.quorum_problem());
        let view = {
            // Built under the lock: concurrent askers wait for one build, not build it each.
            let mut list = self.list.lock();
            match &*list {
                Some((built_from, was_stale, view))
                    if Arc::ptr_eq(built_from, &state) && *was_stale == stale =>
                {
                    view.clone()
                }
                _ => {
                    let view = Arc::new(ServerListView::of(&state, stale.clone()));
                    *list = Some((state, stale, view.clone()));
                    view
                }
            }
        };
        let text = self.rendered.block(&view, version);
        (view, text)
    }
}

/// Sends `reply`, then reads and drops what the client sent meanwhile (for at most a second)
/// before closing: a client whose unread command is still queued here would otherwise see its
/// next write fail and never read why it was refused.
async fn refuse(reader: &mut Reader, writer: &mut Writer, reply: &str) -> std::io::Result<()> {
    send(writer, reply).await?;
    writer.shutdown().await.ok();
    let mut sink = [0u8; 1024];
    let drain = async { while reader.read(&mut sink).await.is_ok_and(|n| n > 0) {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    Ok(())
}

/// A token bucket: `rate` commands a second on average, `2 × rate` at once.
struct Pace {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Pace {
    fn new(per_sec: u32, now: Instant) -> Self {
        let rate = f64::from(per_sec);
        Pace {
            rate,
            burst: 2.0 * rate,
            tokens: 2.0 * rate,
            at: now,
        }
    }

    /// Takes one command's token; how long to wait before serving it, if at all.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - 1.0;
        self.at = now;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

async fn send(writer: &mut Writer, text: &str) -> std::io::Result<()> {
    tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(text.as_bytes()))
        .await
        .map_err(|_| std::io::Error::other("client did not read its reply in time"))?
}

/// The answer to `history [<since>]`: `0 unchanged` if the client has this revision, else the
/// header and every entry, oldest first.
fn history_block(pools: &pool::Pools, since: Option<u64>) -> String {
    if since == Some(pools.history_rev) {
        return Reply::new(Errno::Ok, "unchanged").to_line();
    }
    let mut block = proto::history_header(pools.history_rev, pools.history.len());
    for e in &pools.history {
        block.push_str(&e.row().to_line());
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A published list is rendered once per version, whoever asks; a new one anew.
    #[test]
    fn subscribers_share_one_rendering_per_change() {
        let rendered = Rendered::default();
        let stale = |why: &str| {
            Arc::new(ServerListView {
                stale: Some(why.into()),
                ..ServerListView::default()
            })
        };
        let one = stale("a");
        let first = rendered.block(&one, 2);
        assert!(Arc::ptr_eq(&first, &rendered.block(&one, 2)));
        assert_eq!(&*first, block(&one, 2));
        let v1 = rendered.block(&one, 1);
        assert_eq!(&*v1, block(&one, 1));
        assert!(Arc::ptr_eq(&v1, &rendered.block(&one, 1)));
        let two = stale("b");
        let second = rendered.block(&two, 2);
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(second.contains("(b)"), "{second}");
    }

    /// The pace: a burst of twice the rate at once, then one command per 1/rate; idle time
    /// refills the burst, never beyond it.
    #[test]
    fn commands_are_paced_by_a_token_bucket() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut pace = Pace::new(10, t0);
        let burst: Vec<_> = (0..20).map(|_| pace.take(t0)).collect();
        assert!(burst.iter().all(Option::is_none), "{burst:?}");
        // The 21st waits one interval (100 ms), the 22nd two.
        assert_eq!(pace.take(t0), Some(Duration::from_millis(100)));
        assert_eq!(pace.take(t0), Some(Duration::from_millis(200)));
        // Served when told: each next one waits its own interval, not more.
        let wait = pace.take(ms(200)).unwrap();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // A long idle refills the burst, no more.
        let mut idle = Pace::new(10, t0);
        idle.take(t0);
        let later = ms(60_000);
        assert_eq!((0..20).filter(|_| idle.take(later).is_none()).count(), 20);
        assert!(idle.take(later).is_some());
    }

    /// Each way a change can fail reaches the client under its own errno.
    #[test]
    fn proposal_outcomes_and_their_replies() {
        let table: [(Result<(), ProposeError>, &str); 5] = [
            (Ok(()), "0 OK\n"),
            (
                Err(ProposeError::NoQuorum("no leader is known".into())),
                "6 No quorum: this member cannot commit (no leader is known)\n",
            ),
            (
                Err(ProposeError::Rejected("member 2 is marked down".into())),
                "12 Rejected: member 2 is marked down\n",
            ),
            (
                Err(ProposeError::Failed("Raft stopped: x".into())),
                "13 Failed: the change may not have been committed (Raft stopped: x)\n",
            ),
            (
                Err(ProposeError::NotLeader { leader: None }),
                "13 Failed: the change may not have been committed (this member is not the leader)\n",
            ),
        ];
        for (result, line) in table {
            assert_eq!(committed(result).to_line(), line);
        }
    }
}
