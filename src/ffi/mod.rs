//! Every `extern "C"` of the library: the plugin declarations the server reads, the system and
//! status variables, the entry points, and the calls into the C++ shim.
//!
//! Each entry point runs inside `guarded`, which turns a panic into an error return (a panic
//! escaping into mariadbd would abort it), and is one call into safe Rust.

mod declarations;
mod thread;
mod types;

use std::ffi::{c_char, c_int, c_ulong, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null;
use std::sync::Arc;
use std::time::Instant;

use proto::Role;

use isis2d::link::Snapshot;
use isis2d::link::{LogLevel, Server};
use isis2d::sync::Mutex;
use isis2d::table::{self, Row};

/// Runs an entry point's body; a panic becomes `on_panic` (and a line in the error log).
fn guarded<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        log(
            LogLevel::Error,
            "internal error (panic) caught at the plugin boundary",
        );
        on_panic
    })
}

// ---- the C++ shim ----

/// `gcs_text`: a NULL `ptr` is SQL NULL.
#[repr(C)]
pub struct GcsText {
    ptr: *const c_char,
    len: c_ulong,
}

#[repr(C)]
pub struct GcsRow {
    error: GcsText,
    errnum: u32,
    ascii: c_int,
    member: GcsText,
    host: GcsText,
    port: GcsText,
    status: GcsText,
    role: GcsText,
    ttl: i64,
    last_update: GcsText,
}

const _: () = {
    assert!(std::mem::size_of::<GcsText>() == types::SIZEOF_GCS_TEXT);
    assert!(std::mem::size_of::<GcsRow>() == types::SIZEOF_GCS_ROW);
};

type EmitFn = unsafe extern "C" fn(*mut c_void, *const GcsRow) -> c_int;

extern "C" {
    fn gcs_shim_isis2is_init(schema_table: *mut c_void) -> c_int;
    fn gcs_shim_server_port() -> u32;
    fn gcs_shim_server_host() -> *const c_char;
    fn gcs_shim_server_started() -> c_int;
    fn gcs_shim_log(level: c_int, message: *const c_char);
}

/// One line in the server's error log, through its error-log service.
pub fn log(level: LogLevel, message: &str) {
    let level = match level {
        LogLevel::Note => 0,
        LogLevel::Warning => 1,
        LogLevel::Error => 2,
    };
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // SAFETY: the shim formats the NUL-terminated text with "%s" and does not keep it.
    unsafe { gcs_shim_log(level, text.as_ptr()) }
}

/// The running server, as the link sees it.
struct MariaDb;

impl Server for MariaDb {
    fn started(&self) -> bool {
        // SAFETY: reads an int the server sets once it accepts connections.
        unsafe { gcs_shim_server_started() != 0 }
    }

    fn role(&self) -> Role {
        declarations::announced_role()
    }

    fn log(&self, level: LogLevel, message: &str) {
        log(level, message);
    }
}

/// This server as it describes itself: host name and TCP port.
fn server_identity() -> (String, u32) {
    // SAFETY: glob_hostname is a NUL-terminated array the server fills at startup and never
    // frees; the port is a plain uint.
    unsafe {
        let host = gcs_shim_server_host();
        let host = if host.is_null() {
            String::new()
        } else {
            CStr::from_ptr(host).to_string_lossy().into_owned()
        };
        (host, gcs_shim_server_port())
    }
}

// ---- isis2d: the link thread's lifetime ----

