//! The push into a running HAProxy (`[[haproxy]]`), as MPP pushed into MySQL Proxy: on every
//! committed change, the administrative state of each mapped server is set through HAProxy's
//! runtime API, the more restrictive changes first ([`pool::push`] decides). HAProxy's own state
//! is read back with `show servers state` every `reconcile_ms` and after any error, so a
//! restarted HAProxy (which loses runtime state) is put right; a push that changes nothing is
//! not sent.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pool::push::{self, AdminState};
use proto::ServerKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

use crate::config::HaproxyConfig;
use crate::group::Group;

/// One mapped server: `backend/server` in HAProxy's names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Target {
    backend: String,
    server: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.backend, self.server)
    }
}

/// A command's deadline: HAProxy answers its runtime API at once.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest answer read (a `show servers state` of a few backends is a few KiB).
const MAX_ANSWER: usize = 1 << 20;

/// Why a command failed: `Unreachable` stops this round (the state is read again next time),
/// `Refused` is about one server and the others go on.
#[derive(Debug)]
enum PushError {
    Unreachable(String),
    Refused(String),
}

pub struct Pusher {
    group: Arc<Group>,
    cfg: HaproxyConfig,
    servers: Vec<(ServerKey, String)>,
}

impl Pusher {
    pub fn new(group: Arc<Group>, cfg: HaproxyConfig) -> Self {
        let servers = cfg
            .servers
            .iter()
            .filter_map(|(addr, name)| Some((pool::parse_addr(addr).ok()?, name.clone())))
            .collect();
        Pusher {
            group,
            cfg,
            servers,
        }
    }

    /// Runs until `shutdown`: wakes on every applied change and every Raft heartbeat (the
    /// lease runs out without any change).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut applied = self.group.applied_changes();
        let tick = Duration::from_millis(self.group.config().raft_heartbeat_ms);
        let reconcile = Duration::from_millis(self.cfg.reconcile_ms);
        let socket = self.cfg.socket.display().to_string();
        // What HAProxy holds, as last read or set; none: read it first.
        let mut known: Option<BTreeMap<Target, AdminState>> = None;
        let mut read_at = Instant::now();
        let mut problem: Option<String> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                r = applied.changed() => if r.is_err() { return },
                () = tokio::time::sleep(tick) => {}
            }
            let desired = self.desired();
            let mut problems = Vec::new();
            if known.is_none() || read_at.elapsed() >= reconcile {
                match self.read_state().await {
                    Ok(state) => {
                        known = Some(state);
                        read_at = Instant::now();
                    }
                    Err(e) => problems.push(e),
                }
            }
            if let Some(held) = known.as_mut() {
                for (target, want) in push::plan(&desired, held) {
                    let cmd = format!("set server {target} state {want}");
                    match command(&self.cfg.socket, &cmd).await {
                        Ok(answer) if answer.trim().is_empty() => {
                            tracing::info!(haproxy = %socket, "{cmd}");
                            held.insert(target, want);
                        }
                        Ok(answer) => problems.push(format!(
                            "HAProxy refused \"{cmd}\": {} (check the [[haproxy]] backends and servers)",
                            answer.trim()
                        )),
                        Err(PushError::Refused(e)) => problems.push(e),
                        Err(PushError::Unreachable(e)) => {
                            problems.push(e);
                            known = None;
                            break;
                        }
                    }
                }
            }
            let now = (!problems.is_empty()).then(|| problems.join("; "));
            if now != problem {
                match &now {
                    Some(p) => tracing::warn!(haproxy = %socket, "push: {p}"),
                    None => tracing::info!(haproxy = %socket, "push: HAProxy is up to date again"),
                }
                problem = now;
            }
        }
    }

    /// What every mapped server should be, from this member's committed view.
    fn desired(&self) -> BTreeMap<Target, AdminState> {
        let state = self.group.state();
        let vouch = self.group.vouch_problem().is_none();
        let mut want = BTreeMap::new();
        for b in &self.cfg.backends {
            for (server, name) in &self.servers {
                if let Some(s) = push::desired(&state.pools, &b.pool, b.role, server, vouch) {
                    let target = Target {
                        backend: b.backend.clone(),
                        server: name.clone(),
                    };
                    want.insert(target, s);
                }
            }
        }
        want
    }

    /// The administrative state of every mapped server, as HAProxy holds it.
    async fn read_state(&self) -> Result<BTreeMap<Target, AdminState>, String> {
        let mut held = BTreeMap::new();
        for b in &self.cfg.backends {
            let answer = match command(
                &self.cfg.socket,
                &format!("show servers state {}", b.backend),
            )
            .await
            {
                Ok(a) => a,
                Err(PushError::Unreachable(e) | PushError::Refused(e)) => return Err(e),
            };
            held.extend(parse_servers_state(&answer).map_err(|e| {
                format!(
                    "cannot read backend {:?} from {}: {e}",
                    b.backend,
                    self.cfg.socket.display()
                )
            })?);
        }
        Ok(held)
    }
}

