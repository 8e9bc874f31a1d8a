//! Grading one probe: what the prober found, judged against the pools the server is in.

use chrono::{DateTime, Utc};
use proto::{Health, PoolState, ServerKey};

use crate::{addr, bounded_message, FailureKind, Pools, ServerHealth};

/// What one probe of a server found. Every step of the probe has its own deadline, so a probe
/// always ends in one of these (MPP's D-17: its query phase had no timeout at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The connection was refused: no process listens, so the server cannot write.
    Refused(String),
    /// It could not connect (authentication, too many connections...).
    Unreachable(String),
    /// It did not answer within a deadline (connecting or querying): hung, or unreachable.
    Hung(String),
    /// It connected, but a query failed or timed out.
    QueryFailed(String),
    Answered(ProbeFacts),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeFacts {
    pub read_only: bool,
    pub server_id: u32,
    /// `@@gtid_binlog_pos`.
    pub gtid_binlog_pos: String,
    /// `SHOW SLAVE STATUS`, if the server is a replica.
    pub replica: Option<ReplicaFacts>,
}

/// The replica status fields the checks use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicaFacts {
    /// `Slave_IO_Running`: Yes, No, Connecting or Preparing.
    pub io_running: String,
    /// `Slave_SQL_Running`: Yes or No.
    pub sql_running: String,
    /// `Master_Server_Id`: the server_id of the source it replicates from (0 before it ever
    /// connected).
    pub source_server_id: u32,
    pub seconds_behind: Option<u64>,
    pub last_io_error: String,
    pub last_sql_error: String,
}

/// What a server's replication is judged against: the ACTIVE of each of its pools where it is
/// not the ACTIVE itself, and the tolerated lag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judge {
    /// (address, server_id) of the ACTIVE servers it must replicate from, when known.
    pub sources: Vec<(String, u32)>,
    /// The tightest `max_lag_secs` of its pools.
    pub max_lag_secs: Option<u32>,
}

