//! Test harness: real `gcsd` processes on loopback (or inside a network namespace), each with
//! its own ports and data dir, stopped and cleaned up on drop.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use proto::{BlockReader, ServerList};
use serde_json::Value;

pub mod certs;
pub mod history;
pub mod netns;

/// The `gcsd` binary under test. Cargo names it at compile time for gcsd's own tests; other
/// packages that reuse this harness (the plugin's tests) find it next to their test binary in
/// `target/<profile>/`, where `cargo test --workspace` puts it.
pub fn gcsd_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_gcsd") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the running test's path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/gcsd
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lies in target/<profile>/deps")
        .join("gcsd");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds gcsd",
        path.display()
    );
    path
}

/// A free port on 127.0.0.1 (bound, then released for the daemon to take). The kernel may
/// hand a released port out again, so this process never gives the same port twice: parallel
/// tests would otherwise start two daemons on one port.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Polls `f` until it returns `Some`, or panics naming `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident memory of process `pid` in kB, from `/proc/<pid>/status`.
pub fn rss_kb(pid: i32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a VmRSS line in /proc/<pid>/status")
}

/// One gcsd process and everything it owns.
pub struct Gcsd {
    pub id: u64,
    pub dir: tempfile::TempDir,
    pub ip: String,
    pub plugin: SocketAddr,
    pub group: SocketAddr,
    pub admin: SocketAddr,
    /// Runs the process inside this network namespace, when set.
    pub netns: Option<String>,
    pub join: Option<SocketAddr>,
    /// Extra TOML appended to the generated config file.
    pub extra_config: String,
    /// Mutual TLS between members (a certificate from the test CA); on for every member when
    /// GCSD_TEST_TLS=1, so that any suite can run over TLS unchanged.
    pub tls: bool,
    /// Extra environment for the process (a crash point, LD_PRELOAD), at every launch.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Gcsd {
    /// A member on loopback with fresh ports; not started yet.
    pub fn new(id: u64) -> Self {
        Self::at(
            id,
            "127.0.0.1",
            [free_port(), free_port(), free_port()],
            None,
        )
    }

    /// A member listening on `ip` with plugin, group and admin `ports`, optionally inside a
    /// network namespace; not started yet.
    fn at(id: u64, ip: &str, ports: [u16; 3], netns: Option<String>) -> Self {
        let addr = |p: u16| format!("{ip}:{p}").parse().expect("an IPv4 address");
        Self {
            id,
            dir: tempfile::Builder::new()
                .prefix("gcsd-test-")
                .tempdir()
                .unwrap(),
            ip: ip.to_owned(),
            plugin: addr(ports[0]),
            group: addr(ports[1]),
            admin: addr(ports[2]),
            netns,
            join: None,
            extra_config: String::new(),
            tls: std::env::var("GCSD_TEST_TLS").is_ok_and(|v| v == "1"),
            env: Vec::new(),
            child: None,
        }
    }

    pub fn joining(mut self, other: &Gcsd) -> Self {
        self.join = Some(other.group);
        self
    }

    pub fn with_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Writes this member's certificate, key and the CA into its directory; the config keys.
    fn tls_config(&self) -> String {
        let ip = self.ip.parse().expect("an IP address");
        let minted = certs::group_ca().member(self.id, ip);
        let path = |name: &str| self.dir.path().join(name);
        std::fs::write(path("ca.pem"), certs::group_ca().pem()).unwrap();
        std::fs::write(path("member.pem"), minted.cert).unwrap();
        std::fs::write(path("member.key"), minted.key).unwrap();
        format!(
            "tls_ca_file = {:?}\ntls_cert_file = {:?}\ntls_key_file = {:?}\n",
            path("ca.pem"),
            path("member.pem"),
            path("member.key")
        )
    }

    pub fn with_config(mut self, toml: &str) -> Self {
        self.extra_config.push_str(toml);
        self.extra_config.push('\n');
        self
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gcsd.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("gcsd.log")
    }

    fn write_config(&self) {
        let mut toml = format!(
            "node_id = {}\ndata_dir = {:?}\nplugin_listen = \"{}\"\ngroup_listen = \"{}\"\nadmin_listen = \"{}\"\n",
            self.id,
            self.dir.path().join("data"),
            self.plugin,
            self.group,
            self.admin
        );
        let loopback = self.ip == "127.0.0.1";
        match self.join {
            Some(j) => toml.push_str(&format!("join = \"{j}\"\n")),
            // Off loopback, founding a group must be asked for.
            None if !loopback => toml.push_str("bootstrap = true\n"),
            None => {}
        }
        if self.tls {
            if !std::path::Path::new(&self.dir.path().join("member.pem")).exists() {
                let keys = self.tls_config();
                std::fs::write(self.dir.path().join("tls.toml"), &keys).unwrap();
            }
            toml.push_str(&std::fs::read_to_string(self.dir.path().join("tls.toml")).unwrap());
        } else if !loopback {
            toml.push_str("insecure_group_transport = true\n");
        }
        if !loopback {
            // The tests reach a namespace's plugin port from outside it.
            toml.push_str("insecure_plugin_listen = true\n");
        }
        toml.push_str(&self.extra_config);
        std::fs::write(self.config_path(), toml).unwrap();
    }

