//! The serverlist block (header reply, one row per MariaDB server, empty line) and the
//! client-side reader that reassembles blocks from lines.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::errno::Errno;
use crate::mpp::{Health, PoolState, PoolType};
use crate::reply::Reply;
pub use crate::vocabulary::SERVERLIST_VERSION;
use crate::vocabulary::{
    as_token, split_str_tokens, strip_str_terminator, ParseError, Role, ServerKey, Status,
};

/// The text of the reply to `subscribe`/`serverlist` with a version, naming the version served.
pub fn version_reply_text(version: u32) -> String {
    format!("serverlist version {version}")
}

/// The version a reply to a versioned `subscribe` names; 1 for a plain `OK`.
pub fn served_version(reply_text: &str) -> u32 {
    reply_text
        .strip_prefix("serverlist version ")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1)
}

/// What one gcsd member knows about one MariaDB server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRow {
    /// The gcsd member that reported this server.
    pub member: String,
    pub server: ServerKey,
    pub status: Status,
    pub role: Role,
    /// Seconds until the entry expires without a heartbeat.
    pub ttl_secs: u32,
    pub last_update: DateTime<Utc>,
    /// Its verdicts in one pool (version 2); none for a server in no pool.
    pub mpp: Option<MppFields>,
}

/// A server's verdicts in one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MppFields {
    pub pool: String,
    pub kind: PoolType,
    pub state: PoolState,
    /// None while it was never probed.
    pub status: Option<Health>,
    pub epoch: u64,
    /// Free text, on one line.
    pub message: String,
}

/// A row's message as the line carries it: control characters (which would break the line or
/// a terminal) as spaces, no spaces at either end.
fn clean_message(text: &str) -> String {
    let spaced: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced.trim().to_owned()
}

/// `t` as a serverlist carries it: to the millisecond, in the years RFC 3339 can write (0 to
/// 9999; none outside them). A row's `last_update` is kept so, so that it prints back to itself.
pub fn listed_time(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    (0..=9999)
        .contains(&t.year())
        .then(|| DateTime::from_timestamp_millis(t.timestamp_millis()))
        .flatten()
}

impl ServerRow {
    /// `<member> <host> <port> <status> <role> <ttl> <last_update>\n`, time in UTC with
    /// millisecond precision.
    pub fn to_line(&self) -> String {
        format!(
            "{} {} {} {} {} {}\n",
            self.member,
            self.server,
            self.status,
            self.role,
            self.ttl_secs,
            self.last_update
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        )
    }

    /// Version 2: the seven fields, then `<pool> <type> <state> <status> <epoch>` (each `-`
    /// for a server in no pool, status `-` when never probed) and the message as the rest of
    /// the line, control characters turned into spaces.
    pub fn to_line_v2(&self) -> String {
        let v1 = self.to_line();
        let v1 = v1.trim_end_matches('\n');
        match &self.mpp {
            None => format!("{v1} - - - - -\n"),
            Some(m) => {
                let message = clean_message(&m.message);
                let status = m.status.map_or("-", Health::as_str);
                format!(
                    "{v1} {} {} {} {status} {} {message}",
                    m.pool, m.kind, m.state, m.epoch
                )
                .trim_end()
                .to_owned()
                    + "\n"
            }
        }
    }

    /// Parses a row line of `version`. The message is read as it is printed: control
    /// characters as spaces, no spaces at either end.
    pub fn parse_version(line: &str, version: u32) -> Result<ServerRow, ParseError> {
        if version < 2 {
            return ServerRow::parse(line);
        }
        let text = strip_str_terminator(line);
        let mut rest = text;
        let mut fields = Vec::with_capacity(12);
        while fields.len() < 12 {
            rest = rest.trim_start_matches([' ', '\t']);
            let end = rest.find([' ', '\t']).unwrap_or(rest.len());
            if end == 0 {
                return Err(ParseError::new(
                    "expected 12 fields in a version 2 server row",
                    line,
                ));
            }
            fields.push(&rest[..end]);
            rest = &rest[end..];
        }
        let mut row = ServerRow::parse(&fields[..7].join(" "))?;
        let [pool, kind, state, status, epoch] =
            [fields[7], fields[8], fields[9], fields[10], fields[11]];
        if [pool, kind, state, status, epoch].iter().all(|f| *f == "-") {
            return Ok(row);
        }
        row.mpp = Some(MppFields {
            pool: as_token(pool.as_bytes())
                .ok_or_else(|| ParseError::new("invalid pool", line))?
                .to_owned(),
            kind: PoolType::from_word(kind)
                .ok_or_else(|| ParseError::new("unknown pool type", line))?,
            state: PoolState::from_word(state)
                .ok_or_else(|| ParseError::new("unknown state", line))?,
            status: match status {
                "-" => None,
                s => Some(
                    Health::from_word(s).ok_or_else(|| ParseError::new("unknown status", line))?,
                ),
            },
            epoch: epoch
                .parse()
                .map_err(|_| ParseError::new("invalid epoch", line))?,
            message: clean_message(rest),
        });
        Ok(row)
    }

