//! The leader's decision for one pool: committed pool record + what the members observed →
//! the next pool record (or nothing to change). The whole pool is decided at once and
//! committed as one command, so a failover (the old ACTIVE FAILED, the new one ACTIVE) is one
//! transition, as in MPP's cycle, and never leaves a moment with two ACTIVE.

use proto::{Health, PoolState, PoolType, ServerKey};

use crate::ops::start_handover;
use crate::{addr, messages, FailureKind, HandoverKind, Pool, ServerHealth};

/// How a candidate's message begins while it waits for the others to be fenced.
const WAITING: &str = "Waiting for ";

/// What the group knows about one server when the leader decides.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen<'a> {
    /// Its owner's last committed probe report; none if it was never probed.
    pub health: Option<&'a ServerHealth>,
    /// Its owner gcsd is committed as down: cut off from the group for longer than its lease,
    /// so it has fenced its servers (or could not reach them either).
    pub cut_off: bool,
    /// It is registered through a member that is up, so a probe report is on its way.
    pub registered: bool,
}

/// How one server stands, for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Standing {
    /// Never probed.
    Unobserved,
    Failing(FailureKind, String),
    /// Not failing; `clean` when the last probe found nothing wrong.
    Healthy {
        clean: bool,
    },
}

fn standing(seen: Seen<'_>) -> Standing {
    match seen.health {
        _ if seen.cut_off => Standing::Failing(
            FailureKind::Offline,
            "Cut off: its gcsd is down in the group's view.".into(),
        ),
        None => Standing::Unobserved,
        Some(h) if h.health == Health::Fail => {
            Standing::Failing(h.failure.unwrap_or(FailureKind::Offline), h.message.clone())
        }
        Some(h) => Standing::Healthy {
            clean: h.failures == 0,
        },
    }
}

/// Whether the server surely cannot take writes: observed read-only, its process gone, or its
/// gcsd cut off past its lease. A registered server not yet probed must wait for its first
/// report. One that no gcsd has ever seen cannot be fenced by the group and does not hold the
/// others up: it is fenced when it first appears (see the README on `read_only=ON` in every
/// pool member's configuration).
impl Seen<'_> {
    /// Its last probe found it writable, and nothing since says it cannot write.
    pub fn known_writable(&self) -> bool {
        !self.cut_off
            && self
                .health
                .is_some_and(|h| !h.gone && h.read_only == Some(false))
    }

    pub fn unable_to_write(&self) -> bool {
        match self.health {
            _ if self.cut_off => true,
            None => !self.registered,
            Some(h) => h.gone || h.read_only == Some(true),
        }
    }
}

/// The next record of `pool`, or `None` when nothing changes. `seen` tells what the group
/// knows about each member; `at` stamps a handover this decision starts.
pub fn decide<'a>(
    name: &str,
    pool: &Pool,
    seen: &dyn Fn(&ServerKey) -> Seen<'a>,
    at: chrono::DateTime<chrono::Utc>,
) -> Option<Pool> {
    if pool.paused {
        return None;
    }
    let mut next = pool.clone();
    let standings: Vec<Standing> = pool
        .members
        .iter()
        .map(|m| standing(seen(&m.server)))
        .collect();

    // Every member but the ACTIVE: UNKNOWN becomes STANDBY on a healthy probe; a failing one
    // becomes FAILED (and stays so until recovered); a FAILED one says when it looks healthy.
    for (m, st) in next.members.iter_mut().zip(&standings) {
        match (m.state, st) {
            (PoolState::Active, _) | (_, Standing::Unobserved) => {}
            (PoolState::Unknown, Standing::Healthy { .. }) => m.state = PoolState::Standby,
            (PoolState::Unknown | PoolState::Standby, Standing::Failing(kind, why)) => {
                m.state = kind.failed_state();
                m.message = why.clone();
            }
            // What it waited for is decided again below (and said again if still so).
            (PoolState::Standby, Standing::Healthy { .. }) if m.message.starts_with(WAITING) => {
                m.message.clear();
            }
            (PoolState::Standby, Standing::Healthy { .. }) => {}
            (PoolState::FailedOffline | PoolState::FailedOnline, Standing::Failing(kind, why)) => {
                m.state = kind.failed_state();
                m.message = why.clone();
            }
            (_, Standing::Healthy { .. }) => {
                m.message = match m.kind {
                    PoolType::Primary => messages::PRIMARY_REPORTS_RECOVERY,
                    PoolType::Secondary => messages::REPORTS_RECOVERY,
                }
                .into();
            }
        }
    }
    // The handover's target may no longer be able to take over.
    if let Some(h) = &next.handover {
        let target_ok = next
            .position(&h.to)
            .is_some_and(|t| next.members[t].state == PoolState::Standby);
        if !target_ok {
            next.handover = None;
        }
    }

    match next
        .members
        .iter()
        .position(|m| m.state == PoolState::Active)
    {
        Some(a) => match &standings[a] {
            Standing::Failing(kind, why) => {
                if candidate(&next, &standings, a).is_some() {
                    // Fail it now; a candidate takes over below, at once if the old ACTIVE is
                    // already known unable to write, or once its gcsd confirms the fence.
                    next.members[a].state = kind.failed_state();
                    next.members[a].message = why.clone();
                    promote(&mut next, &standings, seen);
                } else {
                    // Keep it ACTIVE (there is nobody to hand over to) and say so truthfully:
                    // MPP wrote this message and failed the server anyway, leaving the pool
                    // without an ACTIVE even after it came back (D-3).
                    next.members[a].message = format!("{why}; {}", messages::NOT_FAILING);
                }
            }
            Standing::Healthy { .. } | Standing::Unobserved => {
                if next.members[a].message.ends_with(messages::NOT_FAILING) {
                    next.members[a].message.clear();
                }
                reinstate(name, &mut next, &standings, a, at);
            }
        },
        None => promote(&mut next, &standings, seen),
    }
    (next != *pool).then_some(next)
}

