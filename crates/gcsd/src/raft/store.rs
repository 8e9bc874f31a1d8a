//! Durable Raft storage in one redb file: the log, the vote, the committed id and the latest
//! snapshot. The state machine itself lives in memory and is rebuilt on start from the
//! persisted snapshot plus the log, so a log entry is purged only once a snapshot covering it is
//! on disk.

// openraft's traits fix the error type (StorageError, over 200 bytes); the helpers here return
// it too rather than convert at every call.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Entry, MemberNode, TypeConfig};
use crate::crash::{self, Point};
use crate::state::{Applied, GroupState, MemberId};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";
const KEY_SNAPSHOT: &str = "snapshot";
const KEY_GROUP: &str = "group_id";
const KEY_INCARNATION: &str = "incarnation";

type StorageResult<T> = Result<T, StorageError<MemberId>>;

fn io_error(
    subject: ErrorSubject<MemberId>,
    verb: ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError<MemberId> {
    StorageError::IO {
        source: StorageIOError::new(subject, verb, AnyError::new(&e)),
    }
}

fn read_error(e: impl std::error::Error + 'static) -> StorageError<MemberId> {
    io_error(ErrorSubject::Store, ErrorVerb::Read, e)
}

fn write_error(e: impl std::error::Error + 'static) -> StorageError<MemberId> {
    io_error(ErrorSubject::Store, ErrorVerb::Write, e)
}

type Opened = (LogStore, StateMachineStore, GroupIdStore);

/// Opens (or creates) the store at `dir/raft.redb`.
pub fn open(dir: &Path) -> Result<Opened, redb::DatabaseError> {
    let path = dir.join("raft.redb");
    if !path.exists() {
        create(dir, &path)?;
    }
    let db = Arc::new(Database::create(&path)?);
    let corrupted = |e: StorageError<MemberId>| {
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(format!(
            "cannot read the store: {e}"
        )))
    };
    Ok((
        LogStore {
            db: db.clone(),
            gate: SnapshotGate {
                db: db.clone(),
                state: Arc::default(),
            },
        },
        StateMachineStore::new(db.clone()).map_err(corrupted)?,
        GroupIdStore { db },
    ))
}

/// Holds back the purge of the logs a snapshot from the leader covers until that snapshot is
/// durable. openraft 0.9 purges them without waiting for the state machine's install (its
/// `PurgeLog` command has no condition): a member killed in between had lost those logs
/// without having the snapshot, and could never start again ("Failed to get log entries").
/// While a snapshot is being received, purges are only noted; once the install is over, the
/// noted one is carried out as far as the persisted snapshot covers.
#[derive(Clone)]
pub struct SnapshotGate {
    db: Arc<Database>,
    state: Arc<parking_lot::Mutex<GateState>>,
}

#[derive(Default)]
struct GateState {
    receiving: usize,
    deferred: Option<LogId<MemberId>>,
}

/// Counts one snapshot being received, also when its future is dropped.
struct Receiving(Arc<parking_lot::Mutex<GateState>>);

impl Drop for Receiving {
    fn drop(&mut self) {
        self.0.lock().receiving -= 1;
    }
}

impl SnapshotGate {
    /// Runs `install` (openraft's `install_full_snapshot`) with purges held back, then carries
    /// out a held-back purge as far as the persisted snapshot covers it.
    pub async fn receiving<T>(&self, install: impl std::future::Future<Output = T>) -> T {
        self.state.lock().receiving += 1;
        let guard = Receiving(self.state.clone());
        let result = install.await;
        drop(guard);
        let deferred = {
            let mut state = self.state.lock();
            if state.receiving == 0 {
                state.deferred.take()
            } else {
                None
            }
        };
        if let Some(upto) = deferred {
            if let Err(e) = self.purge_covered(upto).await {
                tracing::warn!("cannot purge the logs the installed snapshot covers: {e}");
            }
        }
        result
    }

    /// Notes `upto` instead of purging while a snapshot is being received.
    fn defer(&self, upto: &LogId<MemberId>) -> bool {
        let mut state = self.state.lock();
        if state.receiving == 0 {
            state.deferred = None;
            return false;
        }
        if state.deferred.as_ref().is_none_or(|d| d.index < upto.index) {
            state.deferred = Some(*upto);
        }
        true
    }

    /// Purges up to `upto`, but not past the persisted snapshot.
    async fn purge_covered(&self, upto: LogId<MemberId>) -> StorageResult<()> {
        let covered =
            get_meta::<SnapshotHead>(&self.db, KEY_SNAPSHOT)?.and_then(|s| s.meta.last_log_id);
        let purged: Option<LogId<MemberId>> = get_meta(&self.db, KEY_PURGED)?;
        let Some(covered) = covered else {
            return Ok(());
        };
        let upto = if covered.index < upto.index {
            covered
        } else {
            upto
        };
        if purged.is_some_and(|p| p.index >= upto.index) {
            return Ok(());
        }
        purge_durably(&self.db, upto).await
    }
}

