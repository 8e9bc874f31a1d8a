//! The plugin in a cluster: three real mariadbd, each loading `libmysql_gcs.so` and announcing
//! itself to its own gcsd, the three gcsd forming one group on loopback. Every server's
//! `INFORMATION_SCHEMA.ISIS2IS` must list all three; a server that dies, a gcsd that stops and
//! comes back, a role change and a gcsd that is not there yet must all show up where the
//! README says, within the bounds it gives (TTL 3 s, heartbeat 1 s).
//!
//! The tests take turns (one cluster at a time: six processes on a 2-core machine are plenty).

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::gcsd::{start_group, Gcsd};
use common::isis2is::*;
use common::mariadb::MariaDb;

/// A listing that the README promises "within about a second" gets this much on a busy CI box.
const LISTED_WITHIN: Duration = Duration::from_secs(5);
/// A dead server's registration expires after `server_ttl_secs` (3 s); this allows for the
/// expiry sweep, the commit and the push.
const GONE_WITHIN: Duration = Duration::from_secs(6);
/// Every SELECT from ISIS2IS copies a snapshot: no network I/O, so it is prompt whatever gcsd
/// does. Timed by the server's clock (`server_timed`), without the client's process spawn.
const PROMPT: Duration = Duration::from_secs(1);

static SERIAL: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Three servers, server i announcing itself to gcsd i+1 (named `gcsd<i+1>`). The servers
/// come first, so they are killed before their gcsds on drop.
struct Cluster {
    dbs: Vec<MariaDb>,
    gcsds: Vec<Gcsd>,
    /// When the last server answered its first query.
    last_started: Instant,
}

impl Cluster {
    fn start() -> Self {
        Self::start_over(false)
    }

    /// With `socket`, each server talks to its gcsd over gcsd's plugin socket, and gcsd takes
    /// no change over TCP (`plugin_tcp_writes = false`).
    fn start_over(socket: bool) -> Self {
        let started = Instant::now();
        let gcsds = start_group(3, |m| match socket {
            true => m
                .with_plugin_socket()
                .with_config("plugin_tcp_writes = false"),
            false => m,
        });
        let group_took = started.elapsed();
        let dbs: Vec<MariaDb> = gcsds
            .iter()
            .map(|g| match socket {
                true => with_plugin_socket(MariaDb::new(), &g.socket_path()),
                false => with_plugin(MariaDb::new(), g.plugin.port()),
            })
            .map(MariaDb::start)
            .collect();
        let last_started = Instant::now();
        eprintln!(
            "group of three gcsd up in {group_took:?}; servers started in {:?}",
            dbs.iter().map(MariaDb::last_start).collect::<Vec<_>>()
        );
        Self {
            dbs,
            gcsds,
            last_started,
        }
    }

    /// The member name of the gcsd that server `i` registers through.
    fn member(&self, i: usize) -> String {
        format!("gcsd{}", self.gcsds[i].id)
    }

    /// Whether `db`'s table lists exactly the servers `expected` (indexes), each healthy and
    /// through its own gcsd; `Err` says what is different.
    fn lists_exactly(&self, db: &MariaDb, expected: &[usize]) -> Result<Vec<Isis2isRow>, String> {
        let rows = try_isis2is(db)?;
        let problem = if rows.len() != expected.len() {
            Some(format!("{} rows, want {}", rows.len(), expected.len()))
        } else {
            expected.iter().find_map(|&i| {
                let port = self.dbs[i].port;
                match rows.iter().find(|r| r.is_server(port)) {
                    None => Some(format!("no row for server {i} (port {port})")),
                    Some(r) if !r.is_healthy() => Some(format!("server {i} is not healthy")),
                    Some(r) if r.member.as_deref() != Some(self.member(i).as_str()) => {
                        Some(format!("server {i} is not listed by {}", self.member(i)))
                    }
                    Some(_) => None,
                }
            })
        };
        match problem {
            None => Ok(rows),
            Some(p) => Err(format!("server on port {}: {p}:\n{}", db.port, show(&rows))),
        }
    }

