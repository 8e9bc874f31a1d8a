//! Floods against one member, with real processes. Its plugin port, asked for a large serverlist
//! over many connections as fast as they are served, must not starve its Raft: no election, no
//! member marked down, and changes through the others still commit. Its group port, held by
//! connections from another host that never introduce themselves, must not keep members out.
//!
//! The two take turns: each saturates the machine's two cores on purpose.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::netns::Net;
use common::{start_group, wait_for, Gcsd};

const WAIT: Duration = Duration::from_secs(15);
const FLOOD: Duration = Duration::from_secs(10);
/// Servers in the flooded list (one member registers at most 1,000).
const SERVERS: usize = 800;

static SERIAL: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What every member's Raft says: its term, and the leader it follows.
fn terms_and_leaders(g: &[Gcsd]) -> Vec<(u64, Option<u64>)> {
    g.iter()
        .map(|m| (m.metric("gcsd_raft_term") as u64, m.leader()))
        .collect()
}

fn members_down(m: &Gcsd) -> u64 {
    m.metric("gcsd_members{state=\"down\"}") as u64
}

/// Percentile `p` (0 to 100) of `samples`, sorted in place.
fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    samples[(samples.len() - 1) * p / 100]
}

/// Joins (then leaves) `name-<i>` through `m` until `stop`; returns each change's time to
/// `0 OK`, and panics on any other reply.
fn commit_latencies(m: &Gcsd, name: &str, stop: &AtomicBool) -> Vec<Duration> {
    let mut c = m.connect();
    let mut took = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        for line in [
            format!("join {name}-{i} 3306 on slave"),
            format!("leave {name}-{i} 3306"),
        ] {
            let start = Instant::now();
            assert_eq!(c.cmd(&line), "0 OK\n", "{line} at member {}", m.id);
            took.push(start.elapsed());
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    took
}

/// `connections` clients of `addr`, each asking for `serverlist` 20 at a time and reading the
/// blocks, until `stop`. Returns how many lists they were sent.
fn flood_serverlists(addr: SocketAddr, connections: usize, stop: Arc<AtomicBool>) -> u64 {
    let served = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (stop, served) = (stop.clone(), served.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("plugin port");
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut buf = vec![0u8; 256 * 1024];
                let mut last = 0u8;
                while !stop.load(Ordering::Relaxed) {
                    s.write_all("serverlist\n".repeat(20).as_bytes()).unwrap();
                    // A block ends with an empty line: count "\n\n", across reads too.
                    let mut blocks = 0;
                    while blocks < 20 {
                        let n = s.read(&mut buf).expect("a serverlist");
                        assert!(n > 0, "gcsd closed a flooding connection");
                        for &b in &buf[..n] {
                            if b == b'\n' && last == b'\n' {
                                blocks += 1;
                            }
                            last = b;
                        }
                    }
                    served.fetch_add(20, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    served.load(Ordering::Relaxed)
}

/// The leader's plugin port flooded with requests for an 800-server list (about 190 KB each):
/// 64 connections, each paced to 50 commands a second. Raft runs on its own runtime, so the
/// group keeps its leader and term, nobody is marked down, and changes through a follower and
/// through the flooded leader itself still commit.
#[test]
fn plugin_flood_does_not_disturb_raft() {
    let _turn = one_at_a_time();
    let g = start_group(3, |m| m.with_config("server_ttl_secs = 3600"));
    let leader = wait_for("a leader", WAIT, || g[0].leader()) as usize - 1;
    let follower = (leader + 1) % 3;
    let mut c = g[leader].connect();
    let host = |i: usize| format!("flood-{i:04}-{}", "h".repeat(180));
    let fill = Instant::now();
    std::thread::scope(|s| {
        for part in 0..4 {
            let m = &g[leader];
            s.spawn(move || {
                let mut c = m.connect();
                for i in (part..SERVERS).step_by(4) {
                    assert_eq!(c.cmd(&format!("join {} 3306 on slave", host(i))), "0 OK\n");
                }
            });
        }
    });
    wait_for("every server at every member", WAIT, || {
        g.iter()
            .all(|m| m.serverlist().rows.len() == SERVERS)
            .then_some(())
    });
    eprintln!("{SERVERS} servers registered in {:?}", fill.elapsed());
    assert_eq!(c.cmd("quit"), "0 Bye\n");

    // Quiet: commit latency through the follower and the leader.
    let quiet = AtomicBool::new(false);
    let stop_quiet = || {
        std::thread::sleep(Duration::from_secs(3));
        quiet.store(true, Ordering::Relaxed);
    };
    let (mut quiet_follower, mut quiet_leader) = std::thread::scope(|s| {
        let f = s.spawn(|| commit_latencies(&g[follower], "quiet-f", &quiet));
        let l = s.spawn(|| commit_latencies(&g[leader], "quiet-l", &quiet));
        stop_quiet();
        (f.join().unwrap(), l.join().unwrap())
    });

    let before = terms_and_leaders(&g);
    let rss_before = common::rss_kb(g[leader].pid());
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let (addr, stop) = (g[leader].plugin, stop.clone());
        std::thread::spawn(move || flood_serverlists(addr, 64, stop))
    };
    let flooding = AtomicBool::new(false);
    let (mut loud_follower, mut loud_leader, rss_peak, down_seen) = std::thread::scope(|s| {
        let f = s.spawn(|| commit_latencies(&g[follower], "loud-f", &flooding));
        let l = s.spawn(|| commit_latencies(&g[leader], "loud-l", &flooding));
        let started = Instant::now();
        let (mut rss_peak, mut down_seen) = (0, 0);
        while started.elapsed() < FLOOD {
            rss_peak = rss_peak.max(common::rss_kb(g[leader].pid()));
            down_seen = down_seen.max(members_down(&g[follower]));
            std::thread::sleep(Duration::from_millis(200));
        }
        flooding.store(true, Ordering::Relaxed);
        (f.join().unwrap(), l.join().unwrap(), rss_peak, down_seen)
    });
    stop.store(true, Ordering::Relaxed);
    let served = flood.join().unwrap();
    let after = terms_and_leaders(&g);

    let show = |what: &str, quiet: &mut [Duration], loud: &mut [Duration]| {
        eprintln!(
            "commit through the {what}: quiet p50 {:?} p99 {:?} ({} changes); flooded p50 {:?} p99 {:?} ({} changes)",
            percentile(quiet, 50),
            percentile(quiet, 99),
            quiet.len(),
            percentile(loud, 50),
            percentile(loud, 99),
            loud.len()
        );
    };
    eprintln!(
        "flood: {served} serverlists of {SERVERS} servers in {FLOOD:?} ({:.0}/s); leader RSS {rss_before} kB before, {rss_peak} kB at most",
        served as f64 / FLOOD.as_secs_f64()
    );
    show("follower", &mut quiet_follower, &mut loud_follower);
    show("flooded leader", &mut quiet_leader, &mut loud_leader);
    assert_eq!(before, after, "an election happened during the flood");
    assert_eq!(down_seen, 0, "a member was marked down during the flood");
    assert!(served > 1000, "the flood was served too: {served}");
    assert!(!loud_follower.is_empty() && !loud_leader.is_empty());
}

/// Member a's group port held by a flood from another host (the test's address on the bridge):
/// connections that never say hello, or send half a frame, as fast as they are closed. Its
/// admission limits (64 pending, 8 per source) keep room for members: the group keeps its
/// leader and term, commits through a, and a follower restarted during the flood is let in.
#[test]
fn group_port_flood_keeps_no_member_out() {
    let _turn = one_at_a_time();
    let net = Net::new('f');
    let mut g = vec![Gcsd::in_netns(1, &net.namespaces[0], &net.ips[0]).start()];
    for i in 1..3 {
        let m = Gcsd::in_netns(i as u64 + 1, &net.namespaces[i], &net.ips[i])
            .joining(&g[0])
            .start();
        g.push(m);
    }
    wait_for("3 voters at every member", Duration::from_secs(20), || {
        g.iter().all(|m| m.voters() == 3).then_some(())
    });
    let target = g[0].group;
    let before = terms_and_leaders(&g);

    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..8)
        .map(|t| {
            let (stop, attempts) = (stop.clone(), attempts.clone());
            std::thread::spawn(move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut s) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        // Half of them start a frame of 1 MB and stop.
                        if t % 2 == 1 {
                            s.write_all(&(1u32 << 20).to_be_bytes()).ok();
                        }
                        held.push(s);
                    }
                    if held.len() > 100 {
                        held.remove(0);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();

    // During the flood: changes through the flooded member commit, and member c, restarted,
    // is let back in and catches up.
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..10 {
        assert_eq!(
            g[0].cmd(&format!("join flooded-{i} 3306 on slave")),
            "0 OK\n"
        );
    }
    // A follower other than a: restarting the leader would be an election of its own.
    let leader = before[0].1.expect("a leader") as usize - 1;
    let restarted = if leader == 2 { 1 } else { 2 };
    g[restarted].terminate(WAIT);
    g[restarted].launch();
    wait_for("the restarted member back, with every server", WAIT, || {
        (members_down(&g[0]) == 0 && g[restarted].servers().len() == 10).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    let busy = g[0].metric("gcsd_group_refused_total{reason=\"busy\"}");
    eprintln!(
        "group port flood: {} connections opened, {busy} refused as busy",
        attempts.load(Ordering::Relaxed)
    );
    assert!(busy > 0.0, "the flood did not reach the admission limit");
    assert_eq!(
        before,
        terms_and_leaders(&g),
        "an election happened during the flood"
    );
    drop(g);
    drop(net);
}
