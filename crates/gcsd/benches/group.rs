//! Group benchmark on loopback: three release-built gcsd processes.
//!
//! Prints commit latency of a status change (at the leader and through a follower),
//! propagation from one member's plugin port to another member's subscription, each member's
//! RSS, and idle CPU; then the same commits in a second group whose members talk mutual TLS,
//! interleaved with the first group's, and the ratio. Run: `cargo bench -p gcsd --bench group`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{start_group, Gcsd};

const SAMPLES: usize = 400;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what:<48} n={:<4} p50={:>7.3} ms  p99={:>7.3} ms  max={:>7.3} ms",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
    );
}

/// Status changes on one connection, each timed until its `0 OK` (sent after the commit).
fn commit_latency(m: &Gcsd, server: &str) -> Vec<Duration> {
    let mut c = m.connect();
    assert_eq!(c.cmd(&format!("join {server} on master")), "0 OK\n");
    (0..SAMPLES)
        .map(|i| {
            let status = if i % 2 == 0 { "standby" } else { "on" };
            let t = Instant::now();
            assert_eq!(c.cmd(&format!("heartbeat {server} {status}")), "0 OK\n");
            t.elapsed()
        })
        .collect()
}

/// A status change sent at `from` until `to`'s subscription pushes a list showing it.
fn propagation(from: &Gcsd, to: &Gcsd) -> Vec<Duration> {
    let mut sender = from.connect();
    assert_eq!(sender.cmd("join prop-db 3306 on master"), "0 OK\n");
    let mut sub = to.connect();
    assert_eq!(sub.cmd("subscribe"), "0 OK\n");
    let status_of = |list: &proto::ServerList| {
        list.rows
            .iter()
            .find(|r| r.server.host == "prop-db")
            .map(|r| r.status.as_str())
    };
    while status_of(&sub.read_block()) != Some("on") {}
    (0..SAMPLES)
        .map(|i| {
            let status = if i % 2 == 0 { "standby" } else { "on" };
            let t = Instant::now();
            sender.send(format!("heartbeat prop-db 3306 {status}\n").as_bytes());
            while status_of(&sub.read_block()) != Some(status) {}
            let took = t.elapsed();
            assert_eq!(sender.read_line(), "0 OK\n");
            took
        })
        .collect()
}

/// Commit latency at a follower of the plaintext group and of the TLS group, measured in
/// alternating rounds (so that both see the same machine load); p50 and p99 of each, and the
/// ratio of the TLS figures to the plaintext ones.
fn tls_ratio(plain: &[Gcsd], tls: &[Gcsd]) {
    let follower = |g: &[Gcsd]| {
        let leader = common::wait_for("a leader", Duration::from_secs(10), || g[0].leader());
        (leader as usize) % 3
    };
    let (p, t) = (follower(plain), follower(tls));
    let mut plain_samples = Vec::new();
    let mut tls_samples = Vec::new();
    for round in 0..8 {
        plain_samples.extend(commit_latency(&plain[p], &format!("ratio-p{round} 3306")));
        tls_samples.extend(commit_latency(&tls[t], &format!("ratio-t{round} 3306")));
    }
    plain_samples.sort();
    tls_samples.sort();
    let ratio = |q: f64| {
        percentile(&tls_samples, q).as_secs_f64() / percentile(&plain_samples, q).as_secs_f64()
    };
    report(
        "commit latency at a follower, plaintext",
        plain_samples.clone(),
    );
    report(
        "commit latency at a follower, mutual TLS",
        tls_samples.clone(),
    );
    println!(
        "TLS / plaintext, interleaved rounds: p50 {:.2}x  p99 {:.2}x",
        ratio(0.50),
        ratio(0.99)
    );
}

fn proc_field(pid: i32, file: &str, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// utime + stime in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn main() {
    // `cargo bench` passes --bench; anything else (cargo test --benches) just checks it builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let g = start_group(3, |m| m);
    let leader =
        common::wait_for("a leader", Duration::from_secs(10), || g[0].leader()) as usize - 1;
    let follower = (leader + 1) % 3;
    let third = (leader + 2) % 3;
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().unwrap(),
        proc_field(std::process::id() as i32, "../cpuinfo", "model name\t:")
    );

    report(
        "commit latency, status change at the leader",
        commit_latency(&g[leader], "lat-l 3306"),
    );
    report(
        "commit latency, status change at a follower",
        commit_latency(&g[follower], "lat-f 3306"),
    );
    report(
        "propagation, follower A -> subscription at C",
        propagation(&g[follower], &g[third]),
    );

    // Idle: leave only heartbeats that change nothing, as a live plugin would send.
    let mut keep = g[follower].connect();
    let idle = Duration::from_secs(10);
    let before: Vec<u64> = g.iter().map(|m| cpu_ticks(m.pid())).collect();
    let t = Instant::now();
    while t.elapsed() < idle {
        assert!(keep.cmd("heartbeat prop-db 3306 on").starts_with("0 "));
        std::thread::sleep(Duration::from_secs(1));
    }
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    for (m, b) in g.iter().zip(before) {
        let cpu = (cpu_ticks(m.pid()) - b) as f64 / ticks_per_sec / t.elapsed().as_secs_f64();
        println!(
            "gcsd {} ({}): RSS {}, idle CPU {:.2} % of a core",
            m.id,
            if m.id as usize - 1 == leader {
                "leader"
            } else {
                "follower"
            },
            proc_field(m.pid(), "status", "VmRSS:"),
            cpu * 100.0
        );
    }
    drop(keep);

    let tls = start_group(3, Gcsd::with_tls);
    tls_ratio(&g, &tls);
}