    /// Waits until every server in `on` lists exactly the servers in `listed`; returns how long.
    fn wait_listed(&self, on: &[usize], listed: &[usize], timeout: Duration) -> Duration {
        let what = format!("servers {on:?} to list exactly servers {listed:?}");
        poll_until(&what, timeout, || {
            on.iter()
                .try_for_each(|&i| self.lists_exactly(&self.dbs[i], listed).map(drop))
        })
        .1
    }
}

/// The packaged setup: the plugin on gcsd's Unix socket, TCP read-only. Each server checks
/// that gcsd's uid serves the socket, and gcsd that the server's uid is allowed.
#[test]
fn every_server_lists_all_three_over_the_plugin_socket() {
    let _turn = one_at_a_time();
    let c = Cluster::start_over(true);
    let all = [0, 1, 2];
    c.wait_listed(&all, &all, LISTED_WITHIN);
    assert_eq!(status_var(&c.dbs[0], "Isis2d_connected"), "ON");
    assert_eq!(status_var(&c.dbs[0], "Isis2d_last_error"), "");
    let socket = c.gcsds[0].socket_path();
    assert_eq!(
        c.dbs[0].query_one("SELECT @@isis2d_daemon_socket"),
        socket.display().to_string()
    );
    // A server that stops leaves the list through the socket too.
    let mut dbs = c.dbs;
    let gone = dbs.remove(2);
    drop(gone);
    let c = Cluster { dbs, ..c };
    c.wait_listed(&[0, 1], &[0, 1], GONE_WITHIN);
}

#[test]
fn every_server_lists_all_three_and_a_role_change_reaches_the_others() {
    let _turn = one_at_a_time();
    let c = Cluster::start();
    let all = [0, 1, 2];
    c.wait_listed(&all, &all, LISTED_WITHIN);
    let listed_after = c.last_started.elapsed();
    eprintln!("every server lists all three {listed_after:?} after the last server started");

    let rows = isis2is(&c.dbs[0]);
    for r in &rows {
        assert_eq!(r.role.as_deref(), Some("standalone"), "{r}");
        assert_eq!(r.ttl, Some(3), "the README's default server_ttl_secs: {r}");
        assert!(r.last_update.is_some(), "{r}");
    }
    assert_eq!(status_var(&c.dbs[0], "Isis2d_connected"), "ON");
    assert_eq!(status_num(&c.dbs[0], "Isis2d_servers"), 3);
    assert_eq!(status_var(&c.dbs[0], "Isis2d_last_error"), "");

    // The role is the one dynamic variable; a change is re-announced at the next heartbeat.
    c.dbs[0]
        .sql("SET GLOBAL isis2d_mysql_role = 'master'")
        .unwrap();
    assert_eq!(c.dbs[0].query_one("SELECT @@isis2d_mysql_role"), "master");
    let master_port = c.dbs[0].port;
    let (_, took) = poll_until(
        "every server to show server 0 as master",
        LISTED_WITHIN,
        || {
            c.dbs.iter().try_for_each(|db| {
                let rows = try_isis2is(db)?;
                let ok = rows.len() == 3
                    && rows.iter().all(|r| {
                        r.is_healthy()
                            && r.role.as_deref()
                                == Some(if r.is_server(master_port) {
                                    "master"
                                } else {
                                    "standalone"
                                })
                    });
                if ok {
                    Ok(())
                } else {
                    Err(format!("server on port {}:\n{}", db.port, show(&rows)))
                }
            })
        },
    );
    eprintln!("the role change reached every server in {took:?}");
}

