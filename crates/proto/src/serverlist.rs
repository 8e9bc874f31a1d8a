//! The serverlist block (header reply, one row per MariaDB server, empty line) and the
//! client-side reader that reassembles blocks from lines.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::errno::Errno;
use crate::reply::Reply;
use crate::vocabulary::{
    as_token, split_str_tokens, strip_str_terminator, ParseError, Role, ServerKey, Status,
};

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
                .map_err(|_| ParseError::new("invalid last_update", line))?
                .with_timezone(&Utc),
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
    /// Header line, row lines, then the empty line that lets persistent connections frame it.
    pub fn to_block(&self) -> String {
        let mut block = self.header.to_line();
        if opens_block(self.header.errno) {
            for row in &self.rows {
                block.push_str(&row.to_line());
            }
            block.push('\n');
        }
        block
    }
}

fn opens_block(errno: Errno) -> bool {
    matches!(errno, Errno::Ok | Errno::Stale)
}

/// Incremental client-side reader: feed it lines, get complete serverlists.
///
/// After an error it starts over expecting a header; callers normally drop the connection.
#[derive(Debug, Default)]
pub struct BlockReader {
    /// The block being read, `None` while waiting for a header.
    pending: Option<ServerList>,
}

impl BlockReader {
    pub fn new() -> Self {
        BlockReader::default()
    }

    /// Takes one line, with or without its terminator. Returns the list once its empty
    /// terminating line arrives, or at once for a standalone error reply.
    pub fn push_line(&mut self, line: &str) -> Result<Option<ServerList>, ParseError> {
        let text = strip_str_terminator(line);
        match self.pending.take() {
            None => {
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
                list.rows.push(ServerRow::parse(text)?);
                self.pending = Some(list);
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ServerRow {
        ServerRow {
            member: "gcsd-a".into(),
            server: ServerKey::new("db1", "/var/run/mysqld.sock"),
            status: Status::Standby,
            role: Role::Slave,
            ttl_secs: 30,
            last_update: DateTime::from_timestamp_millis(1_795_307_733_123).unwrap(),
        }
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
        assert_eq!(list.to_block(), format!("0 \n{line}{line}\n"));
        let empty = ServerList {
            header: Reply::new(Errno::Stale, "Stale serverlist"),
            rows: vec![],
        };
        assert_eq!(empty.to_block(), "7 Stale serverlist\n\n");
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
        assert_eq!(refused.to_block(), "6 No quorum\n");
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
