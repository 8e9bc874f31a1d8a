//! The words both sides share: server status and role, server identity, the token and
//! member-name rules, and the error for daemon output a client cannot understand.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Longest parameter token, so echoed tokens and stored columns stay bounded.
pub const MAX_TOKEN: usize = 255;

/// Longest member name (`<member>` in the serverlist, `ISIS2_MEMBER` in the table).
pub const MAX_MEMBER_NAME: usize = 64;

/// The newest serverlist version: 1 is Isis2's seven fields; 2 adds the server's verdicts in
/// one pool (one row per server and pool).
pub const SERVERLIST_VERSION: u32 = 2;

/// Whether `text` is usable as a parameter token: 1 to [`MAX_TOKEN`] printable ASCII characters
/// without spaces.
pub fn is_token(text: &str) -> bool {
    as_token(text.as_bytes()).is_some()
}

/// What is wrong with `name` as a member name, if anything. A member name is a token of at most
/// [`MAX_MEMBER_NAME`] characters, so it fits one serverlist field and its table column.
pub fn member_name_problem(name: &str) -> Option<String> {
    (name.len() > MAX_MEMBER_NAME || !is_token(name)).then(|| {
        format!("name {name:?} must be 1 to {MAX_MEMBER_NAME} printable ASCII characters without spaces")
    })
}

/// The name of member `id` when its operator gave none.
pub fn default_member_name(id: u64) -> String {
    format!("gcsd{id}")
}

/// Output from the daemon that a client could not understand.
///
/// Carries the offending line (at most [`ParseError::SHOWN_CHARS`] characters) so logs show
/// what actually arrived without flooding them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}: {line:?}")]
pub struct ParseError {
    /// What was wrong, e.g. "unknown status".
    pub reason: &'static str,
    /// The offending line, truncated.
    pub line: String,
}

impl ParseError {
    /// How much of the offending line is kept.
    pub const SHOWN_CHARS: usize = 80;

    pub(crate) fn new(reason: &'static str, line: &str) -> Self {
        ParseError {
            reason,
            line: line.chars().take(Self::SHOWN_CHARS).collect(),
        }
    }
}

/// A closed set of protocol words, parsed case-insensitively.
macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident, $unknown:literal, [$($variant:ident => $word:literal),+ $(,)?]) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every value, in protocol order.
            pub const ALL: [$name; [$($word),+].len()] = [$($name::$variant),+];

            /// The protocol word, as printed.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }

            /// Case-insensitive lookup; callers build their own error.
            pub(crate) fn from_word(word: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(word))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseError;

            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::from_word(s).ok_or_else(|| ParseError::new($unknown, s))
            }
        }

        /// Travels as its protocol word, so JSON and the line protocol agree.
        #[cfg(feature = "serde")]
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                word.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

word_enum!(
    /// What a MariaDB server reports about its own lifecycle (`mysqlStatus`).
    Status, "unknown status",
    [On => "on", Off => "off", Starting => "starting", Stopping => "stopping", Standby => "standby"]
);

word_enum!(
    /// A MariaDB server's replication role (`mysqlRole`).
    Role, "unknown role",
    [Master => "master", Slave => "slave", Standalone => "standalone"]
);

/// Identifies a MariaDB server in the group; `port` may also be a socket path, hence a string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServerKey {
    pub host: String,
    pub port: String,
}

impl ServerKey {
    pub fn new(host: impl Into<String>, port: impl Into<String>) -> Self {
        ServerKey {
            host: host.into(),
            port: port.into(),
        }
    }
}

/// Printed as the protocol shows it: `host port`.
impl fmt::Display for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.host, self.port)
    }
}

/// A usable token is 1..=MAX_TOKEN printable ASCII bytes, so it is safe to echo and store.
pub(crate) fn as_token(bytes: &[u8]) -> Option<&str> {
    let valid = (1..=MAX_TOKEN).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic);
    valid.then(|| std::str::from_utf8(bytes).ok()).flatten()
}

/// Tokens are separated by any run of spaces and tabs.
pub(crate) fn split_tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| *b == b' ' || *b == b'\t')
        .filter(|token| !token.is_empty())
}

/// Same as [`split_tokens`], for lines already known to be text.
pub(crate) fn split_str_tokens(line: &str) -> impl Iterator<Item = &str> {
    line.split([' ', '\t']).filter(|token| !token.is_empty())
}

/// Drops one trailing "\n" or "\r\n"; a lone "\r" is not a terminator.
pub(crate) fn strip_terminator(line: &[u8]) -> &[u8] {
    match line.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => line,
    }
}

/// Same as [`strip_terminator`], for text.
pub(crate) fn strip_str_terminator(line: &str) -> &str {
    // Only ASCII bytes are removed, so the cut is on a char boundary.
    &line[..strip_terminator(line.as_bytes()).len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_parse_case_insensitively_and_print_lowercase() {
        for status in Status::ALL {
            assert_eq!(status.as_str().to_uppercase().parse::<Status>(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
        }
        for role in Role::ALL {
            assert_eq!(role.as_str().to_uppercase().parse::<Role>(), Ok(role));
        }
        assert_eq!("Mastr".parse::<Role>().unwrap_err().reason, "unknown role");
        assert_eq!("".parse::<Status>().unwrap_err().reason, "unknown status");
    }

    #[test]
    fn token_rule() {
        assert_eq!(as_token(b"db1.example:3306"), Some("db1.example:3306"));
        assert_eq!(as_token(&[b'a'; MAX_TOKEN]).map(str::len), Some(MAX_TOKEN));
        assert_eq!(as_token(&[b'a'; MAX_TOKEN + 1]), None);
        assert_eq!(as_token(b""), None);
        assert_eq!(as_token(b"a b"), None);
        assert_eq!(as_token(b"a\x7f"), None);
        assert_eq!(as_token("h\u{e9}".as_bytes()), None);
        assert!(is_token("db1") && !is_token("d b") && !is_token(""));
    }

    #[test]
    fn member_names() {
        assert_eq!(member_name_problem(&default_member_name(3)), None);
        assert_eq!(default_member_name(3), "gcsd3");
        assert_eq!(member_name_problem(&"m".repeat(MAX_MEMBER_NAME)), None);
        assert!(member_name_problem(&"m".repeat(MAX_MEMBER_NAME + 1)).is_some());
        assert_eq!(
            member_name_problem("gcsd 1").as_deref(),
            Some("name \"gcsd 1\" must be 1 to 64 printable ASCII characters without spaces")
        );
        assert!(member_name_problem("").is_some());
    }

    #[test]
    fn terminators() {
        assert_eq!(strip_terminator(b"a\r\n"), b"a");
        assert_eq!(strip_terminator(b"a\n"), b"a");
        assert_eq!(strip_terminator(b"a\r"), b"a\r");
        assert_eq!(strip_terminator(b"a\r\r\n"), b"a\r");
        assert_eq!(strip_str_terminator("\u{e9}\r\n"), "\u{e9}");
    }

    #[test]
    fn parse_error_truncates_the_line() {
        let long = "x".repeat(200);
        let err = ParseError::new("bad", &long);
        assert_eq!(err.line.len(), ParseError::SHOWN_CHARS);
        assert_eq!(ParseError::new("bad", "a\tb").to_string(), r#"bad: "a\tb""#);
    }

    #[test]
    fn server_key_display_and_order() {
        let a = ServerKey::new("db1", "3306");
        assert_eq!(a.to_string(), "db1 3306");
        assert!(a < ServerKey::new("db1", "3307"));
        assert!(a < ServerKey::new("db2", "1"));
    }
}
