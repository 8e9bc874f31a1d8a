//! Real HAProxy (Debian's) in front of the lab, started with contrib/haproxy's own files. A
//! sampler reads HAProxy's `show stat` every 10 ms: at no sampled instant may two servers of the
//! writer backend be up.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use super::*;

const WRITER: &str = "mysql_writer";
const READERS: &str = "mysql_readers";

pub struct Haproxy {
    child: Option<Child>,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    variant: &'static str,
    pub writer: u16,
    pub reader: u16,
}

impl Haproxy {
    /// Where a test's HAProxy will put its runtime socket (known before gcsd is configured).
    pub fn socket(dir: &Path) -> PathBuf {
        dir.join("admin.sock")
    }

    /// Starts `haproxy -f contrib/haproxy/common.cfg -f contrib/haproxy/{variant}.cfg` in front
    /// of the lab's first three servers; `push`: with `GCS_PUSH` (writers start in maintenance).
    pub fn start(lab: &Lab, dir: tempfile::TempDir, variant: &'static str, push: bool) -> Haproxy {
        let (writer, reader) = (free_port(), free_port());
        let mut env = vec![
            (
                "GCS_HAPROXY_SOCKET".to_owned(),
                Haproxy::socket(dir.path()).display().to_string(),
            ),
            ("GCS_WRITER_BIND".into(), format!("127.0.0.1:{writer}")),
            ("GCS_READER_BIND".into(), format!("127.0.0.1:{reader}")),
            ("GCS_POOL".into(), "app".into()),
        ];
        for i in 0..3 {
            let n = i + 1;
            let agent = lab.listen(i, "agent_check_listen");
            let lb = lab.listen(i, "lb_listen");
            let (host, agent_port) = agent.rsplit_once(':').unwrap();
            let lb_port = lb.rsplit_once(':').unwrap().1;
            env.push((format!("GCS_DB{n}"), lab.addr(i)));
            env.push((format!("GCS_GCSD{n}"), host.to_owned()));
            env.push((format!("GCS_AGENT_PORT{n}"), agent_port.to_owned()));
            env.push((format!("GCS_LB_PORT{n}"), lb_port.to_owned()));
        }
        if push {
            env.push(("GCS_PUSH".into(), "1".into()));
        }
        let mut h = Haproxy {
            child: None,
            dir,
            env,
            variant,
            writer,
            reader,
        };
        h.launch();
        h
    }

    fn launch(&mut self) {
        let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/haproxy");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("haproxy.log"))
            .unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(contrib.join("common.cfg"))
            .arg("-f")
            .arg(contrib.join(format!("{}.cfg", self.variant)))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn haproxy (scripts/setup.sh installs it)");
        self.child = Some(child);
        wait_for("HAProxy's runtime API", WITHIN, || {
            self.command("show info").filter(|i| i.contains("Pid:"))
        });
    }

    /// Kills HAProxy (its runtime state is lost) and starts it again with the same files.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// One runtime API command; none if HAProxy does not answer (stopped, restarting).
    pub fn command(&self, cmd: &str) -> Option<String> {
        runtime_command(&Haproxy::socket(self.dir.path()), cmd)
    }

    /// The servers of `backend` that take new connections (status UP, including "going down").
    pub fn up(&self, backend: &str) -> Vec<String> {
        let stat = self.command("show stat").unwrap_or_default();
        up_in(&stat, backend)
    }

