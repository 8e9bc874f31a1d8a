//! Who this member is on the wire: its id and the group it belongs to, so that members of two
//! different groups never mix their logs. The group id is made when a group is created; a
//! joining member with an empty data dir takes the group id of the first member it talks to.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::raft::store::GroupIdStore;
use crate::state::MemberId;
use crate::wire::{Handshake, Hello, MAGIC, WIRE_VERSION};

#[derive(Clone)]
pub struct Identity {
    pub me: MemberId,
    store: GroupIdStore,
    group: Arc<Mutex<Option<String>>>,
    /// Held while a group id is adopted from a peer, so two peers cannot both be adopted.
    adopting: Arc<tokio::sync::Mutex<()>>,
}

impl Identity {
    pub fn new(me: MemberId, store: GroupIdStore) -> anyhow::Result<Self> {
        Ok(Self {
            me,
            group: Arc::new(Mutex::new(store.load()?)),
            store,
            adopting: Arc::default(),
        })
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
             without --join on an empty data_dir creates a group of its own: stop it, empty \
             its data_dir and start it again with --join",
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
        }
    }

    /// Accepts a peer's hello, or says why not. A member without a group adopts the peer's.
    async fn accept(&self, hello: &Hello) -> Result<(), String> {
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
        }
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
                Err("member 2 belongs to group g2 and this member to group g1; a member started without --join on an empty data_dir creates a group of its own: stop it, empty its data_dir and start it again with --join"),
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
