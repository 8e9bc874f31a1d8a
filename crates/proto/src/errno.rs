//! The reply codes of the plugin port. What each code means lives here; the exact text of each
//! reply is built in one place: `ProtoError` (1 to 5), `LineTooLong` (8) and the constructors
//! of `Reply` (the daemon's own answers).

/// Reply codes of the plugin port; 0 is success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Errno {
    Ok = 0,
    /// Unknown command word, or a line that is not UTF-8.
    InvalidCommand = 1,
    WrongParameterCount = 2,
    UnknownStatus = 3,
    UnknownRole = 4,
    /// A binary or oversized token (never echoed).
    InvalidParameter = 5,
    /// The change was not committed: this member cannot reach a majority.
    NoQuorum = 6,
    /// Header of a serverlist block the daemon could not confirm with a quorum.
    Stale = 7,
    /// The connection is closed after this reply.
    LineTooLong = 8,
    /// A heartbeat for a server not registered (or expired) through this member.
    UnknownServer = 9,
    /// The connection is closed after this reply.
    TooManyConnections = 10,
    /// Sent to open connections when the daemon stops.
    ShuttingDown = 11,
    /// The group refused the change (the reason names what must change first); sending it
    /// again unchanged is refused again.
    Rejected = 12,
    /// This member failed while committing the change (for example its Raft stopped); the
    /// change may or may not have been committed.
    Failed = 13,
    /// A `join` of a new server when the group, or the member, lists the most servers it may.
    TooManyServers = 14,
}

impl Errno {
    pub const ALL: [Errno; 15] = [
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
        Errno::Rejected,
        Errno::Failed,
        Errno::TooManyServers,
    ];

    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn from_code(code: u16) -> Option<Errno> {
        Errno::ALL.into_iter().find(|errno| errno.code() == code)
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
        assert_eq!(Errno::from_code(Errno::ALL.len() as u16), None);
    }

    #[test]
    fn codes_are_dense() {
        for (i, errno) in Errno::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(errno.code()), i);
        }
    }
}
