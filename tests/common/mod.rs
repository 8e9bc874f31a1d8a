//! Test harness for the plugin's integration tests: throwaway MariaDB servers ([`mariadb`]) that
//! load `libmysql_gcs.so`, and real gcsd groups for them to talk to ([`gcsd`], gcsd's own
//! harness).

#![allow(dead_code)] // each test binary uses a different part of the harness

#[path = "../../crates/gcsd/tests/common/mod.rs"]
pub mod gcsd;
pub mod mariadb;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// File name of the plugin library, as given to `--plugin-load-add` and `INSTALL SONAME`.
pub const PLUGIN_SONAME: &str = "libmysql_gcs.so";

/// `target/<profile>/`, where cargo puts the workspace's binaries and the plugin library; the
/// running test is `target/<profile>/deps/<test>-<hash>`.
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running test's path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lies in target/<profile>/deps")
        .to_path_buf()
}

/// The plugin library cargo built for this test run. `cargo test` does not always relink a
/// cdylib-only package when its sources change, so a library older than any of its sources is
/// refused rather than tested.
pub fn plugin_library() -> PathBuf {
    let path = target_profile_dir().join(PLUGIN_SONAME);
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: build it first (`cargo build`; scripts/test.sh does)",
                path.display()
            )
        });
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = [
        "build.rs",
        "src",
        "include",
        "crates/isis2d/src",
        "crates/proto/src",
    ];
    if let Some(newer) = sources
        .iter()
        .flat_map(|s| files_under(&repo.join(s)))
        .find(|f| {
            f.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > built)
        })
    {
        panic!(
            "{} is older than {}: build it first (`cargo build`; scripts/test.sh does)",
            path.display(),
            newer.display()
        );
    }
    path
}

/// `path` itself if it is a file, else every file below it.
fn files_under(path: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(path) {
        Ok(entries) => entries
            .flatten()
            .flat_map(|e| files_under(&e.path()))
            .collect(),
        Err(_) => vec![path.to_path_buf()],
    }
}

/// A per-process scratch directory, removed when the test process exits. It holds what is
/// shared by every server of the process (the plugin copy, the pristine datadir), so the
/// statics that name it never leak a directory.
pub(crate) fn scratch_dir() -> &'static Path {
    static SCRATCH: OnceLock<PathBuf> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("mysql-gcs-test-")
            .tempdir()
            .expect("create the per-process scratch dir")
            .keep();
        extern "C" fn remove_scratch_dir() {
            if let Some(dir) = SCRATCH.get() {
                std::fs::remove_dir_all(dir).ok();
            }
        }
        // SAFETY: registers a plain function with no preconditions; it runs once at exit(3),
        // which libtest reaches on success and on failure alike.
        unsafe { libc::atexit(remove_scratch_dir) };
        dir
    })
}

/// The `--plugin-dir` for every server of this process: a private copy of the plugin library,
/// taken once. A copy, not a symlink, because `cargo build` rewrites the library in place while
/// servers of a still-running test may have it mapped (mariadbd `dlopen`s the path in the
/// plugin dir, so a symlink would expose them to the rewrite).
pub fn plugin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch_dir().join("plugin");
        std::fs::create_dir_all(&dir).expect("create the plugin dir");
        let library = plugin_library();
        std::fs::copy(&library, dir.join(PLUGIN_SONAME))
            .unwrap_or_else(|e| panic!("copy {} into {}: {e}", library.display(), dir.display()));
        dir
    })
    .clone()
}

pub mod isis2is;
