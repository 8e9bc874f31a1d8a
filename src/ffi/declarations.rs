//! What the server reads when it loads the library: the plugin declarations (MariaDB's and
//! MySQL's twins, made by one macro from one list), the system and status variables, and the
//! service pointers it patches.

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};
use std::mem::size_of;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proto::{Role, ServerKey};

use super::types::*;
use super::{
    guarded, isis2d_deinit, isis2d_init, isis2is_deinit, isis2is_history_init, isis2is_init,
};
use isis2d::link::{Daemon, Settings, Stats};

// ---- services ----

/// The server's error-log service. The server finds this symbol with dlsym, checks the version
/// it holds (`VERSION_my_print_error`) and replaces it with its service table. It must be in the
/// library's dynamic symbol table, so it is defined here rather than taken from
/// libmysqlservices.a (whose symbols the cdylib would hide).
#[no_mangle]
pub static mut my_print_error_service: *mut c_void = std::ptr::without_provenance_mut(0x0100);

// ---- system variables ----
// The server writes each variable's value through `value` (and may touch the structs), so all
// of them live in writable statics.

static mut DAEMON_HOST: *mut c_char = null_mut();
static mut DAEMON_PORT: c_uint = 2200;
static mut DAEMON_SOCKET: *mut c_char = null_mut();
/// `isis2d_daemon_uid`; this value (-1 as a uid_t, which no user has) means "root or the user
/// this server runs as".
const ANY_TRUSTED_UID: c_uint = c_uint::MAX;
static mut DAEMON_UID: c_uint = ANY_TRUSTED_UID;
static mut MYSQL_HOST: *mut c_char = null_mut();
static mut MYSQL_PORT: c_uint = 0;
/// `isis2d_mysql_role`, the one dynamic variable. The server writes the startup value into it
/// before init; after that every change goes through `store_role` (an atomic store), and the
/// link thread reads it with an atomic load.
static ROLE: AtomicU64 = AtomicU64::new(2);
const _: () = assert!(size_of::<c_ulong>() == size_of::<AtomicU64>());
static mut HEARTBEAT_MS: c_uint = 1000;

const fn header(flags: c_int, name: &'static CStr, comment: &'static CStr) -> SysVarHeader {
    SysVarHeader {
        flags,
        name: name.as_ptr(),
        comment: comment.as_ptr(),
        check: None,
        update: None,
    }
}

static mut SYSVAR_DAEMON_HOST: StrSysVar = StrSysVar {
    header: header(
        PLUGIN_VAR_STR | PLUGIN_VAR_READONLY,
        c"daemon_host",
        c"Address of the local gcsd plugin port",
    ),
    value: &raw mut DAEMON_HOST,
    def_val: c"127.0.0.1".as_ptr(),
};
static mut SYSVAR_DAEMON_PORT: UintSysVar = UintSysVar {
    header: header(
        PLUGIN_VAR_INT | PLUGIN_VAR_UNSIGNED | PLUGIN_VAR_READONLY,
        c"daemon_port",
        c"TCP port of the local gcsd plugin port",
    ),
    value: &raw mut DAEMON_PORT,
    def_val: 2200,
    min_val: 1,
    max_val: 65535,
    blk_sz: 0,
};
static mut SYSVAR_DAEMON_SOCKET: StrSysVar = StrSysVar {
    header: header(
        PLUGIN_VAR_STR | PLUGIN_VAR_READONLY,
        c"daemon_socket",
        c"Unix socket of the local gcsd (used instead of daemon_host and daemon_port when set)",
    ),
    value: &raw mut DAEMON_SOCKET,
    def_val: null(),
};
static mut SYSVAR_DAEMON_UID: UintSysVar = UintSysVar {
    header: header(
        PLUGIN_VAR_INT | PLUGIN_VAR_UNSIGNED | PLUGIN_VAR_READONLY,
        c"daemon_uid",
        c"The uid gcsd runs as: a daemon_socket served by any other user is refused (default 4294967295: root or the user this server runs as)",
    ),
    value: &raw mut DAEMON_UID,
    def_val: ANY_TRUSTED_UID,
    min_val: 0,
    max_val: ANY_TRUSTED_UID as _,
    blk_sz: 0,
};
static mut SYSVAR_MYSQL_HOST: StrSysVar = StrSysVar {
    header: header(
        PLUGIN_VAR_STR | PLUGIN_VAR_READONLY,
        c"mysql_host",
        c"Host name this server is announced as (default: the server's host name)",
    ),
    value: &raw mut MYSQL_HOST,
    def_val: null(),
};
static mut SYSVAR_MYSQL_PORT: UintSysVar = UintSysVar {
    header: header(
        PLUGIN_VAR_INT | PLUGIN_VAR_UNSIGNED | PLUGIN_VAR_READONLY,
        c"mysql_port",
        c"Port this server is announced with (default 0: the server's own port)",
    ),
    value: &raw mut MYSQL_PORT,
    def_val: 0,
    min_val: 0,
    max_val: 65535,
    blk_sz: 0,
};
static mut ROLE_NAMES: [*const c_char; 4] = [
    c"master".as_ptr(),
    c"slave".as_ptr(),
    c"standalone".as_ptr(),
    null(),
];

