//! Rendering pools for operators: MPP's `--list` table, `--report` lines and the history.

use chrono::{DateTime, Utc};
use proto::admin::{HistoryReport, PoolServerReport, PoolsReport};
use proto::{PoolState, PoolType};

const HEADER: [&str; 7] = [
    "T",
    "Server",
    "Failures",
    "Last probe (UTC)",
    "Status",
    "State",
    "Message",
];

/// MPP's list: one block per pool (all, or `only`), one row per server in priority order.
pub fn render_list(report: &PoolsReport, only: Option<&str>) -> String {
    let mut out = String::new();
    let mut blocks: Vec<(String, Vec<[String; 7]>)> = Vec::new();
    for pool in report
        .pools
        .iter()
        .filter(|p| only.is_none_or(|n| p.name == n))
    {
        let mut head = format!("*  [ {} ] epoch={}", pool.name, pool.epoch);
        if pool.paused {
            head.push_str(" PAUSED (automation off)");
        }
        if !pool.fencing {
            head.push_str(" fencing=off");
        }
        if let Some(h) = &pool.handover {
            head.push_str(&format!(" handover: {h}"));
        }
        blocks.push((head, pool.servers.iter().map(row).collect()));
    }
    let header = HEADER.map(str::to_owned);
    let widths: Vec<usize> = (0..7)
        .map(|i| {
            blocks
                .iter()
                .flat_map(|(_, rows)| rows)
                .chain(std::iter::once(&header))
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String; 7]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == 6 {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    out.push_str(&line(&header));
    out.push_str(&line(
        &(0..7)
            .map(|i| "-".repeat(widths[i].max(1)))
            .collect::<Vec<_>>()
            .try_into()
            .expect("seven columns"),
    ));
    for (head, servers) in blocks {
        out.push_str(&head);
        out.push('\n');
        for r in &servers {
            out.push_str(&line(r));
        }
    }
    if let Some(why) = &report.quorum_problem {
        out.push_str(&format!(
            "(stale: the answering member cannot commit: {why}; these are its last known verdicts)\n"
        ));
    }
    out
}

fn row(s: &PoolServerReport) -> [String; 7] {
    [
        type_letter(s.kind).into(),
        s.server.clone(),
        s.failures.to_string(),
        s.last_probe.map(time).unwrap_or_default(),
        s.status.map(|h| h.to_string()).unwrap_or_default(),
        s.state.to_string(),
        s.message.clone(),
    ]
}

fn type_letter(kind: PoolType) -> &'static str {
    match kind {
        PoolType::Primary => "P",
        PoolType::Secondary => "S",
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// MPP's `--report`, one line per pool the server is in:
/// `POOL: STATUS/STATE (TYPE) : (STATUS/FAILURES) MESSAGE`.
pub fn render_report(report: &PoolsReport, server: &str) -> Option<String> {
    let lines: Vec<String> = report
        .pools
        .iter()
        .filter_map(|p| {
            let s = p.servers.iter().find(|s| s.server == server)?;
            let status = s.status.map(|h| h.to_string()).unwrap_or_default();
            Some(format!(
                "{}: {status}/{} ({}) : ({status}/{}) {}\n",
                p.name, s.state, s.kind, s.failures, s.message
            ))
        })
        .collect();
    (!lines.is_empty()).then(|| lines.concat())
}

/// Whether `server` is the committed ACTIVE of a pool and the answer comes from a member that
/// can commit.
pub fn is_active(report: &PoolsReport, server: &str) -> bool {
    report.quorum
        && report.pools.iter().any(|p| {
            p.servers
                .iter()
                .any(|s| s.server == server && s.state == PoolState::Active)
        })
}

/// The history, oldest first; each hook's outcome under its transition.
pub fn render_history(report: &HistoryReport) -> String {
    let mut out = String::new();
    for e in &report.history {
        let word = |s: Option<PoolState>| s.map_or("-".to_owned(), |s| s.to_string());
        out.push_str(&format!(
            "{}  {}  {}  {} -> {}  epoch={}  {}\n",
            time(e.time),
            e.pool,
            e.server,
            word(e.from),
            word(e.to),
            e.epoch,
            e.reason
        ));
        // A member without hooks skips them all: that is in --json, not on every line here.
        if !e.hook.is_empty() && !e.hook.starts_with(proto::admin::HOOK_SKIPPED) {
            out.push_str(&format!("    hook: {}\n", e.hook));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proto::admin::PoolReport;
    use proto::Health;

    use super::*;

    fn sample() -> PoolsReport {
        let server = |name: &str, kind, state, status| PoolServerReport {
            server: name.into(),
            kind,
            state,
            status,
            failures: 0,
            message: String::new(),
            last_probe: None,
            read_only: None,
        };
        PoolsReport {
            quorum: true,
            quorum_problem: None,
            pools: vec![PoolReport {
                name: "app".into(),
                paused: false,
                epoch: 2,
                fencing: true,
                hostile_takeover: false,
                max_lag_secs: None,
                handover: None,
                active_since: None,
                servers: vec![
                    PoolServerReport {
                        failures: 4,
                        message: "Could not connect".into(),
                        ..server(
                            "db1:3306",
                            PoolType::Primary,
                            PoolState::FailedOffline,
                            Some(Health::Fail),
                        )
                    },
                    server(
                        "db2:3306",
                        PoolType::Secondary,
                        PoolState::Active,
                        Some(Health::Ok),
                    ),
                ],
            }],
        }
    }

    #[test]
    fn history_shows_hook_outcomes_but_not_skips() {
        use chrono::TimeZone;
        let row = |seq: u64, hook: &str| proto::admin::HistoryRow {
            seq,
            time: chrono::Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
            pool: "app".into(),
            server: "db2:3306".into(),
            from: Some(PoolState::Standby),
            to: Some(PoolState::Active),
            status: None,
            epoch: 2,
            reason: "FAILOVER: Taking over ACTIVE state.".into(),
            hook: hook.into(),
        };
        let text = render_history(&HistoryReport {
            history: vec![
                row(1, "ok: exit 0 after 12 ms on member 2"),
                row(2, "skipped: no on_transition hook on member 3"),
                row(3, ""),
            ],
        });
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.contains("STANDBY -> ACTIVE  epoch=2  FAILOVER: Taking over ACTIVE state.\n    hook: ok: exit 0 after 12 ms on member 2\n"), "{text}");
        assert!(!text.contains("skipped"), "{text}");
    }

    #[test]
    fn list_report_and_is_active() {
        let r = sample();
        let list = render_list(&r, None);
        assert!(list.contains("*  [ app ] epoch=2"), "{list}");
        assert!(list.contains("P  db1:3306  4"), "{list}");
        assert!(list.contains("FAILED_OFFLINE  Could not connect"), "{list}");
        assert_eq!(
            render_report(&r, "db1:3306").unwrap(),
            "app: FAIL/FAILED_OFFLINE (PRIMARY) : (FAIL/4) Could not connect\n"
        );
        assert!(render_report(&r, "db9:3306").is_none());
        assert!(is_active(&r, "db2:3306"));
        assert!(!is_active(&r, "db1:3306"));
        let stale = PoolsReport { quorum: false, ..r };
        assert!(!is_active(&stale, "db2:3306"), "no quorum, no claim");
    }
}
