//! The embedded openraft instance: its type configuration, durable storage and network.

pub mod network;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::state::{Applied, Command, GroupState, MemberId};

/// What the group knows about a member's addresses, carried in Raft's membership config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberNode {
    /// The member's name, shown as `<member>` in the serverlist.
    pub name: String,
    /// Where other members reach its group listener.
    pub group_addr: String,
    /// Its admin HTTP address (for operators and `gcsctl`).
    pub admin_addr: String,
    /// Its data directory's incarnation, when it joined with `--join` (see the `identity`
    /// module); none for members added by an operator or before incarnations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = MemberId,
        Node = MemberNode,
        SnapshotData = GroupState,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