static mut ROLE_TYPELIB: TypeLib = TypeLib {
    count: 3,
    name: c"isis2d_mysql_role".as_ptr(),
    type_names: &raw const ROLE_NAMES as *const *const c_char,
    type_lengths: null(),
};
static mut SYSVAR_ROLE: EnumSysVar = EnumSysVar {
    header: SysVarHeader {
        update: Some(store_role),
        ..header(
            PLUGIN_VAR_ENUM,
            c"mysql_role",
            c"Replication role announced: master, slave or standalone (SET GLOBAL re-announces it)",
        )
    },
    value: ROLE.as_ptr() as *mut c_ulong,
    def_val: 2,
    typelib: &raw const ROLE_TYPELIB,
};
static mut SYSVAR_HEARTBEAT_MS: UintSysVar = UintSysVar {
    header: header(
        PLUGIN_VAR_INT | PLUGIN_VAR_UNSIGNED | PLUGIN_VAR_READONLY,
        c"heartbeat_interval_ms",
        c"Milliseconds between heartbeats to gcsd",
    ),
    value: &raw mut HEARTBEAT_MS,
    def_val: 1000,
    min_val: 100,
    max_val: 60000,
    blk_sz: 0,
};

static mut ISIS2D_SYSVARS: [*mut c_void; 9] = [
    &raw mut SYSVAR_DAEMON_HOST as *mut c_void,
    &raw mut SYSVAR_DAEMON_PORT as *mut c_void,
    &raw mut SYSVAR_DAEMON_SOCKET as *mut c_void,
    &raw mut SYSVAR_DAEMON_UID as *mut c_void,
    &raw mut SYSVAR_MYSQL_HOST as *mut c_void,
    &raw mut SYSVAR_MYSQL_PORT as *mut c_void,
    &raw mut SYSVAR_ROLE as *mut c_void,
    &raw mut SYSVAR_HEARTBEAT_MS as *mut c_void,
    null_mut(),
];

