//! The leader's hook duties: `on_transition` once per committed transition ([`pool::hooks`]
//! decides which, this module runs them), and `pre_promote` before the group makes a server
//! ACTIVE by itself.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use pool::{HistoryEntry, HookDuty, HookStep, PoolCommand};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::Group;
use crate::state::{Applied, Command};

/// The most output read from a hook (the rest is discarded), and the lines of it logged.
const MAX_OUTPUT: usize = 64 * 1024;
const LOGGED_LINES: usize = 50;

/// What came of one run of a hook.
pub struct Ran {
    pub ok: bool,
    /// One line: exit code or signal, time taken, member, and the last line of output.
    pub outcome: String,
    /// The same without the time taken: equal for runs that ended the same way.
    pub gist: String,
}

impl Group {
    /// Runs for the life of the process; acts while this member leads with a quorum.
    pub(super) async fn run_hooks(self: Arc<Self>) {
        let mut applied = self.applied.clone();
        let hooks = &self.cfg.hooks;
        // A claim may stay open this long before another leader closes it as interrupted.
        let patience = hooks.timeout() + self.cfg.member_timeout() + Duration::from_secs(1);
        while let Some(state) = self.leader_turn(&mut applied).await {
            let is_down = |m: u64| state.members.get(&m).is_none_or(|r| !r.up);
            let duties = pool::hooks::duties(
                &state.pools,
                self.me,
                hooks.on_transition.is_some(),
                None,
                &is_down,
                Utc::now(),
                patience,
            );
            for duty in duties {
                match duty {
                    HookDuty::Skip(seq) => {
                        self.hook_step(seq, HookStep::Skip, false).await;
                    }
                    HookDuty::Abandon { seq, by } => {
                        tracing::warn!(
                            seq,
                            member = by,
                            "hook interrupted: its runner stopped before it reported"
                        );
                        self.hook_step(seq, HookStep::Abandon { by }, false).await;
                    }
                    HookDuty::Run(seq) => {
                        let (Some(path), Some(entry)) = (
                            &hooks.on_transition,
                            state.pools.history.iter().find(|e| e.seq == seq),
                        ) else {
                            continue;
                        };
                        // Claimed first: once this commits, no other member runs it.
                        if !self.hook_step(seq, HookStep::Claim, false).await {
                            continue;
                        }
                        let ran =
                            run_hook(path, &transition_env(entry), hooks.timeout(), self.me, seq)
                                .await;
                        let step = HookStep::Finish {
                            ok: ran.ok,
                            outcome: ran.outcome,
                        };
                        // Reported through whoever leads by now.
                        self.hook_step(seq, step, true).await;
                    }
                }
            }
        }
    }

