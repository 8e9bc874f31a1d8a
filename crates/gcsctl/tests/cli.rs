//! Runs the built `gcsctl` binary: exit codes and messages an operator or script sees.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::thread::{self, JoinHandle};

fn gcsctl(gcsd: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gcsctl"))
        .env_remove("GCSCTL_GCSD")
        .env_remove("GCSCTL_TOKEN_FILE")
        .args(["--gcsd", gcsd])
        .args(args)
        .output()
        .expect("gcsctl runs")
}

/// An address where nothing listens: bind a port, then let it go.
fn closed_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A one-shot HTTP server standing in for gcsd; yields the request it got.
fn fake_gcsd(status: u16, body: &'static str) -> (String, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut request = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
            request.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut payload = vec![0; length];
        reader.read_exact(&mut payload).unwrap();
        request.push_str(&String::from_utf8(payload).unwrap());
        let answer = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        reader.get_mut().write_all(answer.as_bytes()).unwrap();
        request
    });
    (addr, handle)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn unreachable_gcsd_exits_3_with_a_helpful_message() {
    let addr = closed_addr();
    for args in [
        &["status"][..],
        &["members"],
        &["servers", "--json"],
        &["shutdown"],
    ] {
        let out = gcsctl(&addr, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.contains(&format!("cannot reach gcsd at {addr}: connection refused")),
            "{args:?}: {err}"
        );
        assert!(err.contains("is gcsd running? (--gcsd)"), "{args:?}: {err}");
    }
}

#[test]
fn gcsd_address_comes_from_the_environment() {
    let addr = closed_addr();
    let out = Command::new(env!("CARGO_BIN_EXE_gcsctl"))
        .env("GCSCTL_GCSD", &addr)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains(&addr), "{}", stderr(&out));
}

#[test]
fn remove_member_without_yes_refuses_and_explains() {
    // A closed port proves the refusal happens before contacting gcsd (that would exit 3).
    let out = gcsctl(&closed_addr(), &["remove-member", "5"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not removing member 5"), "{err}");
    assert!(err.contains("permanent"), "{err}");
    assert!(err.contains("gcsctl remove-member 5 --yes"), "{err}");
}

#[test]
fn bad_gcsd_address_is_a_usage_error() {
    let out = gcsctl("https://db1:2280", &["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn status_without_quorum_exits_1() {
    let (addr, gcsd) = fake_gcsd(
        200,
        r#"{"me":2,"name":"gcsd2","role":"follower","leader":null,"term":4,"quorum":false,
            "quorum_problem":"no leader","last_applied":null,"view_id":3,"members":[],"servers":[]}"#,
    );
    let out = gcsctl(&addr, &["status"]);
    assert!(gcsd
        .join()
        .unwrap()
        .starts_with("GET /cluster HTTP/1.1\r\n"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("quorum:       no (no leader)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn servers_without_quorum_warns_on_stderr() {
    let (addr, gcsd) = fake_gcsd(
        200,
        r#"{"me":2,"name":"gcsd2","role":"follower","leader":null,"term":4,"quorum":false,
            "quorum_problem":"no leader","last_applied":null,"view_id":3,"members":[],"servers":[]}"#,
    );
    let out = gcsctl(&addr, &["servers"]);
    gcsd.join().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stderr(&out),
        "warning: gcsd2 has no quorum (no leader); this list may be stale\n"
    );
    assert_eq!(
        stdout(&out),
        "MEMBER  HOST  PORT  STATUS  ROLE  TTL  LAST-UPDATE\n(none)\n"
    );
}

#[test]
fn add_member_rejected_by_gcsd_exits_1_with_its_reason() {
    let (addr, gcsd) = fake_gcsd(409, r#"{"error":"member id 2 is already in the group"}"#);
    let out = gcsctl(
        &addr,
        &["add-member", "--id", "2", "--group-addr", "127.0.0.1:12301"],
    );
    let request = gcsd.join().unwrap();
    assert!(
        request.starts_with("POST /members HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.ends_with(r#"{"id":2,"group_addr":"127.0.0.1:12301"}"#),
        "{request}"
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "gcsd at {addr} could not add member 2 (HTTP 409): member id 2 is already in the group"
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn remove_member_with_yes_prints_gcsd_message() {
    let (addr, gcsd) = fake_gcsd(200, r#"{"message":"member 5 removed"}"#);
    let out = gcsctl(&addr, &["remove-member", "5", "--yes"]);
    assert!(gcsd
        .join()
        .unwrap()
        .starts_with("DELETE /members/5 HTTP/1.1\r\n"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "member 5 removed\n");
}