/// The link's settings from the variables; `server` is this server's (host, port).
pub(super) fn settings((host, port): (String, u32)) -> Result<Settings, String> {
    // SAFETY: these variables are read-only: the server set them before calling init and
    // does not change them while the plugin is installed. String values are NUL-terminated.
    let (daemon_host, daemon_port, daemon_socket, daemon_uid, mysql_host, mysql_port) = unsafe {
        let text = |p: *mut c_char| {
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        (
            text(DAEMON_HOST),
            DAEMON_PORT,
            text(DAEMON_SOCKET).filter(|s| !s.is_empty()),
            DAEMON_UID,
            text(MYSQL_HOST),
            MYSQL_PORT,
        )
    };
    // SAFETY: as above.
    let heartbeat_ms = unsafe { HEARTBEAT_MS };
    let daemon_host = daemon_host.unwrap_or_else(|| "127.0.0.1".into());
    let mysql_host = mysql_host.filter(|h| !h.is_empty()).unwrap_or(host);
    let mysql_port = if mysql_port == 0 { port } else { mysql_port };
    if !proto::is_token(&mysql_host) {
        return Err(format!(
            "isis2d_mysql_host {mysql_host:?} must be 1 to {} printable characters without spaces",
            proto::MAX_TOKEN
        ));
    }
    if mysql_port == 0 {
        return Err("this server has no TCP port; set isis2d_mysql_port".into());
    }
    let daemon = match daemon_socket {
        Some(path) => unix_daemon(path, daemon_uid)?,
        // The link never resolves a name: a DNS lookup could block the plugin's thread (and
        // an INSTALL or a shutdown waiting for it) for as long as the resolver likes.
        None => match daemon_host.parse::<std::net::IpAddr>() {
            Ok(ip) => Daemon::Tcp(std::net::SocketAddr::new(ip, daemon_port as u16)),
            Err(_) => {
                return Err(format!(
                    "isis2d_daemon_host {daemon_host:?} must be an IP address such as 127.0.0.1 (the plugin does not resolve host names)"
                ))
            }
        },
    };
    Ok(Settings {
        daemon,
        server: ServerKey::new(mysql_host, mysql_port.to_string()),
        heartbeat: Duration::from_millis(u64::from(heartbeat_ms)),
    })
}

/// gcsd on the Unix socket `path`, served by `uid` (or, by default, by root or this server's
/// own user).
fn unix_daemon(path: String, uid: c_uint) -> Result<Daemon, String> {
    let path = std::path::PathBuf::from(path);
    if !path.is_absolute() {
        return Err(format!(
            "isis2d_daemon_socket {:?} must be an absolute path",
            path.display()
        ));
    }
    let uids = if uid == ANY_TRUSTED_UID {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let own = unsafe { libc::geteuid() };
        let mut uids = vec![0, own];
        uids.dedup();
        uids
    } else {
        vec![uid]
    };
    Ok(Daemon::Unix { path, uids })
}

/// `SET GLOBAL isis2d_mysql_role`: the server has checked the new value (an index into
/// ROLE_NAMES) and hands it over in `save`.
///
/// # Safety
/// `save` points at a `c_ulong`, as the server passes it to an ENUM variable's update.
unsafe extern "C" fn store_role(
    _thd: *mut c_void,
    _var: *mut c_void,
    _var_ptr: *mut c_void,
    save: *const c_void,
) {
    // SAFETY: per the function's contract.
    let role = unsafe { *save.cast::<c_ulong>() };
    ROLE.store(role, Ordering::Relaxed);
}

/// The role to announce, as `SET GLOBAL isis2d_mysql_role` left it.
pub(super) fn announced_role() -> Role {
    match ROLE.load(Ordering::Relaxed) {
        0 => Role::Master,
        1 => Role::Slave,
        _ => Role::Standalone,
    }
}

// ---- status variables ----

pub(super) static STATS: Stats = Stats::new();

/// Writes a status value into the server's buffer and points `var` at it.
enum Shown {
    Bool(bool),
    Number(u64),
    Text(String),
}

/// # Safety
/// `var` and `buff` are what the server passes to a SHOW_SIMPLE_FUNC: a valid `ShowVar` and a
/// buffer of SHOW_VAR_FUNC_BUFF_SIZE bytes, aligned for a u64.
unsafe fn show(var: *mut ShowVar, buff: *mut c_void, value: Shown) -> c_int {
    // SAFETY: per the function's contract; every write stays within the buffer.
    unsafe {
        match value {
            Shown::Bool(b) => {
                *(buff as *mut c_char) = c_char::from(b);
                (*var).type_ = SHOW_BOOL;
            }
            Shown::Number(n) => {
                *(buff as *mut u64) = n;
                (*var).type_ = SHOW_ULONGLONG;
            }
            Shown::Text(t) => {
                let bytes = t.as_bytes();
                let n = bytes.len().min(SHOW_FUNC_BUFFER - 1);
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), buff as *mut u8, n);
                *(buff as *mut u8).add(n) = 0;
                (*var).type_ = SHOW_CHAR;
            }
        }
        (*var).value = buff;
    }
    0
}

