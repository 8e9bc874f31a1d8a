//! The ISIS2IS rows made once per snapshot, not once per SELECT: every SELECT until the
//! snapshot or its problem changes shares one [`Prepared`]. The lock is held only to clone or
//! replace an `Arc`, never while rows are made or copied.
//!
//! Beside the rows, a `Prepared` keeps the shim's view of them (`T`, made by the caller from
//! the rows, once): the plugin hands the shim C structs that point into these rows, and making
//! them once per snapshot rather than once per row of every SELECT is measurable (bench/).

use std::sync::Arc;

use crate::link::Snapshot;
use crate::sync::Mutex;
use crate::table::{self, Row, Value};

/// Rows ready for the shim, and `shim`, what the caller made of them.
#[derive(Debug)]
pub struct Prepared<T> {
    /// What they were made from; a new snapshot (or a change of problem) makes new rows.
    snapshot: Option<Arc<Snapshot>>,
    problem: Option<(u32, String)>,
    pub rows: Vec<PreparedRow>,
    pub shim: T,
}

#[derive(Debug)]
pub struct PreparedRow {
    pub row: Row,
    /// Every text of the row is 7-bit ASCII: the shim may copy it without a character-set
    /// check.
    pub ascii: bool,
}

impl PreparedRow {
    fn new(row: Row) -> Self {
        let ascii = row.values().iter().all(|v| match v {
            Value::Text(t) => t.is_ascii(),
            Value::Null | Value::Unsigned(_) => true,
        });
        PreparedRow { row, ascii }
    }
}

impl<T> Prepared<T> {
    /// `shim` is called once, with the rows in their final place.
    fn new(
        snapshot: Option<Arc<Snapshot>>,
        problem: Option<(u32, String)>,
        rows: Vec<Row>,
        shim: impl FnOnce(&[PreparedRow]) -> T,
    ) -> Self {
        let rows: Vec<PreparedRow> = rows.into_iter().map(PreparedRow::new).collect();
        Prepared {
            snapshot,
            problem,
            shim: shim(&rows),
            rows,
        }
    }

    /// The one row shown while isis2d is not installed (not cached: there is nothing to
    /// cache it against).
    pub fn no_daemon(shim: impl FnOnce(&[PreparedRow]) -> T) -> Self {
        Prepared::new(None, None, table::no_daemon(), shim)
    }

    fn made_from(&self, snapshot: &Arc<Snapshot>, problem: &Option<(u32, String)>) -> bool {
        self.snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, snapshot))
            && self.problem == *problem
    }
}

/// The newest prepared rows.
pub struct RowCache<T>(Mutex<Option<Arc<Prepared<T>>>>);

impl<T> RowCache<T> {
    pub const fn new() -> Self {
        RowCache(Mutex::new(None))
    }

    /// The rows for `snapshot` with `problem` (see `table::problem`): the cached ones if they
    /// were made from the same, else new ones (and their `shim`), which replace them.
    pub fn rows(
        &self,
        snapshot: Arc<Snapshot>,
        problem: Option<(u32, String)>,
        shim: impl FnOnce(&[PreparedRow]) -> T,
    ) -> Arc<Prepared<T>> {
        if let Some(p) = self.0.lock().clone() {
            if p.made_from(&snapshot, &problem) {
                return p;
            }
        }
        let rows = table::rows_with(&snapshot, problem.clone());
        let prepared = Arc::new(Prepared::new(Some(snapshot), problem, rows, shim));
        *self.0.lock() = Some(prepared.clone());
        prepared
    }

    /// Frees the cached rows (the library may be unloaded next, and statics are never
    /// dropped).
    pub fn release(&self) {
        *self.0.lock() = None;
    }
}

impl<T> Default for RowCache<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use proto::{Role, ServerKey, ServerRow, Status};

    use super::*;
    use crate::table::Column;

    fn snapshot(hosts: &[&str]) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            rows: hosts
                .iter()
                .map(|h| ServerRow {
                    member: "gcsd1".into(),
                    server: ServerKey::new(*h, "3306"),
                    status: Status::On,
                    role: Role::Master,
                    ttl_secs: 3,
                    last_update: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
                    mpp: None,
                })
                .collect(),
            gcsd_warning: None,
        })
    }

    fn stale() -> Option<(u32, String)> {
        Some((
            table::errno::STALE,
            "isis2d: gcsd has not confirmed the list".into(),
        ))
    }

    /// The shim's view in these tests: the hosts it was made from.
    fn hosts(rows: &[PreparedRow]) -> Vec<Value> {
        rows.iter().map(|r| r.row[Column::Host].clone()).collect()
    }

    #[test]
    fn rows_are_made_once_per_snapshot_and_problem() {
        let cache = RowCache::new();
        let a = snapshot(&["db1", "db2"]);
        let first = cache.rows(a.clone(), None, hosts);
        assert_eq!(first.rows.len(), 2);
        assert_eq!(
            first.shim,
            hosts(&first.rows),
            "the shim's view is of these rows"
        );
        let again = cache.rows(a.clone(), None, |_| unreachable!("cached: not made again"));
        assert!(Arc::ptr_eq(&first, &again), "same snapshot: same rows");

        let with_problem = cache.rows(a.clone(), stale(), hosts);
        assert!(
            !Arc::ptr_eq(&first, &with_problem),
            "a new problem makes new rows"
        );
        assert_eq!(
            with_problem.rows[0].row[Column::Errno],
            Value::Unsigned(table::errno::STALE.into())
        );
        let again = cache.rows(a.clone(), stale(), hosts);
        assert!(Arc::ptr_eq(&with_problem, &again));

        let healed = cache.rows(a, None, hosts);
        assert!(
            !Arc::ptr_eq(&with_problem, &healed),
            "the problem went away"
        );
        assert_eq!(healed.rows[0].row[Column::Error], Value::Null);

        // An equal but new snapshot is a new list from gcsd: new rows.
        let b = snapshot(&["db1", "db2"]);
        assert!(!Arc::ptr_eq(&healed, &cache.rows(b.clone(), None, hosts)));

        cache.release();
        let after = cache.rows(b, None, hosts);
        assert!(!Arc::ptr_eq(&healed, &after), "released rows are gone");
    }

    #[test]
    fn the_ascii_flag_covers_every_text_of_the_row() {
        let cache = RowCache::new();
        let rows = cache.rows(snapshot(&["db1", "h\u{f4}te"]), None, |_| ());
        assert!(rows.rows[0].ascii);
        assert!(!rows.rows[1].ascii);
        let problem = Some((table::errno::UNREACHABLE, "isis2d: cass\u{e9}".to_owned()));
        let rows = cache.rows(snapshot(&["db1"]), problem, |_| ());
        assert!(!rows.rows[0].ascii, "the error text counts too");
    }

    #[test]
    fn without_the_daemon_one_row_and_nothing_cached() {
        let prepared = Prepared::no_daemon(hosts);
        assert_eq!(prepared.rows.len(), 1);
        assert_eq!(
            prepared.rows[0].row[Column::Errno],
            Value::Unsigned(table::errno::NO_DAEMON.into())
        );
        assert!(prepared.rows[0].ascii);
        assert_eq!(prepared.shim, [Value::Null]);
    }
}
