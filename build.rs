//! Builds the C++ shim of libmysql_gcs.so against the MariaDB server's own headers.
//!
//! Where the headers come from, in order:
//! 1. `MARIADB_SERVER_HEADERS`: a directory prepared by `scripts/mariadb-headers.sh` (or laid
//!    out the same way: `mysql-gcs-headers.env`, `generated/`, `include/`, `sql/`, ...);
//! 2. `/usr/local/share/mysql-gcs/mariadb-server-headers`, where that script puts them.
//!
//! The headers must be from the very server version that is installed: the plugin's interface
//! version is the server's `MYSQL_VERSION_ID`, and the shim reads server structs whose layout
//! changes between versions. The installed version is read from `MARIADB_INSTALLED_VERSION_H`
//! (default: the `mysql_version.h` of libmariadbd-dev). A mismatch fails the build with what
//! to do.
//!
//! It also writes the shim's column lists of ISIS2IS and ISIS2IS_HISTORY (`isis2is_columns.h`,
//! `isis2is_history_columns.h` in OUT_DIR) from the one list of each, in `isis2d`.

use std::collections::HashMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

const DEFAULT_HEADERS: &str = "/usr/local/share/mysql-gcs/mariadb-server-headers";
const DEFAULT_INSTALLED_VERSION_H: &str = "/usr/include/mariadb/server/mysql_version.h";
const SHIM_HEADER: &str = "include/mysql_gcs.h";
const SHIM_SOURCES: [&str; 2] = ["include/isis2is.cc", "include/server.cc"];

fn main() {
    for var in ["MARIADB_SERVER_HEADERS", "MARIADB_INSTALLED_VERSION_H"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed={SHIM_HEADER}");
    for src in SHIM_SOURCES {
        println!("cargo:rerun-if-changed={src}");
    }

    let headers = find_headers();
    let manifest = read_manifest(&headers);
    println!(
        "cargo:rerun-if-changed={}",
        headers.join("mysql-gcs-headers.env").display()
    );
    let headers_version = version_id(&headers.join("generated/mysql_version.h"));
    let installed_h = env::var("MARIADB_INSTALLED_VERSION_H")
        .unwrap_or_else(|_| DEFAULT_INSTALLED_VERSION_H.to_owned());
    println!("cargo:rerun-if-changed={installed_h}");
    let installed_version = version_id(Path::new(&installed_h));
    if headers_version != installed_version {
        fail(&format!(
            "the MariaDB source headers in {} are for MYSQL_VERSION_ID {headers_version}, but the \
             installed server ({installed_h}) is {installed_version}. A plugin built against other \
             headers is refused by the server (or worse, misreads its structs). Run \
             `MARIADB_HEADERS_REFRESH=1 scripts/mariadb-headers.sh` to fetch headers for the \
             installed server (or install the server version the headers are for), then rebuild.",
            headers.display()
        ));
    }

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    write_table_columns(&out_dir);
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .pic(true)
        .include("include")
        .include(&out_dir);
    // The server's headers are someone else's code: -isystem keeps their ~1000 warnings out.
    for dir in manifest["MARIADB_INCLUDE_DIRS"].split(':') {
        build.flag(format!("-isystem{}", headers.join(dir).display()));
    }
    for define in manifest["MARIADB_DEFINES"].split(':') {
        build.define(define, None);
    }
    build.files(SHIM_SOURCES).compile("mysql_gcs_shim");
    // The shim is C++: it needs the C++ runtime (mariadbd has it loaded anyway).
    println!("cargo:rustc-link-lib=dylib=stdc++");

    write_server_constants(headers_version);
}

/// The headers directory, or a build failure that lists every place tried.
fn find_headers() -> PathBuf {
    let mut tried = Vec::new();
    if let Ok(dir) = env::var("MARIADB_SERVER_HEADERS") {
        let dir = PathBuf::from(dir);
        if dir.join("mysql-gcs-headers.env").is_file() {
            return dir;
        }
        tried.push(format!(
            "MARIADB_SERVER_HEADERS={} (no mysql-gcs-headers.env there)",
            dir.display()
        ));
    }
    let default = PathBuf::from(DEFAULT_HEADERS);
    if default.join("mysql-gcs-headers.env").is_file() {
        return default;
    }
    tried.push(format!("{DEFAULT_HEADERS} (not there)"));
    fail(&format!(
        "cannot find the MariaDB server source headers. Tried:\n  - {}\nRun scripts/setup.sh (as \
         root), which fetches them for the installed server, or set MARIADB_SERVER_HEADERS to a \
         directory prepared by scripts/mariadb-headers.sh.",
        tried.join("\n  - ")
    ))
}

/// `KEY=value` lines of `mysql-gcs-headers.env`.
fn read_manifest(headers: &Path) -> HashMap<String, String> {
    let path = headers.join("mysql-gcs-headers.env");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())));
    let manifest: HashMap<String, String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    for key in ["MARIADB_INCLUDE_DIRS", "MARIADB_DEFINES"] {
        if !manifest.contains_key(key) {
            fail(&format!(
                "{} has no {key}; regenerate it with scripts/mariadb-headers.sh",
                path.display()
            ));
        }
    }
    manifest
}