    /// Commits one step of entry `seq`'s hook; whether it was applied. `anywhere`: through the
    /// current leader, retried until it answers (a report); else only if this member leads.
    async fn hook_step(&self, seq: u64, step: HookStep, anywhere: bool) -> bool {
        let cmd = Command::Pool(Box::new(PoolCommand::Hook {
            seq,
            member: self.me,
            step,
            at: Utc::now(),
        }));
        let result = if anywhere {
            let started = Instant::now();
            loop {
                match self.propose(cmd.clone()).await {
                    Err(e) if started.elapsed() < self.cfg.hooks.timeout() => {
                        tracing::debug!(seq, "cannot report the hook's outcome yet: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    r => break r,
                }
            }
        } else {
            self.propose_here(cmd).await.map(|c| c.applied)
        };
        match result {
            Ok(Applied::Done) => true,
            Ok(refused) => {
                tracing::debug!(seq, "hook step refused: {refused:?}");
                false
            }
            Err(e) => {
                tracing::warn!(seq, "cannot commit the hook step: {e}");
                false
            }
        }
    }

    /// Runs `pre_promote` (if configured) before a server is made ACTIVE; `Err` is a veto.
    pub(super) async fn pre_promote(&self, env: &[(String, String)]) -> Result<(), Ran> {
        let Some(path) = &self.cfg.hooks.pre_promote else {
            return Ok(());
        };
        let ran = run_hook(path, env, self.cfg.hooks.timeout(), self.me, 0).await;
        if ran.ok {
            Ok(())
        } else {
            Err(ran)
        }
    }
}

/// The environment of `on_transition` for one history entry.
fn transition_env(e: &HistoryEntry) -> Vec<(String, String)> {
    let word = |s: Option<proto::PoolState>| s.map(|s| s.to_string()).unwrap_or_default();
    vec![
        ("GCS_EVENT_ID".into(), e.seq.to_string()),
        ("GCS_EVENT".into(), "transition".into()),
        ("GCS_POOL".into(), e.pool.clone()),
        ("GCS_SERVER".into(), pool::addr(&e.server)),
        ("GCS_OLD_STATE".into(), word(e.from)),
        ("GCS_NEW_STATE".into(), word(e.to)),
        (
            "GCS_STATUS".into(),
            e.status.map(|s| s.to_string()).unwrap_or_default(),
        ),
        ("GCS_EPOCH".into(), e.epoch.to_string()),
        ("GCS_REASON".into(), e.reason.clone()),
        ("GCS_AT".into(), e.at.to_rfc3339()),
    ]
}

/// Runs `path` with `env` (and `GCS_MEMBER`) in a process group of its own, reads what it
/// prints, and kills the group after `timeout`. Its output is logged.
pub async fn run_hook(
    path: &Path,
    env: &[(String, String)],
    timeout: Duration,
    me: u64,
    seq: u64,
) -> Ran {
    let started = Instant::now();
    let shown = path.display();
    let mut child = match tokio::process::Command::new(path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("GCS_MEMBER", me.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let outcome = format!("cannot run {shown} on member {me}: {e}");
            tracing::warn!(seq, "hook: {outcome}");
            return Ran {
                ok: false,
                gist: outcome.clone(),
                outcome,
            };
        }
    };
    let pid = child.id();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let waited = tokio::time::timeout(timeout, async {
        let (out, err, status) =
            tokio::join!(read_bounded(stdout), read_bounded(stderr), child.wait());
        (out, err, status)
    })
    .await;
    let took = started.elapsed().as_millis();
    let (output, outcome, gist, ok) = match waited {
        Ok((out, err, status)) => {
            let output = format!("{out}{err}");
            let last = output
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            let (ok, how) = match status {
                Ok(s) if s.success() => (true, "ok: exit 0".to_owned()),
                Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                    (Some(code), _) => (false, format!("failed: exit {code}")),
                    (None, Some(sig)) => (false, format!("failed: killed by signal {sig}")),
                    _ => (false, "failed".to_owned()),
                },
                Err(e) => (false, format!("failed: {e}")),
            };
            let tail = if last.is_empty() {
                String::new()
            } else {
                format!(": {last}")
            };
            (
                output,
                format!("{how} after {took} ms on member {me}{tail}"),
                format!("{how}{tail}"),
                ok,
            )
        }
        Err(_) => {
            if let Some(pgid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                // The whole group: a shell hook's children go too.
                rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL).ok();
            }
            let outcome = format!(
                "timed out after {} ms on member {me} (killed)",
                timeout.as_millis()
            );
            (String::new(), outcome.clone(), outcome, false)
        }
    };
    for line in output.lines().take(LOGGED_LINES) {
        tracing::info!(seq, hook = %shown, "| {line}");
    }
    if ok {
        tracing::info!(seq, hook = %shown, "{outcome}");
    } else {
        tracing::warn!(seq, hook = %shown, "{outcome}");
    }
    Ran { ok, outcome, gist }
}

/// Up to [`MAX_OUTPUT`] bytes of `pipe`, as text; the rest is read and dropped, so that the
/// hook never blocks on a full pipe.
async fn read_bounded(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = MAX_OUTPUT.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    String::from_utf8_lossy(&kept).into_owned()
}
