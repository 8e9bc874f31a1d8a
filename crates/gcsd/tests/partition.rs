//! A network partition with real gcsd processes, each in its own network namespace: the leader
//! is cut off from the other two members (but not from the test), loses its quorum and refuses
//! to commit, the majority elects a new leader and commits the old one as down, and after the
//! partition heals everyone converges on one serverlist.
//!
//! The hosts are network namespaces on a bridge, gcsd i in namespace i (`common::netns`, made
//! fresh per run and torn down even on panic); the partition is iptables DROP rules inside the
//! isolated member's namespace, so the test still reaches its plugin and admin ports.
//!
//! Needs root (CI runs as root): without it the test fails, it does not skip.

mod common;

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::netns::Net;
use common::{wait_for, Gcsd};
use serde_json::Value;

/// Time allowed for each eventual condition during and after the partition.
const WAIT: Duration = Duration::from_secs(10);
/// The default `server_ttl_secs`.
const SERVER_TTL: Duration = Duration::from_secs(3);
/// Log entries the isolated leader may still apply after the rules are in: ones its followers
/// had already acknowledged (heartbeat `Touch`es are committed about three times a second).
const IN_FLIGHT: u64 = 2;

#[test]
fn isolated_leader_is_replaced_and_rejoins_after_heal() {
    // The partition outlasts the server TTL after the refused join, as most real ones do.
    partition_scenario('p', false);
}

#[test]
fn join_refused_for_no_quorum_is_never_committed_after_a_quick_heal() {
    partition_scenario('q', true);
}