/// `MYSQL_VERSION_ID` from a `mysql_version.h`.
fn version_id(path: &Path) -> u32 {
    let text = fs::read_to_string(path).unwrap_or_else(|e| {
        fail(&format!(
            "cannot read {}: {e}. Install libmariadbd-dev (scripts/setup.sh does) or point \
             MARIADB_INSTALLED_VERSION_H at the installed server's mysql_version.h",
            path.display()
        ))
    });
    text.lines()
        .find_map(|l| l.strip_prefix("#define MYSQL_VERSION_ID"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| fail(&format!("no MYSQL_VERSION_ID in {}", path.display())))
}

/// One column as the shim declares it: name, kind (`TEXT` or `UINT`), width, nullable.
type ShimColumn = (&'static str, &'static str, usize, bool);

fn shim_column(name: &'static str, kind: isis2d::table::Kind, nullable: bool) -> ShimColumn {
    match kind {
        isis2d::table::Kind::Text { width } => (name, "TEXT", width, nullable),
        isis2d::table::Kind::Unsigned => (name, "UINT", 0, nullable),
    }
}

/// `{file}` in `out_dir`: one table's columns as an X-macro list, `{prefix}_COLUMNS(X)`, one
/// `X("NAME", KIND, WIDTH, NULLABLE)` per column in table order, and `{prefix}_COLUMN_COUNT`.
fn write_columns(out_dir: &Path, file: &str, prefix: &str, table: &str, columns: &[ShimColumn]) {
    let guard = format!("{prefix}_COLUMNS_H");
    let mut out = format!(
        "/* Generated by build.rs from the one column list of INFORMATION_SCHEMA.{table}.\n   \
         Do not edit. */\n#ifndef {guard}\n#define {guard}\n\n"
    );
    out.push_str(&format!(
        "#define {prefix}_COLUMN_COUNT {}\n\n",
        columns.len()
    ));
    out.push_str(
        "/* X(\"NAME\", KIND, WIDTH, NULLABLE): KIND is TEXT (VARCHAR(WIDTH)) or UINT. */\n",
    );
    out.push_str(&format!("#define {prefix}_COLUMNS(X)"));
    for (name, kind, width, nullable) in columns {
        out.push_str(&format!(
            " \\\n  X(\"{name}\", {kind}, {width}, {})",
            u8::from(*nullable)
        ));
    }
    out.push_str("\n\n#endif\n");
    fs::write(out_dir.join(file), out).unwrap_or_else(|e| fail(&format!("write {file}: {e}")));
}

/// The shim's column lists of both tables, from `isis2d::table::Column` and
/// `isis2d::history::HistoryColumn`.
fn write_table_columns(out_dir: &Path) {
    use isis2d::{history::HistoryColumn, table::Column};
    let isis2is: Vec<ShimColumn> = Column::ALL
        .iter()
        .map(|c| shim_column(c.name(), c.kind(), c.nullable()))
        .collect();
    write_columns(
        out_dir,
        "isis2is_columns.h",
        "GCS_ISIS2IS",
        "ISIS2IS",
        &isis2is,
    );
    let history: Vec<ShimColumn> = HistoryColumn::ALL
        .iter()
        .map(|c| shim_column(c.name(), c.kind(), c.nullable()))
        .collect();
    write_columns(
        out_dir,
        "isis2is_history_columns.h",
        "GCS_ISIS2IS_HISTORY",
        "ISIS2IS_HISTORY",
        &history,
    );
}

/// `server.rs` in OUT_DIR: the version and the struct sizes from `include/mysql_gcs.h`, so Rust
/// and the shim check their layouts against one list.
fn write_server_constants(version_id: u32) {
    let header = fs::read_to_string(SHIM_HEADER).expect("include/mysql_gcs.h");
    let mut out = format!(
        "/// `MYSQL_VERSION_ID` of the server the shim was built against.\n\
         pub const MYSQL_VERSION_ID: u32 = {version_id};\n"
    );
    for line in header.lines() {
        if let Some(rest) = line.strip_prefix("#define GCS_SIZEOF_") {
            let (name, value) = rest.split_once(' ').expect("#define NAME VALUE");
            out.push_str(&format!(
                "pub const SIZEOF_{name}: usize = {};\n",
                value.trim()
            ));
        }
    }
    let path = PathBuf::from(env::var("OUT_DIR").unwrap()).join("server.rs");
    fs::write(path, out).expect("write server.rs");
}

// A build script, not the plugin: exit(1) after the message is how it reports a failure
// without a panic's backtrace.
#[allow(clippy::disallowed_methods)]
fn fail(message: &str) -> ! {
    eprintln!("\nerror: libmysql_gcs.so cannot be built: {message}\n");
    std::process::exit(1);
}
