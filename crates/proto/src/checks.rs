//! The invariants the fuzz targets (`fuzz/`) and the property tests (`tests/properties.rs`,
//! on stable, in CI) both check, on arbitrary bytes: one function per input the outside world
//! controls. Each panics on a broken invariant, which is what a fuzzer reports.

use crate::{BlockReader, Command, LineBuffer, Reply, ServerRow, MAX_BLOCK_ROWS, MAX_LINE};

/// Bytes from a plugin-port client, cut into reads whose sizes the input also chooses: every
/// line framed is shorter than [`MAX_LINE`], every command parsed prints back to itself, and
/// every error reply is one line of printable text.
pub fn check_plugin_lines(data: &[u8]) {
    let (sizes, bytes) = data.split_at(data.len().min(8));
    let mut lines = LineBuffer::new(MAX_LINE);
    let mut rest = bytes;
    let mut size = sizes.iter().cycle().map(|&s| usize::from(s).max(1));
    while !rest.is_empty() {
        let (read, after) = rest.split_at(size.next().unwrap_or(1).min(rest.len()));
        rest = after;
        lines.push(read);
        while let Some(line) = lines.next_line() {
            let Ok(line) = line else { return };
            assert!(line.len() < MAX_LINE, "a line of {} bytes", line.len());
            check_command(&line);
        }
    }
}

fn check_command(line: &[u8]) {
    match Command::parse(line) {
        Ok(Some(cmd)) => {
            let printed = cmd.to_line();
            assert_eq!(
                Command::parse(printed.as_bytes()),
                Ok(Some(cmd)),
                "{printed:?}"
            );
        }
        Ok(None) => {}
        Err(e) => {
            let reply = Reply::from(&e).to_line();
            let body = reply.strip_suffix('\n').expect("a reply ends its line");
            assert!(
                body.chars().all(|c| !c.is_control()),
                "control characters in {reply:?}"
            );
        }
    }
}

/// Lines from a gcsd (or whatever answers on its port), read as serverlist blocks of each
/// version: no block holds more than [`MAX_BLOCK_ROWS`] rows, and every row read prints back
/// to itself.
pub fn check_serverlist_lines(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for version in [1, 2] {
        let mut reader = BlockReader::of_version(version);
        for line in text.split_inclusive('\n') {
            let Ok(Some(list)) = reader.push_line(line) else {
                continue;
            };
            assert!(list.rows.len() <= MAX_BLOCK_ROWS);
            for row in &list.rows {
                let printed = if version == 1 {
                    row.to_line()
                } else {
                    row.to_line_v2()
                };
                assert_eq!(
                    ServerRow::parse_version(&printed, version).as_ref(),
                    Ok(row),
                    "{printed:?}"
                );
            }
        }
    }
}

/// A body sent to the admin API: decoding never panics, and a request decoded prints back
/// to itself.
#[cfg(feature = "serde")]
pub fn check_admin_json(data: &[u8]) {
    use crate::admin::{AddMemberRequest, PoolRequest};
    if let Ok(req) = serde_json::from_slice::<AddMemberRequest>(data) {
        if let Some(name) = &req.name {
            let _ = crate::member_name_problem(name);
        }
        let printed = serde_json::to_string(&req).expect("prints");
        let back: AddMemberRequest = serde_json::from_str(&printed).expect("reads back");
        assert_eq!(serde_json::to_string(&back).expect("prints"), printed);
    }
    if let Ok(req) = serde_json::from_slice::<PoolRequest>(data) {
        let printed = serde_json::to_string(&req).expect("prints");
        let back: PoolRequest = serde_json::from_str(&printed).expect("reads back");
        assert_eq!(serde_json::to_string(&back).expect("prints"), printed);
    }
}