/// A persisted snapshot's metadata, without its state.
#[derive(Deserialize)]
struct SnapshotHead {
    meta: SnapshotMeta<MemberId, MemberNode>,
}

/// Marks the logs up to `upto` purged, then deletes them.
async fn purge_durably(db: &Arc<Database>, upto: LogId<MemberId>) -> StorageResult<()> {
    put_meta(db, KEY_PURGED, &upto).await?;
    crash::at(Point::PurgeMarked);
    delete_logs(db, ..=upto.index).await
}

/// Deletes the log entries whose index is in `range`.
async fn delete_logs(
    db: &Arc<Database>,
    range: impl RangeBounds<u64> + Send + 'static,
) -> StorageResult<()> {
    let db = db.clone();
    durably(move || {
        let txn = db.begin_write().map_err(write_error)?;
        {
            let mut table = txn.open_table(LOG).map_err(write_error)?;
            table.retain_in(range, |_, _| false).map_err(write_error)?;
        }
        txn.commit().map_err(write_error)
    })
    .await
}

/// Creates an empty store at `path` whole or not at all: built beside it, synced, then renamed
/// into place. A process killed while redb writes a new file's header would otherwise leave a
/// `raft.redb` that is no database, and the next start could not tell it from a damaged store
/// (which it must refuse: that member's vote and log are lost).
fn create(dir: &Path, path: &Path) -> Result<(), redb::DatabaseError> {
    let creating = dir.join("raft.redb.creating");
    // Left by a start that was killed: it never held anything.
    let _ = std::fs::remove_file(&creating);
    drop(Database::create(&creating)?);
    let io = |e: std::io::Error| redb::DatabaseError::Storage(redb::StorageError::Io(e));
    std::fs::File::open(&creating)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&creating, path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// The id of the group this member belongs to, kept beside its log: a log only makes sense
/// within its group.
#[derive(Clone)]
pub struct GroupIdStore {
    db: Arc<Database>,
}

impl GroupIdStore {
    pub fn load(&self) -> StorageResult<Option<String>> {
        get_meta(&self.db, KEY_GROUP)
    }

    pub async fn save(&self, id: &str) -> StorageResult<()> {
        put_meta(&self.db, KEY_GROUP, &id).await
    }

    /// This data directory's incarnation: 128 random bits made the first time the store is
    /// opened, and kept as long as the store is. A member whose data_dir was wiped comes back
    /// with another one, which is how the group tells it from the member it was.
    pub async fn incarnation(&self) -> StorageResult<String> {
        if let Some(known) = get_meta(&self.db, KEY_INCARNATION)? {
            return Ok(known);
        }
        let made = crate::random::hex(16).map_err(write_error)?;
        put_meta(&self.db, KEY_INCARNATION, &made).await?;
        Ok(made)
    }
}

fn get_meta<T: DeserializeOwned>(db: &Database, key: &str) -> StorageResult<Option<T>> {
    let txn = db.begin_read().map_err(read_error)?;
    let table = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(read_error(e)),
    };
    let Some(raw) = table.get(key).map_err(read_error)? else {
        return Ok(None);
    };
    serde_json::from_slice(raw.value())
        .map(Some)
        .map_err(read_error)
}

/// Runs a write transaction (which fsyncs) on tokio's blocking pool: with two async workers, a
/// slow disk would otherwise stall the plugin port and the Raft heartbeats for as long as the
/// fsync takes.
async fn durably<T: Send + 'static>(
    write: impl FnOnce() -> StorageResult<T> + Send + 'static,
) -> StorageResult<T> {
    tokio::task::spawn_blocking(write)
        .await
        .map_err(write_error)?
}

async fn put_meta<T: Serialize>(
    db: &Arc<Database>,
    key: &'static str,
    value: &T,
) -> StorageResult<()> {
    let bytes = serde_json::to_vec(value).map_err(write_error)?;
    let db = db.clone();
    durably(move || write_meta(&db, key, &bytes)).await
}

/// [`put_meta`] for a large value (a snapshot: megabytes at thousands of servers), serialized
/// on the blocking pool too, so that the runtime keeps serving heartbeats meanwhile.
async fn put_large_meta<T: Serialize + Send + 'static>(
    db: &Arc<Database>,
    key: &'static str,
    value: T,
) -> StorageResult<T> {
    let db = db.clone();
    durably(move || {
        let bytes = serde_json::to_vec(&value).map_err(write_error)?;
        write_meta(&db, key, &bytes)?;
        Ok(value)
    })
    .await
}

