//! Probing and fencing this member's database servers.
//!
//! One task per server that is in a pool (registered through this member by the plugin, or
//! listed in `[probe] servers`): every `interval_ms`, and at once when its plugin connection
//! drops or the committed state changes what it should be, it probes the server over SQL
//! ([`crate::sql`]), grades the probe ([`pool::grade`]), carries out the fencing duty
//! ([`pool::fence::desired`]) and commits the report when it says something new.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use parking_lot::Mutex;
use pool::fence::{self, CatchUp, Want};
use pool::{Judge, PoolCommand, Probe, ServerHealth};
use proto::{Role, ServerKey, Status};
use tokio::sync::{watch, Notify};

use crate::group::Group;
use crate::local_servers::{HeartbeatOutcome, LocalServers};
use crate::sql::{self, Access, Session};
use crate::state::{Command, GroupState};

/// A report that says nothing new is still committed this often, so `last_probe` stays
/// roughly current in every member's view.
const REFRESH: Duration = Duration::from_secs(10);
/// How soon a new ACTIVE waiting to catch up looks again.
const CATCH_UP_POLL: Duration = Duration::from_millis(10);

pub struct Probes {
    group: Arc<Group>,
    local: Arc<LocalServers>,
    access: Access,
    interval: Duration,
    max_failures: u32,
    /// `[probe] kill_hung`: kill a hung server that may be writable (see `fence::must_kill`).
    kill_hung: bool,
    /// `[probe] fence_sockets`.
    fence_sockets: Vec<std::path::PathBuf>,
    /// `[probe] servers`: servers without the plugin that this member owns.
    configured: Vec<ServerKey>,
    /// The running tasks' wake-up calls.
    tasks: Mutex<HashMap<ServerKey, Arc<Notify>>>,
    /// What the last probe of each server saw.
    last: Mutex<HashMap<ServerKey, LastProbe>>,
}

/// When a server was last probed, whether it answered, and its replication lag then.
#[derive(Debug, Clone, Copy)]
struct LastProbe {
    at: Instant,
    answered: bool,
    lag_secs: Option<u64>,
}

impl Probes {
    pub fn new(
        group: Arc<Group>,
        local: Arc<LocalServers>,
        password: Option<String>,
    ) -> anyhow::Result<Arc<Self>> {
        let cfg = group.config();
        let p = &cfg.probe;
        let configured = p.servers().map_err(anyhow::Error::msg)?;
        Ok(Arc::new(Self {
            access: Access {
                user: p.user.clone(),
                password,
                connect_timeout: Duration::from_millis(p.connect_timeout_ms),
                query_timeout: Duration::from_millis(p.query_timeout_ms),
            },
            interval: Duration::from_millis(p.interval_ms),
            max_failures: p.max_failures,
            kill_hung: p.kill_hung,
            fence_sockets: p.fence_sockets.clone(),
            configured,
            tasks: Mutex::new(HashMap::new()),
            last: Mutex::new(HashMap::new()),
            group,
            local,
        }))
    }

    /// Whether this member probes `server` on its interval: it is listed in `[probe] servers`
    /// (the probes keep it registered), or registered through this member and in a pool.
    fn owns(&self, state: &GroupState, server: &ServerKey) -> bool {
        self.configured.contains(server)
            || (state
                .servers
                .get(server)
                .is_some_and(|r| r.member == self.group.me)
                && state.pools.memberships(server).next().is_some())
    }

    /// Every server this member probes, in order.
    fn owned(&self, state: &GroupState) -> Vec<ServerKey> {
        let mut servers: Vec<ServerKey> = state
            .servers
            .keys()
            .chain(&self.configured)
            .filter(|s| self.owns(state, s))
            .cloned()
            .collect();
        servers.sort();
        servers.dedup();
        servers
    }

