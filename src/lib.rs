//! `libmysql_gcs.so`: the server plugin library (`isis2d` daemon plugin and the
//! `INFORMATION_SCHEMA.ISIS2IS` table). The plugin itself arrives with issue 3; until then this
//! crate only pins the workspace layout and links the shared protocol crate.
pub use proto;