fn write_meta(db: &Database, key: &str, bytes: &[u8]) -> StorageResult<()> {
    let txn = db.begin_write().map_err(write_error)?;
    txn.open_table(META)
        .map_err(write_error)?
        .insert(key, bytes)
        .map_err(write_error)?;
    if key == KEY_SNAPSHOT {
        crash::at(Point::SnapshotWriteBeforeCommit);
    }
    txn.commit().map_err(write_error)
}

/// The Raft log and vote. Every append is fsynced (redb's default durability) before openraft
/// is told it is done.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    gate: SnapshotGate,
}

impl LogStore {
    fn last_entry_id(&self) -> StorageResult<Option<LogId<MemberId>>> {
        let txn = self.db.begin_read().map_err(read_error)?;
        let table = match txn.open_table(LOG) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(read_error(e)),
        };
        let Some((_, raw)) = table.last().map_err(read_error)? else {
            return Ok(None);
        };
        let entry: Entry = serde_json::from_slice(raw.value()).map_err(read_error)?;
        Ok(Some(entry.log_id))
    }

    /// Holds back purges while a snapshot from the leader is installed (`wire::server`).
    pub fn snapshot_gate(&self) -> SnapshotGate {
        self.gate.clone()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry>> {
        let txn = self.db.begin_read().map_err(read_error)?;
        let table = match txn.open_table(LOG) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(read_error(e)),
        };
        table
            .range(range)
            .map_err(read_error)?
            .map(|item| {
                let (_, raw) = item.map_err(read_error)?;
                serde_json::from_slice(raw.value()).map_err(read_error)
            })
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId<MemberId>> = get_meta(&self.db, KEY_PURGED)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<MemberId>) -> StorageResult<()> {
        put_meta(&self.db, KEY_VOTE, vote).await
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<MemberId>>> {
        get_meta(&self.db, KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<MemberId>>) -> StorageResult<()> {
        put_meta(&self.db, KEY_COMMITTED, &committed).await
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<MemberId>>> {
        Ok(get_meta::<Option<LogId<MemberId>>>(&self.db, KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, serde_json::to_vec(&e).map_err(write_error)?)))
            .collect::<StorageResult<Vec<_>>>()?;
        let db = self.db.clone();
        let committed = durably(move || {
            let write = || {
                let txn = db.begin_write()?;
                {
                    let mut table = txn.open_table(LOG)?;
                    for (index, bytes) in &encoded {
                        table.insert(*index, bytes.as_slice())?;
                    }
                }
                // redb's default durability fsyncs on commit: the flush is done when it returns.
                txn.commit()?;
                Ok::<_, redb::Error>(())
            };
            write().map_err(write_error)
        })
        .await;
        callback.log_io_completed(
            committed
                .as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string())),
        );
        committed
    }

    async fn truncate(&mut self, log_id: LogId<MemberId>) -> StorageResult<()> {
        delete_logs(&self.db, log_id.index..).await
    }

    async fn purge(&mut self, log_id: LogId<MemberId>) -> StorageResult<()> {
        if self.gate.defer(&log_id) {
            return Ok(());
        }
        purge_durably(&self.db, log_id).await
    }
}

/// A snapshot as persisted and as sent to a joining member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSnapshot {
    pub meta: SnapshotMeta<MemberId, MemberNode>,
    pub state: GroupState,
}

/// What the state machine has applied, published to the rest of gcsd after every apply.
#[derive(Debug, Clone, Default)]
pub struct AppliedState {
    pub last_applied: Option<LogId<MemberId>>,
    pub state: Arc<GroupState>,
    /// The incarnation of each member of the applied membership that has one.
    pub incarnations: Arc<BTreeMap<MemberId, String>>,
}

/// The in-memory group state plus its persisted snapshot.
pub struct StateMachineStore {
    db: Arc<Database>,
    last_applied: Option<LogId<MemberId>>,
    membership: StoredMembership<MemberId, MemberNode>,
    state: GroupState,
    published: watch::Sender<AppliedState>,
}

impl StateMachineStore {
    fn new(db: Arc<Database>) -> StorageResult<Self> {
        let snapshot: Option<StoredSnapshot> = get_meta(&db, KEY_SNAPSHOT)?;
        let (published, _) = watch::channel(AppliedState::default());
        let mut sm = Self {
            db,
            last_applied: None,
            membership: StoredMembership::default(),
            state: GroupState::default(),
            published,
        };
        if let Some(snap) = snapshot {
            sm.restore(snap);
        }
        Ok(sm)
    }

    /// A receiver that sees the state after every apply.
    pub fn subscribe(&self) -> watch::Receiver<AppliedState> {
        self.published.subscribe()
    }

