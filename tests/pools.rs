//! Pools and failover with real components: three gcsd on loopback, real mariadbd servers with
//! the plugin, in MPP's setup (two servers in master-master GTID replication, a third a replica
//! of the ACTIVE), the pool declared with the real `gcsctl`. A sampler reads every server's
//! `@@read_only` every 10 ms through the whole test: at no sampled instant may two pool members
//! be writable.
//!
//! The tests take turns (six processes and replication on a 2-core machine are plenty).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::gcsd::netns::Net;
use common::gcsd::{free_port, gcsd_binary, start_group, wait_for, Gcsd};
use common::isis2is::*;
use common::mariadb::MariaDb;
use serde_json::Value;

const PROBE_PASSWORD: &str = "probe-secret";
const APP_PASSWORD: &str = "app-secret";
/// Failover, reinstatement and the like on a loaded 2-core CI box: generous, but far below
/// anything MPP managed (its fastest failover was 3.5 s, a hung server 24 s).
const WITHIN: Duration = Duration::from_secs(10);

static SERIAL: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Accounts and the application's table, on every server, outside the binary log.
const SETUP_SQL: &str = "
SET SESSION sql_log_bin = 0;
CREATE USER 'gcsd_probe'@'127.0.0.1' IDENTIFIED BY 'probe-secret';
GRANT SLAVE MONITOR, READ_ONLY ADMIN ON *.* TO 'gcsd_probe'@'127.0.0.1';
CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl-secret';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';
CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-secret';
CREATE DATABASE app;
CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, server INT NOT NULL);
GRANT INSERT, SELECT ON app.* TO 'app'@'127.0.0.1';
";

/// Three gcsd and `n` servers, server i registered through gcsd i (mod 3); on loopback, or
/// each gcsd and its servers in a network namespace of their own (`net`).
pub struct Lab {
    pub dbs: Vec<MariaDb>,
    pub gcsds: Vec<Gcsd>,
    _secrets: tempfile::TempDir,
    /// Torn down last, once the processes in it are gone.
    pub net: Option<Net>,
}

impl Lab {
    pub fn start(n: usize) -> Lab {
        Lab::build(n, "", &[])
    }

    /// `n` servers; `probe` is appended to every gcsd's `[probe]` section.
    pub fn start_with(n: usize, probe: &str) -> Lab {
        Lab::build(n, probe, &[])
    }

    /// `n` servers, server i owned by gcsd i (mod 3): through the plugin, or for the servers in
    /// `without_plugin`, listed in that gcsd's `[probe] servers`. `probe` is appended to every
    /// gcsd's `[probe]` section.
    pub fn build(n: usize, probe: &str, without_plugin: &[usize]) -> Lab {
        Lab::assemble(n, probe, without_plugin, None, false, &|_, _| String::new())
    }

    /// `n` servers; `member(gcsd, servers)` goes into that gcsd's config (top-level keys first,
    /// then any sections; `[probe]` follows), given every server's `host:port`.
    pub fn with_member_config(n: usize, member: &dyn Fn(&Gcsd, &[String]) -> String) -> Lab {
        Lab::assemble(n, "", &[], None, false, member)
    }

    /// Three hosts as network namespaces (`tag` names them), gcsd i and server i in host i.
    pub fn in_netns(n: usize, tag: char) -> Lab {
        Lab::assemble(n, "", &[], Some(Net::new(tag)), false, &|_, _| {
            String::new()
        })
    }

    /// [`Lab::in_netns`], with every server's socket in every gcsd's `[probe] fence_sockets`
    /// (each gcsd must pick its own server's by port and server_id).
    pub fn in_netns_fencing_over_sockets(n: usize, tag: char) -> Lab {
        Lab::assemble(n, "", &[], Some(Net::new(tag)), true, &|_, _| String::new())
    }

