//! Plugin-to-daemon requests: the verbs, parsing untrusted lines into [`Command`], the
//! canonical line a client sends, and the exact texts of errors 1 to 5.

use std::fmt;

use thiserror::Error;

use crate::errno::Errno;
use crate::vocabulary::{
    as_token, split_tokens, strip_terminator, Role, ServerKey, Status, MAX_TOKEN,
    SERVERLIST_VERSION,
};

/// A command word; knows its syntax line, which every error message quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Join,
    Leave,
    Heartbeat,
    Serverlist,
    Subscribe,
    History,
    Quit,
}

impl Verb {
    pub const ALL: [Verb; 7] = [
        Verb::Join,
        Verb::Leave,
        Verb::Heartbeat,
        Verb::Serverlist,
        Verb::Subscribe,
        Verb::History,
        Verb::Quit,
    ];

    /// The command word, lowercase.
    pub fn word(self) -> &'static str {
        match self {
            Verb::Join => "join",
            Verb::Leave => "leave",
            Verb::Heartbeat => "heartbeat",
            Verb::Serverlist => "serverlist",
            Verb::Subscribe => "subscribe",
            Verb::History => "history",
            Verb::Quit => "quit",
        }
    }

    /// The usage line quoted after "syntax: " in error replies.
    pub fn syntax(self) -> &'static str {
        match self {
            Verb::Join => "join <host> <port> <mysqlStatus> <mysqlRole>",
            Verb::Leave => "leave <host> <port>",
            Verb::Heartbeat => "heartbeat <host> <port> <mysqlStatus>",
            Verb::Serverlist => "serverlist [<version>]",
            Verb::Subscribe => "subscribe [<version>]",
            Verb::History => "history [<revision>]",
            Verb::Quit => "quit",
        }
    }

    /// Parameter names as the syntax line spells them; error 5 names the bad one.
    fn params(self) -> &'static [&'static str] {
        match self {
            Verb::Join => &["host", "port", "mysqlStatus", "mysqlRole"],
            Verb::Leave => &["host", "port"],
            Verb::Heartbeat => &["host", "port", "mysqlStatus"],
            Verb::Serverlist | Verb::Subscribe | Verb::History | Verb::Quit => &[],
        }
    }

    fn from_word(word: &[u8]) -> Option<Verb> {
        Verb::ALL
            .into_iter()
            .find(|verb| verb.word().as_bytes().eq_ignore_ascii_case(word))
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A request line the daemon rejects; `Display` is the exact reply text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtoError {
    #[error("Invalid command")]
    InvalidCommand,
    #[error("Wrong number of parameters, syntax: {}", .verb.syntax())]
    WrongParameterCount { verb: Verb },
    #[error("Unknown mysqlStatus '{token}', syntax: {}", .verb.syntax())]
    UnknownStatus { verb: Verb, token: String },
    #[error("Unknown mysqlRole '{token}', syntax: {}", .verb.syntax())]
    UnknownRole { verb: Verb, token: String },
    #[error(
        "Invalid {param} parameter: use 1 to {} printable ASCII characters, syntax: {}",
        MAX_TOKEN,
        .verb.syntax()
    )]
    InvalidParameter { verb: Verb, param: &'static str },
    #[error(
        "Invalid version parameter '{token}': use a serverlist version from 1 (this gcsd speaks up to {}), syntax: {}",
        SERVERLIST_VERSION,
        .verb.syntax()
    )]
    InvalidVersion { verb: Verb, token: String },
    #[error(
        "Invalid revision parameter '{token}': use the revision of the last history received, or none, syntax: {}",
        .verb.syntax()
    )]
    InvalidRevision { verb: Verb, token: String },
}