#[test]
fn a_killed_server_leaves_the_others_lists_within_the_ttl() {
    let _turn = one_at_a_time();
    let mut c = Cluster::start();
    c.wait_listed(&[0, 1, 2], &[0, 1, 2], LISTED_WITHIN);

    let victim = c.dbs[2].port;
    c.dbs[2].kill9();
    let (_, took) = poll_until(
        "the killed server to leave (or not be `on`) on the other two",
        GONE_WITHIN,
        || {
            c.dbs[..2].iter().try_for_each(|db| {
                let rows = try_isis2is(db)?;
                match rows.iter().find(|r| r.is_server(victim)) {
                    Some(r) if r.status.as_deref() == Some("on") => {
                        Err(format!("server on port {}:\n{}", db.port, show(&rows)))
                    }
                    _ => Ok(()),
                }
            })
        },
    );
    eprintln!("the server killed with -9 left the others' lists after {took:?}");
    // The survivors are untouched (and, the TTL having passed, the dead one is gone for good).
    c.wait_listed(&[0, 1], &[0, 1], LISTED_WITHIN);
}

/// How a gcsd is stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// SIGTERM: it commits its own leave, tells plugin connections `11 Shutting down`, exits.
    Term,
    /// kill -9: the others commit it as down after `member_timeout` (1 s).
    Kill,
}