    fn assemble(
        n: usize,
        probe: &str,
        without_plugin: &[usize],
        net: Option<Net>,
        fence_sockets: bool,
        member: &dyn Fn(&Gcsd, &[String]) -> String,
    ) -> Lab {
        use std::os::unix::fs::PermissionsExt;
        let secrets = tempfile::tempdir().unwrap();
        let pw = secrets.path().join("probe.password");
        std::fs::write(&pw, format!("{PROBE_PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let host = |i: usize| {
            net.as_ref()
                .map_or("127.0.0.1".to_owned(), |n| n.ips[i % 3].clone())
        };
        let dbs: Vec<MariaDb> = (0..n)
            .map(|i| match &net {
                None => MariaDb::new(),
                Some(net) => MariaDb::new()
                    .with_wrapper(&["ip", "netns", "exec", &net.namespaces[i % 3]])
                    .listening_on(&host(i)),
            })
            .collect();
        let owned = |id: u64| -> Vec<String> {
            without_plugin
                .iter()
                .filter(|&&i| (i % 3) as u64 + 1 == id)
                .map(|&i| format!("\"{}:{}\"", host(i), dbs[i].port))
                .collect()
        };
        let probe = if fence_sockets {
            let sockets: Vec<String> = dbs.iter().map(|d| format!("{:?}", d.socket)).collect();
            format!("{probe}\nfence_sockets = [{}]", sockets.join(", "))
        } else {
            probe.to_owned()
        };
        let configure = |g: Gcsd| {
            let servers = owned(g.id).join(", ");
            let (lb_port, agent_port) = match g.netns {
                Some(_) => (2290, 2291),
                None => (free_port(), free_port()),
            };
            let addrs: Vec<String> = (0..n)
                .map(|i| format!("{}:{}", host(i), dbs[i].port))
                .collect();
            let member = member(&g, &addrs);
            let ip = g.ip.clone();
            g.with_config(&format!(
                "lb_listen = \"{ip}:{lb_port}\"\nagent_check_listen = \"{ip}:{agent_port}\"\n{member}\n\
                 [probe]\nuser = \"gcsd_probe\"\npassword_file = {pw:?}\nservers = [{servers}]\n{probe}\n"
            ))
        };
        let gcsds = match &net {
            None => start_group(3, configure),
            Some(net) => {
                let mut members =
                    vec![configure(Gcsd::in_netns(1, &net.namespaces[0], &net.ips[0])).start()];
                for i in 1..3 {
                    let m = Gcsd::in_netns(i as u64 + 1, &net.namespaces[i], &net.ips[i])
                        .joining(&members[0]);
                    members.push(configure(m).start());
                }
                wait_for("3 voters and a leader at every member", WITHIN * 2, || {
                    members
                        .iter()
                        .all(|m| m.voters() == 3 && m.leader().is_some())
                        .then_some(())
                });
                members
            }
        };
        let dbs: Vec<MariaDb> = dbs
            .into_iter()
            .enumerate()
            .map(|(i, db)| {
                let g = &gcsds[i % 3];
                let db = if without_plugin.contains(&i) {
                    db
                } else {
                    with_plugin(db, g.plugin.port())
                        .with_option(format!("--isis2d-daemon-host={}", g.plugin.ip()))
                        .with_option(format!("--isis2d-mysql-host={}", host(i)))
                };
                db.with_option(format!("--server-id={}", i + 1))
                    .with_option("--log-bin=binlog")
                    .with_option("--log-slave-updates")
                    // Every pool member starts fenced; gcsd makes the ACTIVE writable.
                    .with_option("--read-only=ON")
                    // Master-master without key collisions, as MPP's setup had it.
                    .with_option(format!("--auto-increment-increment={n}"))
                    .with_option(format!("--auto-increment-offset={}", i + 1))
                    .start()
            })
            .collect();
        // On loopback every client comes from 127.0.0.1; between hosts, from anywhere.
        let setup = if net.is_some() {
            SETUP_SQL.replace("@'127.0.0.1'", "@'%'")
        } else {
            SETUP_SQL.to_owned()
        };
        for db in &dbs {
            db.sql(&setup).unwrap();
        }
        Lab {
            dbs,
            gcsds,
            _secrets: secrets,
            net,
        }
    }

    /// MPP's setup: servers 0 and 1 in master-master replication, any others replicas of 0;
    /// the sampler watching 0 and 1; the pool `app` of 0 (PRIMARY) and 1 declared through
    /// gcsd `via`; returns once 0 is ACTIVE and writable.
    pub fn with_pool(self, via: usize) -> (Lab, Sampler) {
        self.replicate(1, 0);
        self.replicate(0, 1);
        for i in 2..self.dbs.len() {
            self.replicate(i, 0);
        }
        let sampler = Sampler::start(vec![self.endpoint(0), self.endpoint(1)]);
        let (p, s) = (self.addr(0), self.addr(1));
        self.gcsctl_ok(
            via,
            &["pool", "init", "app", "--primary", &p, "--secondary", &s],
        );
        self.wait_state("app", 0, "ACTIVE", &[0, 1, 2]);
        wait_for("the ACTIVE to be writable", WITHIN, || {
            (!self.read_only(0)).then_some(())
        });
        (self, sampler)
    }

    /// Server `replica` replicates from server `source` (GTID).
    pub fn replicate(&self, replica: usize, source: usize) {
        self.dbs[replica]
            .sql(&format!(
                "CHANGE MASTER TO MASTER_HOST='{}', MASTER_PORT={}, MASTER_USER='repl', \
                 MASTER_PASSWORD='repl-secret', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; \
                 START SLAVE",
                self.dbs[source].host, self.dbs[source].port
            ))
            .unwrap();
    }

    pub fn addr(&self, i: usize) -> String {
        format!("{}:{}", self.dbs[i].host, self.dbs[i].port)
    }

    /// Waits until server `i`'s replica threads both run (after a restart of it or of its
    /// source, the IO thread reconnects only every `MASTER_CONNECT_RETRY`, 1 s here).
    pub fn wait_replicating(&self, i: usize) {
        wait_for(&format!("server {i} to replicate"), WITHIN, || {
            let status = self.dbs[i].sql("SHOW SLAVE STATUS").ok()?;
            let row = status.first()?;
            (row.get(10)? == "Yes" && row.get(11)? == "Yes").then_some(())
        });
    }

    /// The address gcsd `m` listens on for `key` (`lb_listen`, `agent_check_listen`).
    pub fn listen(&self, m: usize, key: &str) -> String {
        let prefix = format!("{key} = \"");
        self.gcsds[m]
            .extra_config
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_else(|| panic!("every lab gcsd has {key}"))
            .to_owned()
    }

    /// An agent-check at gcsd `m`, as HAProxy makes it: `line` sent, one reply line read.
    pub fn agent_check(&self, m: usize, line: &[u8]) -> String {
        use std::io::{Read, Write};
        let addr = self.listen(m, "agent_check_listen");
        let mut conn = std::net::TcpStream::connect(&addr).expect("agent_check_listen answers");
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.write_all(line).unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        reply
    }

    /// A health check at gcsd `m`'s `lb_listen`: (HTTP status, body).
    pub fn lb_check(&self, m: usize, path: &str) -> (u16, String) {
        let addr = self.listen(m, "lb_listen");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent
            .get(&format!("http://{addr}{path}"))
            .call()
            .expect("lb_listen answers");
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    }

    /// Where server `i` listens: (host, port).
    pub fn endpoint(&self, i: usize) -> (String, u16) {
        (self.dbs[i].host.clone(), self.dbs[i].port)
    }

    pub fn gcsctl(&self, member: usize, args: &[&str]) -> Output {
        let exe = gcsd_binary().with_file_name("gcsctl");
        Command::new(exe)
            .arg("--gcsd")
            .arg(self.gcsds[member].admin.to_string())
            .arg("--token-file")
            .arg(self.gcsds[member].token_file())
            .args(args)
            .output()
            .expect("run gcsctl")
    }

    /// Runs gcsctl and panics unless it succeeds; returns its stdout.
    pub fn gcsctl_ok(&self, member: usize, args: &[&str]) -> String {
        let out = self.gcsctl(member, args);
        assert!(
            out.status.success(),
            "gcsctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `GET /pools` of member `m`.
    pub fn pools(&self, m: usize) -> Value {
        let (status, body) = self.gcsds[m].http_get("/pools");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// (state, status) of server `i` in `pool`, as member `m` reports it.
    pub fn verdict(&self, m: usize, pool: &str, i: usize) -> (String, String) {
        let pools = self.pools(m);
        let server = pools["pools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == pool)
            .and_then(|p| {
                p["servers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["server"] == self.addr(i))
                    .cloned()
            })
            .unwrap_or_else(|| panic!("{} not in pool {pool}: {pools}", self.addr(i)));
        (
            server["state"].as_str().unwrap().to_owned(),
            server["status"].as_str().unwrap_or("").to_owned(),
        )
    }

    /// Waits until every live member reports server `i`'s state in `pool` as `state`.
    /// On timeout, the panic shows what the members report (the gcsd logs follow it).
    pub fn wait_state(&self, pool: &str, i: usize, state: &str, members: &[usize]) {
        let started = Instant::now();
        while !members.iter().all(|&m| self.verdict(m, pool, i).0 == state) {
            if started.elapsed() > WITHIN {
                let reports: Vec<String> = members
                    .iter()
                    .map(|&m| format!("member {}: {}", m + 1, self.pools(m)))
                    .collect();
                panic!(
                    "timed out after {WITHIN:?} waiting for {} to be {state} in {pool}:\n{}",
                    self.addr(i),
                    reports.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn read_only(&self, i: usize) -> bool {
        self.dbs[i].query_one("SELECT @@global.read_only") == "1"
    }

    /// An application's write: as a normal user, over TCP.
    pub fn app_insert(&self, i: usize) -> Result<(), String> {
        self.dbs[i]
            .sql_as(
                "app",
                APP_PASSWORD,
                &format!("INSERT INTO app.t (server) VALUES ({})", i + 1),
            )
            .map(|_| ())
    }
}

/// How the application user reaches the server at `host:port`.
fn app_opts(host: &str, port: u16) -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some("app"))
        .pass(Some(APP_PASSWORD))
        .prefer_socket(false)
        .max_allowed_packet(Some(1 << 20))
        .wait_timeout(Some(60))
}

/// Samples `@@read_only` of the given servers every 10 ms on its own thread, as the
/// application user over TCP, and counts the instants at which two or more were writable. A
/// server that does not answer within 30 ms counts as not writable at that instant (it cannot
/// take the application's writes either).
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u64, Vec<String>)>>,
}

impl Sampler {
    pub fn start(servers: Vec<(String, u16)>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(sample(servers, flag))
        });
        Sampler {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops, and fails the test if two pool members were ever writable at once.
    pub fn assert_never_two_writable(self) {
        let (samples, double) = self.finish();
        assert!(samples > 0, "the sampler took no sample");
        assert!(
            double.is_empty(),
            "two writable pool members at: {double:?}"
        );
    }

    /// Stops; returns how many samples were taken and the instants with two writable.
    pub fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

async fn sample(servers: Vec<(String, u16)>, stop: Arc<AtomicBool>) -> (u64, Vec<String>) {
    use mysql_async::prelude::Queryable;
    let opts = |(host, port): &(String, u16)| app_opts(host, *port);
    let bound = Duration::from_millis(30);
    let mut conns: Vec<Option<mysql_async::Conn>> = servers.iter().map(|_| None).collect();
    let started = Instant::now();
    let mut samples = 0;
    let mut double = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut writable = Vec::new();
        for (i, server) in servers.iter().enumerate() {
            if conns[i].is_none() {
                if let Ok(Ok(c)) =
                    tokio::time::timeout(bound, mysql_async::Conn::new(opts(server))).await
                {
                    conns[i] = Some(c);
                }
            }
            let Some(conn) = conns[i].as_mut() else {
                continue;
            };
            match tokio::time::timeout(
                bound,
                conn.query_first::<u8, _>("SELECT @@global.read_only"),
            )
            .await
            {
                Ok(Ok(Some(0))) => writable.push(server.1),
                Ok(Ok(_)) => {}
                _ => conns[i] = None,
            }
        }
        samples += 1;
        if writable.len() > 1 {
            double.push(format!("{:?}: {writable:?} writable", started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (samples, double)
}

/// The whole life of a pool: instatement, `kill -9` of the ACTIVE, failover with fencing, the
/// crash `off` at once in every list, restart and `recover`, reinstatement as a planned
/// handover; then `switchover` and `activate-primary`. At no sampled instant are two pool
/// members writable.
#[test]
fn failover_after_kill9_and_reinstatement() {
    let _turn = one_at_a_time();
    let (mut lab, sampler) = Lab::start(3).with_pool(1);
    let (p, s) = (lab.addr(0), lab.addr(1));

    // Instatement: the PRIMARY became ACTIVE and writable; the SECONDARY stays read-only.
    assert!(lab.read_only(1), "the STANDBY is fenced");
    lab.app_insert(0)
        .expect("the application writes to the ACTIVE");
    let refused = lab.app_insert(1).unwrap_err();
    assert!(
        refused.contains("read-only") || refused.contains("READ-ONLY") || refused.contains("1290"),
        "{refused}"
    );
    let list = lab.gcsctl_ok(2, &["list"]);
    assert!(
        list.contains("PRIMARY instatement to ACTIVE complete."),
        "{list}"
    );
    assert_eq!(lab.gcsctl(0, &["is-active", &p]).status.code(), Some(0));
    assert_eq!(lab.gcsctl(0, &["is-active", &s]).status.code(), Some(1));

    // kill -9 of the ACTIVE: the SECONDARY takes over, writable, at once.
    let killed = Instant::now();
    lab.dbs[0].kill9();
    let mut off_after = None;
    let mut writable_after = None;
    wait_for("failover to the SECONDARY", WITHIN, || {
        if off_after.is_none()
            && try_isis2is(&lab.dbs[2])
                .unwrap_or_default()
                .iter()
                .any(|r| r.is_server(lab.dbs[0].port) && r.status.as_deref() == Some("off"))
        {
            off_after = Some(killed.elapsed());
        }
        if writable_after.is_none() && lab.app_insert(1).is_ok() {
            writable_after = Some(killed.elapsed());
        }
        (off_after.is_some() && writable_after.is_some()).then_some(())
    });
    eprintln!("kill -9: first write on the new ACTIVE after {writable_after:?}, off in ISIS2IS after {off_after:?}");
    lab.wait_state("app", 1, "ACTIVE", &[0, 1, 2]);
    lab.wait_state("app", 0, "FAILED_OFFLINE", &[0, 1, 2]);
    assert!(
        off_after.unwrap() < Duration::from_millis(2500),
        "the crash must show as off before the 3 s TTL would remove the row"
    );
    let list = lab.gcsctl_ok(0, &["list", "app"]);
    assert!(
        list.contains("FAILOVER: Taking over ACTIVE state."),
        "{list}"
    );
    // Every live server's ISIS2IS shows the same verdicts: one row per server and pool, the
    // replica outside the pool with NULL verdicts.
    let verdicts = |db: &MariaDb| -> Vec<String> {
        isis2is(db)
            .iter()
            .map(|r| {
                format!(
                    "{:?} {:?} {:?} {:?}",
                    r.port, r.mpp_pool, r.mpp_state, r.mpp_epoch
                )
            })
            .collect()
    };
    wait_for("the same verdicts in every ISIS2IS", WITHIN, || {
        let (a, b) = (verdicts(&lab.dbs[1]), verdicts(&lab.dbs[2]));
        (a == b && a.len() == 3).then_some(a)
    });
    let rows = isis2is(&lab.dbs[2]);
    let row = |port: u16| {
        rows.iter()
            .find(|r| r.is_server(port))
            .unwrap_or_else(|| panic!("no row for {port}:\n{}", show(&rows)))
    };
    let old = row(lab.dbs[0].port);
    assert_eq!(
        (
            old.status.as_deref(),
            old.mpp_state.as_deref(),
            old.mpp_type.as_deref()
        ),
        (Some("off"), Some("FAILED_OFFLINE"), Some("PRIMARY")),
        "{old}"
    );
    let new = row(lab.dbs[1].port);
    assert_eq!(
        (
            new.mpp_state.as_deref(),
            new.mpp_status.as_deref(),
            new.mpp_message.as_deref()
        ),
        (
            Some("ACTIVE"),
            Some("OK"),
            Some("FAILOVER: Taking over ACTIVE state.")
        ),
        "{new}"
    );
    assert!(new.mpp_epoch > Some(1), "{new}");
    let outside = row(lab.dbs[2].port);
    assert_eq!(
        (
            outside.mpp_pool.as_deref(),
            outside.mpp_state.as_deref(),
            outside.mpp_epoch
        ),
        (None, None, None),
        "{outside}"
    );

    // The old PRIMARY comes back: it stays FAILED until recovered, and fenced.
    lab.dbs[0].launch();
    wait_for("the FAILED PRIMARY to report recovery", WITHIN, || {
        lab.gcsctl_ok(1, &["report", &p])
            .contains("FAILED PRIMARY server is reporting recovery. Manual intervention required.")
            .then_some(())
    });
    assert!(lab.read_only(0));
    // Recover of a healthy server is refused and changes nothing.
    let out = lab.gcsctl(1, &["recover", &s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("is not FAILED (ACTIVE in app): nothing to recover"));

    // recover: the PRIMARY is reinstated by a planned handover.
    lab.gcsctl_ok(2, &["recover", &p]);
    lab.wait_state("app", 0, "ACTIVE", &[0, 1, 2]);
    wait_for("the reinstated PRIMARY to be writable", WITHIN, || {
        (!lab.read_only(0)).then_some(())
    });
    assert!(lab.read_only(1));
    lab.app_insert(0)
        .expect("writes go to the reinstated PRIMARY");

    // switchover and activate-primary: planned handovers, one ACTIVE throughout.
    let out = lab.gcsctl_ok(0, &["switchover", "app", "--to", &s]);
    assert!(out.contains("writes were unavailable for at most"), "{out}");
    assert!(!lab.read_only(1) && lab.read_only(0));
    lab.gcsctl_ok(0, &["activate-primary", "app"]);
    lab.wait_state("app", 0, "ACTIVE", &[0, 1, 2]);
    wait_for("the PRIMARY to be writable again", WITHIN, || {
        (!lab.read_only(0)).then_some(())
    });

    let history = lab.gcsctl_ok(1, &["history", "app"]);
    for needle in [
        "UNKNOWN -> STANDBY",
        "ACTIVE -> FAILED_OFFLINE",
        "STANDBY -> ACTIVE",
        "FAILED_OFFLINE -> UNKNOWN",
    ] {
        assert!(history.contains(needle), "{needle} missing in\n{history}");
    }
    let (samples, double) = sampler.finish();
    assert!(samples > 100, "the sampler ran ({samples} samples)");
    assert!(
        double.is_empty(),
        "two writable pool members at: {double:?}"
    );
}

fn signal(db: &MariaDb, sig: i32) {
    // SAFETY: kill(2) on a child the harness spawned and has not reaped.
    let sent = unsafe { libc::kill(db.pid(), sig) };
    assert_eq!(sent, 0, "signal {sig} to mariadbd");
}

/// A hung ACTIVE (SIGSTOP), without `kill_hung`: it is failed, but nobody is made writable while
/// it hangs (it could take writes the moment it resumes); when it resumes it is fenced at once,
/// and then the SECONDARY takes over. Never two writable.
#[test]
fn hung_active_is_fenced_when_it_resumes() {
    let _turn = one_at_a_time();
    let (lab, sampler) = Lab::start(2).with_pool(0);
    let p = lab.addr(0);

    signal(&lab.dbs[0], libc::SIGSTOP);
    lab.wait_state("app", 0, "FAILED_OFFLINE", &[0, 1, 2]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        lab.read_only(1),
        "nobody is made writable while the old ACTIVE may resume writing"
    );
    let list = lab.gcsctl_ok(1, &["list"]);
    assert!(
        list.contains(&format!("Waiting for {p} to be confirmed read-only")),
        "{list}"
    );

    signal(&lab.dbs[0], libc::SIGCONT);
    lab.wait_state("app", 1, "ACTIVE", &[0, 1, 2]);
    wait_for("the SECONDARY to be writable", WITHIN, || {
        (!lab.read_only(1)).then_some(())
    });
    assert!(lab.read_only(0), "the resumed server was fenced");
    sampler.assert_never_two_writable();
}

/// A hung ACTIVE with `kill_hung = true`: its own gcsd kills it (it is on that host), and the
/// SECONDARY takes over within about the time it takes to see it hung. Restarted, it is fenced
/// and FAILED until recovered.
#[test]
fn hung_active_is_killed_with_kill_hung() {
    let _turn = one_at_a_time();
    let (mut lab, sampler) = Lab::start_with(2, "kill_hung = true").with_pool(0);
    let p = lab.addr(0);

    let hung_at = Instant::now();
    signal(&lab.dbs[0], libc::SIGSTOP);
    wait_for("the SECONDARY to take writes", WITHIN, || {
        lab.app_insert(1).ok()
    });
    eprintln!(
        "SIGSTOP of the ACTIVE: first write on the SECONDARY after {:?}",
        hung_at.elapsed()
    );
    let log = lab.gcsds[0].log();
    assert!(
        log.contains("hung and perhaps writable: killing it"),
        "{log}"
    );
    lab.dbs[0].kill9(); // reaps what gcsd killed
    lab.dbs[0].launch();
    assert!(lab.read_only(0), "a restarted pool member starts fenced");
    wait_for("the old ACTIVE to report recovery", WITHIN, || {
        lab.gcsctl_ok(2, &["report", &p])
            .contains("reporting recovery")
            .then_some(())
    });
    assert_eq!(lab.verdict(2, "app", 0).0, "FAILED_OFFLINE");
    sampler.assert_never_two_writable();
}

/// A server without the plugin (here a MariaDB without it; MySQL 8.x would be the same) is a
/// pool member through `[probe] servers`: its gcsd registers it while it answers, probes and
/// fences it, and every server with the plugin lists it; it takes over like any other.
#[test]
fn a_server_without_the_plugin_is_owned_through_probe_servers() {
    let _turn = one_at_a_time();
    let lab = Lab::build(2, "", &[1]);
    wait_for("the plugin-less server to be listed", WITHIN, || {
        try_isis2is(&lab.dbs[0])
            .ok()?
            .iter()
            .any(|r| {
                r.is_server(lab.dbs[1].port)
                    && r.status.as_deref() == Some("on")
                    && r.member.as_deref() == Some("gcsd2")
            })
            .then_some(())
    });
    let (mut lab, sampler) = lab.with_pool(0);
    lab.wait_state("app", 1, "STANDBY", &[0, 1, 2]);
    wait_for("its role to follow its replication", WITHIN, || {
        try_isis2is(&lab.dbs[0])
            .ok()?
            .iter()
            .any(|r| r.is_server(lab.dbs[1].port) && r.role.as_deref() == Some("slave"))
            .then_some(())
    });
    lab.dbs[0].kill9();
    lab.wait_state("app", 1, "ACTIVE", &[0, 1, 2]);
    wait_for("the plugin-less server to be writable", WITHIN, || {
        lab.app_insert(1).ok()
    });
    sampler.assert_never_two_writable();
}

/// A pool of three: the third server replicates from the PRIMARY; after the PRIMARY's crash
/// the SECONDARY takes over (priority order), and the third, still replicating from the dead
/// server, is judged against the new ACTIVE and fails; re-pointed and recovered, it is a STANDBY
/// again. Then MPP's manual mode: `pause`, `set` of a status and of the ACTIVE, `resume`.
#[test]
fn a_three_server_pool_and_manual_verdicts() {
    let _turn = one_at_a_time();
    let (mut lab, sampler) = Lab::start(3).with_pool(0);
    let (p, s, t) = (lab.addr(0), lab.addr(1), lab.addr(2));
    lab.gcsctl_ok(0, &["pool", "set", "app", &format!("members={p},{s},{t}")]);
    lab.wait_state("app", 2, "STANDBY", &[0, 1, 2]);

    lab.dbs[0].kill9();
    lab.wait_state("app", 1, "ACTIVE", &[0, 1, 2]);
    wait_for("the SECONDARY to be writable", WITHIN, || {
        lab.app_insert(1).ok()
    });
    lab.wait_state("app", 2, "FAILED_ONLINE", &[0, 1, 2]);
    let report = lab.gcsctl_ok(0, &["report", &t]);
    assert!(
        report.contains(&format!("not from the ACTIVE {s}")),
        "{report}"
    );
    lab.dbs[2].sql("STOP SLAVE; RESET SLAVE ALL").unwrap();
    lab.replicate(2, 1);
    lab.gcsctl_ok(0, &["recover", &t]);
    lab.wait_state("app", 2, "STANDBY", &[0, 1, 2]);

    // Manual mode.
    let out = lab.gcsctl(1, &["set", &t, "--pool", "app", "--state", "ACTIVE"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not paused"));
    lab.gcsctl_ok(1, &["pause", "app"]);
    let out = lab.gcsctl(1, &["pause", "app"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("paused already"));
    lab.gcsctl_ok(2, &["set", &t, "--pool", "app", "--status", "OK_WARN"]);
    let list = lab.gcsctl_ok(0, &["list", "app"]);
    assert!(list.contains("PAUSED"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.contains(&t) && l.contains("OK_WARN")),
        "{list}"
    );
    lab.gcsctl_ok(2, &["set", &t, "--pool", "app", "--state", "ACTIVE"]);
    lab.wait_state("app", 1, "STANDBY", &[0, 1, 2]);
    wait_for("the third server to be writable", WITHIN, || {
        lab.app_insert(2).ok()
    });
    assert!(lab.read_only(1), "the demoted ACTIVE is fenced");
    lab.gcsctl_ok(0, &["resume", "app"]);
    let list = lab.gcsctl_ok(0, &["list", "app"]);
    assert!(!list.contains("PAUSED"), "{list}");
    let history = lab.gcsctl_ok(0, &["history", "app"]);
    assert!(history.contains("Manually set to ACTIVE."), "{history}");
    sampler.assert_never_two_writable();
}

/// A planned handover to a server that cannot catch up (it applies with an hour's delay): it is
/// ACTIVE in the committed state but stays read-only (writes wait rather than get lost); after
/// `catch_up_timeout_ms` and `max_failures` probes it counts as failed and the pool fails back
/// to the old ACTIVE. Recovered and tried again with `hostile_takeover=on`, it takes writes
/// after `catch_up_timeout_ms`.
#[test]
fn a_handover_target_that_cannot_catch_up_and_hostile_takeover() {
    let _turn = one_at_a_time();
    let (lab, sampler) = Lab::start(2).with_pool(0);
    let s = lab.addr(1);
    lab.gcsctl_ok(0, &["pool", "set", "app", "catch_up_timeout_ms=300"]);
    lab.dbs[1]
        .sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 3600; START SLAVE")
        .unwrap();
    lab.app_insert(0).unwrap();
    // The command commits the handover; gcsctl would wait for read_only=OFF, so use the API.
    let switchover = || {
        let body = format!(r#"{{"op":"switchover","pool":"app","to":"{s}"}}"#);
        let (status, answer) = lab.gcsds[0].http("POST", "/pools", Some(&body));
        assert_eq!(status, 200, "{answer}");
    };
    switchover();
    lab.wait_state("app", 1, "ACTIVE", &[0, 1, 2]);
    assert!(
        lab.read_only(1),
        "a target that has not caught up is read-only"
    );
    // It does not catch up: the pool falls back to the old ACTIVE.
    lab.wait_state("app", 1, "FAILED_ONLINE", &[0, 1, 2]);
    lab.wait_state("app", 0, "ACTIVE", &[0, 1, 2]);
    wait_for("the old ACTIVE to take writes again", WITHIN, || {
        lab.app_insert(0).ok()
    });
    assert!(lab.read_only(1));
    let history = lab.gcsctl_ok(2, &["history", "app"]);
    assert!(
        history.contains("ACTIVE -> FAILED_ONLINE  epoch=")
            && history.contains("Did not catch up with its predecessor"),
        "{history}"
    );

    lab.gcsctl_ok(0, &["pool", "set", "app", "hostile_takeover=on"]);
    lab.gcsctl_ok(0, &["recover", &s]);
    lab.wait_state("app", 1, "STANDBY", &[0, 1, 2]);
    switchover();
    wait_for("the target to take writes", WITHIN, || {
        lab.app_insert(1).ok()
    });
    sampler.assert_never_two_writable();
}

/// Hosts as network namespaces. Isolating the ACTIVE's host (cut off from the other two; the
/// test still reaches it): its gcsd loses the quorum and fences its server by itself after
/// `fence_after_ms`; the majority commits that gcsd down after `member_timeout_ms`, and only
/// then promotes the SECONDARY. After healing there is one ACTIVE, and the old one is FAILED
/// until recovered. Never two writable.
#[test]
fn isolated_active_host_fences_itself_and_the_majority_takes_over() {
    let _turn = one_at_a_time();
    let (mut lab, sampler) = Lab::in_netns(2, 'i').with_pool(1);
    let agent = |lab: &Lab| lab.agent_check(0, b"primary pool=app\n");
    // Claimed as the writer once primary_hold_ms is over.
    wait_for("the ACTIVE's member to claim it", WITHIN, || {
        (lab.lb_check(0, "/primary").0 == 200 && agent(&lab).starts_with("up # ")).then_some(())
    });
    let isolated = Instant::now();
    lab.net.as_mut().expect("in namespaces").isolate(0);
    wait_for(
        "the isolated member to stop claiming the ACTIVE (HTTP and agent-check)",
        WITHIN,
        || {
            (lab.lb_check(0, "/primary").0 == 503 && agent(&lab).starts_with("down # "))
                .then_some(())
        },
    );
    let unclaimed_after = isolated.elapsed();
    wait_for("the isolated ACTIVE to fence itself", WITHIN, || {
        lab.read_only(0).then_some(())
    });
    let fenced_after = isolated.elapsed();
    assert!(
        unclaimed_after < Duration::from_millis(1000),
        "its /primary or agent-check claimed the ACTIVE for {unclaimed_after:?} after the cut"
    );
    wait_for("the SECONDARY to take writes", WITHIN, || {
        lab.app_insert(1).ok()
    });
    let took = isolated.elapsed();
    eprintln!(
        "isolation: the old ACTIVE fenced itself after {fenced_after:?}; first write on the new ACTIVE after {took:?}"
    );
    lab.wait_state("app", 1, "ACTIVE", &[1, 2]);
    lab.wait_state("app", 0, "FAILED_OFFLINE", &[1, 2]);

    lab.net.as_mut().expect("in namespaces").heal();
    lab.wait_state("app", 1, "ACTIVE", &[0, 1, 2]);
    wait_for("the old ACTIVE to report recovery", WITHIN, || {
        lab.gcsctl_ok(0, &["report", &lab.addr(0)])
            .contains("FAILED PRIMARY server is reporting recovery")
            .then_some(())
    });
    assert!(lab.read_only(0), "the old ACTIVE stays fenced");
    lab.app_insert(1)
        .expect("the new ACTIVE keeps taking writes");
    sampler.assert_never_two_writable();
}

/// Hosts as network namespaces. The ACTIVE's host loses its address (`ip addr del`, as `docker
/// network disconnect` removes the interface): nobody reaches its server over the network, its
/// own gcsd included, yet clients on its host could still write. With `[probe] fence_sockets`
/// its gcsd fences it over the server's socket when its lease expires, before the majority
/// promotes the SECONDARY; with the address back, one ACTIVE, the old one FAILED and fenced.
#[test]
fn an_active_whose_address_is_gone_is_fenced_over_its_socket() {
    let _turn = one_at_a_time();
    let (mut lab, sampler) = Lab::in_netns_fencing_over_sockets(2, 'f').with_pool(1);
    let cut = Instant::now();
    lab.net.as_mut().expect("in namespaces").drop_address(0);
    // Watched over the server's socket, which its local clients would use.
    let (mut fenced, mut took) = (None, None);
    wait_for(
        "the old ACTIVE fenced and the SECONDARY taking writes",
        WITHIN * 2,
        || {
            if fenced.is_none() && lab.read_only(0) {
                fenced = Some(cut.elapsed());
            }
            if took.is_none() && lab.app_insert(1).is_ok() {
                took = Some(cut.elapsed());
            }
            fenced.zip(took)
        },
    );
    let (fenced, took) = (fenced.unwrap(), took.unwrap());
    eprintln!("address gone: the old ACTIVE fenced over its socket after {fenced:?}; first write on the new ACTIVE after {took:?}");
    assert!(
        fenced < took,
        "the SECONDARY took writes ({took:?}) before the old ACTIVE was fenced ({fenced:?})"
    );
    lab.wait_state("app", 1, "ACTIVE", &[1, 2]);
    lab.net.as_mut().expect("in namespaces").heal();
    lab.wait_state("app", 0, "FAILED_OFFLINE", &[0, 1, 2]);
    assert!(lab.read_only(0), "the old ACTIVE stays fenced");
    lab.app_insert(1)
        .expect("the new ACTIVE keeps taking writes");
    sampler.assert_never_two_writable();
}

/// Health checks for load balancers (`lb_listen`): each member answers for its own server;
/// `/primary` follows the committed ACTIVE through a failover.
#[test]
fn load_balancer_health_checks() {
    let _turn = one_at_a_time();
    let (mut lab, sampler) = Lab::start(2).with_pool(0);
    wait_for("the members' checks to settle", WITHIN, || {
        (lab.lb_check(0, "/primary").0 == 200 && lab.lb_check(1, "/replica").0 == 200).then_some(())
    });
    assert_eq!(lab.lb_check(0, "/primary?pool=app").0, 200);
    assert_eq!(lab.lb_check(1, "/primary").0, 503);
    assert_eq!(lab.lb_check(0, "/replica").0, 503);
    assert_eq!(lab.lb_check(1, "/replica?pool=app&lag=60").0, 200);
    assert_eq!(lab.lb_check(0, "/health").0, 200);
    let (code, body) = lab.lb_check(2, "/primary");
    assert_eq!(
        (code, body.as_str()),
        (503, "this member has no database server\n")
    );
    let (code, body) = lab.lb_check(0, "/primary?pool=nope");
    assert_eq!((code, body.as_str()), (404, "no pool named \"nope\"\n"));
    let (code, body) = lab.lb_check(1, "/primary");
    assert!(body.contains("is STANDBY in app"), "{code} {body}");
    let (code, body) = lab.lb_check(2, "/pools/app");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"state\":\"ACTIVE\""), "{body}");
    assert_eq!(lab.lb_check(2, &format!("/servers/{}", lab.addr(1))).0, 200);
    assert_eq!(lab.lb_check(2, "/servers/db9").0, 400);

    lab.dbs[0].kill9();
    wait_for("the new ACTIVE's member to answer /primary", WITHIN, || {
        (lab.lb_check(1, "/primary").0 == 200).then_some(())
    });
    assert_eq!(lab.lb_check(0, "/primary").0, 503);
    assert_eq!(lab.lb_check(0, "/health").0, 503);
    sampler.assert_never_two_writable();
}

/// Broken replication on the SECONDARY: FAILED_ONLINE, never promoted; a pool of one, an
/// unknown server, duplicate members, `set` while not paused: each one clear error.
#[test]
fn broken_replication_and_bad_input() {
    let _turn = one_at_a_time();
    let lab = Lab::start(2);
    lab.replicate(1, 0);
    lab.replicate(0, 1);
    let (p, s) = (lab.addr(0), lab.addr(1));
    for (args, want) in [
        (
            vec!["pool", "init", "solo", "--primary", &p, "--secondary", &p],
            "is listed twice",
        ),
        (
            vec!["pool", "init", "bad", "--primary", "db1", "--secondary", &s],
            "\"db1\" is not HOST:PORT",
        ),
        (
            vec!["set", &s, "--pool", "nope", "--state", "ACTIVE"],
            "no pool named \"nope\"",
        ),
        (vec!["recover", "--pool", "nope"], "no pool named \"nope\""),
    ] {
        let out = lab.gcsctl(0, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    lab.gcsctl_ok(
        0,
        &["pool", "init", "app", "--primary", &p, "--secondary", &s],
    );
    lab.wait_state("app", 0, "ACTIVE", &[0, 1, 2]);
    let out = lab.gcsctl(0, &["set", &s, "--pool", "app", "--state", "ACTIVE"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not paused"));

    // Break the SECONDARY's replication: its SQL thread stops on a duplicate key.
    lab.dbs[1]
        .sql("SET SESSION sql_log_bin = 0; INSERT INTO app.t VALUES (1000, 9)")
        .unwrap();
    lab.dbs[0]
        .sql("INSERT INTO app.t VALUES (1000, 1)")
        .unwrap();
    lab.wait_state("app", 1, "FAILED_ONLINE", &[0, 1, 2]);
    let report = lab.gcsctl_ok(2, &["report", &s]);
    assert!(report.contains("Slave SQL is not running"), "{report}");
    // The ACTIVE stays ACTIVE (the broken server is no candidate).
    assert_eq!(lab.verdict(0, "app", 0).0, "ACTIVE");
}

// ---- The failover benchmark (bench/failover.sh) ----

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The benchmarks' writer, run as a separate process ([`Writer`]): as the application user, an
/// INSERT on every `host:port` in `GCS_BENCH_WRITER_SERVERS` every 5 ms, each success appended
/// to `GCS_BENCH_WRITER_OUT` as `<port> <unix microseconds>`.
#[test]
#[ignore = "the failover benchmark's writer process"]
fn bench_writer_process() {
    use mysql_async::prelude::Queryable;
    use std::io::Write;
    let (Ok(servers), Ok(out)) = (
        std::env::var("GCS_BENCH_WRITER_SERVERS"),
        std::env::var("GCS_BENCH_WRITER_OUT"),
    ) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let file = Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(out)
                .unwrap(),
        ));
        let mut tasks = Vec::new();
        for server in servers.split(',') {
            let (host, port) = server.rsplit_once(':').unwrap();
            let (host, port) = (host.to_owned(), port.parse::<u16>().unwrap());
            let file = file.clone();
            tasks.push(tokio::spawn(async move {
                let opts = app_opts(&host, port);
                let bound = Duration::from_millis(50);
                let mut conn: Option<mysql_async::Conn> = None;
                let mut tick = tokio::time::interval(Duration::from_millis(5));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    if conn.is_none() {
                        conn = tokio::time::timeout(bound, mysql_async::Conn::new(opts.clone()))
                            .await
                            .ok()
                            .and_then(Result::ok);
                    }
                    let Some(c) = conn.as_mut() else { continue };
                    let q = format!("INSERT INTO app.t (server) VALUES ({port})");
                    match tokio::time::timeout(bound, c.query_drop(q)).await {
                        Ok(Ok(())) => {
                            let line = format!("{port} {}\n", unix_micros());
                            file.lock().unwrap().write_all(line.as_bytes()).unwrap();
                        }
                        // Refused as read-only: the connection is fine.
                        Ok(Err(mysql_async::Error::Server(_))) => {}
                        _ => conn = None,
                    }
                }
            }));
        }
        for t in tasks {
            t.await.ok();
        }
    });
}

/// The writer process and what it wrote.
struct Writer {
    child: std::process::Child,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Writer {
    /// Starts writing to `servers`; returns once the first of them took a write.
    fn start(servers: &[(String, u16)]) -> Writer {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("writes");
        let list: Vec<String> = servers.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "bench_writer_process",
                "--ignored",
                "--nocapture",
            ])
            .env("GCS_BENCH_WRITER_SERVERS", list.join(","))
            .env("GCS_BENCH_WRITER_OUT", &out)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let writer = Writer {
            child,
            out,
            _dir: dir,
        };
        writer.first(servers[0].1, 0);
        writer
    }

    /// The successes so far: (port, unix microseconds).
    fn writes(&self) -> Vec<(u16, u64)> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (p, t) = l.split_once(' ')?;
                Some((p.parse().ok()?, t.parse().ok()?))
            })
            .collect()
    }

    /// The first write on `port` after `since`, waiting up to `WITHIN`.
    fn first(&self, port: u16, since: u64) -> u64 {
        wait_for(&format!("a write on port {port}"), WITHIN, || {
            self.writes()
                .into_iter()
                .filter(|&(p, t)| p == port && t > since)
                .map(|(_, t)| t)
                .min()
        })
    }

    /// The last write on `port` before `until`.
    fn last(&self, port: u16, until: u64) -> u64 {
        self.writes()
            .into_iter()
            .filter(|&(p, t)| p == port && t < until)
            .map(|(_, t)| t)
            .max()
            .unwrap_or(until)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Polls `port`'s ISIS2IS every 2 ms until server `dead` shows as `off`; returns when.
fn off_seen(port: u16, dead: u16) -> u64 {
    use mysql_async::prelude::Queryable;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut conn = mysql_async::Conn::new(app_opts("127.0.0.1", port))
            .await
            .unwrap();
        let q = format!(
            "SELECT COUNT(*) FROM INFORMATION_SCHEMA.ISIS2IS WHERE MYSQL_PORT_OR_SOCKET = '{dead}' AND MYSQL_STATUS = 'off'"
        );
        let started = Instant::now();
        loop {
            let n: Option<u64> = conn.query_first(q.as_str()).await.unwrap();
            if n > Some(0) {
                return unix_micros();
            }
            assert!(started.elapsed() < WITHIN, "server {dead} never showed off at {port}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// A benchmark's setting from the environment (`BENCH_TRIALS`, `BENCH_SECS`), else `default`.
fn bench_knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn summary(name: &str, mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    format!(
        "| {name} | {} | {:.0} ms | {:.0} ms | {:.0} ms |",
        ms.len(),
        at(0.5),
        at(0.99),
        ms[ms.len() - 1]
    )
}

/// `kill -9` of the ACTIVE, then restart and `recover` (reinstatement), then `switchover` and
/// `activate-primary`, `BENCH_TRIALS` times (20), with a writer process inserting on both pool
/// members every 5 ms and the read_only sampler running throughout. Prints the figures.
#[test]
#[ignore = "a benchmark: bench/failover.sh"]
fn failover_benchmark() {
    let _turn = one_at_a_time();
    let trials = bench_knob("BENCH_TRIALS", 20);
    let (mut lab, sampler) = Lab::start_with(3, "kill_hung = true").with_pool(0);
    let (p, s) = (lab.addr(0), lab.addr(1));
    let (pp, sp) = (lab.dbs[0].port, lab.dbs[1].port);
    let writer = Writer::start(&[lab.endpoint(0), lab.endpoint(1)]);
    let mut failover = vec![];
    let mut off_at_s = vec![];
    let mut off_at_r = vec![];
    let mut reinstate = vec![];
    let mut reinstate_gap = vec![];
    let mut switch_gap = vec![];
    let mut hung = vec![];
    let ms = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / 1000.0;
    for trial in 0..trials {
        // kill -9 of the ACTIVE (the PRIMARY).
        let (db1, db2) = (lab.dbs[1].port, lab.dbs[2].port);
        let fault = unix_micros();
        lab.dbs[0].kill9();
        let off_r = std::thread::spawn(move || off_seen(db2, pp));
        let off_s = off_seen(db1, pp);
        let off_r = off_r.join().unwrap();
        let first = writer.first(sp, fault);
        failover.push(ms(fault, first));
        off_at_s.push(ms(fault, off_s));
        off_at_r.push(ms(fault, off_r));
        // Restart and recover: reinstatement of the PRIMARY.
        lab.dbs[0].launch();
        wait_for("the PRIMARY to probe healthy", WITHIN, || {
            (lab.verdict(0, "app", 0).1 == "OK").then_some(())
        });
        lab.wait_replicating(0);
        let recovered = unix_micros();
        lab.gcsctl_ok(1, &["recover", &p]);
        let back = writer.first(pp, recovered);
        reinstate.push(ms(recovered, back));
        reinstate_gap.push(ms(writer.last(sp, back), back));
        // switchover to the SECONDARY and activate-primary back: the gap in writes. First the
        // SECONDARY's replication from the restarted PRIMARY must be running again (its IO
        // thread retries once a second): a switchover waits for the target to catch up, and
        // this measures the switchover, not the reconnect.
        lab.wait_replicating(1);
        let asked = unix_micros();
        lab.gcsctl_ok(2, &["switchover", "app", "--to", &s]);
        let on_s = writer.first(sp, asked);
        switch_gap.push(ms(writer.last(pp, on_s), on_s));
        let asked = unix_micros();
        lab.gcsctl_ok(2, &["activate-primary", "app"]);
        let on_p = writer.first(pp, asked);
        switch_gap.push(ms(writer.last(sp, on_p), on_p));
        let gaps = &switch_gap[switch_gap.len() - 2..];
        if gaps.iter().any(|&g| g > 200.0) {
            eprintln!("trial {trial}: switchover gaps {gaps:?} ms; what the members logged:");
            for g in &lab.gcsds {
                for line in g.log().lines().filter(|l| {
                    [
                        "fenced",
                        "read_only=OFF",
                        "SWITCHOVER",
                        "Relinquishing",
                        "Manually",
                        "catch up",
                    ]
                    .iter()
                    .any(|k| l.contains(k))
                }) {
                    eprintln!("  gcsd {}: {line}", g.id);
                }
            }
        }
        // SIGSTOP of the ACTIVE (the PRIMARY again): its gcsd kills it (kill_hung), the
        // SECONDARY takes over; then restart and recover, back to where the trial began.
        lab.wait_replicating(1);
        let fault = unix_micros();
        signal(&lab.dbs[0], libc::SIGSTOP);
        hung.push(ms(fault, writer.first(sp, fault)));
        lab.dbs[0].kill9();
        lab.dbs[0].launch();
        wait_for("the PRIMARY to probe healthy", WITHIN, || {
            (lab.verdict(0, "app", 0).1 == "OK").then_some(())
        });
        lab.wait_replicating(0);
        let recovered = unix_micros();
        lab.gcsctl_ok(1, &["recover", &p]);
        writer.first(pp, recovered);
        eprintln!(
            "trial {trial}: SIGSTOP {:.0} ms, failover {:.0} ms, off {:.0}/{:.0} ms, reinstatement {:.0} ms (gap {:.0} ms)",
            hung[trial], failover[trial], off_at_s[trial], off_at_r[trial], reinstate[trial], reinstate_gap[trial]
        );
    }
    drop(writer);
    let (samples, double) = sampler.finish();
    println!("| figure | trials | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    println!(
        "{}",
        summary(
            "kill -9 of the ACTIVE → first write on the new ACTIVE",
            failover
        )
    );
    println!(
        "{}",
        summary(
            "crash visible as `off` in ISIS2IS of the other pool member",
            off_at_s
        )
    );
    println!(
        "{}",
        summary(
            "crash visible as `off` in ISIS2IS of the replica outside the pool",
            off_at_r
        )
    );
    println!(
        "{}",
        summary(
            "SIGSTOP of the ACTIVE (`kill_hung`) → first write on the new ACTIVE",
            hung
        )
    );
    println!(
        "{}",
        summary(
            "`recover` → first write on the reinstated PRIMARY",
            reinstate
        )
    );
    println!(
        "{}",
        summary(
            "reinstatement: gap between the last write on the old and the first on the new ACTIVE",
            reinstate_gap
        )
    );
    println!(
        "{}",
        summary("switchover / activate-primary: gap in writes", switch_gap)
    );
    println!(
        "read_only samples every 10 ms: {samples}; instants with two writable pool members: {}",
        double.len()
    );
    assert!(double.is_empty(), "two writable at {double:?}");
    at_rest(&lab);
}

/// 49 more pools of three (servers that no gcsd has seen, so nobody probes them: this measures
/// the group and the decisions, not the probes), then 10 s at rest: the leader's decision time,
/// commits per second, and each gcsd's RSS and CPU.
fn at_rest(lab: &Lab) {
    for i in 0..49 {
        let server = |j: u32| format!("10.255.{i}.{j}:3306");
        lab.gcsctl_ok(
            0,
            &[
                "pool",
                "init",
                &format!("p{i}"),
                "--primary",
                &server(1),
                "--secondary",
                &server(2),
                "--secondary",
                &server(3),
            ],
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let metric = |m: usize, name: &str| -> f64 {
        let (_, text) = lab.gcsds[m].http_get("/metrics");
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    let cpu = |pid: i32| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
        (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
    };
    let rss = |pid: i32| common::gcsd::rss_kb(pid) as f64 / 1024.0;
    const COMMITTED: &str = "gcsd_proposals_total{result=\"committed\"}";
    let before: Vec<(f64, f64, f64, f64)> = (0..3)
        .map(|m| {
            (
                metric(m, COMMITTED),
                metric(m, "gcsd_pool_decision_seconds_sum"),
                metric(m, "gcsd_pool_decision_seconds_count"),
                cpu(lab.gcsds[m].pid()),
            )
        })
        .collect();
    let window = Duration::from_secs(10);
    std::thread::sleep(window);
    let secs = window.as_secs_f64();
    println!("\n50 pools of 3 (one with two live servers), 3 members, {secs} s at rest:");
    println!("| member | commits/s proposed here | pool decisions/s | mean decision | RSS | CPU (% of one core) |");
    println!("|---|---|---|---|---|---|");
    for (m, (commits, sum, count, cpu0)) in before.into_iter().enumerate() {
        let n = metric(m, "gcsd_pool_decision_seconds_count") - count;
        let mean_us = if n > 0.0 {
            (metric(m, "gcsd_pool_decision_seconds_sum") - sum) / n * 1e6
        } else {
            0.0
        };
        println!(
            "| gcsd {} | {:.1} | {:.0} | {mean_us:.1} µs | {:.1} MB | {:.1} % |",
            m + 1,
            (metric(m, COMMITTED) - commits) / secs,
            n / secs,
            rss(lab.gcsds[m].pid()),
            (cpu(lab.gcsds[m].pid()) - cpu0) / secs * 100.0
        );
    }
}

/// Host isolation, `BENCH_TRIALS` times (20): the ACTIVE's network namespace is cut off from the
/// other hosts (the writer and the sampler still reach it); the time until the writer's first
/// committed insert on the new ACTIVE, and until the isolated server fenced itself. Then heal,
/// `recover`, reinstatement, and the next trial.
#[test]
#[ignore = "a benchmark: bench/failover.sh"]
fn isolation_benchmark() {
    let _turn = one_at_a_time();
    let trials = bench_knob("BENCH_TRIALS", 20);
    let (mut lab, sampler) = Lab::in_netns(2, 'b').with_pool(0);
    let p = lab.addr(0);
    let (pp, sp) = (lab.dbs[0].port, lab.dbs[1].port);
    let writer = Writer::start(&[lab.endpoint(0), lab.endpoint(1)]);
    let ms = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / 1000.0;
    let (mut takeover, mut fenced) = (vec![], vec![]);
    for trial in 0..trials {
        let fault = unix_micros();
        lab.net.as_mut().expect("in namespaces").isolate(0);
        wait_for("the isolated ACTIVE to fence itself", WITHIN, || {
            lab.read_only(0).then_some(())
        });
        fenced.push(ms(fault, unix_micros()));
        takeover.push(ms(fault, writer.first(sp, fault)));
        lab.net.as_mut().expect("in namespaces").heal();
        wait_for("the old ACTIVE to report recovery", WITHIN, || {
            lab.gcsctl_ok(1, &["report", &p])
                .contains("reporting recovery")
                .then_some(())
        });
        let recovered = unix_micros();
        lab.gcsctl_ok(1, &["recover", &p]);
        writer.first(pp, recovered);
        eprintln!(
            "trial {trial}: fenced itself after {:.0} ms, first write on the new ACTIVE after {:.0} ms",
            fenced[trial], takeover[trial]
        );
    }
    drop(writer);
    let (samples, double) = sampler.finish();
    println!("| figure | trials | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    println!(
        "{}",
        summary(
            "host isolation → the isolated ACTIVE is read-only (seen from outside)",
            fenced
        )
    );
    println!(
        "{}",
        summary("host isolation → first write on the new ACTIVE", takeover)
    );
    println!(
        "read_only samples every 10 ms: {samples}; instants with two writable pool members: {}",
        double.len()
    );
    assert!(double.is_empty(), "two writable at {double:?}");
}

#[path = "pools/haproxy.rs"]
mod haproxy;

#[path = "pools/hooks.rs"]
mod hooks;
