//! The commands that change pools, and [`Pools::apply`], which checks each one against the
//! invariants and either applies it whole or refuses it with one clear reason.
//!
//! Operator commands are checked here, in the replicated state machine, rather than by the
//! member that received them: the check and the change happen at the same point of the log,
//! so no command is lost to a race with a decision (MPP's D-1) and every member agrees on the
//! refusal.

use chrono::{DateTime, Utc};
use proto::{Health, PoolState, PoolType, ServerKey};
use serde::{Deserialize, Serialize};

use crate::{
    addr, bounded_message, messages, pool_name_problem, Handover, HandoverKind, HistoryEntry,
    HookState, HookStep, Pool, PoolMember, Pools, ServerHealth, Settings, HISTORY_LEN,
    MAX_POOL_MEMBERS,
};

/// One change of a pool's settings (`gcsctl pool set NAME KEY=VALUE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingChange {
    Fencing(bool),
    HostileTakeover(bool),
    MaxLagSecs(Option<u32>),
    CatchUpTimeoutMs(u64),
    /// The new member list in priority order, the PRIMARY first (MPP's D-20, D-21: removing and
    /// reordering are committed changes with defined effects).
    Members(Vec<ServerKey>),
}

impl SettingChange {
    /// Parses `KEY=VALUE` as `gcsctl pool set` takes it.
    pub fn parse(text: &str) -> Result<SettingChange, String> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
        let flag = |v: &str| match v {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err(format!("{key} takes on or off, not {v:?}")),
        };
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{key} takes a whole number, not {v:?}"))
        };
        match key {
            "fencing" => flag(value).map(SettingChange::Fencing),
            "hostile_takeover" => flag(value).map(SettingChange::HostileTakeover),
            "max_lag_secs" if value == "none" => Ok(SettingChange::MaxLagSecs(None)),
            "max_lag_secs" => number(value).and_then(|n| {
                u32::try_from(n)
                    .map(|n| SettingChange::MaxLagSecs(Some(n)))
                    .map_err(|_| format!("max_lag_secs {n} is too large"))
            }),
            "catch_up_timeout_ms" => number(value).map(SettingChange::CatchUpTimeoutMs),
            "members" => value
                .split(',')
                .map(crate::parse_addr)
                .collect::<Result<Vec<_>, _>>()
                .map(SettingChange::Members),
            _ => Err(format!(
                "unknown pool setting {key:?}; known: fencing, hostile_takeover, max_lag_secs, catch_up_timeout_ms, members"
            )),
        }
    }
}

/// What `recover` applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoverTarget {
    /// The server, in every pool where it is FAILED.
    Server(ServerKey),
    /// Every FAILED server of the pool.
    Pool(String),
}

/// A change to the pools, committed through the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PoolCommand {
    /// `gcsctl pool init`.
    Init {
        name: String,
        primary: ServerKey,
        secondaries: Vec<ServerKey>,
        settings: Settings,
        at: DateTime<Utc>,
    },
    /// `gcsctl pool set`.
    Configure {
        name: String,
        changes: Vec<SettingChange>,
        at: DateTime<Utc>,
    },
    /// `gcsctl pool delete`.
    Delete { name: String, at: DateTime<Utc> },
    /// The owner's probes of its servers.
    Observe {
        reports: Vec<(ServerKey, ServerHealth)>,
    },
    /// The leader's decision for one pool: the whole new record, made from `revision`.
    Decided {
        name: String,
        revision: u64,
        next: Pool,
        at: DateTime<Utc>,
    },
    /// `gcsctl recover`.
    Recover {
        target: RecoverTarget,
        at: DateTime<Utc>,
    },
    /// `gcsctl activate-primary` (`to` is then none) and `gcsctl switchover --to`.
    Handover {
        name: String,
        to: Option<ServerKey>,
        at: DateTime<Utc>,
    },
    /// `gcsctl pause` and `gcsctl resume`.
    Pause {
        name: String,
        paused: bool,
        at: DateTime<Utc>,
    },
    /// A remark in the history about one pool member that changes nothing (a vetoed promotion).
    Note {
        name: String,
        server: ServerKey,
        reason: String,
        at: DateTime<Utc>,
    },
    /// A step of a history entry's hook, by `member` ([`crate::hooks`]).
    Hook {
        seq: u64,
        member: u64,
        step: HookStep,
        at: DateTime<Utc>,
    },
    /// `gcsctl set` (only while paused).
    ManualSet {
        name: String,
        server: ServerKey,
        state: Option<PoolState>,
        status: Option<Health>,
        at: DateTime<Utc>,
    },
}