impl Judge {
    /// The context for probing `server`: for every pool where it is not the ACTIVE, that pool's
    /// ACTIVE (with the server_id its own probes reported). An ACTIVE is not judged as a
    /// replica (MPP's D-4, D-19: it failed every server that was not a replica).
    pub fn of(pools: &Pools, server: &ServerKey) -> Judge {
        let mut judge = Judge::default();
        for (_, pool, member) in pools.memberships(server) {
            if member.state == PoolState::Active {
                continue;
            }
            if let Some(active) = pool.active() {
                if let Some(id) = pools.health.get(&active.server).and_then(|h| h.server_id) {
                    let source = (addr(&active.server), id);
                    if !judge.sources.contains(&source) {
                        judge.sources.push(source);
                    }
                }
            }
            judge.max_lag_secs = match (judge.max_lag_secs, pool.settings.max_lag_secs) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        judge
    }
}

/// The new health of a server after `probe`, given its previous health: one level down per
/// consecutive failed probe, FAIL at `max_failures`, back to OK on a clean probe. A refused
/// connection is FAIL at once; `member` is the prober: the process is gone, there is nothing to wait for.
pub fn grade(
    member: u64,
    prev: Option<&ServerHealth>,
    probe: &Probe,
    judge: &Judge,
    max_failures: u32,
    at: DateTime<Utc>,
) -> ServerHealth {
    let prev_failures = prev.map_or(0, |h| h.failures);
    let failed = |kind: FailureKind, message: String, failures: u32, gone: bool| ServerHealth {
        member,
        health: Health::after_failures(failures, max_failures),
        failures,
        failure: Some(kind),
        gone,
        read_only: if gone {
            None
        } else {
            prev.and_then(|h| h.read_only)
        },
        replica: prev.and_then(|h| h.replica),
        server_id: prev.and_then(|h| h.server_id),
        gtid: prev.and_then(|h| h.gtid.clone()),
        message: bounded_message(&message),
        last_probe: at,
    };
    match probe {
        Probe::Refused(why) => failed(
            FailureKind::Offline,
            why.clone(),
            prev_failures.saturating_add(1).max(max_failures.max(1)),
            true,
        ),
        Probe::Unreachable(why) | Probe::Hung(why) => failed(
            FailureKind::Offline,
            why.clone(),
            prev_failures.saturating_add(1),
            false,
        ),
        Probe::QueryFailed(why) => failed(
            FailureKind::Online,
            why.clone(),
            prev_failures.saturating_add(1),
            false,
        ),
        Probe::Answered(facts) => {
            let problems = replication_problems(facts, judge);
            let failures = if problems.is_empty() {
                0
            } else {
                prev_failures.saturating_add(1)
            };
            ServerHealth {
                member,
                health: Health::after_failures(failures, max_failures),
                failures,
                failure: (failures > 0).then_some(FailureKind::Online),
                gone: false,
                read_only: Some(facts.read_only),
                replica: Some(facts.replica.is_some()),
                server_id: Some(facts.server_id),
                gtid: Some(facts.gtid_binlog_pos.clone()),
                message: bounded_message(&problems.join(", ")),
                last_probe: at,
            }
        }
    }
}

/// MPP's replication checks, judged against the ACTIVE rather than demanding that everyone be a
/// replica, with MPP's texts where the same thing is found.
fn replication_problems(facts: &ProbeFacts, judge: &Judge) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(r) = &facts.replica {
        if !r.sql_running.eq_ignore_ascii_case("yes") {
            problems.push(format!(
                "Slave Error: Slave SQL is not running, Slave_SQL_Running={}.",
                r.sql_running
            ));
        } else if r.io_running.eq_ignore_ascii_case("no") {
            // `Connecting` and `Preparing` are not failures: a replica whose source went away
            // is reconnecting, and it is the source that failed (MPP's D-2: counting this
            // failed both servers when the primary died, so no failover ever happened).
            problems.push(format!(
                "Slave Error: Slave IO is not running, Slave_IO_Running={}.",
                r.io_running
            ));
        }
        if !r.last_sql_error.trim().is_empty() {
            problems.push(format!("Last_Error: {}", r.last_sql_error.trim()));
        } else if r.io_running.eq_ignore_ascii_case("no") && !r.last_io_error.trim().is_empty() {
            problems.push(format!("Last_IO_Error: {}", r.last_io_error.trim()));
        }
        if let (Some(lag), Some(max)) = (r.seconds_behind, judge.max_lag_secs) {
            if lag > u64::from(max) {
                problems.push(format!("Slave Error: Seconds Behind Master: {lag}"));
            }
        }
    }
    for (active, id) in &judge.sources {
        match &facts.replica {
            _ if facts.server_id == *id => {}
            None => problems.push(format!("Not a replica of the ACTIVE {active}.")),
            Some(r) if r.source_server_id != *id => problems.push(format!(
                "Replicates from server_id {}, not from the ACTIVE {active} (server_id {id}).",
                r.source_server_id
            )),
            Some(_) => {}
        }
    }
    problems
}

/// Whether a server at GTID position `current` has applied everything in `required`: for
/// every replication domain in `required`, `current` has that domain at the same or a higher
/// sequence number. MariaDB's positions are comma-separated `domain-server-sequence` triples,
/// one per domain. A position that cannot be read is never caught up.
pub fn caught_up(current: &str, required: &str) -> bool {
    fn parse(pos: &str) -> Option<Vec<(u32, u64)>> {
        pos.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                let mut parts = t.split('-');
                let domain = parts.next()?.parse().ok()?;
                let _server: u32 = parts.next()?.parse().ok()?;
                let seq = parts.next()?.parse().ok()?;
                parts.next().is_none().then_some((domain, seq))
            })
            .collect()
    }
    let (Some(have), Some(need)) = (parse(current), parse(required)) else {
        return false;
    };
    need.iter()
        .all(|(domain, seq)| have.iter().any(|(d, s)| d == domain && s >= seq))
}
