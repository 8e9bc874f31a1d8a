//! Property tests: parsers never panic on hostile input, framing is independent of how bytes
//! arrive, and everything we print parses back to what it was.

use chrono::DateTime;
use proptest::prelude::*;
use proptest::sample::select;
use proto::{
    BlockReader, Command, Errno, Health, LineBuffer, LineTooLong, MppFields, PoolState, PoolType,
    Reply, Role, ServerKey, ServerList, ServerRow, Status, MAX_TOKEN,
};

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        "[!-~]{1,16}",
        proptest::string::string_regex(&format!("[!-~]{{{MAX_TOKEN}}}")).unwrap(),
    ]
}

fn server() -> impl Strategy<Value = ServerKey> {
    (token(), token()).prop_map(|(host, port)| ServerKey { host, port })
}

fn status() -> impl Strategy<Value = Status> {
    select(Status::ALL.to_vec())
}

fn role() -> impl Strategy<Value = Role> {
    select(Role::ALL.to_vec())
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (server(), status(), role()).prop_map(|(server, status, role)| Command::Join {
            server,
            status,
            role
        }),
        server().prop_map(|server| Command::Leave { server }),
        (server(), status()).prop_map(|(server, status)| Command::Heartbeat { server, status }),
        (1..=5u32).prop_map(|version| Command::Serverlist { version }),
        (1..=5u32).prop_map(|version| Command::Subscribe { version }),
        Just(Command::Quit),
    ]
}

fn row() -> impl Strategy<Value = ServerRow> {
    // Up to the year 9999, the last one RFC 3339 can print.
    let millis = 0..=253_402_300_799_999_i64;
    (token(), server(), status(), role(), any::<u32>(), millis).prop_map(
        |(member, server, status, role, ttl_secs, millis)| ServerRow {
            member,
            server,
            status,
            role,
            ttl_secs,
            last_update: DateTime::from_timestamp_millis(millis).unwrap(),
            mpp: None,
        },
    )
}

/// A version 2 row: in a pool or not; the message is printable text without surrounding
/// spaces (the row keeps it on one line and trims it).
fn row_v2() -> impl Strategy<Value = ServerRow> {
    let mpp = (
        "[!-~]{1,16}",
        select(PoolType::ALL.to_vec()),
        select(PoolState::ALL.to_vec()),
        proptest::option::of(select(Health::ALL.to_vec())),
        any::<u64>(),
        "([!-~]([ -~]{0,60}[!-~])?)?",
    )
        .prop_map(|(pool, kind, state, status, epoch, message)| MppFields {
            pool,
            kind,
            state,
            status,
            epoch,
            message,
        });
    (row(), proptest::option::of(mpp)).prop_map(|(row, mpp)| ServerRow { mpp, ..row })
}

/// Bytes rich in separators and terminators, so lines and tokens actually occur.
fn noisy_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => any::<u8>(),
        1 => select(b"\n\r \t".to_vec()),
        1 => select(b"joinleavheartbsrvlistcuq".to_vec()),
    ];
    proptest::collection::vec(byte, 0..400)
}

/// What framing must yield for `bytes` received all at once, straight from the rules.
fn reference_lines(bytes: &[u8], max: usize) -> Vec<Result<Vec<u8>, LineTooLong>> {
    let mut out = Vec::new();
    let mut pieces = bytes.split(|&b| b == b'\n').peekable();
    while let Some(piece) = pieces.next() {
        let complete = pieces.peek().is_some();
        if complete && piece.len() < max {
            out.push(Ok(piece.strip_suffix(b"\r").unwrap_or(piece).to_vec()));
        } else if piece.len() >= max.max(1) || (complete && max == 0) {
            out.push(Err(LineTooLong { max }));
            break;
        }
    }
    out
}

fn drain(buffer: &mut LineBuffer, out: &mut Vec<Result<Vec<u8>, LineTooLong>>) {
    out.extend(std::iter::from_fn(|| buffer.next_line()));
}

