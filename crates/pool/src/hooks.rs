//! Hooks run once per committed transition, in commit order, by the leader. Each history entry
//! carries its hook's state through the log:
//!
//! `Pending` (committed with the transition) → `Running` (the leader's claim, committed
//! *before* it starts the executable) → `Done` (its outcome, committed after).
//!
//! A leader runs an entry's hook only once its own claim has committed, and a claim is granted
//! only to a `Pending` entry, so no two members ever run the same hook and a new leader never
//! runs one again. A new leader also picks up every `Pending` entry, so none is skipped by a
//! leader change or a restart. A claim whose holder stopped (committed down, or silent past the
//! hook's timeout) is closed as interrupted: it may or may not have run, and it is not run a
//! second time. [`duties`] is the whole decision; gcsd's `group/hooks.rs` only carries it out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Pools;

/// A history entry's hook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookState {
    /// Not a transition (or recorded before hooks existed): no hook runs.
    #[default]
    None,
    /// Waiting for the leader.
    Pending,
    /// Claimed by `member` at `at`, which then started it.
    Running { member: u64, at: DateTime<Utc> },
    /// Finished: `ok` and what happened, in one line.
    Done {
        member: u64,
        ok: bool,
        outcome: String,
    },
}

impl HookState {
    /// One line for `gcsctl history` and `ISIS2IS_HISTORY`.
    pub fn describe(&self) -> String {
        match self {
            HookState::None => String::new(),
            HookState::Pending => "pending".into(),
            HookState::Running { member, .. } => format!("running on member {member}"),
            HookState::Done { outcome, .. } => outcome.clone(),
        }
    }
}

/// A step of an entry's hook, committed as [`crate::PoolCommand::Hook`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookStep {
    /// The leader is about to run it.
    Claim,
    /// The leader has no hook configured: nothing to run.
    Skip,
    /// It ran, and this is what happened.
    Finish { ok: bool, outcome: String },
    /// Its runner `by` stopped before it reported.
    Abandon { by: u64 },
}

/// What the leader has to do about the hooks now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookDuty {
    /// Claim entry `seq`, then run its hook.
    Run(u64),
    /// Close entry `seq` as skipped (no hook configured on this member).
    Skip(u64),
    /// Close entry `seq`, claimed by `by`, as interrupted.
    Abandon { seq: u64, by: u64 },
}

/// The leader `me`'s hook duties. `configured`: this member has an `on_transition` hook;
/// `running_here`: the entry whose hook this process is running now; `is_down`: a member the
/// group committed as down; `patience`: how long a claim may stay open (the hook's timeout and
/// a margin). Hooks run one at a time, in commit order: nothing new starts while a claim is
/// open anywhere.
pub fn duties(
    pools: &Pools,
    me: u64,
    configured: bool,
    running_here: Option<u64>,
    is_down: &dyn Fn(u64) -> bool,
    now: DateTime<Utc>,
    patience: Duration,
) -> Vec<HookDuty> {
    let mut duties = Vec::new();
    let mut open = running_here.is_some();
    for e in &pools.history {
        if let HookState::Running { member, at } = e.hook {
            let stale = (now - at).to_std().is_ok_and(|age| age > patience);
            let gone = if member == me {
                running_here != Some(e.seq)
            } else {
                is_down(member) || stale
            };
            if gone {
                duties.push(HookDuty::Abandon {
                    seq: e.seq,
                    by: member,
                });
            } else {
                open = true;
            }
        }
    }
    let mut pending = pools
        .history
        .iter()
        .filter(|e| e.hook == HookState::Pending);
    if !configured {
        duties.extend(pending.map(|e| HookDuty::Skip(e.seq)));
    } else if !open && duties.is_empty() {
        duties.extend(pending.next().map(|e| HookDuty::Run(e.seq)));
    }
    duties
}

impl Pools {
    /// Applies one step of entry `seq`'s hook, taken by `member`; refuses a step that does not
    /// follow from the entry's state (a second claim, a late report after an abandon).
    pub(crate) fn hook_step(
        &mut self,
        seq: u64,
        member: u64,
        at: DateTime<Utc>,
        step: &HookStep,
    ) -> Result<(), String> {
        let entry = self
            .history
            .iter_mut()
            .find(|e| e.seq == seq)
            .ok_or_else(|| format!("no history entry {seq}"))?;
        let next = match (&entry.hook, step) {
            (HookState::Pending, HookStep::Claim) => HookState::Running { member, at },
            (HookState::Pending, HookStep::Skip) => HookState::Done {
                member,
                ok: true,
                outcome: format!(
                    "{} no on_transition hook on member {member}",
                    proto::admin::HOOK_SKIPPED
                ),
            },
            (HookState::Running { member: by, .. }, HookStep::Finish { ok, outcome })
                if *by == member =>
            {
                HookState::Done {
                    member,
                    ok: *ok,
                    outcome: crate::bounded_message(outcome),
                }
            }
            (HookState::Running { member: by, .. }, HookStep::Abandon { by: claimed })
                if by == claimed =>
            {
                HookState::Done {
                    member: *by,
                    ok: false,
                    outcome: format!(
                        "interrupted: member {by} stopped before it reported; not run again"
                    ),
                }
            }
            (state, step) => {
                return Err(format!(
                    "hook of history entry {seq} is {state:?}; {step:?} by member {member} does not apply"
                ))
            }
        };
        entry.hook = next;
        self.history_rev += 1;
        Ok(())
    }
}
