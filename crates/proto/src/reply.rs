//! Daemon-to-plugin replies: the errno codes and the `<errno> <text>` line.

use crate::command::ProtoError;
use crate::framing::LineTooLong;
use crate::vocabulary::{strip_str_terminator, ParseError, ServerKey};

/// Reply codes of the plugin port; 0 is success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Errno {
    Ok = 0,
    InvalidCommand = 1,
    WrongParameterCount = 2,
    UnknownStatus = 3,
    UnknownRole = 4,
    InvalidParameter = 5,
    NoQuorum = 6,
    /// Header of a serverlist block the daemon could not confirm with a quorum.
    Stale = 7,
    LineTooLong = 8,
    UnknownServer = 9,
    TooManyConnections = 10,
    ShuttingDown = 11,
}

impl Errno {
    pub const ALL: [Errno; 12] = [
        Errno::Ok,
        Errno::InvalidCommand,
        Errno::WrongParameterCount,
        Errno::UnknownStatus,
        Errno::UnknownRole,
        Errno::InvalidParameter,
        Errno::NoQuorum,
        Errno::Stale,
        Errno::LineTooLong,
        Errno::UnknownServer,
        Errno::TooManyConnections,
        Errno::ShuttingDown,
    ];

    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn from_code(code: u16) -> Option<Errno> {
        Errno::ALL.into_iter().find(|errno| errno.code() == code)
    }
}

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
    fn codes_round_trip() {
        for errno in Errno::ALL {
            assert_eq!(Errno::from_code(errno.code()), Some(errno));
        }
        assert_eq!(Errno::from_code(12), None);
    }

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
        assert_eq!(reason("12 OK"), "unknown errno");
        assert_eq!(reason("99999999999 OK"), "unknown errno");
    }
}
