//! What can go wrong, worded for an operator, and the exit code each case means to a script.

use std::fmt;

/// A failed gcsctl operation. Each message says what happened, to what, and what to do.
#[derive(Debug)]
pub enum CtlError {
    /// No HTTP answer from gcsd: down, wrong address, firewalled or hung. Exit 3.
    Unreachable {
        addr: String,
        reason: String,
        hint: &'static str,
    },
    /// gcsd answered with an error status. Exit 1.
    Failed {
        addr: String,
        action: String,
        status: u16,
        message: String,
    },
    /// gcsd answered success, but not in a shape gcsctl knows. Exit 1.
    Unreadable {
        addr: String,
        what: &'static str,
        reason: String,
    },
    /// `remove-member` without `--yes`: refused before contacting gcsd. Exit 2 (usage).
    Unconfirmed { id: u64 },
    /// Arguments gcsctl refuses before contacting gcsd. Exit 2.
    Usage(String),
    /// gcsd's answer does not contain what was asked for (an unknown pool or server). Exit 1.
    NotFound(String),
}

impl CtlError {
    /// 0 ok, 1 gcsd said no, 2 usage, 3 cannot reach gcsd.
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Unreachable { .. } => 3,
            CtlError::Failed { .. } | CtlError::Unreadable { .. } | CtlError::NotFound(_) => 1,
            CtlError::Unconfirmed { .. } | CtlError::Usage(_) => 2,
        }
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtlError::Unreachable { addr, reason, hint } => {
                write!(f, "cannot reach gcsd at {addr}: {reason}; {hint}")
            }
            CtlError::Failed {
                addr,
                action,
                status,
                message,
            } => {
                write!(
                    f,
                    "gcsd at {addr} could not {action} (HTTP {status}): {message}"
                )?;
                match status {
                    400 | 422 => write!(f, "; check the arguments"),
                    401 => write!(
                        f,
                        "; pass this gcsd's admin token with --token-file FILE (or \
                         GCSCTL_TOKEN_FILE): gcsd writes it to <data_dir>/admin.token at its \
                         first start, or reads it from its admin_token_file"
                    ),
                    404 | 405 => write!(
                        f,
                        "; is {addr} the admin address of a gcsd as new as this gcsctl? (--gcsd)"
                    ),
                    409 => write!(f, "; see `gcsctl members` or `gcsctl list`"),
                    503 => write!(
                        f,
                        "; this needs a leader with a quorum, see `gcsctl status`, then retry"
                    ),
                    _ => Ok(()),
                }
            }
            CtlError::Unreadable { addr, what, reason } => write!(
                f,
                "gcsd at {addr} sent {what} that gcsctl cannot read: {reason}; \
                 are gcsctl and gcsd the same version?"
            ),
            CtlError::Unconfirmed { id } => write!(
                f,
                "not removing member {id}: removal is permanent. The member leaves the group \
                 (voters and learners) and its servers drop out of the server list; to bring \
                 the host back it must be added again with `gcsctl add-member`. If that is \
                 what you want, run `gcsctl remove-member {id} --yes`"
            ),
            CtlError::Usage(text) | CtlError::NotFound(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for CtlError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_says_what_to_whom_and_what_to_do() {
        let e = CtlError::Unreachable {
            addr: "127.0.0.1:2280".into(),
            reason: "connection refused".into(),
            hint: "is gcsd running? (--gcsd)",
        };
        assert_eq!(
            e.to_string(),
            "cannot reach gcsd at 127.0.0.1:2280: connection refused; is gcsd running? (--gcsd)"
        );
        assert_eq!(e.exit_code(), 3);
    }

    #[test]
    fn failed_carries_gcsd_explanation_and_a_hint() {
        let e = CtlError::Failed {
            addr: "db1:2280".into(),
            action: "add member 2".into(),
            status: 503,
            message: "no quorum".into(),
        };
        assert_eq!(
            e.to_string(),
            "gcsd at db1:2280 could not add member 2 (HTTP 503): no quorum; \
             this needs a leader with a quorum, see `gcsctl status`, then retry"
        );
        assert_eq!(e.exit_code(), 1);

        let e = CtlError::Failed {
            addr: "db1:2280".into(),
            action: "remove member 9".into(),
            status: 500,
            message: "boom".into(),
        };
        assert_eq!(
            e.to_string(),
            "gcsd at db1:2280 could not remove member 9 (HTTP 500): boom"
        );
    }

    #[test]
    fn unreadable_and_unconfirmed() {
        let e = CtlError::Unreadable {
            addr: "db1:2280".into(),
            what: "a cluster report",
            reason: "missing field `term`".into(),
        };
        assert!(e.to_string().starts_with(
            "gcsd at db1:2280 sent a cluster report that gcsctl cannot read: missing field `term`;"
        ));
        assert_eq!(e.exit_code(), 1);

        let e = CtlError::Unconfirmed { id: 5 };
        let msg = e.to_string();
        assert!(msg.contains("permanent"), "{msg}");
        assert!(msg.contains("gcsctl remove-member 5 --yes"), "{msg}");
        assert_eq!(e.exit_code(), 2);
    }
}
