//! `libmysql_gcs.so`: the server plugin library.
//!
//! - `isis2d`, a daemon plugin: a background thread announces this server to the local gcsd
//!   (join, heartbeats, leave) and keeps the cluster's serverlist as a snapshot
//!   (`isis2d::link`);
//! - `isis2is`, an INFORMATION_SCHEMA plugin: `INFORMATION_SCHEMA.ISIS2IS`, filled from that
//!   snapshot without network I/O (`isis2d::table`).
//!
//! This crate is only the boundary: `ffi` holds every `extern "C"`, and the C++ shim in
//! `include/` is the only code that touches the server's internals.

#![deny(unsafe_code)]

// Every unsafe of the library, each documented (the crate's lints deny undocumented ones).
#[allow(unsafe_code)]
mod ffi;
