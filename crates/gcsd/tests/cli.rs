//! The operator's surface: config handling and exit codes, admin HTTP, and gcsctl against a real
//! gcsd group.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use common::{gcsd_binary, start_group, wait_for, Gcsd};

fn gcsd(args: &[&str]) -> Output {
    Command::new(gcsd_binary())
        .args(args)
        .output()
        .expect("run gcsd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn sample_config_is_valid_and_config_check_accepts_it() {
    let out = gcsd(&["--print-sample-config"]);
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gcsd.toml");
    std::fs::write(&path, &out.stdout).unwrap();
    let check = gcsd(&["--config", path.to_str().unwrap(), "--config-check"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(text(&check.stdout).contains("plugin_listen = \"127.0.0.1:2200\""));
}

#[test]
fn bad_config_gets_one_clear_message_and_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gcsd.toml");
    let cases: [(&str, &[&str]); 5] = [
        ("node_idd = 2\n", &["unknown field `node_idd`", "gcsd.toml"]),
        (
            "voters = 2\nplugin_listen = \"localhost\"\n",
            &[
                "voters must be 1, 3 or 5",
                "plugin_listen \"localhost\" is not an IP:port address",
            ],
        ),
        (
            "member_timeout_ms = 100\n",
            &["member_timeout_ms (100) must be at least 3 raft heartbeats"],
        ),
        ("node_id = \"one\"\n", &["invalid type"]),
        (
            "plugin_listen = \"10.1.2.3:2200\"\nplugin_socket = \"run/plugin.sock\"\n",
            &[
                "plugin_listen 10.1.2.3:2200 is not loopback and takes join, leave and heartbeat",
                "plugin_tcp_writes = false",
                "plugin_socket \"run/plugin.sock\" must be an absolute path",
            ],
        ),
    ];
    for (toml, needles) in cases {
        std::fs::write(&path, toml).unwrap();
        let out = gcsd(&["--config", path.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{toml}: {err}");
        for n in needles {
            assert!(err.contains(n), "{toml}: {n:?} missing in {err}");
        }
        assert!(err.starts_with("gcsd: "), "{err}");
    }
    let out = gcsd(&["--config", "/nonexistent/gcsd.toml"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("cannot read config file /nonexistent/gcsd.toml"));
    // A CLI override is validated like the file.
    let out = gcsd(&["--node-id", "0", "--config-check"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("node_id must be 1 or more"));
}

/// A plugin socket that another gcsd serves is not taken over.
#[test]
fn plugin_socket_in_use_is_reported_and_exits_nonzero() {
    let g = Gcsd::new(1).with_plugin_socket().start();
    let socket = g.socket_path();
    let out = gcsd(&[
        "--plugin-listen",
        &format!("127.0.0.1:{}", common::free_port()),
        "--plugin-socket",
        socket.to_str().unwrap(),
        "--data-dir",
        g.dir.path().join("other").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot listen on plugin_socket {}: another process serves it",
            socket.display()
        )),
        "{err}"
    );
    assert!(g.connect_unix().cmd("quit").starts_with("0 Bye"));
}

#[test]
fn port_in_use_is_reported_and_exits_nonzero() {
    let g = Gcsd::new(1).start();
    let out = gcsd(&[
        "--plugin-listen",
        &g.plugin.to_string(),
        "--data-dir",
        g.dir.path().join("other").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("cannot listen on plugin_listen {}", g.plugin)),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn admin_http_answers_live_ready_and_metrics() {
    let g = Gcsd::new(1).start();
    assert_eq!(g.http_get("/live"), (200, "live\n".into()));
    wait_for("ready", Duration::from_secs(10), || {
        (g.http_get("/ready").0 == 200).then_some(())
    });
    assert_eq!(g.cmd("join db1 3306 on master"), "0 OK\n");
    let (status, metrics) = g.http_get("/metrics");
    assert_eq!(status, 200);
    for needle in [
        "gcsd_is_leader 1",
        "gcsd_quorum 1",
        "gcsd_servers 1",
        "gcsd_proposals_total{result=\"committed\"}",
        "gcsd_plugin_commands_total{command=\"join\"} 1",
        "gcsd_commit_seconds_count",
        "gcsd_members{state=\"up\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing in\n{metrics}");
    }
}

fn gcsctl_path() -> PathBuf {
    let path = gcsd_binary().with_file_name("gcsctl");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

fn gcsctl(m: &Gcsd, args: &[&str]) -> Output {
    Command::new(gcsctl_path())
        .arg("--gcsd")
        .arg(m.admin.to_string())
        .arg("--token-file")
        .arg(m.token_file())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn gcsctl_reports_and_changes_a_real_group() {
    let g = start_group(3, |m| m);
    assert_eq!(g[1].cmd("join db2 3306 on slave"), "0 OK\n");
    wait_for("db2 at member 3", Duration::from_secs(10), || {
        g[2].servers().contains(&"db2 3306".into()).then_some(())
    });

    let out = gcsctl(&g[2], &["servers"]);
    assert!(out.status.success());
    let table = text(&out.stdout);
    assert!(
        table.starts_with("MEMBER  HOST  PORT  STATUS  ROLE   TTL  LAST-UPDATE\n"),
        "{table}"
    );
    assert!(
        table.contains("gcsd2   db2   3306  on      slave  3s"),
        "{table}"
    );

    let out = gcsctl(&g[0], &["members", "--json"]);
    let members: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(members.as_array().unwrap().len(), 3);

    let out = gcsctl(&g[0], &["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("members:      3/3 up"),
        "{}",
        text(&out.stdout)
    );

    // add-member through a follower. Started by mistake without --join, the new gcsd creates a
    // group of its own, and the two groups refuse each other rather than mix their logs.
    let newcomer = Gcsd::new(4).with_config("name = \"extra\"");
    let out = gcsctl(
        &g[1],
        &[
            "add-member",
            "--id",
            "4",
            "--group-addr",
            &newcomer.group.to_string(),
            "--name",
            "extra",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut newcomer = newcomer.start();
    wait_for("the refusal", Duration::from_secs(10), || {
        newcomer.log().contains("belongs to group").then_some(())
    });
    assert!(newcomer.servers().is_empty());
    // Done right: empty data dir, --join.
    newcomer.kill9();
    std::fs::remove_dir_all(newcomer.dir.path().join("data")).unwrap();
    newcomer.join = Some(g[0].group);
    newcomer.launch();
    wait_for("the new member's list", Duration::from_secs(10), || {
        newcomer
            .servers()
            .contains(&"db2 3306".into())
            .then_some(())
    });

    let out = gcsctl(&g[0], &["remove-member", "4", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = gcsctl(&g[0], &["members"]);
    assert!(
        !text(&out.stdout).contains("extra"),
        "{}",
        text(&out.stdout)
    );
}

/// A member with no group, no join address and a group_listen off loopback does not found a
/// group of its own unless asked to (`--bootstrap`): exit 64 with the choice spelled out.
#[test]
fn no_silent_new_group() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gcsd.toml");
    std::fs::write(&config, "insecure_group_transport = true\n").unwrap();
    let port = |p: u16| format!("127.0.0.1:{p}");
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "--config".into(),
            config.display().to_string(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
            "--plugin-listen".into(),
            port(common::free_port()),
            "--admin-listen".into(),
            port(common::free_port()),
            "--group-listen".into(),
            format!("0.0.0.0:{}", common::free_port()),
            "--group-advertise".into(),
            port(common::free_port()),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let out = Command::new(gcsd_binary())
        .args(args(&[]))
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("no group in data_dir") && err.contains("bootstrap = true (--bootstrap)"),
        "{err}"
    );
    // Asked for, it forms a group of one.
    let mut child = Command::new(gcsd_binary())
        .args(args(&["--bootstrap"]))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    wait_for("a new group of one", Duration::from_secs(10), || {
        std::io::BufRead::read_line(&mut stderr, &mut log).ok()?;
        log.contains("starting a new group of one").then_some(())
    });
    child.kill().ok();
    child.wait().ok();
}

/// A group listener off loopback without TLS exits 64 naming the keys (unless the operator
/// opts out, logged at every start); a certificate of another member is refused at start.
#[test]
fn group_traffic_off_loopback_needs_tls() {
    let dir = tempfile::tempdir().unwrap();
    let out = gcsd(&["--group-listen", "0.0.0.0:2300", "--config-check"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("group_listen 0.0.0.0:2300 is not loopback: set tls_ca_file, tls_cert_file and tls_key_file"),
        "{err}"
    );
    // The opt-out is accepted, and said at start.
    let config = dir.path().join("insecure.toml");
    std::fs::write(&config, "insecure_group_transport = true\n").unwrap();
    let out = gcsd(&[
        "--config",
        config.to_str().unwrap(),
        "--group-listen",
        "0.0.0.0:2300",
        "--config-check",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Member 1 with member 2's certificate.
    let ca = common::certs::group_ca();
    let minted = ca.member(2, "127.0.0.1".parse().unwrap());
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("m.pem"), minted.cert).unwrap();
    std::fs::write(path("m.key"), minted.key).unwrap();
    std::fs::write(
        path("tls.toml"),
        format!(
            "tls_ca_file = {:?}\ntls_cert_file = {:?}\ntls_key_file = {:?}\n",
            path("ca.pem"),
            path("m.pem"),
            path("m.key")
        ),
    )
    .unwrap();
    let out = gcsd(&[
        "--config",
        path("tls.toml").to_str().unwrap(),
        "--data-dir",
        path("data").to_str().unwrap(),
        "--plugin-listen",
        &format!("127.0.0.1:{}", common::free_port()),
        "--admin-listen",
        &format!("127.0.0.1:{}", common::free_port()),
        "--group-listen",
        &format!("127.0.0.1:{}", common::free_port()),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("is member 2's certificate, and this is member 1"),
        "{err}"
    );
}