proptest! {
    #[test]
    fn command_parse_never_panics(bytes in noisy_bytes()) {
        let _ = Command::parse(&bytes);
    }

    #[test]
    fn errors_never_echo_binary(bytes in noisy_bytes()) {
        if let Err(error) = Command::parse(&bytes) {
            let line = Reply::from(&error).to_line();
            let text = line.strip_suffix('\n').unwrap();
            prop_assert!(text.bytes().all(|b| b.is_ascii_graphic() || b == b' '), "{:?}", line);
        }
    }

    #[test]
    fn framing_is_independent_of_chunking(
        bytes in noisy_bytes(),
        max in 0usize..48,
        chunks in proptest::collection::vec(1usize..24, 0..64),
    ) {
        let mut whole = LineBuffer::new(max);
        whole.push(&bytes);
        let mut one_shot = Vec::new();
        drain(&mut whole, &mut one_shot);
        prop_assert_eq!(&one_shot, &reference_lines(&bytes, max));

        let mut chunked = LineBuffer::new(max);
        let mut pieces = Vec::new();
        let mut rest = bytes.as_slice();
        for size in chunks.into_iter().chain(std::iter::repeat(7)) {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            chunked.push(chunk);
            drain(&mut chunked, &mut pieces);
            rest = tail;
        }
        prop_assert_eq!(pieces, one_shot);
    }

    #[test]
    fn command_round_trip(command in command()) {
        let line = command.to_line();
        prop_assert_eq!(Command::parse(line.as_bytes()), Ok(Some(command)));
    }

    #[test]
    fn command_parse_ignores_case_and_spacing(
        command in command(),
        upper in any::<bool>(),
        gaps in proptest::collection::vec("[ \t]{1,3}", 5),
        crlf in any::<bool>(),
    ) {
        let line = command.to_line();
        let mut words = line.trim_end().split(' ').map(str::to_owned).collect::<Vec<_>>();
        if upper {
            words[0] = words[0].to_uppercase();
        }
        let mut spaced = gaps[4].clone();
        for (word, gap) in words.iter().zip(&gaps) {
            spaced.push_str(word);
            spaced.push_str(gap);
        }
        spaced.push_str(if crlf { "\r\n" } else { "\n" });
        prop_assert_eq!(Command::parse(spaced.as_bytes()), Ok(Some(command)));
    }

    #[test]
    fn server_row_round_trip(row in row()) {
        prop_assert_eq!(ServerRow::parse(&row.to_line()), Ok(row));
    }

    #[test]
    fn reply_round_trip(errno in select(Errno::ALL.to_vec()), text in "[ -~]{0,60}") {
        let reply = Reply::new(errno, text);
        prop_assert_eq!(Reply::parse(&reply.to_line()), Ok(reply));
    }

    #[test]
    fn server_list_round_trip(
        stale in any::<bool>(),
        text in "[ -~]{0,40}",
        rows in proptest::collection::vec(row(), 0..8),
        terminators in any::<bool>(),
    ) {
        let errno = if stale { Errno::Stale } else { Errno::Ok };
        let list = ServerList { header: Reply::new(errno, text), rows };
        let block = list.to_block(1);
        let mut reader = BlockReader::new();
        let mut done = Vec::new();
        let lines: Vec<&str> = if terminators {
            block.split_inclusive('\n').collect()
        } else {
            block.lines().collect()
        };
        for line in lines {
            done.extend(reader.push_line(line).unwrap());
        }
        prop_assert_eq!(done, vec![list]);
    }

    #[test]
    fn server_list_v2_round_trip(rows in proptest::collection::vec(row_v2(), 0..8)) {
        let list = ServerList { header: Reply::new(Errno::Ok, ""), rows };
        let mut reader = BlockReader::of_version(2);
        let mut done = Vec::new();
        for line in list.to_block(2).split_inclusive('\n') {
            done.extend(reader.push_line(line).unwrap());
        }
        prop_assert_eq!(done, vec![list]);
    }

    #[test]
    fn block_reader_never_panics(lines in proptest::collection::vec(".{0,80}", 0..20)) {
        let mut reader = BlockReader::new();
        for line in &lines {
            let _ = reader.push_line(line);
        }
    }

    // The fuzz targets' checks (fuzz/), on stable: see proto::checks.
    #[test]
    fn fuzz_check_plugin_lines(bytes in noisy_bytes()) {
        proto::checks::check_plugin_lines(&bytes);
    }

    #[test]
    fn fuzz_check_serverlist_lines(
        rows in proptest::collection::vec(row_v2(), 0..6),
        noise in noisy_bytes(),
    ) {
        let block = ServerList { header: Reply::ok(), rows }.to_block(2);
        let mut bytes = block.into_bytes();
        bytes.extend_from_slice(&noise);
        proto::checks::check_serverlist_lines(&bytes);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn fuzz_check_admin_json(json in r#"\{("(id|group_addr|name|admin_addr|op|pool|to|server|settings)":("[ -~]{0,12}"|[0-9]{1,3}|null|\[\]),?){0,4}\}"#) {
        proto::checks::check_admin_json(json.as_bytes());
    }
}