/// One runtime API command on a connection of its own; HAProxy answers and closes.
async fn command(socket: &Path, cmd: &str) -> Result<String, PushError> {
    let unreachable = |e: std::io::Error| {
        PushError::Unreachable(format!(
            "cannot reach HAProxy's runtime API at {}: {e} (is HAProxy running with \"stats socket {} level admin\"?)",
            socket.display(),
            socket.display()
        ))
    };
    let exchange = async {
        let mut stream = UnixStream::connect(socket).await.map_err(unreachable)?;
        stream
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .map_err(unreachable)?;
        let mut answer = Vec::new();
        (&mut stream)
            .take(MAX_ANSWER as u64 + 1)
            .read_to_end(&mut answer)
            .await
            .map_err(unreachable)?;
        if answer.len() > MAX_ANSWER {
            return Err(PushError::Refused(format!(
                "{}: answer to {cmd:?} longer than {MAX_ANSWER} bytes",
                socket.display()
            )));
        }
        String::from_utf8(answer).map_err(|_| {
            PushError::Refused(format!(
                "{} does not answer like HAProxy's runtime API (not text)",
                socket.display()
            ))
        })
    };
    tokio::time::timeout(COMMAND_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(PushError::Unreachable(format!(
                "HAProxy's runtime API at {} did not answer within {} ms",
                socket.display(),
                COMMAND_TIMEOUT.as_millis()
            )))
        })
}

/// `srv_admin_state` bits HAProxy sets for `set server ... state maint|drain`.
const FORCED_MAINT: u32 = 0x01;
const FORCED_DRAIN: u32 = 0x08;

/// Parses `show servers state` (format 1: a version line, a `#` header naming the columns, one
/// row per server); the columns are found by name.
fn parse_servers_state(text: &str) -> Result<Vec<(Target, AdminState)>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    if lines.next().map(str::trim) != Some("1") {
        let first: String = text
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(120)
            .collect();
        return Err(format!(
            "not a \"show servers state\" answer of format 1: {first:?}"
        ));
    }
    let header: Vec<&str> = lines
        .next()
        .and_then(|h| h.strip_prefix('#'))
        .ok_or("no column header")?
        .split_whitespace()
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("no column {name}"))
    };
    let (be, srv, admin) = (col("be_name")?, col("srv_name")?, col("srv_admin_state")?);
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let field = |i: usize| fields.get(i).copied().ok_or(format!("short row {line:?}"));
            let bits: u32 = field(admin)?
                .parse()
                .map_err(|_| format!("srv_admin_state is not a number in {line:?}"))?;
            let state = if bits & FORCED_MAINT != 0 {
                AdminState::Maint
            } else if bits & FORCED_DRAIN != 0 {
                AdminState::Drain
            } else {
                AdminState::Ready
            };
            let target = Target {
                backend: field(be)?.to_owned(),
                server: field(srv)?.to_owned(),
            };
            Ok((target, state))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As HAProxy 2.6 prints it (one server "disabled" in the config and not yet pushed, one
    /// drained, one ready after a push cleared its maint).
    #[test]
    fn servers_state_is_read_by_column_name() {
        let text = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n\
            2 w 1 a 127.0.0.1 0 5 1\n2 w 2 b 127.0.0.1 2 8 1\n2 w 3 c 127.0.0.1 2 4 1\n\n";
        let t = |s: &str| Target {
            backend: "w".into(),
            server: s.into(),
        };
        assert_eq!(
            parse_servers_state(text).unwrap(),
            vec![
                (t("a"), AdminState::Maint),
                (t("b"), AdminState::Drain),
                (t("c"), AdminState::Ready)
            ]
        );
        for (bad, says) in [
            (
                "Can't find backend 'x'.\n",
                "not a \"show servers state\" answer",
            ),
            ("1\n2 w 1 a\n", "no column header"),
            ("1\n# be_id be_name\n", "no column srv_name"),
            ("1\n# be_name srv_name srv_admin_state\nw a\n", "short row"),
            (
                "1\n# be_name srv_name srv_admin_state\nw a x\n",
                "not a number",
            ),
        ] {
            let err = parse_servers_state(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }
}