/// The whole story; `heal_within_ttl` heals as soon as the majority has moved on, which is
/// less than `server_ttl_secs` after the refused join at the isolated member.
fn partition_scenario(tag: char, heal_within_ttl: bool) {
    let started = Instant::now();
    let mut lab = Lab::start(tag);
    eprintln!("group of 3 in namespaces up after {:?}", started.elapsed());

    // One server per member, kept alive by heartbeats through its own member.
    let names = ["db-a", "db-b", "db-c"];
    for (m, name) in lab.members.iter().zip(names) {
        assert_eq!(
            m.cmd(&format!("join {name} 3306 on master")),
            "0 OK\n",
            "join {name} at member {}",
            m.id
        );
    }
    let all3: Vec<String> = names.iter().map(|n| format!("{n} 3306")).collect();
    for m in &lab.members {
        wait_for(
            &format!("all three servers at member {}", m.id),
            WAIT,
            || (m.servers() == all3).then_some(()),
        );
    }
    let mut heartbeats = Heartbeats::start(
        lab.members
            .iter()
            .zip(names)
            .map(|(m, name)| (m.plugin, format!("heartbeat {name} 3306 on")))
            .collect(),
    );

    // Cut the leader off from the other two.
    let old_leader = wait_for("an agreed leader before the partition", WAIT, || {
        agreed_leader(&lab.members)
    });
    let l = (old_leader - 1) as usize;
    let maj: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    let l_server = all3[l].clone();
    lab.isolate(l);
    let isolated_at = Instant::now();
    let applied_at_isolation = last_applied(&lab.members[l]);
    let watch = Watch {
        isolated: l,
        applied_bound: Cell::new(applied_at_isolation + IN_FLIGHT),
    };
    eprintln!(
        "isolated member {old_leader} (the leader) at last_applied {applied_at_isolation}; \
         majority {:?}",
        maj.iter().map(|i| i + 1).collect::<Vec<_>>()
    );

    let m = &lab.members;
    let new_leader = wait_for("the majority to elect a new leader", WAIT, || {
        watch.check(m);
        let a = m[maj[0]].leader()?;
        (a != old_leader && m[maj[1]].leader() == Some(a)).then_some(a)
    });
    let to_new_leader = isolated_at.elapsed();
    eprintln!("isolation -> new leader {new_leader}: {to_new_leader:?}");
    assert!(
        maj.contains(&((new_leader - 1) as usize)),
        "new leader {new_leader}"
    );

    let problem = wait_for("the isolated member to report no quorum", WAIT, || {
        watch.check(m);
        let c = m[l].cluster();
        (c["quorum"] == false).then(|| c["quorum_problem"].as_str().map(str::to_owned))?
    });
    let to_no_quorum = isolated_at.elapsed();
    assert!(!problem.is_empty(), "quorum=false needs a reason");
    eprintln!("isolated member's quorum_problem: {problem}");
    // Whatever was in flight has landed by now: from here on it applies nothing at all.
    watch.check(m);
    let frozen = last_applied(&m[l]);
    watch.applied_bound.set(frozen);

    // The isolated member refuses changes, and says its list is stale while still listing it.
    let refused = m[l].cmd("join db-new 3306 on slave");
    let refused_at = Instant::now();
    assert!(
        refused.starts_with("6 No quorum: this member cannot commit"),
        "join at the isolated member: {refused:?}"
    );
    let stale = m[l].serverlist();
    let header = stale.header.to_line();
    assert!(
        header.starts_with("7 Stale serverlist"),
        "serverlist header at the isolated member: {header:?}"
    );
    let stale_rows: Vec<String> = stale.rows.iter().map(|r| r.server.to_string()).collect();
    assert_eq!(
        stale_rows, all3,
        "a stale list still lists the last known rows"
    );

    // The majority commits the isolated member as down, and its server leaves their lists.
    for &i in &maj {
        let reason = wait_for(
            &format!("member {old_leader} down at member {}", i + 1),
            WAIT,
            || {
                watch.check(m);
                let c = m[i].cluster();
                let rec = member(&c, old_leader);
                (rec["up"] == false).then(|| rec["down_reason"].clone())
            },
        );
        assert_eq!(reason, "timeout", "down_reason at member {}", i + 1);
    }
    let to_down = isolated_at.elapsed();
    eprintln!("isolation -> member {old_leader} marked down at the majority: {to_down:?}");
    for &i in &maj {
        wait_for(
            &format!("{l_server} to leave member {}'s list", i + 1),
            WAIT,
            || {
                watch.check(m);
                (!m[i].servers().contains(&l_server)).then_some(())
            },
        );
    }
    let to_server_gone = isolated_at.elapsed();

    // The majority still commits (through its follower, so the forward to the leader is used).
    let follower = *maj
        .iter()
        .find(|&&i| i as u64 + 1 != new_leader)
        .expect("two majority members");
    assert_eq!(
        m[follower].cmd("join db-maj 3306 on slave"),
        "0 OK\n",
        "join at majority member {}",
        follower + 1
    );
    heartbeats.add(m[follower].plugin, "heartbeat db-maj 3306 on".into());
    for &i in &maj {
        wait_for(&format!("db-maj at member {}", i + 1), WAIT, || {
            watch.check(m);
            m[i].servers()
                .contains(&"db-maj 3306".to_owned())
                .then_some(())
        });
    }

    if heal_within_ttl {
        assert!(
            refused_at.elapsed() < SERVER_TTL,
            "too slow to heal within the TTL of the refused join ({:?})",
            refused_at.elapsed()
        );
    } else {
        while refused_at.elapsed() < SERVER_TTL + Duration::from_secs(1) {
            watch.check(m);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The isolated member applied nothing since it lost its quorum.
    watch.check(m);
    assert_eq!(
        last_applied(&m[l]),
        frozen,
        "the isolated member applied entries without a quorum"
    );
    let partitioned_for = isolated_at.elapsed();

    // Heal, and everyone converges.
    lab.heal();
    let healed_at = Instant::now();
    let m = &lab.members;
    let mut expected = all3.clone();
    expected.push("db-maj 3306".into());
    let leader_after = wait_until("the group to converge after the heal", WAIT, || {
        converged(m, old_leader, &expected)
    });
    let to_converged = healed_at.elapsed();
    eprintln!("heal -> converged: {to_converged:?}");

    // And it stays so: in particular the refused join never turns up later.
    let hold = Instant::now();
    while hold.elapsed() < Duration::from_millis(1500) {
        let lists: Vec<Vec<Row>> = m.iter().map(rows).collect();
        for (g, list) in m.iter().zip(&lists) {
            let servers: Vec<&str> = list.iter().map(|r| r.1.as_str()).collect();
            assert_eq!(
                servers, expected,
                "member {}'s list {:?} after convergence",
                g.id, list
            );
            assert_eq!(list, &lists[0], "lists of members {} and 1 differ", g.id);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for g in m {
        let c = g.cluster();
        assert_eq!(c["quorum"], true, "member {}: {c}", g.id);
        for id in 1..=3 {
            assert_eq!(
                member(&c, id)["up"],
                true,
                "member {id} in member {}'s view",
                g.id
            );
        }
        assert_eq!(g.serverlist().header.to_line(), "0 \n");
    }
    let rows_at_l = rows(&m[l]);
    let l_row = rows_at_l
        .iter()
        .find(|r| r.1 == l_server)
        .expect("the isolated member's server is back");
    assert_eq!(l_row.0, format!("gcsd{old_leader}"), "owned by its member");

    let stats = heartbeats.stop();
    for (name, s) in names.iter().chain(&["db-maj"]).zip(&stats) {
        eprintln!("heartbeats for {name}: {s:?}");
        assert!(
            s.other.is_empty(),
            "unexpected heartbeat replies for {name}: {:?}",
            s.other
        );
    }
    assert!(
        stats[l].no_quorum > 0,
        "the isolated member never answered a heartbeat with `6 No quorum`: {:?}",
        stats[l]
    );

    eprintln!(
        "partition of leader {old_leader} for {partitioned_for:?}: new leader {new_leader} after \
         {to_new_leader:?}; isolated member without quorum after {to_no_quorum:?}; marked down \
         at the majority after {to_down:?} (its server gone after {to_server_gone:?}); \
         heal -> converged (leader {leader_after}) after {to_converged:?}; total {:?}",
        started.elapsed()
    );
}

/// The safety invariants that hold at every moment of the partition.
#[derive(Debug)]
struct Watch {
    isolated: usize,
    /// The isolated member's last_applied never exceeds this: at first what it had at the
    /// isolation plus what may have been in flight, then what it had on losing its quorum.
    applied_bound: Cell<u64>,
}

impl Watch {
    fn check(&self, members: &[Gcsd]) {
        let l = &members[self.isolated];
        let applied = last_applied(l);
        assert!(
            applied <= self.applied_bound.get(),
            "isolated member {} applied up to {applied} without a quorum (bound {})",
            l.id,
            self.applied_bound.get()
        );
        for g in members {
            let servers = g.servers();
            assert!(
                !servers.contains(&"db-new 3306".to_owned()),
                "the refused registration is listed at member {}: {servers:?}",
                g.id
            );
        }
        let servers = l.servers();
        assert!(
            !servers.contains(&"db-maj 3306".to_owned()),
            "the isolated member learnt a majority commit: {servers:?}"
        );
    }
}

/// `(member, server, status, role)`: a serverlist row without its times.
type Row = (String, String, String, String);

fn rows(g: &Gcsd) -> Vec<Row> {
    g.serverlist()
        .rows
        .iter()
        .map(|r| {
            (
                r.member.clone(),
                r.server.to_string(),
                r.status.as_str().to_owned(),
                r.role.as_str().to_owned(),
            )
        })
        .collect()
}

fn last_applied(g: &Gcsd) -> u64 {
    g.cluster()["last_applied"].as_u64().unwrap_or(0)
}

/// One member's record in a `/cluster` answer (`Null` if absent).
fn member(cluster: &Value, id: u64) -> Value {
    cluster["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["id"] == id))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The leader every member reports with quorum, if they all agree.
fn agreed_leader(members: &[Gcsd]) -> Option<u64> {
    let first = members[0].leader()?;
    members[1..]
        .iter()
        .all(|m| m.leader() == Some(first))
        .then_some(first)
}

/// Everyone has quorum and one leader, `rejoined` is up everywhere, every list is the same
/// and holds exactly `expected`; otherwise what is still missing. Panics as soon as any list
/// shows the refused registration `db-new`.
fn converged(members: &[Gcsd], rejoined: u64, expected: &[String]) -> Result<u64, String> {
    let lists: Vec<Vec<Row>> = members.iter().map(rows).collect();
    assert!(
        !lists.iter().flatten().any(|r| r.1 == "db-new 3306"),
        "the join refused with `6 No quorum` was committed after the heal: {lists:?}"
    );
    let leaders: Vec<Option<u64>> = members.iter().map(Gcsd::leader).collect();
    let leader = match leaders[0] {
        Some(l) if leaders.iter().all(|x| *x == Some(l)) => l,
        _ => {
            return Err(format!(
                "leaders (with quorum) at members 1..3: {leaders:?}"
            ))
        }
    };
    for g in members {
        let rec = member(&g.cluster(), rejoined);
        if rec["up"] != true {
            return Err(format!("member {rejoined} at member {}: {rec}", g.id));
        }
    }
    let servers: Vec<&str> = lists[0].iter().map(|r| r.1.as_str()).collect();
    if servers == expected && lists.iter().all(|l| *l == lists[0]) {
        Ok(leader)
    } else {
        Err(format!("serverlists at members 1..3: {lists:?}"))
    }
}

/// Like `wait_for`, and the timeout names the last reason for waiting.
fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(why) => assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; last: {why}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- the network ----

/// Three hosts (`Net`) with a gcsd in each. The members are dropped (killed) before the net
/// is torn down.
struct Lab {
    members: Vec<Gcsd>,
    net: Net,
}

impl Lab {
    fn start(tag: char) -> Self {
        let net = Net::new(tag);
        let mut members = vec![Gcsd::in_netns(1, &net.namespaces[0], &net.ips[0]).start()];
        for i in 1..3 {
            let m = Gcsd::in_netns(i as u64 + 1, &net.namespaces[i], &net.ips[i])
                .joining(&members[0])
                .start();
            members.push(m);
        }
        wait_for(
            "3 voters and one leader at every member",
            Duration::from_secs(20),
            || {
                (members.iter().all(|m| m.voters() == 3) && agreed_leader(&members).is_some())
                    .then_some(())
            },
        );
        Lab { members, net }
    }

    fn isolate(&mut self, i: usize) {
        self.net.isolate(i);
    }

    fn heal(&mut self) {
        self.net.heal();
    }
}

// ---- heartbeats ----

/// What one heartbeat thread saw.
#[derive(Debug, Default)]
struct HeartbeatStats {
    ok: u32,
    no_quorum: u32,
    /// Connection failures and timeouts (then it reconnects).
    errors: u32,
    /// Any other reply (the first few).
    other: Vec<String>,
}

/// One thread per server sending `heartbeat` every 500 ms on a persistent connection to its
/// member's plugin port, reconnecting after any error, until stopped.
struct Heartbeats {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<HeartbeatStats>>,
}

impl Heartbeats {
    fn start(targets: Vec<(SocketAddr, String)>) -> Self {
        let mut hb = Self {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        for (addr, line) in targets {
            hb.add(addr, line);
        }
        hb
    }

    fn add(&mut self, addr: SocketAddr, line: String) {
        let stop = self.stop.clone();
        self.threads.push(std::thread::spawn(move || {
            heartbeat_loop(addr, &line, &stop)
        }));
    }

    fn stop(mut self) -> Vec<HeartbeatStats> {
        self.stop.store(true, Ordering::Relaxed);
        std::mem::take(&mut self.threads)
            .into_iter()
            .map(|t| t.join().expect("heartbeat thread"))
            .collect()
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn heartbeat_loop(addr: SocketAddr, line: &str, stop: &AtomicBool) -> HeartbeatStats {
    let mut stats = HeartbeatStats::default();
    let mut conn: Option<(BufReader<TcpStream>, TcpStream)> = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                .and_then(|s| {
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    s.set_write_timeout(Some(Duration::from_secs(2)))?;
                    Ok((BufReader::new(s.try_clone()?), s))
                })
                .ok();
        }
        match conn.as_mut() {
            None => stats.errors += 1,
            Some((reader, writer)) => {
                let mut reply = String::new();
                let answered = writer.write_all(format!("{line}\n").as_bytes()).is_ok()
                    && reader.read_line(&mut reply).is_ok_and(|n| n > 0);
                if !answered {
                    stats.errors += 1;
                    conn = None;
                } else if reply == "0 OK\n" {
                    stats.ok += 1;
                } else if reply.starts_with("6 No quorum") {
                    stats.no_quorum += 1;
                } else if stats.other.len() < 5 {
                    stats.other.push(reply);
                }
            }
        }
        let slept = Instant::now();
        while slept.elapsed() < Duration::from_millis(500) && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    stats
}
