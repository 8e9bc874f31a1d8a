//! Every `extern "C"` of the library: the plugin declarations the server reads, the system and
//! status variables, the entry points, and the calls into the C++ shim.
//!
//! Each entry point runs inside `guarded`, which turns a panic into an error return (a panic
//! escaping into mariadbd would abort it), and is one call into safe Rust.

mod declarations;
mod thread;
mod types;

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null;
use std::sync::Arc;
use std::time::Instant;

use proto::Role;

use isis2d::link::{LogLevel, Server};
use isis2d::row_cache::{Prepared, PreparedRow, RowCache};
use isis2d::sync::Mutex;
use isis2d::table::{self, Value, COLUMNS};

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

/// `gcs_value`: SQL NULL if `is_null`; else `n` bytes at `ptr`, or the number `n`.
#[repr(C)]
pub struct GcsValue {
    ptr: *const c_char,
    n: u64,
    is_null: c_int,
}

/// `gcs_row`: a value per column, in the order of `isis2d::table::Column`.
#[repr(C)]
pub struct GcsRow {
    cols: [GcsValue; COLUMNS],
    ascii: c_int,
}

const _: () = {
    assert!(std::mem::size_of::<GcsValue>() == types::SIZEOF_GCS_VALUE);
    assert!(std::mem::offset_of!(GcsRow, ascii) == types::SIZEOF_GCS_VALUE * COLUMNS);
};

type EmitFn = unsafe extern "C" fn(*mut c_void, *const GcsRow) -> c_int;
/// `gcs_emit_values_fn`: one ISIS2IS_HISTORY row, a value per `HistoryColumn`.
type EmitValuesFn = unsafe extern "C" fn(*mut c_void, *const GcsValue) -> c_int;

extern "C" {
    fn gcs_shim_isis2is_init(schema_table: *mut c_void) -> c_int;
    fn gcs_shim_isis2is_history_init(schema_table: *mut c_void) -> c_int;
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
    ROWS.release();
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
    ROWS.release();
    0
}

/// The rows ISIS2IS shows now: the cached ones while isis2d runs.
fn prepared_rows() -> Arc<Prepared<ShimRows>> {
    let Some(link) = current_link() else {
        return Arc::new(Prepared::no_daemon(ShimRows::new));
    };
    let snapshot = link.snapshot();
    let problem = table::problem(&link, &snapshot, Instant::now());
    ROWS.rows(snapshot, problem, ShimRows::new)
}

/// The newest prepared rows.
static ROWS: RowCache<ShimRows> = RowCache::new();

/// The prepared rows as the shim takes them, made once per `Prepared`, whose rows they point
/// into: they are valid as long as the `Prepared` that holds them.
struct ShimRows(Vec<GcsRow>);

// SAFETY: the pointers in a ShimRows point into the texts of the rows of the `Prepared` that
// holds it, which are never changed once made: sharing them between threads is sharing `&str`.
unsafe impl Send for ShimRows {}
// SAFETY: as for Send.
unsafe impl Sync for ShimRows {}

impl ShimRows {
    fn new(rows: &[PreparedRow]) -> Self {
        ShimRows(rows.iter().map(as_gcs_row).collect())
    }
}

/// `v` as the shim takes it; points into `v`'s text.
fn as_gcs_value(v: &Value) -> GcsValue {
    match v {
        Value::Null => GcsValue {
            ptr: null(),
            n: 0,
            is_null: 1,
        },
        Value::Text(t) => GcsValue {
            ptr: t.as_ptr().cast(),
            n: t.len() as u64,
            is_null: 0,
        },
        Value::Unsigned(n) => GcsValue {
            ptr: null(),
            n: *n,
            is_null: 0,
        },
    }
}

/// `row` as the shim takes it; points into `row`'s texts.
fn as_gcs_row(row: &PreparedRow) -> GcsRow {
    GcsRow {
        cols: row.row.values().each_ref().map(as_gcs_value),
        ascii: c_int::from(row.ascii),
    }
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
        let prepared = prepared_rows();
        for gcs_row in &prepared.shim.0 {
            // SAFETY: `gcs_row` and the texts it points to live in `prepared` until emit
            // returns; the shim copies them into the table.
            let result = unsafe { emit(ctx, gcs_row) };
            if result != 0 {
                return result;
            }
        }
        0
    })
}

// ---- isis2is_history ----

fn isis2is_history_init(schema_table: *mut c_void) -> c_int {
    // SAFETY: the server passes its ST_SCHEMA_TABLE, which the shim fills in.
    unsafe { gcs_shim_isis2is_history_init(schema_table) }
}

/// The rows ISIS2IS_HISTORY shows now, from the link's copy of the history.
fn history_rows() -> Vec<Vec<Value>> {
    let Some(link) = current_link() else {
        let no_daemon = (table::errno::NO_DAEMON, table::NO_DAEMON_TEXT.to_owned());
        return isis2d::history::rows(&Default::default(), Some(no_daemon));
    };
    let problem = table::problem(&link, &link.snapshot(), Instant::now());
    isis2d::history::rows(&link.history(), problem)
}

/// Called by the shim's fill function for ISIS2IS_HISTORY, on the client's thread.
///
/// # Safety
/// `emit` must take `ctx` and an array of one value per `HistoryColumn`, valid only during the
/// call (the shim's `emit_history_row`), and `ctx` what it expects.
#[no_mangle]
pub unsafe extern "C" fn gcs_isis2is_history_rows(
    ctx: *mut c_void,
    emit: Option<EmitValuesFn>,
) -> c_int {
    guarded(1, || {
        let Some(emit) = emit else { return 1 };
        for row in history_rows() {
            let values: Vec<GcsValue> = row.iter().map(as_gcs_value).collect();
            // SAFETY: `values` and the texts they point into (`row`) live until emit returns;
            // the shim copies them into the table.
            let result = unsafe { emit(ctx, values.as_ptr()) };
            if result != 0 {
                return result;
            }
        }
        0
    })
}
