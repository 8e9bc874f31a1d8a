//! Mutual TLS and authorization on the group wire, against real gcsd processes: plaintext
//! peers, foreign, expired and anonymous certificates, a certificate used under another member's
//! name, and an authenticated member that asks for what only another may (issue 10, step 2).
//! The whole group and partition suites also run over TLS (`GCSD_TEST_TLS=1`, scripts/test.sh).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::{group_ca, member_sans, Minted, TestCa};
use common::{start_group, Gcsd};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// One length-prefixed JSON frame.
fn frame(json: &str) -> Vec<u8> {
    let mut bytes = (json.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    bytes
}

fn hello(from: u64) -> Vec<u8> {
    frame(&format!(
        r#"{{"magic":"mysql-gcs group","version":1,"from":{from},"group":null}}"#
    ))
}

/// Everything the peer sends until it closes (or 3 s pass), and how long that took.
fn drain(stream: &mut impl Read) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(3) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    (got, started.elapsed())
}

/// A TLS client to `g`'s group port with `who`'s certificate, trusting `ca`.
fn tls_client(
    g: &Gcsd,
    ca: &TestCa,
    who: &Minted,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_slice(who.cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(who.key.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let name = ServerName::IpAddress(g.group.ip().into());
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(g.group).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// Says hello as member `from` with `who`'s certificate; what comes back before the close.
fn hello_with(g: &Gcsd, ca: &TestCa, who: &Minted, from: u64) -> Vec<u8> {
    let mut client = tls_client(g, ca, who);
    // The handshake may already fail here (the server refuses the certificate).
    if client
        .write_all(&hello(from))
        .and_then(|()| client.flush())
        .is_err()
    {
        return Vec::new();
    }
    drain(&mut client).0
}

fn said_hello(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes).contains("mysql-gcs group")
}

/// A plaintext peer with a valid hello is closed within 1 s without a byte of gcsd's hello; the
/// group's term and log are as before; one warning.
#[test]
fn plaintext_peer_refused() {
    let g = start_group(1, Gcsd::with_tls);
    let before = g[0].cluster();
    let mut raw = TcpStream::connect(g[0].group).unwrap();
    raw.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    raw.write_all(&hello(2)).unwrap();
    let (got, took) = drain(&mut raw);
    assert!(!said_hello(&got), "{got:?}");
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    let after = g[0].cluster();
    assert_eq!(before["term"], after["term"]);
    assert_eq!(before["last_applied"], after["last_applied"]);
    assert_eq!(g[0].metric("gcsd_group_refused_total{reason=\"tls\"}"), 1.0);
    assert_eq!(g[0].log().matches("refused a group connection").count(), 1);
}

/// Certificates from another CA, expired ones and ones that name no member are refused in the
/// handshake; a certificate of the group's CA works (as a hello that gets an answer).
#[test]
fn foreign_expired_and_anonymous_certificates_refused() {
    let g = start_group(1, Gcsd::with_tls);
    let ca = group_ca();
    let foreign = TestCa::new("another group's CA");
    let cases = [
        ("foreign CA", foreign.member(2, LOOPBACK)),
        ("expired", ca.leaf(member_sans(2, LOOPBACK), true)),
        (
            "no member SAN",
            ca.leaf(vec![rcgen::SanType::IpAddress(LOOPBACK)], false),
        ),
    ];
    for (what, cert) in &cases {
        assert!(!said_hello(&hello_with(&g[0], ca, cert, 2)), "{what}");
    }
    assert_eq!(
        g[0].metric("gcsd_group_refused_total{reason=\"tls\"}"),
        cases.len() as f64
    );
    assert!(said_hello(&hello_with(
        &g[0],
        ca,
        &ca.member(2, LOOPBACK),
        2
    )));
}

/// Member 2's certificate cannot say hello as member 3.
#[test]
fn identity_binding() {
    let g = start_group(1, Gcsd::with_tls);
    let member2 = group_ca().member(2, LOOPBACK);
    assert!(!said_hello(&hello_with(&g[0], group_ca(), &member2, 3)));
    assert_eq!(
        g[0].metric("gcsd_group_refused_total{reason=\"identity\"}"),
        1.0
    );
}

/// An authenticated member (2) asks for what only another may: entries as leader 1 in a later
/// term, a registration in member 1's name. Each is refused; the term and the list stay.
#[test]
fn authenticated_members_speak_only_for_themselves() {
    let g = start_group(1, Gcsd::with_tls);
    assert_eq!(g[0].cmd("join db1 3306 on master"), "0 OK\n");
    let before = g[0].cluster();
    let term = before["term"].as_u64().unwrap();
    let mut client = tls_client(&g[0], group_ca(), &group_ca().member(2, LOOPBACK));
    client.write_all(&hello(2)).unwrap();
    let append = format!(
        r#"{{"AppendEntries":{{"vote":{{"leader_id":{{"term":{},"node_id":1}},"committed":true}},"prev_log_id":null,"entries":[],"leader_commit":null}}}}"#,
        term + 5
    );
    let register = r#"{"Propose":{"Register":{"member":1,"server":{"host":"db1","port":"3306"},"status":"off","role":"slave","ttl_secs":3,"at":"2026-01-01T00:00:00Z"}}}"#;
    for request in [append.as_str(), register] {
        client.write_all(&frame(request)).unwrap();
        client.flush().unwrap();
    }
    client.sock.shutdown(std::net::Shutdown::Write).ok();
    let (got, _) = drain(&mut client);
    let text = String::from_utf8_lossy(&got);
    assert!(said_hello(&got), "{text}");
    assert!(
        text.contains("member 2 sent entries on behalf of member 1"),
        "{text}"
    );
    assert!(
        text.contains("member 2 sent a change on behalf of member 1"),
        "{text}"
    );
    let after = g[0].cluster();
    assert_eq!(after["term"], before["term"]);
    assert_eq!(g[0].servers(), ["db1 3306"]);
    assert_eq!(g[0].serverlist().rows[0].status.as_str(), "on");
    assert_eq!(
        g[0].metric("gcsd_group_refused_total{reason=\"unauthorized\"}"),
        2.0
    );
}