    /// Each server of `backend` with its `show stat` status and last agent or check answer.
    pub fn describe(&self, backend: &str) -> String {
        let stat = self.command("show stat").unwrap_or_default();
        stat.lines()
            .filter(|l| l.starts_with(&format!("{backend},db")))
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                format!(
                    "{}: {} ({} | {})",
                    f[1],
                    f[17],
                    f.get(56).unwrap_or(&""),
                    f.get(57).unwrap_or(&"")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Waits until exactly `want` (server names) are up in `backend`, and stay so for 300 ms
    /// (HAProxy takes a server that has not been checked yet for up).
    pub fn wait_up(&self, backend: &str, want: &[&str]) {
        let started = Instant::now();
        let mut since: Option<Instant> = None;
        loop {
            if self.up(backend) != want {
                since = None;
            } else if since.get_or_insert_with(Instant::now).elapsed() >= Duration::from_millis(300)
            {
                return;
            }
            assert!(
                started.elapsed() < WITHIN,
                "timed out waiting for {want:?} up in {backend}: {}\nHAProxy's log:\n{}",
                self.describe(backend),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An application's write through the writer frontend; the `@@server_id` that took it.
    pub fn write(&self) -> Result<u32, String> {
        through(
            self.writer,
            "INSERT INTO app.t (server) VALUES (@@server_id)",
        )
    }

    /// An application's read through the reader frontend; the `@@server_id` that answered.
    pub fn read(&self) -> Result<u32, String> {
        through(self.reader, "")
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn runtime_command(socket: &Path, cmd: &str) -> Option<String> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("{cmd}\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn up_in(stat: &str, backend: &str) -> Vec<String> {
    stat.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() > 17
                && f[0] == backend
                && f[1] != "BACKEND"
                && f[1] != "FRONTEND"
                && f[17].starts_with("UP"))
            .then(|| f[1].to_owned())
        })
        .collect()
}

/// `stmt` (if any) then `SELECT @@server_id`, as the application user, through HAProxy.
fn through(port: u16, stmt: &str) -> Result<u32, String> {
    use mysql_async::prelude::Queryable;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let run = async {
            let mut conn = mysql_async::Conn::new(app_opts("127.0.0.1", port)).await?;
            if !stmt.is_empty() {
                conn.query_drop(stmt).await?;
            }
            let id: Option<u32> = conn.query_first("SELECT @@server_id").await?;
            conn.disconnect().await?;
            Ok::<_, mysql_async::Error>(id.unwrap_or(0))
        };
        match tokio::time::timeout(Duration::from_secs(2), run).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("no answer within 2 s".into()),
        }
    })
}

/// Samples the writer backend every 10 ms on its own thread; counts the instants at which two
/// or more of its servers were up. Samples that HAProxy does not answer (a restart) are skipped.
pub struct UpSampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u64, Vec<String>)>>,
}

impl UpSampler {
    pub fn start(h: &Haproxy) -> UpSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let socket = Haproxy::socket(h.dir.path());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let (mut samples, mut double) = (0, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                if let Some(stat) = runtime_command(&socket, "show stat") {
                    samples += 1;
                    let up = up_in(&stat, WRITER);
                    if up.len() > 1 {
                        double.push(format!("{:?}: {up:?}", started.elapsed()));
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (samples, double)
        });
        UpSampler {
            stop,
            thread: Some(thread),
        }
    }

    pub fn assert_never_two_writers_up(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let (samples, double) = self.thread.take().unwrap().join().unwrap();
        assert!(samples > 10, "the HAProxy sampler took {samples} samples");
        assert!(
            double.is_empty(),
            "two writer servers up in HAProxy at: {double:?}"
        );
    }
}

/// The time from `kill -9` of the ACTIVE to the first write through HAProxy that the new ACTIVE
/// (server 1) takes.
fn failover_through(lab: &mut Lab, h: &Haproxy) -> Duration {
    let killed = Instant::now();
    lab.dbs[0].kill9();
    wait_for("a write through HAProxy on the new ACTIVE", WITHIN, || {
        (h.write() == Ok(2)).then_some(())
    });
    killed.elapsed()
}