impl ProtoError {
    pub fn errno(&self) -> Errno {
        match self {
            ProtoError::InvalidCommand => Errno::InvalidCommand,
            ProtoError::WrongParameterCount { .. } => Errno::WrongParameterCount,
            ProtoError::UnknownStatus { .. } => Errno::UnknownStatus,
            ProtoError::UnknownRole { .. } => Errno::UnknownRole,
            ProtoError::InvalidParameter { .. }
            | ProtoError::InvalidVersion { .. }
            | ProtoError::InvalidRevision { .. } => Errno::InvalidParameter,
        }
    }
}

/// One request from the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Join {
        server: ServerKey,
        status: Status,
        role: Role,
    },
    Leave {
        server: ServerKey,
    },
    Heartbeat {
        server: ServerKey,
        status: Status,
    },
    /// The serverlist once, in `version`'s row format.
    Serverlist {
        version: u32,
    },
    /// The serverlist now and after every change, in `version`'s row format.
    Subscribe {
        version: u32,
    },
    /// The pools' history, unless the client has revision `since` already.
    History {
        since: Option<u64>,
    },
    Quit,
}

impl Command {
    /// Parses one untrusted line, with or without its "\n" / "\r\n"; `Ok(None)` for a blank
    /// line, which gets no reply.
    ///
    /// Checks run in protocol order: command word, parameter count, token validity, status,
    /// role. Every parameter is validated before any is echoed, so binary never reaches a reply.
    pub fn parse(line: &[u8]) -> Result<Option<Command>, ProtoError> {
        let mut tokens = split_tokens(strip_terminator(line));
        let Some(word) = tokens.next() else {
            return Ok(None);
        };
        let verb = Verb::from_word(word).ok_or(ProtoError::InvalidCommand)?;
        let raw: Vec<&[u8]> = tokens.collect();
        if matches!(verb, Verb::Serverlist | Verb::Subscribe) {
            return parse_listing(verb, &raw).map(Some);
        }
        if verb == Verb::History {
            return parse_history(&raw).map(Some);
        }
        if raw.len() != verb.params().len() {
            return Err(ProtoError::WrongParameterCount { verb });
        }
        let params = verb
            .params()
            .iter()
            .zip(raw)
            .map(|(&param, bytes)| {
                as_token(bytes).ok_or(ProtoError::InvalidParameter { verb, param })
            })
            .collect::<Result<Vec<&str>, _>>()?;

        let status = |token: &str| {
            Status::from_word(token).ok_or_else(|| ProtoError::UnknownStatus {
                verb,
                token: token.to_owned(),
            })
        };
        let role = |token: &str| {
            Role::from_word(token).ok_or_else(|| ProtoError::UnknownRole {
                verb,
                token: token.to_owned(),
            })
        };
        let command = match (verb, params.as_slice()) {
            (Verb::Join, [host, port, s, r]) => Command::Join {
                server: ServerKey::new(*host, *port),
                status: status(s)?,
                role: role(r)?,
            },
            (Verb::Leave, [host, port]) => Command::Leave {
                server: ServerKey::new(*host, *port),
            },
            (Verb::Heartbeat, [host, port, s]) => Command::Heartbeat {
                server: ServerKey::new(*host, *port),
                status: status(s)?,
            },
            (Verb::Quit, []) => Command::Quit,
            // The count was checked against `params()` above.
            _ => return Err(ProtoError::WrongParameterCount { verb }),
        };
        Ok(Some(command))
    }

    pub fn verb(&self) -> Verb {
        match self {
            Command::Join { .. } => Verb::Join,
            Command::Leave { .. } => Verb::Leave,
            Command::Heartbeat { .. } => Verb::Heartbeat,
            Command::Serverlist { .. } => Verb::Serverlist,
            Command::Subscribe { .. } => Verb::Subscribe,
            Command::History { .. } => Verb::History,
            Command::Quit => Verb::Quit,
        }
    }