    /// Starts (or restarts) the process and waits until its admin port answers.
    pub fn start(mut self) -> Self {
        self.launch();
        self
    }

    pub fn launch(&mut self) {
        self.spawn();
        let admin = self.admin;
        let id = self.id;
        wait_for(
            &format!("gcsd {id} to listen"),
            Duration::from_secs(10),
            || {
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!("gcsd {id} exited at start ({status}):\n{}", self.log());
                }
                TcpStream::connect_timeout(&admin, Duration::from_millis(100))
                    .ok()
                    .map(|_| ())
            },
        );
    }

    /// Starts the process and kills it (SIGKILL) `after` this long, wherever its start is.
    pub fn launch_and_kill_after(&mut self, after: Duration) {
        self.spawn();
        std::thread::sleep(after);
        self.kill9();
    }

    /// Starts the process without waiting for it (it may end at once: a crash point).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "gcsd {} is already running", self.id);
        self.write_config();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(gcsd_binary());
                c
            }
            None => Command::new(gcsd_binary()),
        };
        cmd.arg("--config")
            .arg(self.config_path())
            .env("RUST_LOG", "info,openraft=off")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn gcsd"));
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on a pid we spawned and have not reaped.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// `kill -9`, and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }

    /// How the process ended, once it has (reaped); none while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().unwrap()?;
        self.child = None;
        Some(status)
    }

    /// SIGTERM, and wait for the exit.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > within {
                child.kill().ok();
                panic!("gcsd {} did not exit within {within:?} of SIGTERM", self.id);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    // ---- admin HTTP ----

    /// The admin token gcsd created in its data_dir at the first start.
    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("data/admin.token")
    }

    /// `GET path` with the admin token: (status, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        self.http("GET", path, None)
    }

    /// One admin request (`GET`, `POST` with an optional JSON body, or `DELETE`) with the
    /// admin token: (status, body).
    pub fn http(&self, method: &str, path: &str, json: Option<&str>) -> (u16, String) {
        let token = std::fs::read_to_string(self.token_file()).expect("gcsd wrote its token");
        self.http_as(method, path, json, Some(token.trim()))
    }

    /// One admin request with the given token (or none): (status, body).
    pub fn http_as(
        &self,
        method: &str,
        path: &str,
        json: Option<&str>,
        token: Option<&str>,
    ) -> (u16, String) {
        let url = format!("http://{}{path}", self.admin);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        let bearer = token.map(|t| format!("Bearer {t}"));
        fn with<B>(r: ureq::RequestBuilder<B>, bearer: &Option<String>) -> ureq::RequestBuilder<B> {
            match bearer {
                Some(b) => r.header("authorization", b),
                None => r,
            }
        }
        let sent = match (method, json) {
            ("GET", _) => with(agent.get(&url), &bearer).call(),
            ("DELETE", _) => with(agent.delete(&url), &bearer).call(),
            ("POST", Some(json)) => with(agent.post(&url), &bearer)
                .header("content-type", "application/json")
                .send(json),
            ("POST", None) => with(agent.post(&url), &bearer).send_empty(),
            _ => panic!("no {method} here"),
        };
        let mut resp = sent.expect("admin HTTP answers");
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap())
    }

    /// A value from `/metrics` (`name` with its labels, as printed).
    pub fn metric(&self, name: &str) -> f64 {
        let (status, body) = self.http_get("/metrics");
        assert_eq!(status, 200, "{body}");
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
            .trim()
            .parse()
            .unwrap()
    }

    pub fn cluster(&self) -> Value {
        let (status, body) = self.http_get("/cluster");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn leader(&self) -> Option<u64> {
        let c = self.cluster();
        c["quorum"]
            .as_bool()
            .unwrap()
            .then(|| c["leader"].as_u64())
            .flatten()
    }

    pub fn voters(&self) -> usize {
        let c = self.cluster();
        c["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["voter"] == true)
            .count()
    }

    // ---- plugin port ----

    pub fn connect(&self) -> PluginClient {
        PluginClient::connect(self.plugin)
    }

    /// Where `with_plugin_socket` puts the plugin socket.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("plugin.sock")
    }

    /// Serves the plugin socket too, in this member's directory, which any user may then
    /// traverse (gcsd decides who is served by uid).
    pub fn with_plugin_socket(self) -> Self {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let line = format!("plugin_socket = {:?}", self.socket_path());
        self.with_config(&line)
    }

    pub fn connect_unix(&self) -> PluginClient {
        PluginClient::connect_unix(&self.socket_path())
    }

    /// One command on a fresh connection; returns the first reply line.
    pub fn cmd(&self, line: &str) -> String {
        self.connect().cmd(line)
    }

    pub fn serverlist(&self) -> ServerList {
        self.connect().serverlist()
    }

    /// `host port` of every row in this member's serverlist.
    pub fn servers(&self) -> Vec<String> {
        self.serverlist()
            .rows
            .iter()
            .map(|r| r.server.to_string())
            .collect()
    }
}