    /// Parses a row line, with or without its terminator; any RFC 3339 time is accepted and
    /// converted to UTC.
    pub fn parse(line: &str) -> Result<ServerRow, ParseError> {
        let fields: Vec<&str> = split_str_tokens(strip_str_terminator(line)).collect();
        let [member, host, port, status, role, ttl, time] = fields.as_slice() else {
            return Err(ParseError::new("expected 7 fields in a server row", line));
        };
        let token = |field: &str, reason| {
            as_token(field.as_bytes())
                .map(str::to_owned)
                .ok_or_else(|| ParseError::new(reason, line))
        };
        Ok(ServerRow {
            member: token(member, "invalid member")?,
            server: ServerKey {
                host: token(host, "invalid host")?,
                port: token(port, "invalid port")?,
            },
            status: Status::from_word(status)
                .ok_or_else(|| ParseError::new("unknown status", line))?,
            role: Role::from_word(role).ok_or_else(|| ParseError::new("unknown role", line))?,
            ttl_secs: ttl
                .parse()
                .map_err(|_| ParseError::new("invalid ttl", line))?,
            last_update: DateTime::parse_from_rfc3339(time)
                .ok()
                .and_then(|t| listed_time(t.to_utc()))
                .ok_or_else(|| ParseError::new("invalid last_update", line))?,
            mpp: None,
        })
    }
}

/// Answer to `serverlist`, also pushed to subscribers on every change.
///
/// A header with errno 0 or 7 (stale) opens a block of rows; any other errno is a plain
/// error reply (e.g. no quorum, shutting down) that stands alone with no rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerList {
    pub header: Reply,
    pub rows: Vec<ServerRow>,
}

impl ServerList {
    /// Header line, row lines in `version`'s format, then the empty line that lets persistent
    /// connections frame it.
    pub fn to_block(&self, version: u32) -> String {
        block_of(&self.header, &self.rows, version)
    }
}

/// [`ServerList::to_block`] of a header and rows held elsewhere (no copy of the rows).
pub fn block_of(header: &Reply, rows: &[ServerRow], version: u32) -> String {
    let mut block = header.to_line();
    if opens_block(header.errno) {
        for row in rows {
            if version >= 2 {
                block.push_str(&row.to_line_v2());
            } else {
                block.push_str(&row.to_line());
            }
        }
        block.push('\n');
    }
    block
}

fn opens_block(errno: Errno) -> bool {
    matches!(errno, Errno::Ok | Errno::Stale)
}

/// The most rows a reader takes in one serverlist block (gcsd lists at most 10,000 servers;
/// version 2 has a row per server and pool), and the most bytes: a peer that sends more is
/// refused with [`TOO_LARGE`] rather than grow the reader's memory (inside mariadbd).
pub const MAX_BLOCK_ROWS: usize = 20_000;
pub const MAX_BLOCK_BYTES: usize = 8 << 20;
/// The [`ParseError`] reason of a block over [`MAX_BLOCK_ROWS`] or [`MAX_BLOCK_BYTES`].
pub const TOO_LARGE: &str = "serverlist too large";

/// Incremental client-side reader: feed it lines, get complete serverlists.
///
/// After an error it starts over expecting a header; callers normally drop the connection.
#[derive(Debug)]
pub struct BlockReader {
    /// The block being read, `None` while waiting for a header.
    pending: Option<ServerList>,
    /// Bytes of the block so far.
    bytes: usize,
    version: u32,
}

impl Default for BlockReader {
    fn default() -> Self {
        BlockReader::new()
    }
}

impl BlockReader {
    /// A reader of version 1 rows.
    pub fn new() -> Self {
        BlockReader::of_version(1)
    }

    /// A reader of `version`'s rows.
    pub fn of_version(version: u32) -> Self {
        BlockReader {
            pending: None,
            bytes: 0,
            version,
        }
    }