/// The STANDBY to promote: the first in priority order whose last probe was clean, else the
/// first that is not failing. (MPP promoted strictly down the list and let a degraded or even
/// a FAILED server above block the ones below: D-5, D-6, D-8.)
fn candidate(pool: &Pool, standings: &[Standing], except: usize) -> Option<usize> {
    let standby = |i: &usize| *i != except && pool.members[*i].state == PoolState::Standby;
    let indices = || (0..pool.members.len()).filter(standby);
    indices()
        .find(|&i| standings[i] == Standing::Healthy { clean: true })
        .or_else(|| indices().find(|&i| matches!(standings[i], Standing::Healthy { .. })))
}

/// With no ACTIVE: promotes the handover's target, or else the best candidate, if every other
/// member is unable to write; otherwise says on the candidate what it waits for.
fn promote<'a>(pool: &mut Pool, standings: &[Standing], seen: &dyn Fn(&ServerKey) -> Seen<'a>) {
    let planned = pool
        .handover
        .as_ref()
        .and_then(|h| pool.position(&h.to).map(|t| (t, h.kind, h.from.clone())));
    let chosen = planned
        .as_ref()
        .map(|(t, ..)| *t)
        .or_else(|| candidate(pool, standings, usize::MAX));
    let Some(c) = chosen else { return };
    if pool.settings.fencing {
        let writable: Vec<String> = pool
            .members
            .iter()
            .enumerate()
            .filter(|(i, m)| *i != c && !seen(&m.server).unable_to_write())
            .map(|(_, m)| addr(&m.server))
            .collect();
        if !writable.is_empty() {
            pool.members[c].message = format!(
                "{WAITING}{} to be confirmed read-only before taking over ACTIVE state.",
                writable.join(", ")
            );
            return;
        }
    }
    let member = &mut pool.members[c];
    member.state = PoolState::Active;
    member.message = match (&planned, member.kind) {
        (Some((_, HandoverKind::ActivatePrimary, _)), _) => messages::ACTIVATED,
        (Some((_, HandoverKind::Switchover, _)), _) => messages::SWITCHED_OVER,
        (_, PoolType::Primary) => messages::INSTATED,
        (_, PoolType::Secondary) => messages::FAILOVER,
    }
    .into();
    // A planned handover's target applies everything its predecessor wrote before it takes
    // writes; after a failure the predecessor's last position is not known.
    pool.catch_up = planned
        .and_then(|(_, _, from)| seen(&from).health.and_then(|h| h.gtid.clone()))
        .filter(|g| !g.is_empty());
    pool.handover = None;
}

/// A recovered PRIMARY, once STANDBY and healthy while a SECONDARY is ACTIVE, takes ACTIVE
/// back as a planned handover (MPP's reinstatement). Only after `recover`: a switchover to a
/// SECONDARY stays.
fn reinstate(
    name: &str,
    pool: &mut Pool,
    standings: &[Standing],
    active: usize,
    at: chrono::DateTime<chrono::Utc>,
) {
    let primary = &pool.members[0];
    let ready = pool.reinstate_primary
        && pool.members[active].kind == PoolType::Secondary
        && primary.state == PoolState::Standby
        && standings[0] == Standing::Healthy { clean: true }
        && pool.handover.is_none();
    if ready {
        if let Ok(next) = start_handover(
            name,
            pool,
            primary.server.clone(),
            HandoverKind::Reinstatement,
            at,
        ) {
            *pool = next;
        }
    }
}