impl Pools {
    /// Applies one committed command, or refuses it whole with the reason. Deterministic.
    pub fn apply(&mut self, cmd: &PoolCommand) -> Result<(), String> {
        match cmd {
            PoolCommand::Init {
                name,
                primary,
                secondaries,
                settings,
                at,
            } => {
                if let Some(problem) = pool_name_problem(name) {
                    return Err(problem);
                }
                if self.pools.contains_key(name) {
                    return Err(format!("pool {name} exists already"));
                }
                let servers: Vec<ServerKey> = std::iter::once(primary.clone())
                    .chain(secondaries.iter().cloned())
                    .collect();
                check_member_list(&servers)?;
                let pool = Pool {
                    members: servers
                        .into_iter()
                        .enumerate()
                        .map(|(i, server)| new_member(server, i))
                        .collect(),
                    settings: settings.clone(),
                    paused: false,
                    epoch: 0,
                    revision: 0,
                    handover: None,
                    catch_up: None,
                    active_since: None,
                    reinstate_primary: false,
                };
                self.record(name, None, &pool, *at, "pool defined");
                let members: Vec<ServerKey> =
                    pool.members.iter().map(|m| m.server.clone()).collect();
                self.pools.insert(name.clone(), pool);
                self.fresh_start(&members);
                Ok(())
            }
            PoolCommand::Configure { name, changes, at } => {
                let before = self.pool(name)?.clone();
                let mut next = before.clone();
                for change in changes {
                    configure(&mut next, change)?;
                }
                let added: Vec<ServerKey> = next
                    .members
                    .iter()
                    .filter(|m| before.member(&m.server).is_none())
                    .map(|m| m.server.clone())
                    .collect();
                self.commit(name, next, *at, "pool settings changed")?;
                self.fresh_start(&added);
                Ok(())
            }
            PoolCommand::Delete { name, at } => {
                let pool = self.pool(name)?.clone();
                self.record(name, Some(&pool), &empty_like(&pool), *at, "pool deleted");
                self.pools.remove(name);
                Ok(())
            }
            PoolCommand::Observe { reports } => {
                for (server, health) in reports {
                    self.health.insert(server.clone(), health.clone());
                }
                Ok(())
            }
            PoolCommand::Decided {
                name,
                revision,
                next,
                at,
            } => {
                let cur = self.pool(name)?;
                if cur.revision != *revision {
                    return Err(format!(
                        "pool {name} changed since the decision (revision {} now, decided from {revision})",
                        cur.revision
                    ));
                }
                if cur.paused {
                    return Err(format!("pool {name} is paused"));
                }
                let same_shape = cur.settings == next.settings
                    && cur.members.len() == next.members.len()
                    && cur
                        .members
                        .iter()
                        .zip(&next.members)
                        .all(|(a, b)| a.server == b.server && a.kind == b.kind);
                if !same_shape {
                    return Err(format!(
                        "a decision may change states only, not pool {name}'s members or settings"
                    ));
                }
                self.commit(name, next.clone(), *at, "")
            }
            PoolCommand::Recover { target, at } => self.recover(target, *at),
            PoolCommand::Handover { name, to, at } => {
                let pool = self.pool(name)?;
                if pool.paused {
                    return Err(format!(
                        "pool {name} is paused: resume it, or use set while it is paused"
                    ));
                }
                let (target, kind) = match to {
                    Some(server) => (server.clone(), HandoverKind::Switchover),
                    None => (
                        pool.members[0].server.clone(),
                        HandoverKind::ActivatePrimary,
                    ),
                };
                let next = start_handover(name, pool, target, kind, *at)?;
                self.commit(name, next, *at, "")
            }
            PoolCommand::Pause { name, paused, at } => {
                let mut next = self.pool(name)?.clone();
                if next.paused == *paused {
                    return Err(format!(
                        "pool {name} is {} already",
                        if *paused { "paused" } else { "running" }
                    ));
                }
                next.paused = *paused;
                if !*paused {
                    for m in &mut next.members {
                        m.status_override = None;
                    }
                }
                let why = if *paused {
                    "automation paused"
                } else {
                    "automation resumed"
                };
                self.commit(name, next, *at, why)
            }
            PoolCommand::Hook {
                seq,
                member,
                step,
                at,
            } => self.hook_step(*seq, *member, *at, step),
            PoolCommand::Note {
                name,
                server,
                reason,
                at,
            } => {
                let pool = self.pool(name)?;
                let state = pool
                    .member(server)
                    .ok_or_else(|| not_member(server, name))?
                    .state;
                let epoch = pool.epoch;
                self.push_history(HistoryEntry {
                    seq: 0,
                    at: *at,
                    pool: name.clone(),
                    server: server.clone(),
                    from: Some(state),
                    to: Some(state),
                    status: self.health.get(server).map(|h| h.health),
                    epoch,
                    reason: bounded_message(reason),
                    hook: HookState::None,
                });
                Ok(())
            }
            PoolCommand::ManualSet {
                name,
                server,
                state,
                status,
                at,
            } => {
                let pool = self.pool(name)?;
                if !pool.paused {
                    return Err(format!(
                        "pool {name} is not paused: pause it first (gcsctl pause {name})"
                    ));
                }
                if state.is_none() && status.is_none() {
                    return Err("set needs --state, --status or both".into());
                }
                let mut next = pool.clone();
                let i = next
                    .position(server)
                    .ok_or_else(|| not_member(server, name))?;
                if let Some(state) = state {
                    if *state == PoolState::Active {
                        for (j, m) in next.members.iter_mut().enumerate() {
                            if j != i && m.state == PoolState::Active {
                                m.state = PoolState::Standby;
                                m.message = format!(
                                    "Manually set to STANDBY: {} was set ACTIVE.",
                                    addr(server)
                                );
                            }
                        }
                        next.catch_up = None;
                    }
                    next.members[i].state = *state;
                    next.members[i].message = format!("Manually set to {state}.");
                    next.handover = None;
                }
                if status.is_some() {
                    next.members[i].status_override = *status;
                }
                self.commit(name, next, *at, "")
            }
        }
    }

