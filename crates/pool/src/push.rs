//! What a member pushes into the load balancers it is configured for (HAProxy's runtime API):
//! the administrative state of each mapped server, from this member's committed view. Pure; the
//! pusher (gcsd's `haproxy.rs`) reads HAProxy's state, asks [`plan`] what to change and sends it.
//!
//! The administrative state is the push's alone; health checks and agent-checks set the
//! operational state (up/down). A server takes traffic only when both allow it.

use std::collections::BTreeMap;
use std::fmt;

use proto::{Health, PoolState, ServerKey};
use serde::{Deserialize, Serialize};

use crate::Pools;

/// What a backend is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Writes: the ACTIVE only.
    Primary,
    /// Reads: the healthy STANDBYs.
    Replica,
}

/// HAProxy's administrative states, in the words of `set server B/S state WORD`. Ordered from
/// the most to the least restrictive: a plan applies the more restrictive changes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AdminState {
    /// No traffic (and HAProxy stops checking the server).
    Maint,
    /// No new connections; the open ones go on.
    Drain,
    /// Traffic as its checks allow.
    Ready,
}

impl fmt::Display for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdminState::Maint => "maint",
            AdminState::Drain => "drain",
            AdminState::Ready => "ready",
        })
    }
}

/// The state `server` should have in a `role` backend of `pool`, as this member sees it; none
/// if the pool does not exist or does not hold the server (then it is left alone). `vouch`:
/// this member heard a quorum within the lease. Without it no writer is ready, because another
/// ACTIVE may have been committed since this member last heard.
pub fn desired(
    pools: &Pools,
    pool: &str,
    role: Role,
    server: &ServerKey,
    vouch: bool,
) -> Option<AdminState> {
    let member = pools.pools.get(pool)?.member(server)?;
    Some(match role {
        Role::Primary if vouch && member.state == PoolState::Active => AdminState::Ready,
        Role::Primary => AdminState::Maint,
        Role::Replica if member.state != PoolState::Standby => AdminState::Maint,
        Role::Replica => match pools.status(member) {
            Some(Health::Ok | Health::OkInfo | Health::OkWarn) => AdminState::Ready,
            Some(Health::OkCritical) => AdminState::Drain,
            Some(Health::Fail) | None => AdminState::Maint,
        },
    })
}

/// The changes that take `current` to `desired`, the more restrictive first (every server that
/// must stop taking writes has stopped before another starts). An entry missing from `current`
/// is unknown and always set.
pub fn plan<K: Ord + Clone>(
    desired: &BTreeMap<K, AdminState>,
    current: &BTreeMap<K, AdminState>,
) -> Vec<(K, AdminState)> {
    let mut changes: Vec<(K, AdminState)> = desired
        .iter()
        .filter(|(k, want)| current.get(k) != Some(want))
        .map(|(k, want)| (k.clone(), *want))
        .collect();
    changes.sort_by_key(|(_, want)| *want);
    changes
}