/// Stops gcsd `v`: its server must leave the others' lists, and its own table must say 1001
/// promptly on every SELECT; then gcsd `v` starts again on its data dir and everything must
/// come back without touching the server.
fn orphan_and_recover(c: &mut Cluster, v: usize, how: Stop) {
    let others: Vec<usize> = (0..3).filter(|&i| i != v).collect();
    let id = c.gcsds[v].id;
    let victim_pid = c.dbs[v].pid();
    let reconnects_before = status_num(&c.dbs[v], "Isis2d_reconnects");
    let stopping = Instant::now();
    match how {
        Stop::Term => {
            let status = c.gcsds[v].terminate(Duration::from_secs(10));
            assert!(
                status.success(),
                "gcsd {id} exited with {status} on SIGTERM"
            );
        }
        Stop::Kill => c.gcsds[v].kill9(),
    }
    let stop_took = stopping.elapsed();

    let gone = c.wait_listed(&others, &others, GONE_WITHIN);
    eprintln!(
        "{how:?}: gcsd {id} stopped in {stop_took:?}; its server left the others' lists \
         {gone:?} later"
    );

    let victim = &c.dbs[v];
    let daemon = format!("127.0.0.1:{}", c.gcsds[v].plugin.port());
    let (_, took) = poll_until(
        "the orphaned server's table to show ERRNO 1001",
        LISTED_WITHIN,
        || {
            let rows = try_isis2is(victim)?;
            if !rows.is_empty() && rows.iter().all(|r| r.errno == ERRNO_UNREACHABLE) {
                Ok(())
            } else {
                Err(show(&rows))
            }
        },
    );
    eprintln!("{how:?}: the orphaned server's table showed 1001 {took:?} after that");
    let mut slowest = Duration::ZERO;
    for _ in 0..8 {
        let (rows, took) = timed_isis2is(victim);
        slowest = slowest.max(took);
        assert!(took < PROMPT, "a SELECT took {took:?} with gcsd down");
        assert!(!rows.is_empty());
        for r in &rows {
            assert_eq!(r.errno, ERRNO_UNREACHABLE, "{r}");
            let error = r.error.as_deref().unwrap_or_default();
            assert!(
                error.contains(&daemon),
                "the error names gcsd {daemon}: {r}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status_var(victim, "Isis2d_connected"), "OFF");
    assert!(status_var(victim, "Isis2d_last_error").contains(&daemon));
    eprintln!(
        "{how:?}: slowest of 8 SELECTs with gcsd down {slowest:?}; status: {}",
        status_line(victim)
    );

    let restarting = Instant::now();
    c.gcsds[v].launch();
    let launched = restarting.elapsed();
    c.wait_listed(&[0, 1, 2], &[0, 1, 2], Duration::from_secs(10));
    eprintln!(
        "{how:?}: gcsd {id} restarted in {launched:?}; every server lists all three again \
         {:?} after its launch; status: {}",
        restarting.elapsed(),
        status_line(&c.dbs[v])
    );
    assert_eq!(c.dbs[v].pid(), victim_pid, "the server was not restarted");
    assert_eq!(status_var(&c.dbs[v], "Isis2d_connected"), "ON");
    assert!(status_num(&c.dbs[v], "Isis2d_reconnects") > reconnects_before);
}

#[test]
fn a_stopped_gcsd_takes_its_server_out_and_its_restart_brings_it_back() {
    let _turn = one_at_a_time();
    let mut c = Cluster::start();
    c.wait_listed(&[0, 1, 2], &[0, 1, 2], LISTED_WITHIN);

    // SIGTERM to the leader, the hardest member to lose: the others elect a new one first.
    let leader = c.gcsds[0].leader().expect("the group has a leader");
    let v = c.gcsds.iter().position(|g| g.id == leader).unwrap();
    orphan_and_recover(&mut c, v, Stop::Term);

    // kill -9 of a follower: no goodbye, the group notices by itself.
    let leader = c.gcsds[0].leader().expect("the group has a leader again");
    let v = c.gcsds.iter().position(|g| g.id != leader).unwrap();
    orphan_and_recover(&mut c, v, Stop::Kill);
    for db in &c.dbs {
        assert_no_crash(db);
    }
}

#[test]
fn a_server_started_while_its_gcsd_is_down_starts_normally_and_recovers_when_it_comes() {
    let _turn = one_at_a_time();
    let without = baseline(2);

    // A gcsd with its ports chosen but not running: nothing listens on its plugin port.
    let mut g = Gcsd::new(1);
    let daemon = format!("127.0.0.1:{}", g.plugin.port());
    let mut db = with_plugin(MariaDb::new(), g.plugin.port()).start();
    let with = restarts(&mut db, 2, |_| {});
    eprintln!(
        "with the plugin and gcsd down: starts {:?}, shutdowns {:?}",
        with.starts, with.shutdowns
    );
    // The fastest of two: slower ones measure the machine's other load.
    assert!(
        with.start() < without.start() + Duration::from_secs(1),
        "with gcsd down the starts took {:?}, without the plugin {:?}",
        with.starts,
        without.starts
    );

    let (rows, took) = timed_isis2is(&db);
    assert!(took < PROMPT, "a SELECT took {took:?} with gcsd down");
    assert_eq!(rows.len(), 1, "one error row:\n{}", show(&rows));
    let r = &rows[0];
    assert_eq!(r.errno, ERRNO_UNREACHABLE, "{r}");
    assert!(r.member.is_none() && r.host.is_none(), "{r}");
    assert!(r.error.as_deref().unwrap().starts_with("isis2d: "), "{r}");
    // Once it has tried, the error says why.
    poll_until("the error to name gcsd", LISTED_WITHIN, || {
        let rows = try_isis2is(&db)?;
        match rows.as_slice() {
            [r] if r.errno == ERRNO_UNREACHABLE
                && r.error
                    .as_deref()
                    .is_some_and(|e| e.contains(&format!("cannot reach gcsd at {daemon}"))) =>
            {
                Ok(())
            }
            _ => Err(show(&rows)),
        }
    });
    assert_eq!(status_var(&db, "Isis2d_connected"), "OFF");

    let coming = Instant::now();
    g.launch();
    let launched = coming.elapsed();
    let port = db.port;
    poll_until(
        "the server to list itself once gcsd is up",
        LISTED_WITHIN,
        || {
            let rows = try_isis2is(&db)?;
            match rows.as_slice() {
                [r] if r.is_server(port)
                    && r.is_healthy()
                    && r.member.as_deref() == Some("gcsd1") =>
                {
                    Ok(())
                }
                _ => Err(show(&rows)),
            }
        },
    );
    eprintln!(
        "gcsd up in {launched:?}; the server listed itself {:?} after gcsd's launch; status: {}",
        coming.elapsed(),
        status_line(&db)
    );
    assert_eq!(status_var(&db, "Isis2d_connected"), "ON");
    assert!(status_num(&db, "Isis2d_reconnects") > 0);
    assert_no_crash(&db);
}
