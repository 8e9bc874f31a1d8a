//! `#[repr(C)]` mirrors of the server's plugin structs (mysql/plugin.h). They are made by C
//! macros, so bindgen cannot produce them. Their sizes are checked at compile time against
//! `include/mysql_gcs.h`, whose values the shim checks against the server's headers.

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void};

include!(concat!(env!("OUT_DIR"), "/server.rs"));

pub const MYSQL_PLUGIN_INTERFACE_VERSION: c_int = 0x0104;
pub const MARIA_PLUGIN_INTERFACE_VERSION: c_int = 0x010f;
/// DAEMON and INFORMATION_SCHEMA plugins must carry the running server's version.
pub const SERVER_INTERFACE_VERSION: c_int = (MYSQL_VERSION_ID << 8) as c_int;

pub const MYSQL_DAEMON_PLUGIN: c_int = 3;
pub const MYSQL_INFORMATION_SCHEMA_PLUGIN: c_int = 4;
pub const PLUGIN_LICENSE_GPL: c_int = 1;
pub const MARIADB_PLUGIN_MATURITY_GAMMA: c_uint = 4;

pub const PLUGIN_VAR_INT: c_int = 0x0002;
pub const PLUGIN_VAR_STR: c_int = 0x0005;
pub const PLUGIN_VAR_ENUM: c_int = 0x0006;
pub const PLUGIN_VAR_UNSIGNED: c_int = 0x0080;
pub const PLUGIN_VAR_READONLY: c_int = 0x0200;

pub const SHOW_BOOL: c_int = 1;
pub const SHOW_ULONGLONG: c_int = 4;
pub const SHOW_CHAR: c_int = 5;
pub const SHOW_SIMPLE_FUNC: c_int = 13;
/// `SHOW_VAR_FUNC_BUFF_SIZE`: what a show function may write into its buffer.
pub const SHOW_FUNC_BUFFER: usize = 256 * std::mem::size_of::<*const c_void>();

pub type InitFn = unsafe extern "C" fn(*mut c_void) -> c_int;
pub type CheckFn =
    unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_void, *mut c_void) -> c_int;
pub type UpdateFn = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_void, *const c_void);
pub type ShowFn =
    unsafe extern "C" fn(*mut c_void, *mut ShowVar, *mut c_void, *mut c_void, c_int) -> c_int;

#[repr(C)]
pub struct DaemonInfo {
    pub interface_version: c_int,
}

#[repr(C)]
pub struct InformationSchemaInfo {
    pub interface_version: c_int,
}

/// The fields `st_mysql_plugin` and `st_maria_plugin` share, in order; each struct adds two.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PluginFields {
    pub type_: c_int,
    pub info: *const c_void,
    pub name: *const c_char,
    pub author: *const c_char,
    pub descr: *const c_char,
    pub license: c_int,
    pub init: Option<InitFn>,
    pub deinit: Option<InitFn>,
    pub version: c_uint,
    pub status_vars: *const ShowVar,
    pub system_vars: *const *mut c_void,
}

impl PluginFields {
    /// The all-zero entry that ends a declaration array.
    pub const END: Self = Self {
        type_: 0,
        info: std::ptr::null(),
        name: std::ptr::null(),
        author: std::ptr::null(),
        descr: std::ptr::null(),
        license: 0,
        init: None,
        deinit: None,
        version: 0,
        status_vars: std::ptr::null(),
        system_vars: std::ptr::null(),
    };
}

/// `struct st_mysql_plugin`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MysqlPlugin {
    pub fields: PluginFields,
    pub reserved1: *const c_void,
    pub flags: c_ulong,
}

/// `struct st_maria_plugin`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MariaPlugin {
    pub fields: PluginFields,
    pub version_info: *const c_char,
    pub maturity: c_uint,
}

/// `struct st_mysql_show_var`.
#[repr(C)]
pub struct ShowVar {
    pub name: *const c_char,
    pub value: *mut c_void,
    pub type_: c_int,
}

/// The header every sysvar struct starts with (`MYSQL_PLUGIN_VAR_HEADER`).
#[repr(C)]
pub struct SysVarHeader {
    pub flags: c_int,
    pub name: *const c_char,
    pub comment: *const c_char,
    pub check: Option<CheckFn>,
    pub update: Option<UpdateFn>,
}

/// `MYSQL_SYSVAR_STR`: the server writes the current value through `value`.
#[repr(C)]
pub struct StrSysVar {
    pub header: SysVarHeader,
    pub value: *mut *mut c_char,
    pub def_val: *const c_char,
}

/// `MYSQL_SYSVAR_UINT`.
#[repr(C)]
pub struct UintSysVar {
    pub header: SysVarHeader,
    pub value: *mut c_uint,
    pub def_val: c_uint,
    pub min_val: c_uint,
    pub max_val: c_uint,
    pub blk_sz: c_uint,
}

/// `MYSQL_SYSVAR_ENUM`.
#[repr(C)]
pub struct EnumSysVar {
    pub header: SysVarHeader,
    pub value: *mut c_ulong,
    pub def_val: c_ulong,
    pub typelib: *const TypeLib,
}

/// `TYPELIB`: the names of an enum sysvar.
#[repr(C)]
pub struct TypeLib {
    pub count: c_uint,
    pub name: *const c_char,
    pub type_names: *const *const c_char,
    pub type_lengths: *const c_uint,
}

const _: () = {
    use std::mem::size_of;
    assert!(size_of::<MysqlPlugin>() == SIZEOF_ST_MYSQL_PLUGIN);
    assert!(size_of::<MariaPlugin>() == SIZEOF_ST_MARIA_PLUGIN);
    assert!(size_of::<ShowVar>() == SIZEOF_ST_MYSQL_SHOW_VAR);
    assert!(size_of::<StrSysVar>() == SIZEOF_SYSVAR_STR);
    assert!(size_of::<UintSysVar>() == SIZEOF_SYSVAR_UINT);
    assert!(size_of::<EnumSysVar>() == SIZEOF_SYSVAR_ENUM);
    assert!(size_of::<TypeLib>() == SIZEOF_TYPELIB);
};

/// The declarations point at each other and at strings; the server only reads them (and writes
/// sysvar values through their pointers), from its own threads under its plugin lock.
macro_rules! impl_sync {
    ($($t:ty),*) => {$(
        // SAFETY: see above; none of these is mutated through a shared reference by Rust.
        unsafe impl Sync for $t {}
    )*};
}
impl_sync!(
    DaemonInfo,
    InformationSchemaInfo,
    MysqlPlugin,
    MariaPlugin,
    ShowVar,
    TypeLib
);
