//! `INFORMATION_SCHEMA.ISIS2IS_HISTORY`: the pools' committed transitions, from the link's copy
//! of gcsd's history (fetched on every heartbeat, only when it changed). Pure: no I/O.

pub use crate::link::HistorySnapshot;
use crate::table::{Kind, Value};

columns! {
    /// The columns of `INFORMATION_SCHEMA.ISIS2IS_HISTORY`, in table order: the one list.
    HistoryColumn;
    /// The problem every row carries, NULL on a healthy row (as in ISIS2IS).
    Error => "ERROR", Kind::Text { width: proto::MAX_TOKEN }, true;
    /// 0 on a healthy row, else one of ISIS2IS's errnos.
    Errno => "ERRNO", Kind::Unsigned, false;
    /// Grows by one per transition, in commit order, the same on every server.
    Seq => "SEQ", Kind::Unsigned, true;
    /// When it was committed, UTC, milliseconds.
    Time => "TIME", Kind::Text { width: 32 }, true;
    Pool => "MPP_POOL", Kind::Text { width: proto::MAX_POOL_NAME }, true;
    Host => "MYSQL_HOST", Kind::Text { width: proto::MAX_TOKEN }, true;
    Port => "MYSQL_PORT_OR_SOCKET", Kind::Text { width: proto::MAX_TOKEN }, true;
    /// NULL: the server joined the pool.
    From => "FROM_STATE", Kind::Text { width: 16 }, true;
    /// NULL: the server left the pool.
    To => "TO_STATE", Kind::Text { width: 16 }, true;
    /// Its STATUS when the transition was committed.
    Status => "MPP_STATUS", Kind::Text { width: 16 }, true;
    Epoch => "MPP_EPOCH", Kind::Unsigned, true;
    Reason => "REASON", Kind::Text { width: proto::MAX_MESSAGE }, true;
    /// What came of the transition's hook: empty when none runs for it.
    Hook => "HOOK_OUTCOME", Kind::Text { width: proto::MAX_MESSAGE }, true;
}

/// The rows for `history`, each carrying `problem` (errno, text) if there is one; a problem
/// with no rows to carry it is a row of its own.
pub fn rows(history: &HistorySnapshot, problem: Option<(u32, String)>) -> Vec<Vec<Value>> {
    let problem = problem.or_else(|| {
        history
            .unsupported
            .clone()
            .map(|why| (crate::table::errno::NO_HISTORY, why))
    });
    let (errno, error) = match &problem {
        Some((errno, error)) => (*errno, Value::Text(error.clone())),
        None => (0, Value::Null),
    };
    let text = |t: String| Value::Text(t);
    let word = |w: Option<String>| w.map_or(Value::Null, Value::Text);
    if history.rows.is_empty() {
        return match problem {
            Some(_) => vec![HistoryColumn::ALL
                .iter()
                .map(|c| match c {
                    HistoryColumn::Error => error.clone(),
                    HistoryColumn::Errno => Value::Unsigned(errno.into()),
                    _ => Value::Null,
                })
                .collect()],
            None => Vec::new(),
        };
    }
    history
        .rows
        .iter()
        .map(|r| {
            HistoryColumn::ALL
                .iter()
                .map(|c| match c {
                    HistoryColumn::Error => error.clone(),
                    HistoryColumn::Errno => Value::Unsigned(errno.into()),
                    HistoryColumn::Seq => Value::Unsigned(r.seq),
                    HistoryColumn::Time => text(r.at.format("%Y-%m-%d %H:%M:%S%.3f").to_string()),
                    HistoryColumn::Pool => text(r.pool.clone()),
                    HistoryColumn::Host => text(r.server.host.clone()),
                    HistoryColumn::Port => text(r.server.port.clone()),
                    HistoryColumn::From => word(r.from.map(|s| s.to_string())),
                    HistoryColumn::To => word(r.to.map(|s| s.to_string())),
                    HistoryColumn::Status => word(r.status.map(|s| s.to_string())),
                    HistoryColumn::Epoch => Value::Unsigned(r.epoch),
                    HistoryColumn::Reason => text(r.reason.clone()),
                    HistoryColumn::Hook => text(r.hook.clone()),
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use proto::{Health, HistoryRow, PoolState, ServerKey};

    fn history() -> HistorySnapshot {
        HistorySnapshot {
            rev: Some(4),
            rows: vec![HistoryRow {
                seq: 3,
                at: Utc.timestamp_millis_opt(1_800_000_000_123).unwrap(),
                pool: "app".into(),
                server: ServerKey::new("db2", "3306"),
                from: Some(PoolState::Standby),
                to: Some(PoolState::Active),
                status: Some(Health::Ok),
                epoch: 2,
                reason: "FAILOVER: Taking over ACTIVE state.".into(),
                hook: String::new(),
            }],
            unsupported: None,
        }
    }

    #[test]
    fn one_row_per_transition() {
        let rows = rows(&history(), None);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.len(), HistoryColumn::ALL.len());
        assert_eq!(row[HistoryColumn::Errno as usize], Value::Unsigned(0));
        assert_eq!(row[HistoryColumn::Error as usize], Value::Null);
        assert_eq!(
            row[HistoryColumn::Time as usize],
            Value::Text("2027-01-15 08:00:00.123".into())
        );
        assert_eq!(
            row[HistoryColumn::To as usize],
            Value::Text("ACTIVE".into())
        );
        for (c, v) in HistoryColumn::ALL.iter().zip(row) {
            assert!(*v != Value::Null || c.nullable(), "{c:?}");
        }
    }

    #[test]
    fn problems_mark_the_rows_or_stand_alone() {
        let stale = Some((1003, "isis2d: stale".to_owned()));
        let marked = rows(&history(), stale.clone());
        assert_eq!(
            marked[0][HistoryColumn::Errno as usize],
            Value::Unsigned(1003)
        );
        let empty = HistorySnapshot::default();
        assert!(rows(&empty, None).is_empty());
        let alone = rows(&empty, stale);
        assert_eq!(alone.len(), 1);
        assert_eq!(alone[0][HistoryColumn::Seq as usize], Value::Null);
        let old = HistorySnapshot {
            unsupported: Some("gcsd at x does not serve the history".into()),
            ..HistorySnapshot::default()
        };
        assert_eq!(
            rows(&old, None)[0][HistoryColumn::Errno as usize],
            Value::Unsigned(1004)
        );
    }

    #[test]
    fn the_column_list() {
        let names: Vec<_> = HistoryColumn::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "ERROR",
                "ERRNO",
                "SEQ",
                "TIME",
                "MPP_POOL",
                "MYSQL_HOST",
                "MYSQL_PORT_OR_SOCKET",
                "FROM_STATE",
                "TO_STATE",
                "MPP_STATUS",
                "MPP_EPOCH",
                "REASON",
                "HOOK_OUTCOME"
            ]
        );
    }
}
