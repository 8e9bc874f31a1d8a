//! The MariaDB harness on its own, with no plugin loaded: servers start side by side on their
//! own ports, answer root and non-root users, stop cleanly and promptly, survive `kill -9`, and
//! share one `mariadb-install-db` run per test process.

mod common;

use std::time::Duration;

use common::mariadb::{install_db_runs, pristine_datadir, MariaDb};

/// Far above the ~0.2 s a start or clean shutdown takes here, yet short enough to catch a
/// server that waits on something (a timeout, a lock) instead of working.
const PROMPT: Duration = Duration::from_secs(10);

#[test]
fn two_servers_run_side_by_side_from_one_pristine_datadir() {
    let a = MariaDb::new().start();
    let b = MariaDb::new().start();
    assert_ne!(a.port, b.port);
    for db in [&a, &b] {
        assert_eq!(db.query_one("SELECT 1"), "1");
        assert_eq!(db.query_one("SELECT @@port"), db.port.to_string());
        assert_eq!(
            db.query_one("SELECT @@socket"),
            db.socket.display().to_string()
        );
        assert!(db.last_start() < PROMPT, "start took {:?}", db.last_start());
    }

    // Each has its own datadir.
    a.sql("CREATE DATABASE only_in_a").unwrap();
    let in_b = "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'only_in_a'";
    assert_eq!(b.query_one(in_b), "0");

    // Other tests in this process start servers too; all of them copied one installation.
    assert_eq!(install_db_runs(), 1);
    eprintln!(
        "mariadb-install-db {:?}; datadir copies {:?} and {:?}; starts {:?} and {:?}; rss {} kB",
        pristine_datadir().install_took,
        a.datadir_copy_took(),
        b.datadir_copy_took(),
        a.last_start(),
        b.last_start(),
        a.rss_kb()
    );
}

#[test]
fn values_and_errors_come_back_as_the_server_sent_them() {
    let db = MariaDb::new().start();
    assert_eq!(
        db.sql(r"SELECT NULL, '', 'tab\there', 'two\nlines', 'back\\slash'")
            .unwrap(),
        [["NULL", "", "tab\there", "two\nlines", r"back\slash"]]
    );
    assert_eq!(
        db.sql("SELECT 1 UNION ALL SELECT 2; SELECT 'x', 3")
            .unwrap(),
        [vec!["1"], vec!["2"], vec!["x", "3"]]
    );
    assert!(db.sql("SELECT 1 FROM DUAL WHERE FALSE").unwrap().is_empty());
    let err = db.sql("SELECT no_such_column").unwrap_err();
    assert!(
        err.starts_with("ERROR 1054 (42S22) at line 1: Unknown column 'no_such_column'"),
        "{err}"
    );
}

#[test]
fn a_non_root_user_logs_in_over_tcp_with_only_its_grants() {
    let db = MariaDb::new().start();
    db.sql(
        "CREATE USER 'app'@'%' IDENTIFIED BY 'app-secret'; \
         GRANT SELECT ON mysql.* TO 'app'@'%'",
    )
    .unwrap();
    assert_eq!(
        db.sql_as("app", "app-secret", "SELECT CURRENT_USER()")
            .unwrap(),
        [["app@%"]]
    );
    assert!(db
        .sql_as("app", "app-secret", "SELECT COUNT(*) FROM mysql.db")
        .is_ok());
    let err = db
        .sql_as("app", "app-secret", "CREATE DATABASE not_allowed")
        .unwrap_err();
    assert!(err.starts_with("ERROR 1044 (42000)"), "{err}");
    let err = db.sql_as("app", "wrong", "SELECT 1").unwrap_err();
    assert!(err.starts_with("ERROR 1045 (28000)"), "{err}");
}

#[test]
fn shutdown_is_clean_and_prompt_and_a_restart_keeps_the_data() {
    let mut db = MariaDb::new().start();
    db.sql("CREATE DATABASE kept").unwrap();
    let first_pid = db.pid();
    let shutdown = db.shutdown();
    assert!(shutdown < PROMPT, "shutdown took {shutdown:?}");
    assert!(!db.is_running());
    assert!(db.error_log().contains("mariadbd: Shutdown complete"));

    let start = db.launch();
    assert_ne!(db.pid(), first_pid);
    assert_eq!(db.query_one("SHOW DATABASES LIKE 'kept'"), "kept");
    let restart = db.restart();
    assert_eq!(db.query_one("SELECT @@port"), db.port.to_string());
    eprintln!("shutdown {shutdown:?}; start again {start:?}; restart's start {restart:?}");
}

#[test]
fn kill9_stops_the_server_at_once_and_it_recovers_on_the_next_start() {
    let mut db = MariaDb::new().start();
    db.sql(
        "CREATE DATABASE crash; \
         CREATE TABLE crash.t (x INT) ENGINE=InnoDB; \
         INSERT INTO crash.t VALUES (42)",
    )
    .unwrap();
    let pid = db.pid();
    assert!(db.rss_kb() > 10_000, "rss {} kB", db.rss_kb());
    db.kill9();
    assert!(!db.is_running());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "mariadbd {pid} was not reaped"
    );
    assert!(db.sql("SELECT 1").is_err());

    let start = db.launch();
    assert_eq!(db.query_one("SELECT x FROM crash.t"), "42");
    eprintln!("start after kill -9 {start:?}");
}