/// Agent-check variant, no push: writes through HAProxy go to the ACTIVE, reads to the STANDBY;
/// after `kill -9` of the ACTIVE, writes land on the new one. Bad agent-send lines get a `down`
/// that says what was expected.
#[test]
fn haproxy_agent_check_follows_a_kill9_failover() {
    let _turn = one_at_a_time();
    let (mut lab, sampler) = Lab::start(3).with_pool(0);
    let h = Haproxy::start(&lab, tempfile::tempdir().unwrap(), "agent-check", false);
    h.wait_up(WRITER, &["db1"]);
    h.wait_up(READERS, &["db2"]);
    let up = UpSampler::start(&h);
    assert_eq!(h.write(), Ok(1));
    assert_eq!(h.read(), Ok(2));

    // member, agent-send line, the reply's start
    for (m, line, reply) in [
        (0, &b"primary pool=app\n"[..], "up # "),
        (1, b"replica pool=app lag=60\n", "up # "),
        (1, b"primary pool=app\n", "down # not the ACTIVE"),
        (0, b"primary pool=nope\n", "down # no pool named \"nope\"\n"),
        (
            0,
            b"writer\n",
            "down # unknown role \"writer\"; expected: primary|replica|health",
        ),
        (
            0,
            b"\x00\xff\xfe garbage\n",
            "down # agent-send line is not UTF-8\n",
        ),
        (
            0,
            &[b'x'; 2000][..],
            "down # agent-send line longer than 512 bytes\n",
        ),
    ] {
        let got = lab.agent_check(m, line);
        let sent = String::from_utf8_lossy(line);
        assert!(got.starts_with(reply), "{sent:?}: {got:?}");
        assert!(got.ends_with('\n') && got.lines().count() == 1, "{got:?}");
    }

    assert_eq!(keepalived_checks(&lab), [true, false, false]);

    let took = failover_through(&mut lab, &h);
    eprintln!(
        "agent-check: kill -9 → first write through HAProxy on the new ACTIVE after {took:?}"
    );
    h.wait_up(WRITER, &["db2"]);
    h.wait_up(READERS, &[]);
    assert_eq!(keepalived_checks(&lab), [false, true, false]);
    up.assert_never_two_writers_up();
    sampler.assert_never_two_writable();
}

/// contrib/keepalived/keepalived.conf passes keepalived's own check; each real server's
/// `misc_path`, pointed at the lab (its gcsctl, gcsd and servers), passes (exit 0) exactly for
/// the ACTIVE.
fn keepalived_checks(lab: &Lab) -> Vec<bool> {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/keepalived/keepalived.conf");
    let check = Command::new("keepalived")
        .args(["--config-test", "-f"])
        .arg(&conf)
        .output()
        .expect("keepalived (scripts/setup.sh installs it)");
    assert!(
        check.status.success(),
        "keepalived --config-test: {check:?}"
    );
    let gcsctl = gcsd_binary().with_file_name("gcsctl");
    std::fs::read_to_string(&conf)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("misc_path \""))
        .map(|cmd| {
            let mut cmd = cmd
                .trim_end_matches('"')
                .replace("/usr/bin/gcsctl", &gcsctl.display().to_string())
                .replace("127.0.0.1:2280", &lab.gcsds[0].admin.to_string());
            for n in 1..=3 {
                cmd = cmd.replace(&format!("10.0.0.1{n}:3306"), &lab.addr(n - 1));
            }
            let words: Vec<&str> = cmd.split(' ').collect();
            let out = Command::new(words[0]).args(&words[1..]).output().unwrap();
            match out.status.code() {
                Some(0) => true,
                Some(1) => false,
                other => panic!("{cmd}: exit {other:?}: {out:?}"),
            }
        })
        .collect()
}