    /// Servers that just joined their first pool start with a clean slate: a report from
    /// before (a crash, failures while it was being set up) is dropped, and their first probe
    /// in the pool decides.
    fn fresh_start(&mut self, servers: &[ServerKey]) {
        for server in servers {
            if self.memberships(server).count() == 1 {
                self.health.remove(server);
            }
        }
    }

    fn pool(&self, name: &str) -> Result<&Pool, String> {
        self.pools
            .get(name)
            .ok_or_else(|| format!("no pool named {name:?}"))
    }

    fn recover(&mut self, target: &RecoverTarget, at: DateTime<Utc>) -> Result<(), String> {
        let chosen: Vec<(String, ServerKey)> = match target {
            RecoverTarget::Server(server) => {
                let mut found = Vec::new();
                let mut states = Vec::new();
                for (name, _, m) in self.memberships(server) {
                    if m.state.is_failed() {
                        found.push((name.to_owned(), server.clone()));
                    } else {
                        states.push(format!("{} in {name}", m.state));
                    }
                }
                if found.is_empty() {
                    return Err(if states.is_empty() {
                        format!("{} is in no pool", addr(server))
                    } else {
                        format!(
                            "{} is not FAILED ({}): nothing to recover",
                            addr(server),
                            states.join(", ")
                        )
                    });
                }
                found
            }
            RecoverTarget::Pool(name) => {
                let pool = self.pool(name)?;
                let found: Vec<_> = pool
                    .members
                    .iter()
                    .filter(|m| m.state.is_failed())
                    .map(|m| (name.clone(), m.server.clone()))
                    .collect();
                if found.is_empty() {
                    return Err(format!(
                        "pool {name} has no FAILED server: nothing to recover"
                    ));
                }
                found
            }
        };
        // The operator says the server is fixed: its old failures no longer count, and its
        // next probe tells how it is (MPP reset the counter too).
        for (_, server) in &chosen {
            self.health.remove(server);
        }
        for (name, server) in chosen {
            let mut next = self.pools[&name].clone();
            if let Some(i) = next.position(&server) {
                next.members[i].state = PoolState::Unknown;
                next.members[i].message = messages::RECOVERY.into();
                next.reinstate_primary |= next.members[i].kind == PoolType::Primary;
            }
            self.commit(&name, next, at, "")?;
        }
        Ok(())
    }

