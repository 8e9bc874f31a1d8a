//! Load-balancer verdicts: what a member answers a health check about its own servers, from the
//! committed pools and what its own probes last saw. Pure; the HTTP listener (gcsd's `lb.rs`)
//! only asks and answers.

use proto::{Health, PoolState, ServerKey};

use crate::{addr, Pools};

/// What a check asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// Is a server of this member the committed ACTIVE (writer)?
    Primary,
    /// Is a server of this member a healthy STANDBY, at most `max_lag` seconds behind?
    Replica { max_lag: Option<u64> },
    /// Does a server of this member answer its probes?
    Health,
}

/// What this member's own prober last saw of one of its servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub server: ServerKey,
    /// Its last probe was answered, recently enough to count.
    pub answered: bool,
    /// `Seconds_Behind_Master` at the last probe (none: not a replica, or unknown).
    pub lag_secs: Option<u64>,
}

/// The answer to a check: `Ok(why)` is a pass (HTTP 200), `Err(Refusal)` a fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The check named a pool that does not exist (HTTP 404).
    UnknownPool(String),
    /// The server is not what was asked (HTTP 503), and why.
    No(String),
}

/// Answers `ask` for this member's servers (`locals`), in `pool` or in any pool. `no_quorum`
/// says why this member cannot vouch for the committed state, if it cannot: then it never
/// claims a writer.
pub fn check(
    pools: &Pools,
    pool: Option<&str>,
    locals: &[Local],
    no_quorum: Option<&str>,
    ask: &Ask,
) -> Result<String, Refusal> {
    if let Some(name) = pool {
        if !pools.pools.contains_key(name) {
            return Err(Refusal::UnknownPool(format!("no pool named {name:?}")));
        }
    }
    let in_scope = |name: &str| pool.is_none_or(|p| p == name);
    let no = |why: String| Err(Refusal::No(why));
    if locals.is_empty() {
        return no("this member has no database server".into());
    }
    match ask {
        Ask::Health => match locals.iter().find(|l| l.answered) {
            Some(l) => Ok(format!("{} answers its probes", addr(&l.server))),
            None => no(format!(
                "{} does not answer its probes",
                addr(&locals[0].server)
            )),
        },
        Ask::Primary => {
            if let Some(why) = no_quorum {
                return no(format!("this member cannot vouch for the pools: {why}"));
            }
            for l in locals {
                for (name, p, m) in pools.memberships(&l.server) {
                    if in_scope(name) && m.state == PoolState::Active {
                        return Ok(format!(
                            "{} is the ACTIVE of {name} (epoch {})",
                            addr(&l.server),
                            p.epoch
                        ));
                    }
                }
            }
            no(describe(pools, locals, &in_scope, "the ACTIVE"))
        }
        Ask::Replica { max_lag } => {
            for l in locals {
                let healthy = pools
                    .health
                    .get(&l.server)
                    .is_some_and(|h| h.health != Health::Fail);
                for (name, _, m) in pools.memberships(&l.server) {
                    if !in_scope(name) || m.state != PoolState::Standby || !healthy || !l.answered {
                        continue;
                    }
                    match (max_lag, l.lag_secs) {
                        (Some(max), Some(lag)) if lag > *max => {
                            return no(format!(
                                "{} is a STANDBY of {name}, but {lag} s behind (at most {max} asked)",
                                addr(&l.server)
                            ))
                        }
                        (Some(max), None) => {
                            return no(format!(
                                "{} is a STANDBY of {name}, but its lag is not known (at most {max} s asked)",
                                addr(&l.server)
                            ))
                        }
                        _ => {
                            return Ok(format!(
                                "{} is a healthy STANDBY of {name}",
                                addr(&l.server)
                            ))
                        }
                    }
                }
            }
            no(describe(pools, locals, &in_scope, "a healthy STANDBY"))
        }
    }
}

/// Why none of `locals` is `wanted`: each one's state in the pools in scope.
fn describe(
    pools: &Pools,
    locals: &[Local],
    in_scope: &dyn Fn(&str) -> bool,
    wanted: &str,
) -> String {
    let states: Vec<String> = locals
        .iter()
        .map(|l| {
            let here: Vec<String> = pools
                .memberships(&l.server)
                .filter(|(name, _, _)| in_scope(name))
                .map(|(name, _, m)| format!("{} in {name}", m.state))
                .collect();
            if here.is_empty() {
                format!("{} is in no such pool", addr(&l.server))
            } else {
                format!("{} is {}", addr(&l.server), here.join(", "))
            }
        })
        .collect();
    format!("not {wanted}: {}", states.join("; "))
}