/// contrib/hooks/proxysql-writer (an example: ProxySQL is not in Debian): the statements it
/// would send for a promotion and a failure, and its refusal of a server name that could break
/// them.
#[test]
fn proxysql_hook_example() {
    let hook = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/hooks/proxysql-writer");
    let run = |server: &str, state: &str| {
        Command::new(&hook)
            .env("GCS_SERVER", server)
            .env("GCS_NEW_STATE", state)
            .env("GCS_EVENT_ID", "7")
            .env("GCS_POOL", "app")
            .env("PROXYSQL_DRY_RUN", "1")
            .output()
            .unwrap()
    };
    let out = run("10.0.0.12:3306", "ACTIVE");
    let sql = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{sql}");
    assert!(
        sql.contains("VALUES (10, '10.0.0.12', 3306, 'ONLINE')"),
        "{sql}"
    );
    assert!(sql.ends_with("LOAD MYSQL SERVERS TO RUNTIME;\nSAVE MYSQL SERVERS TO DISK;\n"));
    let sql = String::from_utf8(run("10.0.0.11:3306", "FAILED_OFFLINE").stdout).unwrap();
    assert!(sql.starts_with("UPDATE mysql_servers SET status='OFFLINE_HARD' WHERE hostname='10.0.0.11' AND port=3306;"), "{sql}");
    let out = run("x';DROP TABLE y;--:3306", "ACTIVE");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

/// HTTP-check variant with the runtime push (gcsd 3 pushes; a second `[[haproxy]]` names a
/// socket that does not exist): writers start in maintenance and only the ACTIVE is made ready;
/// a switchover, a paused pool's `set`, and an HAProxy restart (runtime state lost, reconciled)
/// each end with one writer up. The missing socket is reported and changes nothing else.
#[test]
fn haproxy_httpchk_with_runtime_push_and_a_restart() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let socket = Haproxy::socket(dir.path());
    let missing = dir.path().join("missing.sock");
    let (socket_path, missing_path) = (socket.clone(), missing.clone());
    let push = move |member: usize, servers: &[String]| -> String {
        if member != 2 {
            return String::new();
        }
        let names = format!(
            "servers = {{ \"{}\" = \"db1\", \"{}\" = \"db2\", \"{}\" = \"db3\" }}",
            servers[0], servers[1], servers[2]
        );
        format!(
            "[[haproxy]]\nsocket = {socket_path:?}\nreconcile_ms = 200\n\
             backends = [{{ pool = \"app\", backend = \"{WRITER}\", role = \"primary\" }}, \
                         {{ pool = \"app\", backend = \"{READERS}\", role = \"replica\" }}]\n{names}\n\
             [[haproxy]]\nsocket = {missing_path:?}\nbackends = [{{ pool = \"app\", backend = \"{WRITER}\", role = \"primary\" }}]\n{names}\n"
        )
    };
    let (lab, sampler) = Lab::with_member_config(3, &push).with_pool(0);
    let mut h = Haproxy::start(&lab, dir, "httpchk", true);
    h.wait_up(WRITER, &["db1"]);
    h.wait_up(READERS, &["db2"]);
    let up = UpSampler::start(&h);
    assert_eq!(h.write(), Ok(1));
    let state = h.command(&format!("show servers state {WRITER}")).unwrap();
    assert!(
        state
            .lines()
            .any(|l| l.contains(" db3 ") && l.split_whitespace().nth(6) == Some("5")),
        "db3 (in no pool) is left in the configuration's maintenance:\n{state}"
    );
    wait_for("the missing socket to be reported", WITHIN, || {
        lab.gcsds[2]
            .log()
            .contains(&format!(
                "cannot reach HAProxy's runtime API at {}",
                missing.display()
            ))
            .then_some(())
    });

    lab.gcsctl_ok(0, &["switchover", "app", "--to", &lab.addr(1)]);
    wait_for("writes through HAProxy on the new ACTIVE", WITHIN, || {
        (h.write() == Ok(2)).then_some(())
    });
    h.wait_up(WRITER, &["db2"]);
    h.wait_up(READERS, &["db1"]);

    h.restart();
    h.wait_up(WRITER, &["db2"]);
    assert_eq!(h.write(), Ok(2));
    assert!(lab.gcsds[2]
        .log()
        .contains(&format!("set server {WRITER}/db2 state ready")));

    // MPP's mpp-proxyadmin.pl --set: a paused pool, the operator sets the reader out.
    lab.gcsctl_ok(0, &["pause", "app"]);
    lab.gcsctl_ok(
        0,
        &["set", &lab.addr(0), "--pool", "app", "--status", "FAIL"],
    );
    wait_for("the reader pushed into maintenance", WITHIN, || {
        h.up(READERS).is_empty().then_some(())
    });
    lab.gcsctl_ok(0, &["set", &lab.addr(0), "--pool", "app", "--status", "OK"]);
    h.wait_up(READERS, &["db1"]);
    lab.gcsctl_ok(0, &["resume", "app"]);

    up.assert_never_two_writers_up();
    sampler.assert_never_two_writable();
}