    /// Replaces pool `name` by `next` if that keeps the invariants: records the transitions,
    /// sets the epoch and the revision.
    pub(crate) fn commit(
        &mut self,
        name: &str,
        mut next: Pool,
        at: DateTime<Utc>,
        why: &str,
    ) -> Result<(), String> {
        let cur = self.pool(name)?.clone();
        let actives = next
            .members
            .iter()
            .filter(|m| m.state == PoolState::Active)
            .count();
        if actives > 1 {
            return Err(format!(
                "refused: pool {name} would have {actives} ACTIVE servers"
            ));
        }
        for m in &mut next.members {
            m.message = bounded_message(&m.message);
        }
        let old_active = cur.active().map(|m| &m.server);
        let new_active = next.active().map(|m| m.server.clone());
        next.epoch = cur.epoch;
        next.active_since = cur.active_since;
        if old_active != new_active.as_ref() {
            next.epoch += 1;
            next.active_since = new_active.is_some().then_some(at);
        }
        if next.active().is_some_and(|m| m.kind == PoolType::Primary) {
            next.reinstate_primary = false;
        }
        if new_active.is_none() {
            next.catch_up = None;
        }
        next.revision = cur.revision + 1;
        self.record(name, Some(&cur), &next, at, why);
        self.pools.insert(name.to_owned(), next);
        Ok(())
    }

    /// Appends a history entry for every member whose state changed (or that joined or left),
    /// or one pool-wide entry with `why` when no state changed and `why` is given.
    fn record(
        &mut self,
        name: &str,
        cur: Option<&Pool>,
        next: &Pool,
        at: DateTime<Utc>,
        why: &str,
    ) {
        let before = |s: &ServerKey| cur.and_then(|p| p.member(s)).map(|m| m.state);
        let mut entries: Vec<(ServerKey, Option<PoolState>, Option<PoolState>, String)> = next
            .members
            .iter()
            .filter(|m| before(&m.server) != Some(m.state))
            .map(|m| {
                (
                    m.server.clone(),
                    before(&m.server),
                    Some(m.state),
                    m.message.clone(),
                )
            })
            .collect();
        if let Some(cur) = cur {
            entries.extend(
                cur.members
                    .iter()
                    .filter(|m| next.member(&m.server).is_none())
                    .map(|m| (m.server.clone(), Some(m.state), None, why.to_owned())),
            );
        }
        for (server, from, to, reason) in entries {
            self.push_history(HistoryEntry {
                seq: 0,
                at,
                pool: name.to_owned(),
                status: self.health.get(&server).map(|h| h.health),
                server,
                from,
                to,
                epoch: next.epoch,
                reason: if reason.is_empty() {
                    why.to_owned()
                } else {
                    reason
                },
                hook: if from == to {
                    HookState::None
                } else {
                    HookState::Pending
                },
            });
        }
    }

    /// Appends `entry` with the next sequence number, dropping the oldest beyond
    /// [`HISTORY_LEN`].
    fn push_history(&mut self, mut entry: HistoryEntry) {
        self.history_seq += 1;
        self.history_rev += 1;
        entry.seq = self.history_seq;
        self.history.push_back(entry);
        while self.history.len() > HISTORY_LEN {
            self.history.pop_front();
        }
    }
}

fn new_member(server: ServerKey, priority: usize) -> PoolMember {
    PoolMember {
        server,
        kind: if priority == 0 {
            PoolType::Primary
        } else {
            PoolType::Secondary
        },
        state: PoolState::Unknown,
        message: String::new(),
        status_override: None,
    }
}

fn empty_like(pool: &Pool) -> Pool {
    Pool {
        members: Vec::new(),
        ..pool.clone()
    }
}

