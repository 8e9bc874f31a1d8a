//! Each member's fencing duty for the servers it owns: which `read_only` each should have, and
//! when a new ACTIVE may be made writable.

use std::time::Duration;

use proto::{PoolState, ServerKey};

use crate::{Pools, Seen};

/// What `read_only` a server should have, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// `read_only=ON`.
    ReadOnly(&'static str),
    /// `read_only=OFF`, after the server has applied `catch_up` (a GTID position) if given.
    Writable {
        pool: String,
        epoch: u64,
        catch_up: Option<String>,
        hostile_takeover: bool,
        catch_up_timeout: Duration,
    },
}

/// The `read_only` that `server` should have: `None` when no pool with fencing on includes it
/// (then it is left alone). `seen` tells what the group knows about each server.
///
/// `no_quorum_for` is how long this member has been unable to commit (none while it can).
/// Past `fence_after` every server is made read-only whatever the last committed state said:
/// that is the lease that lets the majority promote another server once it has committed
/// this member as down (after `member_timeout`, which the configuration keeps longer).
pub fn desired<'a>(
    pools: &Pools,
    server: &ServerKey,
    seen: &dyn Fn(&ServerKey) -> Seen<'a>,
    no_quorum_for: Option<Duration>,
    fence_after: Duration,
) -> Option<Want> {
    let mut fenced = pools
        .memberships(server)
        .filter(|(_, pool, _)| pool.settings.fencing)
        .peekable();
    fenced.peek()?;
    if no_quorum_for.is_some_and(|d| d >= fence_after) {
        return Some(Want::ReadOnly("lease expired: no quorum"));
    }
    let mut writable = None;
    for (name, pool, member) in fenced {
        if member.state != PoolState::Active {
            // ACTIVE in one pool but not in another: the other pool's ACTIVE may take writes,
            // so this one must not.
            return Some(Want::ReadOnly("not the ACTIVE of its pool"));
        }
        // The leader promotes only when the others are confirmed unable to write. An ACTIVE
        // also steps back while another member is known writable (after an operator's `set`,
        // or a member restarted without `read_only=ON`) until that one's gcsd has fenced it.
        // A member not probed yet (just added to the pool) does not stop a running ACTIVE.
        if pool
            .members
            .iter()
            .any(|m| &m.server != server && seen(&m.server).known_writable())
        {
            return Some(Want::ReadOnly(
                "another member of its pool may still be writable",
            ));
        }
        writable = Some(Want::Writable {
            pool: name.to_owned(),
            epoch: pool.epoch,
            catch_up: pool.catch_up.clone(),
            hostile_takeover: pool.settings.hostile_takeover,
            catch_up_timeout: Duration::from_millis(pool.settings.catch_up_timeout_ms),
        });
    }
    writable
}

/// Whether a hung server must be killed (by its own gcsd, where `[probe] kill_hung` allows
/// it) so that the group can fail over: its probes timed out (`hung`) until it is FAIL, it may
/// still be writable (not last seen read-only), and it is in a pool with fencing on. Until it
/// is killed, or answers again and is fenced, no other pool member is made writable: nobody
/// can tell whether it takes writes the moment it resumes.
pub fn must_kill(
    pools: &Pools,
    server: &ServerKey,
    health: &crate::ServerHealth,
    hung: bool,
) -> bool {
    hung && health.health == proto::Health::Fail
        && health.read_only != Some(true)
        && pools
            .memberships(server)
            .any(|(_, pool, _)| pool.settings.fencing)
}

/// Whether the fencing duty must go over the server's local socket (`[probe] fence_sockets`),
/// and why it must be read-only: it must be, and its address could not be reached (refused, or
/// unreachable: its interface or address gone), so it may still take writes from whoever
/// reaches it on this host. A server that answers is fenced over the probe's own session; a
/// hung one would not answer on its socket either.
pub fn over_socket(probe: &crate::Probe, want: Option<&Want>) -> Option<&'static str> {
    match (want, probe) {
        (Some(Want::ReadOnly(why)), crate::Probe::Refused(_) | crate::Probe::Unreachable(_)) => {
            Some(why)
        }
        _ => None,
    }
}

/// What to do about a new ACTIVE that must catch up before it takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Make it writable now.
    Unfence,
    /// Not yet: look again shortly.
    Wait,
    /// It did not catch up in time and `hostile_takeover` is off: it stays read-only.
    GiveUp,
}

/// Whether a new ACTIVE that has `applied` its predecessor's writes (or not), after waiting
/// `waited`, may take writes.
pub fn catch_up(applied: bool, waited: Duration, timeout: Duration, hostile: bool) -> CatchUp {
    match (applied, waited >= timeout, hostile) {
        (true, _, _) => CatchUp::Unfence,
        (false, false, _) => CatchUp::Wait,
        (false, true, true) => CatchUp::Unfence,
        (false, true, false) => CatchUp::GiveUp,
    }
}