macro_rules! status_vars {
    ($($name:literal => $fn_name:ident = $value:expr;)*) => {
        $(
            /// # Safety
            /// Called by the server as a SHOW_SIMPLE_FUNC, with a valid `var` and a buffer of
            /// SHOW_VAR_FUNC_BUFF_SIZE bytes.
            unsafe extern "C" fn $fn_name(
                _thd: *mut c_void,
                var: *mut ShowVar,
                buff: *mut c_void,
                _status: *mut c_void,
                _scope: c_int,
            ) -> c_int {
                // SAFETY: per the function's contract, which is `show`'s.
                guarded(1, || unsafe { show(var, buff, $value) })
            }
        )*
        static ISIS2D_STATUS: [ShowVar; [$($name),*].len() + 1] = [
            $(ShowVar { name: $name.as_ptr(), value: $fn_name as ShowFn as *mut c_void, type_: SHOW_SIMPLE_FUNC },)*
            ShowVar { name: null(), value: null_mut(), type_: 0 },
        ];
    };
}

status_vars! {
    c"Isis2d_connected" => show_connected = Shown::Bool(STATS.connected.load(Ordering::Relaxed));
    c"Isis2d_heartbeats_sent" => show_sent = Shown::Number(STATS.heartbeats_sent.load(Ordering::Relaxed));
    c"Isis2d_heartbeats_failed" => show_failed = Shown::Number(STATS.heartbeats_failed.load(Ordering::Relaxed));
    c"Isis2d_reconnects" => show_reconnects = Shown::Number(STATS.reconnects.load(Ordering::Relaxed));
    c"Isis2d_serverlist_age_ms" => show_age = Shown::Number(serverlist_age_ms());
    c"Isis2d_servers" => show_servers = Shown::Number(super::current_link().map_or(0, |l| l.snapshot().rows.len() as u64));
    c"Isis2d_last_error" => show_last_error = Shown::Text(STATS.last_error.lock().clone());
}

/// Milliseconds since gcsd last confirmed the list (0 when none yet or not installed).
fn serverlist_age_ms() -> u64 {
    super::current_link()
        .and_then(|l| l.confirmed())
        .map_or(0, |t| t.elapsed().as_millis() as u64)
}

// ---- entry points ----

extern "C" fn isis2d_init_entry(_plugin: *mut c_void) -> c_int {
    guarded(1, isis2d_init)
}

extern "C" fn isis2d_deinit_entry(_plugin: *mut c_void) -> c_int {
    guarded(1, isis2d_deinit)
}

extern "C" fn isis2is_init_entry(schema_table: *mut c_void) -> c_int {
    guarded(1, || isis2is_init(schema_table))
}

extern "C" fn isis2is_deinit_entry(_schema_table: *mut c_void) -> c_int {
    guarded(1, isis2is_deinit)
}

extern "C" fn isis2is_history_init_entry(schema_table: *mut c_void) -> c_int {
    guarded(1, || isis2is_history_init(schema_table))
}

/// It keeps nothing of its own; ISIS2IS's deinit releases what both share.
extern "C" fn isis2is_history_deinit_entry(_schema_table: *mut c_void) -> c_int {
    guarded(1, isis2is_deinit)
}

// ---- declarations ----

