//! The pools on the admin API: operators' requests checked for form and turned into committed
//! commands (whether they are allowed is `pool`'s `apply`, in the log), and the reports.

use chrono::{DateTime, Utc};
use pool::{parse_addr, PoolCommand, RecoverTarget, SettingChange, Settings};
use proto::admin::{
    HistoryReport, HistoryRow, PoolReport, PoolRequest, PoolServerReport, PoolsReport,
};
use proto::{Health, PoolState};

use crate::state::GroupState;

/// The command for `req`, or what is wrong with its form.
pub fn command(req: PoolRequest, at: DateTime<Utc>) -> Result<PoolCommand, String> {
    let changes = |settings: &[String]| -> Result<Vec<SettingChange>, String> {
        settings.iter().map(|s| SettingChange::parse(s)).collect()
    };
    Ok(match req {
        PoolRequest::Init {
            name,
            primary,
            secondaries,
            settings,
        } => {
            let mut initial = Settings::default();
            for change in changes(&settings)? {
                match change {
                    SettingChange::Fencing(v) => initial.fencing = v,
                    SettingChange::HostileTakeover(v) => initial.hostile_takeover = v,
                    SettingChange::MaxLagSecs(v) => initial.max_lag_secs = v,
                    SettingChange::CatchUpTimeoutMs(v) => initial.catch_up_timeout_ms = v,
                    SettingChange::Members(_) => {
                        return Err(
                            "pool init takes its members from --primary and --secondary".into()
                        )
                    }
                }
            }
            PoolCommand::Init {
                name,
                primary: parse_addr(&primary)?,
                secondaries: secondaries
                    .iter()
                    .map(|s| parse_addr(s))
                    .collect::<Result<_, _>>()?,
                settings: initial,
                at,
            }
        }
        PoolRequest::Set { name, settings } => {
            if settings.is_empty() {
                return Err("pool set needs at least one KEY=VALUE".into());
            }
            PoolCommand::Configure {
                name,
                changes: changes(&settings)?,
                at,
            }
        }
        PoolRequest::Delete { name } => PoolCommand::Delete { name, at },
        PoolRequest::Recover { server, pool } => PoolCommand::Recover {
            target: match (server, pool) {
                (Some(s), None) => RecoverTarget::Server(parse_addr(&s)?),
                (None, Some(p)) => RecoverTarget::Pool(p),
                _ => {
                    return Err(
                        "recover takes a server (HOST:PORT) or --pool NAME, not both".into(),
                    )
                }
            },
            at,
        },
        PoolRequest::ActivatePrimary { pool } => PoolCommand::Handover {
            name: pool,
            to: None,
            at,
        },
        PoolRequest::Switchover { pool, to } => PoolCommand::Handover {
            name: pool,
            to: Some(parse_addr(&to)?),
            at,
        },
        PoolRequest::Pause { pool } => PoolCommand::Pause {
            name: pool,
            paused: true,
            at,
        },
        PoolRequest::Resume { pool } => PoolCommand::Pause {
            name: pool,
            paused: false,
            at,
        },
        PoolRequest::ManualSet {
            pool,
            server,
            state,
            status,
        } => PoolCommand::ManualSet {
            name: pool,
            server: parse_addr(&server)?,
            state: state
                .map(|s| s.parse::<PoolState>().map_err(|e| e.to_string()))
                .transpose()?,
            status: status
                .map(|s| s.parse::<Health>().map_err(|e| e.to_string()))
                .transpose()?,
            at,
        },
    })
}

/// Every pool as `state` has it.
pub fn report(state: &GroupState, quorum_problem: Option<String>) -> PoolsReport {
    let pools = &state.pools;
    PoolsReport {
        quorum: quorum_problem.is_none(),
        quorum_problem,
        pools: pools
            .pools
            .iter()
            .map(|(name, p)| PoolReport {
                name: name.clone(),
                paused: p.paused,
                epoch: p.epoch,
                fencing: p.settings.fencing,
                hostile_takeover: p.settings.hostile_takeover,
                max_lag_secs: p.settings.max_lag_secs,
                handover: p.handover.as_ref().map(|h| {
                    format!(
                        "{} from {} to {}",
                        h.kind,
                        pool::addr(&h.from),
                        pool::addr(&h.to)
                    )
                }),
                active_since: p.active_since,
                servers: p
                    .members
                    .iter()
                    .map(|m| {
                        let health = pools.health.get(&m.server);
                        let probed = health.filter(|h| {
                            !h.message.is_empty() && h.failures > 0 && h.message != m.message
                        });
                        let message = match (m.message.is_empty(), probed) {
                            (_, None) => m.message.clone(),
                            (true, Some(h)) => h.message.clone(),
                            (false, Some(h)) => format!("{} ({})", m.message, h.message),
                        };
                        PoolServerReport {
                            server: pool::addr(&m.server),
                            kind: m.kind,
                            state: m.state,
                            status: state.pools.status(m),
                            failures: health.map_or(0, |h| h.failures),
                            message,
                            last_probe: health.map(|h| h.last_probe),
                            read_only: health.and_then(|h| h.read_only),
                        }
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The committed transitions, of one pool or all, oldest first.
pub fn history(state: &GroupState, pool: Option<&str>) -> HistoryReport {
    HistoryReport {
        history: state
            .pools
            .history
            .iter()
            .filter(|e| pool.is_none_or(|p| e.pool == p))
            .map(|e| HistoryRow {
                seq: e.seq,
                time: e.at,
                pool: e.pool.clone(),
                server: pool::addr(&e.server),
                from: e.from,
                to: e.to,
                status: e.status,
                epoch: e.epoch,
                reason: e.reason.clone(),
                hook: e.hook.describe(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_requests_get_one_clear_error() {
        let at = Utc::now();
        let cases = [
            (
                PoolRequest::Init {
                    name: "app".into(),
                    primary: "db1".into(),
                    secondaries: vec!["db2:3306".into()],
                    settings: vec![],
                },
                "\"db1\" is not HOST:PORT",
            ),
            (
                PoolRequest::Init {
                    name: "app".into(),
                    primary: "db1:3306".into(),
                    secondaries: vec!["db2:3306".into()],
                    settings: vec!["fencing=perhaps".into()],
                },
                "fencing takes on or off",
            ),
            (
                PoolRequest::Recover {
                    server: None,
                    pool: None,
                },
                "recover takes a server",
            ),
            (
                PoolRequest::ManualSet {
                    pool: "app".into(),
                    server: "db1:3306".into(),
                    state: Some("ALIVE".into()),
                    status: None,
                },
                "unknown state: \"ALIVE\"",
            ),
            (
                PoolRequest::Set {
                    name: "app".into(),
                    settings: vec![],
                },
                "at least one KEY=VALUE",
            ),
        ];
        for (req, want) in cases {
            let err = command(req.clone(), at).unwrap_err();
            assert!(err.contains(want), "{req:?}: {err}");
        }
    }
}
