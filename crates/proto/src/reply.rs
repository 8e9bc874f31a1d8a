//! Daemon-to-plugin replies: the `<errno> <text>` line, and the exact text of every reply the
//! daemon makes itself (errnos 6, 7 and 9 to 13).

use crate::command::ProtoError;
use crate::errno::Errno;
use crate::framing::LineTooLong;
use crate::vocabulary::{strip_str_terminator, ParseError, ServerKey};

/// One reply line; also the header line of a serverlist block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub errno: Errno,
    pub text: String,
}

impl Reply {
    pub fn new(errno: Errno, text: impl Into<String>) -> Self {
        Reply {
            errno,
            text: text.into(),
        }
    }

    /// `0 OK`, the success reply to join, leave, heartbeat and subscribe.
    pub fn ok() -> Self {
        Reply::new(Errno::Ok, "OK")
    }

    /// `0 Bye`, sent before the daemon closes on `quit`.
    pub fn bye() -> Self {
        Reply::new(Errno::Ok, "Bye")
    }

    /// Error 9, for a heartbeat from a server that never joined here (or has expired).
    pub fn unknown_server(server: &ServerKey) -> Self {
        Reply::new(
            Errno::UnknownServer,
            format!("Unknown server '{server}', join first"),
        )
    }

    /// Error 6: the change was not committed because this member cannot reach a majority.
    pub fn no_quorum(why: &str) -> Self {
        Reply::new(Errno::NoQuorum, no_quorum_text(why))
    }

    /// Error 6 for a heartbeat: recorded by this member, but the group cannot be told.
    pub fn heartbeat_without_quorum(why: &str) -> Self {
        Reply::new(
            Errno::NoQuorum,
            format!(
                "{} (heartbeat recorded on this member)",
                no_quorum_text(why)
            ),
        )
    }

    /// Error 7, the header of a serverlist block that is this member's last known list.
    pub fn stale(why: &str) -> Self {
        Reply::new(
            Errno::Stale,
            format!("Stale serverlist: this member cannot commit ({why})"),
        )
    }

    /// Error 10, before the daemon closes a connection over its limit of `max`.
    pub fn too_many_connections(max: usize) -> Self {
        Reply::new(
            Errno::TooManyConnections,
            format!("Too many connections: at most {max} are served; try again later"),
        )
    }

    /// Error 11, to every open connection when the daemon stops.
    pub fn shutting_down() -> Self {
        Reply::new(Errno::ShuttingDown, "Shutting down: this gcsd is stopping")
    }

    /// Error 12: the group refused the change, for the reason given.
    pub fn rejected(why: &str) -> Self {
        Reply::new(Errno::Rejected, format!("Rejected: {why}"))
    }

    /// Error 10, before the daemon closes a `subscribe` over its limit of `max` subscribers.
    pub fn too_many_subscribers(max: usize) -> Self {
        Reply::new(
            Errno::TooManyConnections,
            format!("Too many subscribers: at most {max} are served; try again later"),
        )
    }

    /// Error 12: `join`, `leave` and `heartbeat` over TCP when gcsd takes them only on its
    /// Unix socket (`plugin_tcp_writes = false`).
    pub fn not_on_this_transport() -> Self {
        Reply::rejected(
            "Not allowed on this transport: join, leave and heartbeat are taken on gcsd's \
             plugin_socket only (plugin_tcp_writes = false)",
        )
    }

    /// Error 12, before the daemon closes a Unix-socket connection from a user it does not
    /// serve.
    pub fn uid_not_allowed(uid: u32) -> Self {
        Reply::rejected(&format!(
            "uid {uid} may not use this socket (gcsd's plugin_allowed_uids)"
        ))
    }

    /// Error 14: the group, or this member, lists the most servers it may.
    pub fn too_many_servers(why: &str) -> Self {
        Reply::new(Errno::TooManyServers, format!("Too many servers: {why}"))
    }

    /// Error 13: this member failed while committing the change.
    pub fn failed(why: &str) -> Self {
        Reply::new(
            Errno::Failed,
            format!("Failed: the change may not have been committed ({why})"),
        )
    }

    /// `<code> <text>\n`. Control characters in the text would break line framing, so they
    /// are printed as spaces.
    pub fn to_line(&self) -> String {
        let text: String = self
            .text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!("{} {}\n", self.errno.code(), text)
    }

    /// Parses `<code> <text>`, with or without its line terminator; the text may be empty.
    pub fn parse(line: &str) -> Result<Reply, ParseError> {
        let body = strip_str_terminator(line);
        let (code, text) = body
            .split_once(' ')
            .ok_or_else(|| ParseError::new("expected '<errno> <text>'", line))?;
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new("errno is not a number", line));
        }
        let errno = code
            .parse()
            .ok()
            .and_then(Errno::from_code)
            .ok_or_else(|| ParseError::new("unknown errno", line))?;
        Ok(Reply::new(errno, text))
    }
}

/// The text of error 6, also how gcsd words the problem to operators.
pub fn no_quorum_text(why: &str) -> String {
    format!("No quorum: this member cannot commit ({why})")
}

impl From<&ProtoError> for Reply {
    fn from(error: &ProtoError) -> Self {
        Reply::new(error.errno(), error.to_string())
    }
}

impl From<&LineTooLong> for Reply {
    fn from(error: &LineTooLong) -> Self {
        Reply::new(Errno::LineTooLong, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(Reply::ok().to_line(), "0 OK\n");
        assert_eq!(Reply::bye().to_line(), "0 Bye\n");
        assert_eq!(Reply::new(Errno::Ok, "").to_line(), "0 \n");
        assert_eq!(
            Reply::new(Errno::NoQuorum, "no\nquorum\r").to_line(),
            "6 no quorum \n"
        );
        assert_eq!(
            Reply::unknown_server(&ServerKey::new("db1", "/tmp/my.sock")).to_line(),
            "9 Unknown server 'db1 /tmp/my.sock', join first\n"
        );
    }

    #[test]
    fn parse() {
        assert_eq!(Reply::parse("0 OK\n"), Ok(Reply::ok()));
        assert_eq!(Reply::parse("0 \r\n"), Ok(Reply::new(Errno::Ok, "")));
        assert_eq!(
            Reply::parse("7 stale: no quorum"),
            Ok(Reply::new(Errno::Stale, "stale: no quorum"))
        );
        let reason = |line| Reply::parse(line).unwrap_err().reason;
        assert_eq!(reason("0"), "expected '<errno> <text>'");
        assert_eq!(reason(""), "expected '<errno> <text>'");
        assert_eq!(reason("+0 OK"), "errno is not a number");
        assert_eq!(reason(" OK"), "errno is not a number");
        assert_eq!(reason("15 OK"), "unknown errno");
        assert_eq!(reason("99999999999 OK"), "unknown errno");
    }
}
