//! Load-balancer verdicts: what a member answers a health check about its own servers, from the
//! committed pools and what its own probes last saw. Pure; the HTTP listener (gcsd's `lb.rs`)
//! only asks and answers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use proto::{Health, PoolState, ServerKey};

use crate::{addr, parse_addr, pool_name_problem, Pools};

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

/// A whole check: what it asks, about which pool and which of this member's servers (none:
/// any). The HTTP routes and HAProxy's agent-send line both come down to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub ask: Ask,
    pub pool: Option<String>,
    pub server: Option<ServerKey>,
}

/// The longest agent-send line read; HAProxy's own are a few words.
pub const MAX_AGENT_LINE: usize = 512;

impl Request {
    /// Parses HAProxy's `agent-send` line: a role (`primary`, `replica` or `health`), then any
    /// of `pool=NAME`, `server=HOST:PORT`, `lag=SECONDS`, separated by spaces, in any order.
    pub fn parse_agent(line: &str) -> Result<Self, String> {
        const GRAMMAR: &str =
            "expected: primary|replica|health [pool=NAME] [server=HOST:PORT] [lag=SECONDS]";
        let mut words = line.split_ascii_whitespace();
        let role = words
            .next()
            .ok_or_else(|| format!("empty agent-send line; {GRAMMAR}"))?;
        let mut lag = None;
        let mut req = Request {
            ask: match role {
                "primary" => Ask::Primary,
                "replica" => Ask::Replica { max_lag: None },
                "health" => Ask::Health,
                other => return Err(format!("unknown role {}; {GRAMMAR}", quoted(other))),
            },
            pool: None,
            server: None,
        };
        for word in words {
            match word.split_once('=') {
                Some(("pool", name)) if pool_name_problem(name).is_none() => {
                    req.pool = Some(name.to_owned())
                }
                Some(("server", server)) => req.server = Some(parse_addr(server)?),
                Some(("lag", secs)) if matches!(req.ask, Ask::Replica { .. }) => {
                    lag =
                        Some(secs.parse::<u64>().map_err(|_| {
                            format!("lag={} is not a number of seconds", quoted(secs))
                        })?)
                }
                _ => return Err(format!("unexpected {}; {GRAMMAR}", quoted(word))),
            }
        }
        if let Ask::Replica { max_lag } = &mut req.ask {
            *max_lag = lag;
        }
        Ok(req)
    }
}

/// `text` for a message: quoted, and cut short if it is long.
fn quoted(text: &str) -> String {
    let short: String = text.chars().take(40).collect();
    format!("{short:?}")
}

/// HAProxy's agent-check reply to an answer: `up` or `down` (the operational state; the
/// administrative one, ready/drain/maint, is the runtime push's), then the reason after `#`,
/// on one line that ends with a newline. An unknown pool is a `down` like any other refusal.
pub fn agent_reply(answer: &Result<String, Refusal>) -> String {
    let (word, why) = match answer {
        Ok(why) => ("up", why),
        Err(Refusal::UnknownPool(why) | Refusal::No(why)) => ("down", why),
    };
    let why: String = why
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    format!("{word} # {why}\n")
}

/// What a member can say about the committed state when it answers.
#[derive(Debug, Clone, Copy)]
pub struct Standing<'a> {
    /// Why this member cannot vouch for the committed state, if it cannot: then it never
    /// claims a writer.
    pub no_quorum: Option<&'a str>,
    pub now: DateTime<Utc>,
    /// A new ACTIVE is claimed as the writer only this long after its promotion: by then every
    /// load balancer checking at a shorter interval has seen the old writer go (each server is
    /// checked on its own schedule, so the new one could otherwise be up first).
    pub hold: Duration,
}

/// Answers `req` for this member's servers (`locals`).
pub fn check(
    pools: &Pools,
    req: &Request,
    locals: &[Local],
    standing: &Standing,
) -> Result<String, Refusal> {
    let no_quorum = standing.no_quorum;
    let pool = req.pool.as_deref();
    if let Some(name) = pool {
        if !pools.pools.contains_key(name) {
            return Err(Refusal::UnknownPool(format!("no pool named {name:?}")));
        }
    }
    let in_scope = |name: &str| pool.is_none_or(|p| p == name);
    let no = |why: String| Err(Refusal::No(why));
    let locals: Vec<&Local> = locals
        .iter()
        .filter(|l| req.server.as_ref().is_none_or(|s| *s == l.server))
        .collect();
    if let (Some(server), true) = (&req.server, locals.is_empty()) {
        return no(format!("{} is not a server of this member", addr(server)));
    }
    if locals.is_empty() {
        return no("this member has no database server".into());
    }
    let ask = &req.ask;
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
            for l in &locals {
                for (name, p, m) in pools.memberships(&l.server) {
                    if in_scope(name) && m.state == PoolState::Active {
                        let age = p
                            .active_since
                            .map(|t| (standing.now - t).to_std().unwrap_or_default());
                        if let Some(age) = age.filter(|age| *age < standing.hold) {
                            return no(format!(
                                "{} became the ACTIVE of {name} {} ms ago; it is the writer once the hold of {} ms is over (primary_hold_ms)",
                                addr(&l.server),
                                age.as_millis(),
                                standing.hold.as_millis()
                            ));
                        }
                        return Ok(format!(
                            "{} is the ACTIVE of {name} (epoch {})",
                            addr(&l.server),
                            p.epoch
                        ));
                    }
                }
            }
            no(describe(pools, &locals, &in_scope, "the ACTIVE"))
        }
        Ask::Replica { max_lag } => {
            for l in &locals {
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
            no(describe(pools, &locals, &in_scope, "a healthy STANDBY"))
        }
    }
}

/// Why none of `locals` is `wanted`: each one's state in the pools in scope.
fn describe(
    pools: &Pools,
    locals: &[&Local],
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
