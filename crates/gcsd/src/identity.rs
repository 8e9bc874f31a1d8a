//! Who this member is on the wire: its id and the group it belongs to, so that members of two
//! different groups never mix their logs. The group id is made when a group is created; a
//! joining member with an empty data dir takes the group id of the first member it talks to.
//!
//! And its incarnation: a data directory's random id (`raft::store`), carried in the hello and,
//! for members that joined with `--join`, in the group's membership. A member whose data_dir was
//! wiped has forgotten its votes and the entries it acknowledged; if it came back under its old
//! id it could vote twice in a term or help elect a leader that lacks a committed entry (Raft's
//! amnesia). Every member refuses such a peer, both ways, and tells it why: it then stops with
//! exit code 78 (`app::WipedMember`) and the remedy.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::raft::store::{AppliedState, GroupIdStore};
use crate::state::MemberId;
use crate::wire::{Handshake, Hello, MAGIC, WIRE_VERSION};

#[derive(Clone)]
pub struct Identity {
    pub me: MemberId,
    store: GroupIdStore,
    group: Arc<Mutex<Option<String>>>,
    /// Held while a group id is adopted from a peer, so two peers cannot both be adopted.
    adopting: Arc<tokio::sync::Mutex<()>>,
    /// This data directory's incarnation.
    pub incarnation: String,
    /// The applied membership's incarnations, to judge peers by.
    applied: watch::Receiver<AppliedState>,
    /// Set when a peer refused this member as a wiped member: why, with the remedy.
    wiped: Arc<watch::Sender<Option<String>>>,
}

impl Identity {
    pub async fn new(
        me: MemberId,
        store: GroupIdStore,
        applied: watch::Receiver<AppliedState>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            me,
            group: Arc::new(Mutex::new(store.load()?)),
            incarnation: store.incarnation().await?,
            store,
            adopting: Arc::default(),
            applied,
            wiped: Arc::new(watch::channel(None).0),
        })
    }

    /// Why `hello`'s sender is refused as a wiped member returning under its old id.
    pub fn wiped_peer(&self, hello: &Hello) -> Option<String> {
        let applied = self.applied.borrow();
        wiped_problem(
            hello.from,
            applied.incarnations.get(&hello.from).map(String::as_str),
            hello.incarnation.as_deref(),
        )
    }

    /// Resolves once a peer has refused this member as a wiped member: the reason.
    pub async fn refused_as_wiped(&self) -> String {
        let mut wiped = self.wiped.subscribe();
        // The sender lives as long as `self`: waiting cannot fail while we borrow it.
        let why = wiped
            .wait_for(Option::is_some)
            .await
            .map(|why| why.clone().unwrap_or_default())
            .unwrap_or_default();
        why
    }

    pub fn group(&self) -> Option<String> {
        self.group.lock().clone()
    }

    /// Names a new group; called once, when this member creates it.
    pub async fn create_group(&self) -> Result<String, openraft::StorageError<MemberId>> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let id = format!("{nanos:x}-{:x}-{}", std::process::id(), self.me);
        self.store.save(&id).await?;
        *self.group.lock() = Some(id.clone());
        Ok(id)
    }
}

/// Why member `id`, known to the group with incarnation `known`, may not take part with
/// `offered`: its data directory is not the one it joined with.
pub fn wiped_problem(id: MemberId, known: Option<&str>, offered: Option<&str>) -> Option<String> {
    let known = known?;
    (offered != Some(known)).then(|| {
        format!(
            "member {id} came back with another data directory (incarnation {}, the group knows \
             {known}): a member that lost its data must not rejoin under its old id, it forgot \
             its votes and the entries it acknowledged. Remove it (gcsctl remove-member {id} \
             --yes), then start it with a new node_id, an empty data_dir and --join",
            offered.unwrap_or("none")
        )
    })
}