    /// The canonical request line, with "\n", as clients send it.
    pub fn to_line(&self) -> String {
        let word = self.verb().word();
        match self {
            Command::Join {
                server,
                status,
                role,
            } => format!("{word} {server} {status} {role}\n"),
            Command::Leave { server } => format!("{word} {server}\n"),
            Command::Heartbeat { server, status } => format!("{word} {server} {status}\n"),
            Command::Serverlist { version } | Command::Subscribe { version } if *version > 1 => {
                format!("{word} {version}\n")
            }
            Command::History { since: Some(rev) } => format!("{word} {rev}\n"),
            Command::Serverlist { .. }
            | Command::Subscribe { .. }
            | Command::History { since: None }
            | Command::Quit => format!("{word}\n"),
        }
    }
}

/// `serverlist` and `subscribe` take an optional version: none is 1 (the Isis2 rows), so an
/// old plugin is served as before. A gcsd that predates versions answers a version with
/// errno 2; a client then asks again without one.
fn parse_listing(verb: Verb, raw: &[&[u8]]) -> Result<Command, ProtoError> {
    let version = match raw {
        [] => 1,
        [token] => std::str::from_utf8(token)
            .ok()
            .and_then(|t| t.parse::<u32>().ok())
            .filter(|v| *v >= 1)
            .ok_or_else(|| ProtoError::InvalidVersion {
                verb,
                token: as_token(token).unwrap_or("?").to_owned(),
            })?,
        _ => return Err(ProtoError::WrongParameterCount { verb }),
    };
    Ok(match verb {
        Verb::Serverlist => Command::Serverlist { version },
        _ => Command::Subscribe { version },
    })
}

/// `history` takes the revision the client has, if any.
fn parse_history(raw: &[&[u8]]) -> Result<Command, ProtoError> {
    let verb = Verb::History;
    let since = match raw {
        [] => None,
        [token] => Some(
            std::str::from_utf8(token)
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
                .ok_or_else(|| ProtoError::InvalidRevision {
                    verb,
                    token: as_token(token).unwrap_or("?").to_owned(),
                })?,
        ),
        _ => return Err(ProtoError::WrongParameterCount { verb }),
    };
    Ok(Command::History { since })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_lines_match_parameter_names() {
        for verb in Verb::ALL {
            let expected: Vec<String> = std::iter::once(verb.word().to_owned())
                .chain(verb.params().iter().map(|p| format!("<{p}>")))
                .collect();
            let syntax = verb
                .syntax()
                .replace(" [<version>]", "")
                .replace(" [<revision>]", "");
            assert_eq!(syntax, expected.join(" "));
            assert_eq!(
                Verb::from_word(verb.word().to_uppercase().as_bytes()),
                Some(verb)
            );
        }
    }

    #[test]
    fn verb_of_parsed_command() {
        for verb in Verb::ALL {
            let line = verb
                .syntax()
                .replace(" [<version>]", "")
                .replace(" [<revision>]", "")
                .replace("<mysqlStatus>", "on")
                .replace("<mysqlRole>", "slave");
            let command = Command::parse(line.as_bytes()).unwrap().unwrap();
            assert_eq!(command.verb(), verb);
        }
    }

    #[test]
    fn history_takes_an_optional_revision() {
        let parse = |l: &str| Command::parse(l.as_bytes());
        assert_eq!(
            parse("history\r\n"),
            Ok(Some(Command::History { since: None }))
        );
        assert_eq!(
            parse("HISTORY 42"),
            Ok(Some(Command::History { since: Some(42) }))
        );
        assert_eq!(
            Command::History { since: Some(42) }.to_line(),
            "history 42\n"
        );
        let err = parse("history soon").unwrap_err();
        assert_eq!(err.errno(), Errno::InvalidParameter);
        assert!(
            err.to_string()
                .starts_with("Invalid revision parameter 'soon'"),
            "{err}"
        );
        assert_eq!(
            parse("history 1 2").unwrap_err().errno(),
            Errno::WrongParameterCount
        );
    }
}