impl Drop for Gcsd {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- log of gcsd {} ----\n{}", self.id, self.log());
        }
    }
}

/// A line-protocol client on one connection.
pub struct PluginClient {
    reader: BufReader<Box<dyn Read + Send>>,
    writer: Box<dyn Write + Send>,
    read_timeout: Box<dyn Fn(Duration) + Send>,
}

/// What a plugin client talks over: TCP or gcsd's Unix socket.
trait ClientStream: Read + Write + Send + Sized + 'static {
    fn try_clone(&self) -> std::io::Result<Self>;
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()>;
}

macro_rules! client_stream {
    ($($t:ty),*) => {$(
        impl ClientStream for $t {
            fn try_clone(&self) -> std::io::Result<Self> {
                <$t>::try_clone(self)
            }
            fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
                <$t>::set_read_timeout(self, timeout)
            }
        }
    )*};
}
client_stream!(TcpStream, std::os::unix::net::UnixStream);

impl PluginClient {
    pub fn connect(addr: SocketAddr) -> Self {
        Self::over(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("plugin port"))
    }

    /// A connection to gcsd's plugin socket.
    pub fn connect_unix(path: &std::path::Path) -> Self {
        Self::over(std::os::unix::net::UnixStream::connect(path).expect("plugin socket"))
    }

    fn over<S: ClientStream>(s: S) -> Self {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = s.try_clone().unwrap();
        Self {
            reader: BufReader::new(Box::new(s.try_clone().unwrap())),
            writer: Box::new(s),
            read_timeout: Box::new(move |d| t.set_read_timeout(Some(d)).unwrap()),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a reply line");
        line
    }

    /// Sends one command line and returns the reply line (with its "\n").
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        self.read_line()
    }

    /// Reads one serverlist block (after `serverlist`, or a push after `subscribe`).
    pub fn read_block(&mut self) -> ServerList {
        let mut blocks = BlockReader::new();
        loop {
            let line = self.read_line();
            assert!(
                !line.is_empty(),
                "connection closed inside a serverlist block"
            );
            if let Some(list) = blocks.push_line(&line).expect("well-formed block") {
                return list;
            }
        }
    }

    pub fn serverlist(&mut self) -> ServerList {
        self.send(b"serverlist\n");
        self.read_block()
    }

    /// Everything until the server closes the connection.
    pub fn read_to_close(&mut self) -> String {
        let mut rest = String::new();
        self.reader.read_to_string(&mut rest).ok();
        rest
    }
}

/// Starts a group: the first member creates it, the others join it; waits for `voters`.
pub fn start_group(n: u64, configure: impl Fn(Gcsd) -> Gcsd) -> Vec<Gcsd> {
    let first = configure(Gcsd::new(1)).start();
    let mut members = vec![first];
    for id in 2..=n {
        let m = configure(Gcsd::new(id).joining(&members[0])).start();
        members.push(m);
    }
    let want = if n >= 3 { 3 } else { 1 };
    wait_for("the voters to be promoted", Duration::from_secs(20), || {
        members
            .iter()
            .all(|m| m.voters() == want && m.leader().is_some())
            .then_some(())
    });
    members
}

impl Gcsd {
    /// A member that runs inside network namespace `ns` and listens on `ip` there, with fixed
    /// ports (each namespace has its own port space): plugin 2200, group 2300, admin 2280.
    pub fn in_netns(id: u64, ns: &str, ip: &str) -> Self {
        Self::at(id, ip, [2200, 2300, 2280], Some(ns.to_owned()))
    }
}

impl PluginClient {
    /// The next line if one arrives within `within`, else `None`; the connection stays usable.
    pub fn line_within(&mut self, within: Duration) -> Option<String> {
        (self.read_timeout)(within);
        let mut line = String::new();
        let got = self.reader.read_line(&mut line);
        (self.read_timeout)(Duration::from_secs(5));
        match got {
            Ok(_) => Some(line),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                assert!(line.is_empty(), "timed out inside a line: {line:?}");
                None
            }
            Err(e) => panic!("reading a line: {e}"),
        }
    }
}
