//! MPP's words for pools: a server's TYPE in a pool, its health (MPP's STATUS) and its STATE in
//! the pool, printed as MPP printed them (uppercase) and parsed case-insensitively.
//!
//! Not to be confused with the serverlist's words: [`crate::Role`] is what a server says about
//! its own replication (master, slave), [`crate::Status`] its lifecycle (on, off). A
//! [`PoolType`] is the operator's priority (one PRIMARY, then SECONDARY servers in the order
//! given), [`Health`] the group's judgement of the server from its probes, and [`PoolState`] what
//! the group decided the server does in one pool (at most one ACTIVE per pool).

use std::fmt;
use std::str::FromStr;

use crate::vocabulary::ParseError;

/// Longest pool name.
pub const MAX_POOL_NAME: usize = 64;
/// Longest message kept for a server in a pool, so that a hostile server's error text cannot
/// grow the state, and a message fits its column whole.
pub const MAX_MESSAGE: usize = 512;

word_enum!(
    /// A server's TYPE in one pool: the PRIMARY comes first, SECONDARY servers follow in the
    /// priority order the operator gave.
    PoolType, "unknown pool type",
    [Primary => "PRIMARY", Secondary => "SECONDARY"]
);

word_enum!(
    /// A server's health (MPP's STATUS): one level down per consecutive failed probe, back to
    /// `OK` on a clean one. Every level but `FAIL` is healthy enough to serve.
    Health, "unknown status",
    [Ok => "OK", OkInfo => "OK_INFO", OkWarn => "OK_WARN", OkCritical => "OK_CRITICAL", Fail => "FAIL"]
);

word_enum!(
    /// A server's STATE in one pool.
    PoolState, "unknown state",
    [
        Unknown => "UNKNOWN",
        Standby => "STANDBY",
        Active => "ACTIVE",
        FailedOffline => "FAILED_OFFLINE",
        FailedOnline => "FAILED_ONLINE",
    ]
);

impl Health {
    /// The level after `failures` consecutive failed probes, when `max_failures` of them make a
    /// server FAIL: `OK` at 0, then `OK_INFO`, `OK_WARN`, `OK_CRITICAL` (which also covers any
    /// further failures below the threshold), `FAIL` from `max_failures` on.
    pub fn after_failures(failures: u32, max_failures: u32) -> Health {
        match failures {
            0 => Health::Ok,
            f if f >= max_failures.max(1) => Health::Fail,
            1 => Health::OkInfo,
            2 => Health::OkWarn,
            _ => Health::OkCritical,
        }
    }
}

impl PoolState {
    /// FAILED_OFFLINE or FAILED_ONLINE: only an operator's `recover` leaves these.
    pub fn is_failed(self) -> bool {
        matches!(self, PoolState::FailedOffline | PoolState::FailedOnline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_print_uppercase_and_parse_in_any_case() {
        assert_eq!(PoolState::FailedOnline.to_string(), "FAILED_ONLINE");
        assert_eq!("failed_offline".parse(), Ok(PoolState::FailedOffline));
        assert_eq!("ok_warn".parse(), Ok(Health::OkWarn));
        assert_eq!("secondary".parse(), Ok(PoolType::Secondary));
        assert_eq!(
            "FAILED".parse::<PoolState>().unwrap_err().reason,
            "unknown state"
        );
    }

    #[test]
    fn five_levels_one_per_failed_probe() {
        let levels: Vec<Health> = (0..6).map(|f| Health::after_failures(f, 4)).collect();
        use Health::*;
        assert_eq!(levels, [Ok, OkInfo, OkWarn, OkCritical, Fail, Fail]);
        assert_eq!(Health::after_failures(2, 2), Fail);
        assert_eq!(Health::after_failures(5, 8), OkCritical);
        assert_eq!(
            Health::after_failures(1, 0),
            Fail,
            "max_failures 0 acts as 1"
        );
    }
}
