//! The gcsd "plugin port" line protocol: commands the MariaDB plugin sends, replies and
//! serverlist blocks the daemon sends back, and bounded line framing.
//!
//! Pure data and parsing, no I/O and no unsafe, because the same code runs inside the
//! database server (plugin) and inside the daemon.

#![forbid(unsafe_code)]

#[cfg(feature = "serde")]
pub mod admin;
pub mod checks;
mod command;
mod errno;
mod framing;
mod history;
mod reply;
mod serverlist;
#[macro_use]
mod vocabulary;
mod mpp;

pub use command::{Command, ProtoError, Verb};
pub use errno::Errno;
pub use framing::{LineBuffer, LineTooLong, MAX_LINE};
pub use history::{history_header, parse_history_header, HistoryRow, MAX_HISTORY_ROWS};
pub use mpp::{Health, PoolState, PoolType, MAX_MESSAGE, MAX_POOL_NAME};
pub use reply::{no_quorum_text, Reply};
pub use serverlist::{
    block_of, listed_time, served_version, version_reply_text, BlockReader, MppFields, ServerList,
    ServerRow, MAX_BLOCK_BYTES, MAX_BLOCK_ROWS, SERVERLIST_VERSION, TOO_LARGE,
};
pub use vocabulary::{
    default_member_name, is_token, member_name_problem, ParseError, Role, ServerKey, Status,
    MAX_MEMBER_NAME, MAX_TOKEN,
};