    fn restore(&mut self, snap: StoredSnapshot) {
        self.last_applied = snap.meta.last_log_id;
        self.membership = snap.meta.last_membership.clone();
        self.state = snap.state;
        self.publish();
    }

    fn publish(&self) {
        let incarnations = self
            .membership
            .nodes()
            .filter_map(|(id, node)| Some((*id, node.incarnation.clone()?)))
            .collect();
        self.published.send_replace(AppliedState {
            last_applied: self.last_applied,
            state: Arc::new(self.state.clone()),
            incarnations: Arc::new(incarnations),
        });
    }
}

/// Builds a snapshot from a copy of the state taken when openraft asked for the builder, and
/// persists it before handing it over.
pub struct SnapshotBuilder {
    db: Arc<Database>,
    snap: StoredSnapshot,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let last = self.snap.meta.last_log_id;
        self.snap.meta.snapshot_id = format!(
            "{}-{}",
            last.map_or(0, |l| l.leader_id.term),
            last.map_or(0, |l| l.index)
        );
        crash::at(Point::SnapshotBuilt);
        let snap = put_large_meta(&self.db, KEY_SNAPSHOT, self.snap.clone()).await?;
        crash::at(Point::SnapshotBuildWritten);
        Ok(snap.to_snapshot())
    }
}

impl StoredSnapshot {
    fn to_snapshot(&self) -> Snapshot<TypeConfig> {
        Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(self.state.clone()),
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(
        Option<LogId<MemberId>>,
        StoredMembership<MemberId, MemberNode>,
    )> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Applied>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            out.push(match entry.payload {
                EntryPayload::Blank => Applied::Done,
                EntryPayload::Normal(cmd) => self.state.apply(&cmd),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    Applied::Done
                }
            });
        }
        self.publish();
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            snap: StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: self.last_applied,
                    last_membership: self.membership.clone(),
                    snapshot_id: String::new(),
                },
                state: self.state.clone(),
            },
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<GroupState>> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<MemberId, MemberNode>,
        snapshot: Box<GroupState>,
    ) -> StorageResult<()> {
        let snap = StoredSnapshot {
            meta: meta.clone(),
            state: *snapshot,
        };
        crash::at(Point::SnapshotReceived);
        let snap = put_large_meta(&self.db, KEY_SNAPSHOT, snap).await?;
        crash::at(Point::SnapshotInstallWritten);
        tracing::info!(
            up_to = snap.meta.last_log_id.map_or(0, |l| l.index),
            servers = snap.state.servers.len(),
            "installed a snapshot from the leader"
        );
        self.restore(snap);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        Ok(get_meta::<StoredSnapshot>(&self.db, KEY_SNAPSHOT)?.map(|s| s.to_snapshot()))
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};
    use tempfile::TempDir;

    use super::*;

    /// A fresh store in its own directory, removed when the guard drops.
    struct InTempDir;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for InTempDir {
        async fn build(&self) -> StorageResult<(TempDir, LogStore, StateMachineStore)> {
            let dir = tempfile::tempdir().map_err(write_error)?;
            let (log, sm, _) = open(dir.path()).map_err(write_error)?;
            Ok((dir, log, sm))
        }
    }

    /// openraft's own storage suite: log append, truncate and purge, vote, committed id,
    /// membership, initial state, apply, and snapshot build and install.
    #[test]
    fn openraft_storage_suite() {
        Suite::test_all(InTempDir).expect("the store passes openraft's suite");
    }

    /// What the suite does not check: that the vote, the snapshot and the group id survive a
    /// restart, and that the state machine is rebuilt from the snapshot.
    #[tokio::test]
    async fn a_reopened_store_has_what_was_persisted() {
        use openraft::testing::{blank_ent, log_id, membership_ent};
        let dir = tempfile::tempdir().unwrap();
        let vote = Vote::new(3, 2);
        {
            let (mut log, mut sm, group) = open(dir.path()).unwrap();
            assert_eq!(group.load().unwrap(), None);
            group.save("g1").await.unwrap();
            log.save_vote(&vote).await.unwrap();
            sm.apply([
                membership_ent::<TypeConfig>(1, 1, 1, vec![[1, 2, 3].into()]),
                blank_ent::<TypeConfig>(1, 1, 2),
            ])
            .await
            .unwrap();
            sm.get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
        }
        let (mut log, mut sm, group) = open(dir.path()).unwrap();
        assert_eq!(group.load().unwrap().as_deref(), Some("g1"));
        assert_eq!(log.read_vote().await.unwrap(), Some(vote));
        let (applied, membership) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(1, 1, 2)));
        assert_eq!(membership.log_id(), &Some(log_id(1, 1, 1)));
        assert_eq!(sm.subscribe().borrow().last_applied, Some(log_id(1, 1, 2)));
    }
}
