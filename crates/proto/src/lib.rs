//! The gcsd "plugin port" line protocol: commands the MariaDB plugin sends, replies and
//! serverlist blocks the daemon sends back, and bounded line framing.
//!
//! Pure data and parsing, no I/O and no unsafe, because the same code runs inside the
//! database server (plugin) and inside the daemon.

#![forbid(unsafe_code)]

#[cfg(feature = "serde")]
pub mod admin;
mod command;
mod framing;
mod reply;
mod serverlist;
mod vocabulary;

pub use command::{Command, ProtoError, Verb};
pub use framing::{LineBuffer, LineTooLong, MAX_LINE};
pub use reply::{Errno, Reply};
pub use serverlist::{BlockReader, ServerList, ServerRow};
pub use vocabulary::{ParseError, Role, ServerKey, Status, MAX_TOKEN};
