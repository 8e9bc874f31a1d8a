//! Byte-for-byte conformance of the plugin port: request lines in, commands or exact
//! reply lines out.

use proto::{Command, Errno, LineBuffer, LineTooLong, Reply, Role, ServerKey, Status, MAX_LINE};

fn parse(line: &[u8]) -> Result<Option<Command>, String> {
    Command::parse(line).map_err(|error| Reply::from(&error).to_line())
}

fn join(host: &str, port: &str, status: Status, role: Role) -> Option<Command> {
    Some(Command::Join {
        server: ServerKey::new(host, port),
        status,
        role,
    })
}

fn leave(host: &str, port: &str) -> Option<Command> {
    Some(Command::Leave {
        server: ServerKey::new(host, port),
    })
}

fn heartbeat(host: &str, port: &str, status: Status) -> Option<Command> {
    Some(Command::Heartbeat {
        server: ServerKey::new(host, port),
        status,
    })
}

#[test]
fn valid_commands() {
    let table: &[(&[u8], Option<Command>)] = &[
        (
            b"join db1 3306 on master\n",
            join("db1", "3306", Status::On, Role::Master),
        ),
        (
            b"join db1 3306 on master",
            join("db1", "3306", Status::On, Role::Master),
        ),
        (
            b"join db1 3306 on master\r\n",
            join("db1", "3306", Status::On, Role::Master),
        ),
        (
            b"JOIN db1 3306 OFF SLAVE\n",
            join("db1", "3306", Status::Off, Role::Slave),
        ),
        (
            b"Join DB1 /tmp/My.sock StArTiNg StandAlone\n",
            join("DB1", "/tmp/My.sock", Status::Starting, Role::Standalone),
        ),
        (
            b"  join \t db1\t\t3306   stopping  slave \t\r\n",
            join("db1", "3306", Status::Stopping, Role::Slave),
        ),
        (
            b"join db1 3306 standby master\n",
            join("db1", "3306", Status::Standby, Role::Master),
        ),
        (b"leave db1 3306\n", leave("db1", "3306")),
        (b"LEAVE db1 3306\r\n", leave("db1", "3306")),
        (
            b"heartbeat db1 3306 on\n",
            heartbeat("db1", "3306", Status::On),
        ),
        (
            b"HeartBeat\tdb1\t3306\tSTANDBY\n",
            heartbeat("db1", "3306", Status::Standby),
        ),
        (b"serverlist\n", Some(Command::Serverlist { version: 1 })),
        (b"SERVERLIST\r\n", Some(Command::Serverlist { version: 1 })),
        (b" serverlist \n", Some(Command::Serverlist { version: 1 })),
        (b"subscribe\n", Some(Command::Subscribe { version: 1 })),
        (b"subscribe 2\n", Some(Command::Subscribe { version: 2 })),
        (b"serverlist 7\n", Some(Command::Serverlist { version: 7 })),
        (b"Subscribe\r\n", Some(Command::Subscribe { version: 1 })),
        (b"quit\n", Some(Command::Quit)),
        (b"QUIT", Some(Command::Quit)),
        // Blank lines get no reply.
        (b"", None),
        (b"\n", None),
        (b"\r\n", None),
        (b"   \t \n", None),
        (b" \t\r\n", None),
    ];
    for (line, expected) in table {
        assert_eq!(
            parse(line),
            Ok(expected.clone()),
            "line {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn error_replies() {
    let t255 = "h".repeat(255);
    let t256 = "h".repeat(256);
    let owned: Vec<(Vec<u8>, &str)> = vec![
        // 1: unknown or undecodable command word.
        (b"hello\n".to_vec(), "1 Invalid command\n"),
        (b"joinx db1 3306 on master\n".to_vec(), "1 Invalid command\n"),
        (b"j\xc3\xb6in db1 3306\n".to_vec(), "1 Invalid command\n"),
        (b"\xff\xfe\n".to_vec(), "1 Invalid command\n"),
        (b"\x00\n".to_vec(), "1 Invalid command\n"),
        (b"quit\r\r\n".to_vec(), "1 Invalid command\n"),
        (b"quit\r".to_vec(), "1 Invalid command\n"),
        (b"\x0bquit\n".to_vec(), "1 Invalid command\n"),
        // 2: wrong parameter count, checked before anything else about parameters.
        (b"join db1 3306 on\n".to_vec(), "2 Wrong number of parameters, syntax: join <host> <port> <mysqlStatus> <mysqlRole>\n"),
        (b"join db1 3306 on master extra\n".to_vec(), "2 Wrong number of parameters, syntax: join <host> <port> <mysqlStatus> <mysqlRole>\n"),
        (b"join\n".to_vec(), "2 Wrong number of parameters, syntax: join <host> <port> <mysqlStatus> <mysqlRole>\n"),
        (b"leave db1\n".to_vec(), "2 Wrong number of parameters, syntax: leave <host> <port>\n"),
        (b"leave db1 3306 on\n".to_vec(), "2 Wrong number of parameters, syntax: leave <host> <port>\n"),
        (b"heartbeat db1 3306\n".to_vec(), "2 Wrong number of parameters, syntax: heartbeat <host> <port> <mysqlStatus>\n"),
        (b"heartbeat \xff 3306\n".to_vec(), "2 Wrong number of parameters, syntax: heartbeat <host> <port> <mysqlStatus>\n"),
        (b"serverlist 1 2\n".to_vec(), "2 Wrong number of parameters, syntax: serverlist [<version>]\n"),
        (b"serverlist all\n".to_vec(), "5 Invalid version parameter 'all': use a serverlist version from 1 (this gcsd speaks up to 2), syntax: serverlist [<version>]\n"),
        (b"subscribe 0\n".to_vec(), "5 Invalid version parameter '0': use a serverlist version from 1 (this gcsd speaks up to 2), syntax: subscribe [<version>]\n"),
        (b"quit now\r\n".to_vec(), "2 Wrong number of parameters, syntax: quit\n"),
        // 5: invalid tokens, checked for every parameter before status and role.
        (b"join d\xc3\xa9 3306 on master\n".to_vec(), "5 Invalid host parameter: use 1 to 255 printable ASCII characters, syntax: join <host> <port> <mysqlStatus> <mysqlRole>\n"),
        (b"join db1 33\x0706 bogus bogus\n".to_vec(), "5 Invalid port parameter: use 1 to 255 printable ASCII characters, syntax: join <host> <port> <mysqlStatus> <mysqlRole>\n"),
        (b"join db1 3306 o\xffn master\n".to_vec(), "5 Invalid mysqlStatus parameter: use 1 to 255 printable ASCII characters, syntax: join <host> <port> <mysqlStatus> <mysqlRole>\n"),
        (b"join db1 3306 bogus mast\x00er\n".to_vec(), "5 Invalid mysqlRole parameter: use 1 to 255 printable ASCII characters, syntax: join <host> <port> <mysqlStatus> <mysqlRole>\n"),
        (b"join db1 3306 on master\r\r\n".to_vec(), "5 Invalid mysqlRole parameter: use 1 to 255 printable ASCII characters, syntax: join <host> <port> <mysqlStatus> <mysqlRole>\n"),
        (format!("leave {t256} 3306\n").into_bytes(), "5 Invalid host parameter: use 1 to 255 printable ASCII characters, syntax: leave <host> <port>\n"),
        (format!("heartbeat db1 {t256} on\n").into_bytes(), "5 Invalid port parameter: use 1 to 255 printable ASCII characters, syntax: heartbeat <host> <port> <mysqlStatus>\n"),
        (format!("heartbeat db1 3306 {t256}\n").into_bytes(), "5 Invalid mysqlStatus parameter: use 1 to 255 printable ASCII characters, syntax: heartbeat <host> <port> <mysqlStatus>\n"),
        // 3: unknown status, echoed as given; checked before role.
        (b"heartbeat db1 3306 up\n".to_vec(), "3 Unknown mysqlStatus 'up', syntax: heartbeat <host> <port> <mysqlStatus>\n"),
        (b"join db1 3306 ONN bogus\n".to_vec(), "3 Unknown mysqlStatus 'ONN', syntax: join <host> <port> <mysqlStatus> <mysqlRole>\n"),
        (b"join db1 3306 'x' master\n".to_vec(), "3 Unknown mysqlStatus ''x'', syntax: join <host> <port> <mysqlStatus> <mysqlRole>\n"),
        // 4: unknown role.
        (b"join db1 3306 on Primary\r\n".to_vec(), "4 Unknown mysqlRole 'Primary', syntax: join <host> <port> <mysqlStatus> <mysqlRole>\n"),
        (b"join db1 3306 on master,\n".to_vec(), "4 Unknown mysqlRole 'master,', syntax: join <host> <port> <mysqlStatus> <mysqlRole>\n"),
    ];
    for (line, expected) in &owned {
        assert_eq!(
            parse(line),
            Err(expected.to_string()),
            "line {:?}",
            String::from_utf8_lossy(line)
        );
    }
    // 255 bytes is the longest valid token.
    assert_eq!(
        parse(format!("leave {t255} {t255}\n").as_bytes()),
        Ok(leave(&t255, &t255))
    );
    let echoed = format!("heartbeat db1 3306 {t255}\n");
    assert_eq!(
        parse(echoed.as_bytes()),
        Err(format!(
            "3 Unknown mysqlStatus '{t255}', syntax: heartbeat <host> <port> <mysqlStatus>\n"
        ))
    );
}

#[test]
fn errno_of_each_error() {
    let cases: &[(&[u8], Errno)] = &[
        (b"x", Errno::InvalidCommand),
        (b"quit 1", Errno::WrongParameterCount),
        (b"heartbeat a b c", Errno::UnknownStatus),
        (b"join a b on c", Errno::UnknownRole),
        (b"leave a \x01", Errno::InvalidParameter),
    ];
    for (line, errno) in cases {
        assert_eq!(Command::parse(line).unwrap_err().errno(), *errno);
    }
}

#[test]
fn daemon_side_replies() {
    assert_eq!(Reply::ok().to_line(), "0 OK\n");
    assert_eq!(Reply::bye().to_line(), "0 Bye\n");
    assert_eq!(
        Reply::unknown_server(&ServerKey::new("db1", "3306")).to_line(),
        "9 Unknown server 'db1 3306', join first\n"
    );
    assert_eq!(
        Reply::from(&LineTooLong { max: MAX_LINE }).to_line(),
        "8 Line too long: at most 1024 bytes per line; closing connection\n"
    );
    assert_eq!(
        Reply::new(Errno::NoQuorum, "No quorum").to_line(),
        "6 No quorum\n"
    );
    assert_eq!(
        Reply::new(Errno::TooManyConnections, "Too many connections").to_line(),
        "10 Too many connections\n"
    );
    assert_eq!(
        Reply::new(Errno::ShuttingDown, "Shutting down").to_line(),
        "11 Shutting down\n"
    );
}

/// Every reply the daemon makes itself, exactly as the README documents it.
#[test]
fn daemon_side_replies_byte_for_byte() {
    let why = "the leader hears from 1 of 3 voters and needs 2";
    let table: &[(Reply, &str)] = &[
        (
            Reply::no_quorum(why),
            "6 No quorum: this member cannot commit (the leader hears from 1 of 3 voters and needs 2)\n",
        ),
        (
            Reply::heartbeat_without_quorum("no leader heard from since start"),
            "6 No quorum: this member cannot commit (no leader heard from since start) (heartbeat recorded on this member)\n",
        ),
        (
            Reply::stale(why),
            "7 Stale serverlist: this member cannot commit (the leader hears from 1 of 3 voters and needs 2)\n",
        ),
        (
            Reply::from(&LineTooLong { max: MAX_LINE }),
            "8 Line too long: at most 1024 bytes per line; closing connection\n",
        ),
        (
            Reply::unknown_server(&ServerKey::new("db1", "/run/mysqld/mysqld.sock")),
            "9 Unknown server 'db1 /run/mysqld/mysqld.sock', join first\n",
        ),
        (
            Reply::too_many_connections(10000),
            "10 Too many connections: at most 10000 are served; try again later\n",
        ),
        (
            Reply::shutting_down(),
            "11 Shutting down: this gcsd is stopping\n",
        ),
        (
            Reply::rejected("member 2 is marked down; it must announce itself before registering servers"),
            "12 Rejected: member 2 is marked down; it must announce itself before registering servers\n",
        ),
        (
            Reply::failed("Raft stopped: panicked"),
            "13 Failed: the change may not have been committed (Raft stopped: panicked)\n",
        ),
        (
            Reply::too_many_servers("member 1 has registered 1000 servers, the most one member may"),
            "14 Too many servers: member 1 has registered 1000 servers, the most one member may\n",
        ),
    ];
    for (reply, line) in table {
        assert_eq!(reply.to_line(), *line);
        assert_eq!(Reply::parse(line).as_ref(), Ok(reply));
    }
}

/// Errnos 1 to 5 come from the parser and 6 to 14 from the daemon's constructors; together
/// the tests of this file cover every code.
#[test]
fn every_errno_has_a_conformance_case() {
    let covered = [
        Errno::Ok,
        Errno::InvalidCommand,
        Errno::WrongParameterCount,
        Errno::UnknownStatus,
        Errno::UnknownRole,
        Errno::InvalidParameter,
        Reply::no_quorum("").errno,
        Reply::stale("").errno,
        Reply::from(&LineTooLong { max: 1 }).errno,
        Reply::unknown_server(&ServerKey::new("a", "b")).errno,
        Reply::too_many_connections(1).errno,
        Reply::shutting_down().errno,
        Reply::rejected("").errno,
        Reply::failed("").errno,
        Reply::too_many_servers("").errno,
    ];
    assert_eq!(covered, Errno::ALL);
}

#[test]
fn canonical_client_lines() {
    let cases = [
        (
            join("db1", "3306", Status::On, Role::Master),
            "join db1 3306 on master\n",
        ),
        (leave("db1", "/tmp/s"), "leave db1 /tmp/s\n"),
        (
            heartbeat("db1", "3306", Status::Standby),
            "heartbeat db1 3306 standby\n",
        ),
        (Some(Command::Serverlist { version: 1 }), "serverlist\n"),
        (Some(Command::Subscribe { version: 1 }), "subscribe\n"),
        (Some(Command::Quit), "quit\n"),
    ];
    for (command, line) in cases {
        assert_eq!(command.unwrap().to_line(), line);
    }
}

#[test]
fn a_session_through_the_line_buffer() {
    let mut buffer = LineBuffer::new(MAX_LINE);
    buffer.push(b"JOIN db1 3306 on master\r\n\r\nheartbeat db1 3306 of");
    buffer.push(b"f\nserverlist\n");
    let mut replies = Vec::new();
    while let Some(line) = buffer.next_line() {
        match Command::parse(&line.unwrap()) {
            Ok(Some(_)) => replies.push(Reply::ok().to_line()),
            Ok(None) => {}
            Err(error) => replies.push(Reply::from(&error).to_line()),
        }
    }
    assert_eq!(replies, ["0 OK\n", "0 OK\n", "0 OK\n"]);

    let mut too_long = vec![b'x'; MAX_LINE];
    too_long.push(b'\n');
    buffer.push(&too_long);
    let error = buffer.next_line().unwrap().unwrap_err();
    assert_eq!(
        Reply::from(&error).to_line(),
        "8 Line too long: at most 1024 bytes per line; closing connection\n"
    );
}