    /// Takes one line, with or without its terminator. Returns the list once its empty
    /// terminating line arrives, or at once for a standalone error reply.
    pub fn push_line(&mut self, line: &str) -> Result<Option<ServerList>, ParseError> {
        let text = strip_str_terminator(line);
        match self.pending.take() {
            None => {
                self.bytes = 0;
                let header = Reply::parse(line)?;
                let list = ServerList {
                    header,
                    rows: Vec::new(),
                };
                if opens_block(list.header.errno) {
                    self.pending = Some(list);
                    Ok(None)
                } else {
                    Ok(Some(list))
                }
            }
            Some(list) if text.is_empty() => Ok(Some(list)),
            Some(mut list) => {
                self.bytes += line.len();
                if list.rows.len() >= MAX_BLOCK_ROWS || self.bytes > MAX_BLOCK_BYTES {
                    return Err(ParseError::new(TOO_LARGE, line));
                }
                list.rows
                    .push(ServerRow::parse_version(text, self.version)?);
                self.pending = Some(list);
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the serverlist_reader fuzz target: a time finer than a millisecond was kept, and
    /// printed to the millisecond, so the row did not print back to itself.
    #[test]
    fn a_time_finer_than_a_millisecond_is_kept_to_the_millisecond() {
        let row =
            ServerRow::parse("gcsd2 db2 3306 standby slave 3 2026-11-22T00:15:33.1232Z").unwrap();
        assert_eq!(row.last_update.timestamp_subsec_micros(), 123_000);
        assert_eq!(ServerRow::parse(&row.to_line()).unwrap(), row);
    }

    /// Found by the serverlist_reader fuzz target: a message with control characters was kept
    /// as read but printed with spaces, so a row did not print back to itself.
    #[test]
    fn a_message_with_control_characters_reads_as_it_prints() {
        let line = "gcsd1 db1 3306 on master 3 2026-11-22T00:15:33.123Z app PRIMARY ACTIVE OK 3 \
                    all goo\u{fffd}d 2026-11\u{10}\0\u{0}00:15:3 - -\t\u{1b}\n";
        let row = ServerRow::parse_version(line, 2).unwrap();
        assert_eq!(
            row.mpp.as_ref().unwrap().message,
            "all goo\u{fffd}d 2026-11   00:15:3 - -"
        );
        assert_eq!(ServerRow::parse_version(&row.to_line_v2(), 2).unwrap(), row);
    }

    fn row() -> ServerRow {
        ServerRow {
            member: "gcsd-a".into(),
            server: ServerKey::new("db1", "/var/run/mysqld.sock"),
            status: Status::Standby,
            role: Role::Slave,
            ttl_secs: 30,
            last_update: DateTime::from_timestamp_millis(1_795_307_733_123).unwrap(),
            mpp: None,
        }
    }

    /// A block that never ends is refused at MAX_BLOCK_ROWS rows, and one of huge rows at
    /// MAX_BLOCK_BYTES, rather than kept growing; the reader then takes a new block.
    #[test]
    fn endless_blocks_are_refused() {
        let mut reader = BlockReader::new();
        reader.push_line("0 \n").unwrap();
        let line = row().to_line();
        let mut refused = None;
        for i in 0..=MAX_BLOCK_ROWS {
            if let Err(e) = reader.push_line(&line) {
                refused = Some((i, e.reason));
                break;
            }
        }
        assert_eq!(refused, Some((MAX_BLOCK_ROWS, TOO_LARGE)));
        reader.push_line("0 \n").unwrap();
        assert_eq!(reader.push_line(&line), Ok(None));
        assert!(reader.push_line("\n").unwrap().is_some());
        let mut reader = BlockReader::new();
        reader.push_line("0 \n").unwrap();
        let wide = ServerRow {
            member: "m".repeat(64),
            server: ServerKey::new("h".repeat(255), "p".repeat(255)),
            ..row()
        }
        .to_line();
        let fits = MAX_BLOCK_BYTES / wide.len();
        for _ in 0..fits {
            reader.push_line(&wide).unwrap();
        }
        assert_eq!(reader.push_line(&wide).unwrap_err().reason, TOO_LARGE);
    }

    #[test]
    fn version_2_rows() {
        let plain = row();
        assert!(plain.to_line_v2().ends_with(" - - - - -\n"));
        let pooled = ServerRow {
            mpp: Some(MppFields {
                pool: "app".into(),
                kind: PoolType::Primary,
                state: PoolState::FailedOffline,
                status: Some(Health::Fail),
                epoch: 3,
                message: "Could not connect:\tno answer\nwithin 200 ms".into(),
            }),
            ..row()
        };
        let line = pooled.to_line_v2();
        assert!(
            line.ends_with(
                " app PRIMARY FAILED_OFFLINE FAIL 3 Could not connect: no answer within 200 ms\n"
            ),
            "{line}"
        );
        let back = ServerRow::parse_version(&line, 2).unwrap();
        assert_eq!(
            back.mpp.unwrap().message,
            "Could not connect: no answer within 200 ms"
        );
        assert_eq!(
            ServerRow::parse_version(&plain.to_line_v2(), 2).unwrap(),
            plain
        );
        // A version 2 line is not a version 1 row, and the reverse.
        assert!(ServerRow::parse(&line).is_err());
        assert!(ServerRow::parse_version(&plain.to_line(), 2).is_err());
        assert_eq!(served_version(&version_reply_text(2)), 2);
        assert_eq!(served_version(""), 1);
    }

    #[test]
    fn row_line() {
        let line = "gcsd-a db1 /var/run/mysqld.sock standby slave 30 2026-11-22T00:35:33.123Z\n";
        assert_eq!(row().to_line(), line);
        assert_eq!(ServerRow::parse(line), Ok(row()));
        assert_eq!(
            ServerRow::parse("gcsd-a\tdb1  /var/run/mysqld.sock STANDBY Slave 30 2026-11-22T01:35:33.123+01:00\r\n"),
            Ok(row())
        );
    }

    #[test]
    fn bad_rows() {
        let reason = |line: &str| ServerRow::parse(line).unwrap_err().reason;
        let good = row().to_line();
        assert_eq!(reason(""), "expected 7 fields in a server row");
        assert_eq!(
            reason(&good.replace(" 30 ", " ")),
            "expected 7 fields in a server row"
        );
        assert_eq!(
            reason(&good.replace("gcsd-a", "gcsd-\u{e9}")),
            "invalid member"
        );
        assert_eq!(reason(&good.replace("db1", "d\x01")), "invalid host");
        assert_eq!(
            reason(&good.replace("/var", &"v".repeat(300))),
            "invalid port"
        );
        assert_eq!(reason(&good.replace("standby", "up")), "unknown status");
        assert_eq!(reason(&good.replace("slave", "replica")), "unknown role");
        assert_eq!(reason(&good.replace(" 30 ", " -1 ")), "invalid ttl");
        assert_eq!(
            reason(&good.replace("2026-11-22T", "2026-11-22 ")),
            "expected 7 fields in a server row"
        );
        assert_eq!(reason(&good.replace("T00", "T25")), "invalid last_update");
    }

    #[test]
    fn block_format() {
        let list = ServerList {
            header: Reply::new(Errno::Ok, ""),
            rows: vec![row(), row()],
        };
        let line = row().to_line();
        assert_eq!(list.to_block(1), format!("0 \n{line}{line}\n"));
        let empty = ServerList {
            header: Reply::new(Errno::Stale, "Stale serverlist"),
            rows: vec![],
        };
        assert_eq!(empty.to_block(1), "7 Stale serverlist\n\n");
    }

    #[test]
    fn reader_assembles_blocks_and_passes_errors_through() {
        let mut reader = BlockReader::new();
        assert_eq!(reader.push_line("0 \n"), Ok(None));
        assert_eq!(reader.push_line(&row().to_line()), Ok(None));
        let list = reader.push_line("\n").unwrap().unwrap();
        assert_eq!(list.header, Reply::new(Errno::Ok, ""));
        assert_eq!(list.rows, vec![row()]);

        let refused = reader.push_line("6 No quorum\n").unwrap().unwrap();
        assert_eq!(refused.header, Reply::new(Errno::NoQuorum, "No quorum"));
        assert!(refused.rows.is_empty());
        assert_eq!(refused.to_block(1), "6 No quorum\n");
    }

    #[test]
    fn reader_recovers_after_errors() {
        let mut reader = BlockReader::new();
        assert_eq!(
            reader.push_line("\n").unwrap_err().reason,
            "expected '<errno> <text>'"
        );
        assert_eq!(reader.push_line("7 stale"), Ok(None));
        assert_eq!(
            reader.push_line("garbage").unwrap_err().reason,
            "expected 7 fields in a server row"
        );
        // The broken block was dropped: the next line is a header again.
        assert_eq!(reader.push_line("0 "), Ok(None));
        assert!(reader.push_line("").unwrap().unwrap().rows.is_empty());
    }
}