/// Judges a peer's hello against this member's group (`None`: not in one yet). `Ok(Some(id))`
/// means: adopt the peer's group `id`.
fn judge(mine: Option<&str>, hello: &Hello) -> Result<Option<String>, String> {
    if hello.magic != MAGIC {
        return Err(format!("not a mysql-gcs member (magic {:?})", hello.magic));
    }
    if hello.version != WIRE_VERSION {
        return Err(format!(
            "wire version {} is not supported (this member speaks {WIRE_VERSION})",
            hello.version
        ));
    }
    match (mine, hello.group.as_deref()) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "member {} belongs to group {b} and this member to group {a}; a member started \
             without --join on an empty data_dir creates a group of its own: stop it; to \
             bring it into this group, start it with a new node_id, an empty data_dir and --join",
            hello.from
        )),
        (None, Some(b)) => Ok(Some(b.to_owned())),
        _ => Ok(None),
    }
}

impl Handshake for Identity {
    fn hello(&self) -> Hello {
        Hello {
            magic: MAGIC.to_owned(),
            version: WIRE_VERSION,
            from: self.me,
            group: self.group(),
            incarnation: Some(self.incarnation.clone()),
            wiped: None,
        }
    }

    /// Accepts a peer's hello, or says why not. A member without a group adopts the peer's.
    async fn accept(&self, hello: &Hello) -> Result<(), String> {
        if let Some(why) = &hello.wiped {
            self.wiped.send_replace(Some(why.clone()));
            return Err(why.clone());
        }
        if let Some(why) = self.wiped_peer(hello) {
            return Err(why);
        }
        let Some(adopt) = judge(self.group().as_deref(), hello)? else {
            return Ok(());
        };
        let _adopting = self.adopting.lock().await;
        // Another peer's group may have been adopted while this one waited.
        if judge(self.group().as_deref(), hello)?.is_none() {
            return Ok(());
        }
        self.store.save(&adopt).await.map_err(|e| e.to_string())?;
        tracing::info!(group = adopt, via = hello.from, "joined group");
        *self.group.lock() = Some(adopt);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(magic: &str, version: u32, group: Option<&str>) -> Hello {
        Hello {
            magic: magic.into(),
            version,
            from: 2,
            group: group.map(str::to_owned),
            incarnation: None,
            wiped: None,
        }
    }

    #[test]
    fn a_member_is_known_by_its_incarnation() {
        for (known, offered, refused) in [
            (None, None, false),
            (None, Some("a"), false),
            (Some("a"), Some("a"), false),
            (Some("a"), Some("b"), true),
            (Some("a"), None, true),
        ] {
            let got = wiped_problem(3, known, offered);
            assert_eq!(got.is_some(), refused, "{known:?} {offered:?}: {got:?}");
        }
        let text = wiped_problem(3, Some("a"), Some("b")).unwrap();
        assert!(text.contains("gcsctl remove-member 3 --yes"), "{text}");
        assert!(text.contains("new node_id"), "{text}");
    }

    /// Given this member's group and a peer's hello, the verdict.
    #[test]
    fn scenarios() {
        type Scenario = (
            &'static str,
            Option<&'static str>,
            Hello,
            Result<Option<&'static str>, &'static str>,
        );
        let table: [Scenario; 6] = [
            (
                "same group",
                Some("g1"),
                hello(MAGIC, WIRE_VERSION, Some("g1")),
                Ok(None),
            ),
            (
                "a peer not yet in a group",
                Some("g1"),
                hello(MAGIC, WIRE_VERSION, None),
                Ok(None),
            ),
            (
                "no group yet: adopt the peer's",
                None,
                hello(MAGIC, WIRE_VERSION, Some("g1")),
                Ok(Some("g1")),
            ),
            (
                "another group",
                Some("g1"),
                hello(MAGIC, WIRE_VERSION, Some("g2")),
                Err("member 2 belongs to group g2 and this member to group g1; a member started without --join on an empty data_dir creates a group of its own: stop it; to bring it into this group, start it with a new node_id, an empty data_dir and --join"),
            ),
            (
                "another wire version",
                Some("g1"),
                hello(MAGIC, WIRE_VERSION + 1, Some("g1")),
                Err("wire version 2 is not supported (this member speaks 1)"),
            ),
            (
                "not a member at all",
                None,
                hello("HTTP/1.1", WIRE_VERSION, None),
                Err("not a mysql-gcs member (magic \"HTTP/1.1\")"),
            ),
        ];
        for (name, mine, hello, want) in table {
            let got = judge(mine, &hello);
            let want = want.map(|a| a.map(str::to_owned)).map_err(str::to_owned);
            assert_eq!(got, want, "{name}");
        }
    }
}