struct Running {
    link: Arc<isis2d::link::Link>,
    thread: thread::Thread,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// The link, for the table and status variables; none while isis2d is not installed.
fn current_link() -> Option<Arc<isis2d::link::Link>> {
    RUNNING.lock().as_ref().map(|r| r.link.clone())
}

fn isis2d_init() -> c_int {
    let settings = match declarations::settings(server_identity()) {
        Ok(s) => s,
        Err(why) => {
            log(LogLevel::Error, &why);
            return 1;
        }
    };
    let link = isis2d::link::Link::new(settings, &declarations::STATS);
    let body = link.clone();
    let thread = match thread::spawn(Box::new(move || body.run(&MariaDb))) {
        Ok(t) => t,
        Err(e) => {
            log(
                LogLevel::Error,
                &format!("cannot start the heartbeat thread: {e}"),
            );
            return 1;
        }
    };
    log(
        LogLevel::Note,
        &format!(
            "announcing {} to gcsd at {} every {} ms",
            link.settings.server,
            link.settings.daemon,
            link.settings.heartbeat.as_millis()
        ),
    );
    *RUNNING.lock() = Some(Running { link, thread });
    0
}

fn isis2d_deinit() -> c_int {
    let Some(Running { link, thread }) = RUNNING.lock().take() else {
        return 0;
    };
    link.stop();
    let stopped = stop_thread(&link, thread);
    // The library may be unloaded next, and statics are never dropped: free what they hold
    // (the stats only once the thread that writes them is gone).
    release_prepared_rows();
    if !stopped {
        return 1;
    }
    link.stats.reset();
    0
}

/// Waits for the link thread after `link.stop()`; false if it had to be left running.
fn stop_thread(link: &isis2d::link::Link, thread: thread::Thread) -> bool {
    // Time for the goodbye (heartbeat stopping, leave); then cut any blocked socket short.
    let mut thread = match thread.join_within(std::time::Duration::from_millis(600)) {
        Ok(()) => return true,
        Err(t) => t,
    };
    link.cut();
    for _ in 0..50 {
        thread = match thread.join_within(std::time::Duration::from_millis(100)) {
            Ok(()) => return true,
            Err(t) => t,
        };
    }
    log(
        LogLevel::Error,
        "the heartbeat thread did not stop within 5.6 s; leaving it running",
    );
    thread.detach();
    false
}

// ---- isis2is ----

fn isis2is_init(schema_table: *mut c_void) -> c_int {
    // SAFETY: the server passes its ST_SCHEMA_TABLE, which the shim fills in.
    unsafe { gcs_shim_isis2is_init(schema_table) }
}

/// Either plugin may be the last one uninstalled, before the library is unloaded.
fn isis2is_deinit() -> c_int {
    release_prepared_rows();
    0
}

/// Rows ready for the shim: texts made once per snapshot, not once per SELECT.
struct Prepared {
    /// What they were made from; a new snapshot (or a change of problem) makes new rows.
    snapshot: Option<Arc<Snapshot>>,
    problem: Option<(u32, String)>,
    rows: Vec<PreparedRow>,
}

struct PreparedRow {
    /// error, member, host, port, status, role, last update; `None` is SQL NULL.
    texts: [Option<Box<str>>; 7],
    /// Every text is 7-bit ASCII (the shim can copy it without a character-set check).
    ascii: bool,
    errno: u32,
    ttl: i64,
}

impl PreparedRow {
    fn new(row: Row) -> Self {
        let texts = [
            row.error,
            row.member,
            row.host,
            row.port,
            row.status,
            row.role,
            row.last_update,
        ]
        .map(|text| text.map(String::into_boxed_str));
        PreparedRow {
            ascii: texts.iter().flatten().all(|t| t.is_ascii()),
            texts,
            errno: row.errno,
            ttl: row.ttl.map_or(-1, i64::from),
        }
    }

    /// The row as the shim takes it; borrows `self`'s strings.
    fn as_gcs_row(&self) -> GcsRow {
        let text = |i: usize| match &self.texts[i] {
            Some(t) => GcsText {
                ptr: t.as_ptr().cast(),
                len: t.len() as c_ulong,
            },
            None => GcsText {
                ptr: null(),
                len: 0,
            },
        };
        GcsRow {
            error: text(0),
            errnum: self.errno,
            ascii: c_int::from(self.ascii),
            member: text(1),
            host: text(2),
            port: text(3),
            status: text(4),
            role: text(5),
            ttl: self.ttl,
            last_update: text(6),
        }
    }
}

/// The newest prepared rows. The lock is held only to clone or replace the `Arc`.
static PREPARED: Mutex<Option<Arc<Prepared>>> = Mutex::new(None);

fn release_prepared_rows() {
    *PREPARED.lock() = None;
}

fn prepared_rows() -> Arc<Prepared> {
    let Some(link) = current_link() else {
        return Arc::new(Prepared {
            snapshot: None,
            problem: None,
            rows: table::no_daemon()
                .into_iter()
                .map(PreparedRow::new)
                .collect(),
        });
    };
    let snapshot = link.snapshot();
    let problem = table::problem(&link, &snapshot, Instant::now());
    if let Some(p) = PREPARED.lock().clone() {
        if p.snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &snapshot))
            && p.problem == problem
        {
            return p;
        }
    }
    let rows = table::rows_with(&snapshot, problem.clone());
    let prepared = Arc::new(Prepared {
        snapshot: Some(snapshot),
        problem,
        rows: rows.into_iter().map(PreparedRow::new).collect(),
    });
    *PREPARED.lock() = Some(prepared.clone());
    prepared
}

/// Called by the shim's fill function, on the client's thread: hands it the prepared rows.
///
/// # Safety
/// `emit` must be a function that takes `ctx` and a row valid only during the call (the shim's
/// `emit_row`), and `ctx` what it expects.
#[no_mangle]
pub unsafe extern "C" fn gcs_isis2is_rows(ctx: *mut c_void, emit: Option<EmitFn>) -> c_int {
    guarded(1, || {
        let Some(emit) = emit else { return 1 };
        for row in &prepared_rows().rows {
            let gcs_row = row.as_gcs_row();
            // SAFETY: `gcs_row` and the strings it points to live until emit returns; the
            // shim copies them into the table.
            let result = unsafe { emit(ctx, &gcs_row) };
            if result != 0 {
                return result;
            }
        }
        0
    })
}