static DAEMON_INFO: DaemonInfo = DaemonInfo {
    interface_version: SERVER_INTERFACE_VERSION,
};
static ISIS2IS_INFO: InformationSchemaInfo = InformationSchemaInfo {
    interface_version: SERVER_INTERFACE_VERSION,
};

const AUTHOR: &CStr = c"mysql-gcs";
const VERSION: c_uint = 0x0001;

/// Both declaration arrays (MariaDB's, which carries maturity, and MySQL's) from one list.
macro_rules! declare_plugins {
    ($({ $type_:expr, $info:expr, $name:literal, $descr:literal, $init:expr, $deinit:expr, $status:expr, $sysvars:expr })*) => {
        const PLUGINS: [PluginFields; [$($name),*].len()] = [$(PluginFields {
            type_: $type_,
            info: $info as *const _ as *const c_void,
            name: $name.as_ptr(),
            author: AUTHOR.as_ptr(),
            descr: $descr.as_ptr(),
            license: PLUGIN_LICENSE_GPL,
            init: Some($init),
            deinit: Some($deinit),
            version: VERSION,
            status_vars: $status,
            system_vars: $sysvars,
        }),*];
        const COUNT: usize = PLUGINS.len() + 1;

        #[no_mangle]
        pub static _maria_plugin_interface_version_: c_int = MARIA_PLUGIN_INTERFACE_VERSION;
        #[no_mangle]
        pub static _maria_sizeof_struct_st_plugin_: c_int = size_of::<MariaPlugin>() as c_int;
        #[no_mangle]
        pub static _maria_plugin_declarations_: [MariaPlugin; COUNT] = {
            let end = MariaPlugin { fields: PluginFields::END, version_info: null(), maturity: 0 };
            let mut all = [end; COUNT];
            let mut i = 0;
            while i < PLUGINS.len() {
                all[i] = MariaPlugin {
                    fields: PLUGINS[i],
                    version_info: c"0.1".as_ptr(),
                    maturity: MARIADB_PLUGIN_MATURITY_GAMMA,
                };
                i += 1;
            }
            all
        };
        #[no_mangle]
        pub static _mysql_plugin_interface_version_: c_int = MYSQL_PLUGIN_INTERFACE_VERSION;
        #[no_mangle]
        pub static _mysql_sizeof_struct_st_plugin_: c_int = size_of::<MysqlPlugin>() as c_int;
        #[no_mangle]
        pub static _mysql_plugin_declarations_: [MysqlPlugin; COUNT] = {
            let end = MysqlPlugin { fields: PluginFields::END, reserved1: null(), flags: 0 };
            let mut all = [end; COUNT];
            let mut i = 0;
            while i < PLUGINS.len() {
                all[i] = MysqlPlugin { fields: PLUGINS[i], reserved1: null(), flags: 0 };
                i += 1;
            }
            all
        };
    };
}

declare_plugins! {
    {
        MYSQL_DAEMON_PLUGIN, &DAEMON_INFO, c"isis2d",
        c"Announces this server to the local gcsd and caches the cluster's serverlist",
        isis2d_init_entry, isis2d_deinit_entry,
        ISIS2D_STATUS.as_ptr(), &raw const ISIS2D_SYSVARS as *const *mut c_void
    }
    {
        MYSQL_INFORMATION_SCHEMA_PLUGIN, &ISIS2IS_INFO, c"ISIS2IS",
        c"INFORMATION_SCHEMA.ISIS2IS: the cluster's servers and their health",
        isis2is_init_entry, isis2is_deinit_entry,
        null(), null()
    }
    {
        MYSQL_INFORMATION_SCHEMA_PLUGIN, &ISIS2IS_INFO, c"ISIS2IS_HISTORY",
        c"INFORMATION_SCHEMA.ISIS2IS_HISTORY: the pools' committed transitions, the same on every server",
        isis2is_history_init_entry, isis2is_history_deinit_entry,
        null(), null()
    }
}
