//! The admin API's guards against a real gcsd: the token (created at the first start, required
//! for everything that changes or reveals the group), the `Host` check, and connection floods.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{gcsd_binary, start_group, wait_for, Gcsd};

const WAIT: Duration = Duration::from_secs(15);

/// A raw HTTP/1.1 request with the given `Host`; the whole answer (the server closes).
fn raw(g: &Gcsd, host: &str, path: &str) -> String {
    let mut s = TcpStream::connect(g.admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

/// Without the token, every request that changes or reveals the group is refused (401) and
/// changes nothing; the probes' endpoints stay open; with the token all works as before.
#[test]
fn unauthenticated_admin_writes_are_401() {
    let g = start_group(2, |m| m);
    let token_mode = std::fs::metadata(g[0].token_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(token_mode & 0o777, 0o600, "the created token is private");
    for token in [None, Some("x".repeat(64).as_str())] {
        for (method, path, body) in [
            ("POST", "/shutdown", None),
            ("DELETE", "/members/2", None),
            (
                "POST",
                "/members",
                Some(r#"{"id":7,"group_addr":"127.0.0.1:9"}"#),
            ),
            ("GET", "/cluster", None),
            ("GET", "/pools", None),
            ("GET", "/history", None),
            ("POST", "/pools", Some(r#"{"op":"pause","pool":"app"}"#)),
        ] {
            let (status, answer) = g[0].http_as(method, path, body, token);
            assert_eq!(status, 401, "{method} {path} with {token:?}: {answer}");
            assert!(answer.contains("--token-file"), "{answer}");
        }
    }
    for path in ["/live", "/ready", "/metrics"] {
        assert_eq!(g[0].http_as("GET", path, None, None).0, 200, "{path}");
    }
    // Nothing changed: both members, gcsd 1 still running.
    let cluster = g[0].cluster();
    assert_eq!(cluster["members"].as_array().unwrap().len(), 2, "{cluster}");
    // The wrong token was logged once, not once per request.
    let log = g[0].log();
    assert_eq!(
        log.matches("admin request with a wrong token refused")
            .count()
            + log.matches("admin request with no token refused").count(),
        1,
        "{log}"
    );
    // With the token: as before.
    let (status, answer) = g[0].http("DELETE", "/members/2", None);
    assert_eq!(status, 200, "{answer}");
    wait_for("member 2 removed", WAIT, || {
        (g[0].cluster()["members"].as_array().unwrap().len() == 1).then_some(())
    });
}

/// gcsctl with the token file works; without it, it exits 1 and names `--token-file`; a
/// token file it cannot read is a usage error (2).
#[test]
fn gcsctl_needs_the_token_file() {
    let g = start_group(1, |m| m);
    let gcsctl = |args: &[&str]| {
        Command::new(gcsd_binary().with_file_name("gcsctl"))
            .env_remove("GCSCTL_TOKEN_FILE")
            .arg("--gcsd")
            .arg(g[0].admin.to_string())
            .args(args)
            .output()
            .unwrap()
    };
    let token = g[0].token_file();
    let token = token.to_str().unwrap();
    let out = gcsctl(&["--token-file", token, "members"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gcsctl(&["members"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("HTTP 401") && err.contains("--token-file"),
        "{err}"
    );
    let out = gcsctl(&["--token-file", "/nonexistent/admin.token", "members"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot read --token-file /nonexistent/admin.token"),
        "{err}"
    );
    let out = gcsctl(&["--token-file", token, "shutdown"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `Host` that is not an IP address or localhost (DNS rebinding from a browser) gets 421,
/// on open and guarded routes alike.
#[test]
fn foreign_host_names_get_421() {
    let g = Gcsd::new(1).start();
    for path in ["/live", "/cluster"] {
        let answer = raw(&g, "evil.example", path);
        assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
        assert!(
            answer.contains("not an IP address or localhost"),
            "{answer}"
        );
    }
    assert!(raw(&g, "localhost:2280", "/live").starts_with("HTTP/1.1 200"));
    assert!(raw(&g, &g.admin.to_string(), "/live").starts_with("HTTP/1.1 200"));
}

/// A token file others could read is refused at start (exit 64, with the fix); so is a short
/// one. A configured token file that is fine is used as it is.
#[test]
fn token_file_mistakes_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.token");
    let run = |mode: u32, text: &str| {
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        Command::new(gcsd_binary())
            .args(["--admin-token-file", path.to_str().unwrap()])
            .args(["--data-dir", dir.path().join("data").to_str().unwrap()])
            .args([
                "--plugin-listen",
                "127.0.0.1:1",
                "--admin-listen",
                "127.0.0.1:1",
            ])
            .output()
            .unwrap()
    };
    let good = "0123456789abcdef".repeat(4);
    let out = run(0o644, &good);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("mode 0644") && err.contains("chmod 600"),
        "{err}"
    );
    let out = run(0o600, "short");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("at least 32 characters"), "{err}");
    // A good file gets past the token check (and stops at the port it cannot bind).
    let out = run(0o600, &good);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot listen"), "{err}");
}

/// Raises this process's open-files limit to its hard limit (the flood needs ~2,200 sockets).
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

/// 2,000 idle connections and 100 that send one header byte a second do not keep a fresh
/// client from `/ready`, and are all closed by the header deadline (10 s).
#[test]
fn admin_slowloris() {
    const IDLE: usize = 2000;
    const SLOW: usize = 100;
    if raise_nofile() < (IDLE + SLOW + 200) as u64 {
        panic!("the open-files hard limit is too low for this test");
    }
    let g = Gcsd::new(1).start();
    wait_for("ready", WAIT, || {
        (g.http_get("/ready").0 == 200).then_some(())
    });
    let rss = || common::rss_kb(g.pid());
    let rss_before = rss();
    let mut rss_peak = 0;
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(g.admin).unwrap())
        .collect();
    let slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| TcpStream::connect(g.admin).unwrap())
        .collect();
    let header = b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut closed_at = None;
    let mut tick = 0;
    while started.elapsed() < Duration::from_secs(16) {
        // One byte a second on each slow connection (a header that never ends).
        let byte = [header[tick.min(header.len() - 1)]];
        let open = slow
            .iter()
            .filter(|s| still_open(s) && (&**s).write_all(&byte).is_ok())
            .count();
        tick += 1;
        let asked = Instant::now();
        let (status, _) = g.http_as("GET", "/ready", None, None);
        assert_eq!(status, 200);
        rss_peak = rss_peak.max(rss());
        worst = worst.max(asked.elapsed());
        if open == 0 && closed_at.is_none() {
            closed_at = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!(
        "worst /ready during the flood: {worst:?}; slow connections closed after {closed_at:?}; \
         gcsd RSS {rss_before} kB before, at most {rss_peak} kB during"
    );
    assert!(rss_peak < 100 * 1024, "gcsd grew to {rss_peak} kB");
    assert!(worst < Duration::from_millis(500), "/ready took {worst:?}");
    let closed_at = closed_at.expect("slow connections still open after 16 s");
    assert!(closed_at <= Duration::from_secs(15), "{closed_at:?}");
    // The idle ones were closed too.
    let idle_open = idle.iter().filter(|s| still_open(s)).count();
    assert_eq!(idle_open, 0, "idle connections still open");
}

/// Whether the server has not closed this connection (a read would block rather than see EOF
/// or a reset).
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let open =
        matches!((&*s).read(&mut [0u8; 64]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}