fn not_member(server: &ServerKey, pool: &str) -> String {
    format!("{} is not a member of pool {pool}", addr(server))
}

fn check_member_list(servers: &[ServerKey]) -> Result<(), String> {
    if servers.len() < 2 {
        return Err("a pool needs a PRIMARY and at least one SECONDARY".into());
    }
    if servers.len() > MAX_POOL_MEMBERS {
        return Err(format!(
            "a pool has at most {MAX_POOL_MEMBERS} servers, not {}",
            servers.len()
        ));
    }
    for (i, s) in servers.iter().enumerate() {
        if servers[..i].contains(s) {
            return Err(format!("{} is listed twice", addr(s)));
        }
    }
    Ok(())
}

fn configure(pool: &mut Pool, change: &SettingChange) -> Result<(), String> {
    let s = &mut pool.settings;
    match change {
        SettingChange::Fencing(v) => s.fencing = *v,
        SettingChange::HostileTakeover(v) => s.hostile_takeover = *v,
        SettingChange::MaxLagSecs(v) => s.max_lag_secs = *v,
        SettingChange::CatchUpTimeoutMs(v) => s.catch_up_timeout_ms = *v,
        SettingChange::Members(servers) => {
            check_member_list(servers)?;
            if let Some(active) = pool.active() {
                if !servers.contains(&active.server) {
                    return Err(format!(
                        "{} is ACTIVE: switch over to another server before removing it",
                        addr(&active.server)
                    ));
                }
            }
            if let Some(h) = &pool.handover {
                return Err(format!(
                    "a {} to {} is under way: change the members when it is done",
                    h.kind,
                    addr(&h.to)
                ));
            }
            // Kept servers keep their state and message; new ones start UNKNOWN; TYPE follows
            // the new order (the first is the PRIMARY).
            pool.members = servers
                .iter()
                .enumerate()
                .map(|(i, server)| {
                    let mut m = pool
                        .member(server)
                        .cloned()
                        .unwrap_or_else(|| new_member(server.clone(), i));
                    m.kind = new_member(server.clone(), i).kind;
                    m
                })
                .collect();
        }
    }
    Ok(())
}

/// The first half of a planned handover: the ACTIVE stands down (its gcsd fences it) and the
/// target is named; the leader's decision (`decide`) completes it once the old ACTIVE is
/// confirmed read-only.
/// Both halves are single committed transitions, so there is never a moment with two ACTIVE
/// (MPP's `--activate-primary` left two for a whole cycle: D-7a).
pub(crate) fn start_handover(
    name: &str,
    pool: &Pool,
    target: ServerKey,
    kind: HandoverKind,
    at: DateTime<Utc>,
) -> Result<Pool, String> {
    let i = pool
        .position(&target)
        .ok_or_else(|| not_member(&target, name))?;
    let member = &pool.members[i];
    if member.state != PoolState::Standby {
        return Err(match kind {
            HandoverKind::ActivatePrimary => format!(
                "PRIMARY SERVER {} IS NOT READY. STATE must be STANDBY for activation.",
                addr(&target)
            ),
            _ => format!(
                "{} is {}, not STANDBY: it cannot take over",
                addr(&target),
                member.state
            ),
        });
    }
    if let Some(h) = &pool.handover {
        return Err(format!(
            "a {} to {} is under way already",
            h.kind,
            addr(&h.to)
        ));
    }
    let mut next = pool.clone();
    let Some(a) = pool
        .members
        .iter()
        .position(|m| m.state == PoolState::Active)
    else {
        return Err(format!(
            "pool {name} has no ACTIVE server to hand over from; the group instates one by itself"
        ));
    };
    next.members[a].state = PoolState::Standby;
    next.members[a].message = match kind {
        HandoverKind::Switchover => format!("Relinquishing ACTIVE state to {}.", addr(&target)),
        _ => messages::RELINQUISH.into(),
    };
    next.handover = Some(Handover {
        from: pool.members[a].server.clone(),
        to: target,
        kind,
        started: at,
    });
    if kind == HandoverKind::Switchover {
        next.reinstate_primary = false;
    }
    Ok(next)
}
