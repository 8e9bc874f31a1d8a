//! The plugin's logic, in safe Rust and testable without a server: the link that keeps a
//! server announced to its gcsd and caches the serverlist ([`link`]), the columns and rows of
//! `INFORMATION_SCHEMA.ISIS2IS` made from that cache ([`table`]), and the rows kept ready for
//! the shim ([`row_cache`]). `libmysql_gcs.so` (the root crate) wraps them in the server's
//! plugin API.

#![forbid(unsafe_code)]

#[macro_use]
mod columns;
pub mod history;
pub mod link;
pub mod row_cache;
pub mod sync;
pub mod table;