    /// Runs for the life of the process: starts a task for every server this member comes to
    /// own; each task ends when it no longer does.
    pub async fn run(self: Arc<Self>) {
        let mut applied = self.group.applied_changes();
        loop {
            for server in self.owned(&self.group.state()) {
                self.ensure_task(server);
            }
            tokio::select! {
                r = applied.changed() => if r.is_err() { return },
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    fn ensure_task(self: &Arc<Self>, server: ServerKey) -> Arc<Notify> {
        let mut tasks = self.tasks.lock();
        if let Some(wake) = tasks.get(&server) {
            return wake.clone();
        }
        let wake = Arc::new(Notify::new());
        tasks.insert(server.clone(), wake.clone());
        tokio::spawn(self.clone().watch(server, wake.clone()));
        wake
    }

    /// The plugin connection of `server` closed without `leave`: probe it now. If nothing
    /// listens any more, it is `off` in every member's list within one commit.
    pub fn dropped(self: &Arc<Self>, server: ServerKey) {
        let running = self.tasks.lock().get(&server).cloned();
        match running {
            Some(wake) => wake.notify_one(),
            None => {
                let me = self.clone();
                tokio::spawn(async move {
                    let want = me.want(&server);
                    me.round(&server, want, &mut Local::default()).await;
                });
            }
        }
    }

    async fn watch(self: Arc<Self>, server: ServerKey, wake: Arc<Notify>) {
        tracing::info!(server = %pool::addr(&server), "probing");
        let mut applied = self.group.applied_changes();
        let (reporter, newest) = watch::channel(None);
        tokio::spawn(self.clone().reports(server.clone(), newest));
        let mut local = Local {
            reporter: Some(reporter),
            ..Local::default()
        };
        loop {
            if !self.owns(&self.group.state(), &server) {
                self.tasks.lock().remove(&server);
                tracing::info!(server = %pool::addr(&server), "no longer probing");
                return;
            }
            // What the server should be, as this round acts on it: a change committed while
            // the round runs wakes the next one at once.
            let acted_on = self.want(&server);
            let next_in = self.round(&server, acted_on.clone(), &mut local).await;
            let next = tokio::time::Instant::now() + next_in;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(next) => break,
                    () = wake.notified() => break,
                    r = applied.changed() => {
                        if r.is_err() { return }
                        // Probe at once when what the server should be changed, or when the
                        // group forgot its report (a `recover`): the next report decides.
                        let forgotten = !self.group.state().pools.health.contains_key(&server);
                        if forgotten || self.want(&server) != acted_on { break }
                    }
                }
            }
        }
    }

    /// This member's pool members and what its probes last saw of them, for health checks: a
    /// probe older than three intervals does not count as answered.
    pub fn locals(&self, state: &GroupState) -> Vec<pool::verdict::Local> {
        let last = self.last.lock();
        let fresh = self.interval * 3;
        self.owned(state)
            .into_iter()
            .map(|server| {
                let seen = last.get(&server);
                pool::verdict::Local {
                    server,
                    answered: seen.is_some_and(|p| p.answered && p.at.elapsed() < fresh),
                    lag_secs: seen.and_then(|p| p.lag_secs),
                }
            })
            .collect()
    }

    fn want(&self, server: &ServerKey) -> Option<Want> {
        let state = self.group.state();
        fence::desired(
            &state.pools,
            server,
            &|k| state.seen(k),
            Some(self.group.lease_age()),
            self.group.config().fence_after(),
        )
    }

    /// One probe of `server`, its fencing duty (`want`), and its report. Returns when to probe
    /// next.
    async fn round(&self, server: &ServerKey, want: Option<Want>, local: &mut Local) -> Duration {
        let started = Instant::now();
        let state = self.group.state();
        let (probe, session) = sql::probe(server, &self.access).await;
        let prev = state.pools.health.get(server);
        let socket_duty =
            fence::over_socket(&probe, want.as_ref()).filter(|_| !self.fence_sockets.is_empty());
        let judge = Judge::of(&state.pools, server);
        let mut health = pool::grade(
            self.group.me,
            prev,
            &probe,
            &judge,
            self.max_failures,
            Utc::now(),
        );
        // Probes keep their cadence: a probe that waited out a deadline does not push the next
        // one back, so a hung server reaches FAIL in `max_failures` intervals.
        let mut next = self.interval.saturating_sub(started.elapsed());
        if let Some(mut session) = session {
            if self.kill_hung {
                local.pid = session.local_pid().await;
            }
            if self
                .fence(server, want, &mut session, &mut health, local)
                .await
            {
                next = CATCH_UP_POLL;
            }
            session.close().await;
        }
        if let Some(why) = socket_duty {
            let server_id = prev.and_then(|p| p.server_id);
            if self.fence_over_socket(server, why, server_id, local).await {
                health.read_only = Some(true);
            }
        }
        let (answered, lag) = match &probe {
            Probe::Answered(facts) => (true, facts.replica.as_ref().and_then(|r| r.seconds_behind)),
            _ => (false, None),
        };
        self.last.lock().insert(
            server.clone(),
            LastProbe {
                at: Instant::now(),
                answered,
                lag_secs: lag,
            },
        );
        let hung = matches!(probe, Probe::Hung(_));
        if self.kill_hung
            && fence::must_kill(&state.pools, server, &health, hung)
            && self.kill(server, local).await
        {
            // Probe again at once: nothing listens now, and the group hears so.
            next = Duration::ZERO;
        }
        self.group
            .metrics
            .probe_seconds
            .observe(started.elapsed().as_secs_f64());
        if health.gone {
            self.local.mark_off(server);
        }
        if let Probe::Answered(facts) = &probe {
            if self.configured.contains(server) {
                let role = if facts.replica.is_some() {
                    Role::Slave
                } else {
                    Role::Master
                };
                self.keep_registered(server, role).await;
            }
        }
        if self.is_news(&state, server, &health) {
            match &local.reporter {
                Some(reporter) => {
                    reporter.send_replace(Some(health));
                }
                None => self.report(server, health).await,
            }
        }
        next
    }

    /// Whether the group should hear `health` of `server`: something new for a pool member;
    /// for a server in no pool only whether it is gone (its status is `off` in every list at
    /// once), and that it came back.
    fn is_news(&self, state: &GroupState, server: &ServerKey, health: &ServerHealth) -> bool {
        let prev = state.pools.health.get(server);
        let handing_over = state
            .pools
            .pools
            .values()
            .any(|p| p.handover.as_ref().is_some_and(|h| &h.from == server));
        let in_pool = state.pools.memberships(server).next().is_some();
        let gone_changed = prev.map_or(health.gone, |p| p.gone != health.gone);
        // A `[probe] servers` entry always has a report, so a pool that takes it in finds one.
        let unreported = prev.is_none() && self.configured.contains(server);
        (in_pool && news(prev, health, handing_over)) || (!in_pool && (gone_changed || unreported))
    }

    async fn report(&self, server: &ServerKey, health: ServerHealth) {
        let cmd = Command::Pool(Box::new(PoolCommand::Observe {
            reports: vec![(server.clone(), health)],
        }));
        if let Err(e) = self.group.propose(cmd).await {
            tracing::debug!(server = %pool::addr(server), "cannot commit the probe report: {e}");
        }
    }

    /// Commits one server's reports in order, beside its probes: probing and fencing never
    /// wait for the group (without a quorum a proposal waits up to `propose_timeout_ms`, longer
    /// than the lease). A report not yet proposed is replaced by a newer one; one the group has
    /// heard meanwhile is skipped. Ends when the probe task's sender goes, after the last one.
    async fn reports(
        self: Arc<Self>,
        server: ServerKey,
        mut newest: watch::Receiver<Option<ServerHealth>>,
    ) {
        while newest.changed().await.is_ok() {
            let Some(health) = newest.borrow_and_update().clone() else {
                continue;
            };
            if self.is_news(&self.group.state(), &server, &health) {
                self.report(&server, health).await;
            }
        }
    }

    /// Carries out the fencing duty on an open session; `health` is updated with what was
    /// done. Returns true when a new ACTIVE is waiting to catch up (probe again soon).
    async fn fence(
        &self,
        server: &ServerKey,
        want: Option<Want>,
        session: &mut Session,
        health: &mut ServerHealth,
        local: &mut Local,
    ) -> bool {
        let name = pool::addr(server);
        match want {
            Some(Want::ReadOnly(why)) if health.read_only == Some(false) => {
                match session.set_read_only(true).await {
                    Ok(()) => {
                        tracing::info!(server = %name, "fenced: read_only=ON ({why})");
                        // The position after the fence is final: a handover's target waits
                        // for it.
                        if let Ok(facts) = session.facts().await {
                            health.read_only = Some(facts.read_only);
                            health.gtid = Some(facts.gtid_binlog_pos);
                        }
                    }
                    Err(e) => tracing::warn!(server = %name, "cannot fence: {e}"),
                }
                false
            }
            Some(Want::Writable {
                pool,
                epoch,
                catch_up,
                hostile_takeover,
                catch_up_timeout,
            }) if health.read_only == Some(true) => {
                let since = local.since(&pool, epoch);
                let applied = match &catch_up {
                    None => true,
                    Some(required) => session
                        .gtid_current_pos()
                        .await
                        .is_ok_and(|pos| pool::caught_up(&pos, required)),
                };
                match fence::catch_up(applied, since.elapsed(), catch_up_timeout, hostile_takeover)
                {
                    CatchUp::Wait => true,
                    CatchUp::GiveUp => {
                        if local.warn_once() {
                            tracing::warn!(
                                server = %name,
                                pool = %pool,
                                "did not catch up with its predecessor within {} ms; it stays read-only (hostile_takeover is off)",
                                catch_up_timeout.as_millis()
                            );
                        }
                        // A failing check of the ACTIVE: after `max_failures` of them the pool
                        // fails over, to its predecessor if that is a healthy STANDBY, rather
                        // than staying without a writable server.
                        let failures = local.catch_up_failures.saturating_add(1);
                        local.catch_up_failures = failures;
                        health.failures = health.failures.max(failures);
                        health.health =
                            proto::Health::after_failures(health.failures, self.max_failures);
                        health.failure = Some(pool::FailureKind::Online);
                        health.message = format!(
                            "Did not catch up with its predecessor within {} ms (hostile_takeover is off).",
                            catch_up_timeout.as_millis()
                        );
                        false
                    }
                    CatchUp::Unfence => {
                        match session.set_read_only(false).await {
                            Ok(()) => {
                                health.read_only = Some(false);
                                tracing::info!(
                                    server = %name,
                                    pool = %pool,
                                    epoch,
                                    waited_ms = since.elapsed().as_millis() as u64,
                                    "ACTIVE: read_only=OFF"
                                );
                            }
                            Err(e) => {
                                tracing::warn!(server = %name, "cannot make it writable: {e}")
                            }
                        }
                        false
                    }
                }
            }
            _ => false,
        }
    }

    /// Fences `server`, which cannot be reached at its address, over the `fence_sockets` entry
    /// that serves it (same port and server_id); whether it is read-only now.
    async fn fence_over_socket(
        &self,
        server: &ServerKey,
        why: &str,
        server_id: Option<u32>,
        local: &mut Local,
    ) -> bool {
        let name = pool::addr(server);
        let mut problems = Vec::new();
        for path in &self.fence_sockets {
            let result = match Session::open_socket(path, server, &self.access).await {
                Ok(mut session) => {
                    let fenced = session.fence_if(&server.port, server_id).await;
                    session.close().await;
                    fenced
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(None) => {}
                Ok(Some(was_writable)) => {
                    if was_writable {
                        tracing::info!(
                            server = %name,
                            socket = %path.display(),
                            "fenced over its local socket: read_only=ON ({why}; its address cannot be reached)"
                        );
                    }
                    local.socket_warned = false;
                    return true;
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if !std::mem::replace(&mut local.socket_warned, true) {
            tracing::warn!(
                server = %name,
                "must be read-only ({why}), cannot be reached at its address, and no fence_sockets entry serves it ({}): if it still runs, it may take writes from this host",
                if problems.is_empty() { "none has its port and server_id".to_owned() } else { problems.join("; ") }
            );
        }
        false
    }

    /// Kills a hung server's process so that the group can fail over; whether it is gone.
    async fn kill(&self, server: &ServerKey, local: &mut Local) -> bool {
        let name = pool::addr(server);
        let Some(pid) = local.pid else {
            if !std::mem::replace(&mut local.kill_warned, true) {
                tracing::warn!(
                    server = %name,
                    "hung and perhaps writable, but its process is not known on this host (no readable pid file): it cannot be killed, and no other server is made writable until it answers again"
                );
            }
            return false;
        };
        tracing::warn!(server = %name, pid, "hung and perhaps writable: killing it (SIGKILL) so that another server can take over");
        let gone = kill_and_wait(pid, Duration::from_secs(2)).await;
        if gone {
            local.pid = None;
        } else {
            tracing::warn!(server = %name, pid, "killed, but the process did not end within 2 s");
        }
        gone
    }

    /// Keeps a `[probe] servers` entry registered through this member while it answers.
    async fn keep_registered(&self, server: &ServerKey, role: Role) {
        let committed_role = self.group.state().servers.get(server).map(|r| r.role);
        let result = match self.local.heartbeat(server, Status::On) {
            // A replica that became a source (or the reverse) is registered again, as the
            // plugin does on a role change.
            HeartbeatOutcome::Recorded if committed_role.is_some_and(|r| r != role) => {
                self.local.join(server.clone(), Status::On, role).await
            }
            HeartbeatOutcome::Recorded => Ok(()),
            HeartbeatOutcome::Changed(cmd) => self.local.commit_status_change(cmd).await,
            HeartbeatOutcome::Unknown => self.local.join(server.clone(), Status::On, role).await,
        };
        if let Err(e) = result {
            tracing::debug!(server = %pool::addr(server), "cannot register: {e}");
        }
    }
}

/// Whether a report tells the group something it does not know: any change but the probe's
/// time and the GTID position (which moves with every write), or a `REFRESH` gone by. The
/// position counts while a handover waits for this server's last one.
fn news(prev: Option<&ServerHealth>, new: &ServerHealth, handing_over: bool) -> bool {
    let Some(prev) = prev else { return true };
    let same = ServerHealth {
        last_probe: prev.last_probe,
        gtid: if handing_over {
            new.gtid.clone()
        } else {
            prev.gtid.clone()
        },
        ..new.clone()
    };
    same != *prev
        || (new.last_probe - prev.last_probe)
            .to_std()
            .unwrap_or_default()
            >= REFRESH
}

/// What one server's task remembers between rounds: since when a new ACTIVE has been waiting
/// to catch up (per pool and epoch), the server's process id (with `kill_hung`), and which
/// warnings were given.
#[derive(Default)]
struct Local {
    current: Option<(String, u64, Instant)>,
    warned: bool,
    pid: Option<i32>,
    kill_warned: bool,
    /// Told that it could not be fenced over a local socket either.
    socket_warned: bool,
    /// Where reports go to be committed in order (`Probes::reports`); none: the round
    /// commits its report itself (a one-off round).
    reporter: Option<watch::Sender<Option<ServerHealth>>>,
    /// Rounds in a row in which this ACTIVE gave up waiting to catch up.
    catch_up_failures: u32,
}

impl Local {
    fn since(&mut self, pool: &str, epoch: u64) -> Instant {
        match &self.current {
            Some((p, e, t)) if p == pool && *e == epoch => *t,
            _ => {
                let now = Instant::now();
                self.current = Some((pool.to_owned(), epoch, now));
                self.warned = false;
                self.catch_up_failures = 0;
                now
            }
        }
    }

    fn warn_once(&mut self) -> bool {
        !std::mem::replace(&mut self.warned, true)
    }
}

/// Kills process `pid` (SIGKILL) and waits, at most `within`, until it is gone (or a zombie):
/// whether it is.
pub async fn kill_and_wait(pid: i32, within: Duration) -> bool {
    let Some(target) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    if rustix::process::kill_process(target, rustix::process::Signal::KILL).is_err() {
        return false;
    }
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
    };
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        if gone() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gone()
}
