//! The plugin's logic, in safe Rust and testable without a server: the link that keeps a
//! server announced to its gcsd and caches the serverlist ([`link`]), and the rows of
//! `INFORMATION_SCHEMA.ISIS2IS` made from that cache ([`table`]). `libmysql_gcs.so` (the root
//! crate) wraps both in the server's plugin API.

#![forbid(unsafe_code)]

pub mod link;
pub mod sync;
pub mod table;
