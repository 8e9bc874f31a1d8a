//! The pools' history on the plugin port: `history [<rev>]` answers the committed transitions
//! (a header `0 history <rev> <count>`, then one line per transition, oldest first), or
//! `0 unchanged` when the client already has revision `<rev>`. isis2d asks on every heartbeat
//! and shows the answer as `INFORMATION_SCHEMA.ISIS2IS_HISTORY`.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::framing::MAX_LINE;
use crate::mpp::{Health, PoolState};
use crate::vocabulary::{ParseError, ServerKey};

/// The most transitions one answer holds (gcsd keeps this many).
pub const MAX_HISTORY_ROWS: usize = 1000;
/// The longest hook outcome on a history line; the reason gets the rest of the line.
const MAX_HOOK_ON_LINE: usize = 200;

/// One committed transition of one pool member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub pool: String,
    pub server: ServerKey,
    /// None: the server joined the pool.
    pub from: Option<PoolState>,
    /// None: the server left the pool.
    pub to: Option<PoolState>,
    pub status: Option<Health>,
    pub epoch: u64,
    pub reason: String,
    /// What came of its hook ("" when none runs for it).
    pub hook: String,
}

/// `text` without control characters, cut to at most `max` bytes on a character boundary.
fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

impl HistoryRow {
    /// `<seq> <time> <pool> <host> <port> <from> <to> <status> <epoch> <reason>\t<hook>\n`;
    /// `-` for no state or status; the reason and the hook cut so the line fits [`MAX_LINE`].
    pub fn to_line(&self) -> String {
        let word = |s: Option<PoolState>| s.map_or("-", PoolState::as_str);
        let head = format!(
            "{} {} {} {} {} {} {} {} ",
            self.seq,
            self.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            self.pool,
            self.server,
            word(self.from),
            word(self.to),
            self.status.map_or("-", Health::as_str),
            self.epoch,
        );
        let hook = one_line(&self.hook, MAX_HOOK_ON_LINE);
        let room = MAX_LINE.saturating_sub(head.len() + hook.len() + 2);
        let reason = one_line(&self.reason, room);
        format!("{head}{reason}\t{hook}\n")
    }

    pub fn parse(line: &str) -> Result<HistoryRow, ParseError> {
        let bad = |why| ParseError::new(why, line);
        let line = line.strip_suffix('\n').unwrap_or(line);
        let (head, hook) = line.split_once('\t').ok_or_else(|| bad("no hook field"))?;
        let mut f = head.splitn(10, ' ');
        let mut next = |what| f.next().filter(|t| !t.is_empty()).ok_or_else(|| bad(what));
        let seq = next("no seq")?.parse().map_err(|_| bad("invalid seq"))?;
        let at = DateTime::parse_from_rfc3339(next("no time")?)
            .map_err(|_| bad("invalid time"))?
            .with_timezone(&Utc);
        let pool = next("no pool")?.to_owned();
        let server = ServerKey::new(next("no host")?, next("no port")?);
        let state = |t: &str| match t {
            "-" => Ok(None),
            t => t
                .parse::<PoolState>()
                .map(Some)
                .map_err(|_| bad("invalid state")),
        };
        let from = state(next("no from state")?)?;
        let to = state(next("no to state")?)?;
        let status = match next("no status")? {
            "-" => None,
            t => Some(t.parse::<Health>().map_err(|_| bad("invalid status"))?),
        };
        let epoch = next("no epoch")?
            .parse()
            .map_err(|_| bad("invalid epoch"))?;
        let reason = f.next().unwrap_or("").to_owned();
        Ok(HistoryRow {
            seq,
            at,
            pool,
            server,
            from,
            to,
            status,
            epoch,
            reason,
            hook: hook.to_owned(),
        })
    }
}

/// A `history` answer's header: the revision and how many lines follow, or `None` for
/// `0 unchanged`.
pub fn parse_history_header(text: &str) -> Result<Option<(u64, usize)>, String> {
    if text == "unchanged" {
        return Ok(None);
    }
    let mut words = text.split(' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("history"), Some(rev), Some(count), None) => {
            let rev = rev
                .parse()
                .map_err(|_| format!("invalid revision {rev:?}"))?;
            let count = count
                .parse::<usize>()
                .ok()
                .filter(|c| *c <= MAX_HISTORY_ROWS)
                .ok_or_else(|| {
                    format!("invalid or too large row count {count:?} (at most {MAX_HISTORY_ROWS})")
                })?;
            Ok(Some((rev, count)))
        }
        _ => Err(format!("not a history header: {:?}", one_line(text, 60))),
    }
}

/// The header line of a `history` answer (`unchanged`: the client has `rev` already).
pub fn history_header(rev: u64, count: usize) -> String {
    format!("0 history {rev} {count}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> HistoryRow {
        HistoryRow {
            seq: 7,
            at: DateTime::parse_from_rfc3339("2026-11-27T16:03:54.670Z")
                .unwrap()
                .with_timezone(&Utc),
            pool: "app".into(),
            server: ServerKey::new("db1", "3306"),
            from: Some(PoolState::Standby),
            to: Some(PoolState::Active),
            status: Some(Health::Ok),
            epoch: 3,
            reason: "FAILOVER: Taking over ACTIVE state.".into(),
            hook: "ok: exit 0 after 12 ms on member 2".into(),
        }
    }

    #[test]
    fn lines_round_trip() {
        let r = row();
        let line = r.to_line();
        assert_eq!(
            line,
            "7 2026-11-27T16:03:54.670Z app db1 3306 STANDBY ACTIVE OK 3 FAILOVER: Taking over ACTIVE state.\tok: exit 0 after 12 ms on member 2\n"
        );
        assert_eq!(HistoryRow::parse(&line), Ok(r.clone()));
        let joined = HistoryRow {
            from: None,
            status: None,
            reason: String::new(),
            hook: String::new(),
            ..r
        };
        assert_eq!(HistoryRow::parse(&joined.to_line()), Ok(joined));
    }

    #[test]
    fn long_texts_are_cut_to_fit_a_line() {
        let r = HistoryRow {
            pool: "p".repeat(64),
            server: ServerKey::new("h".repeat(255), "9".repeat(255)),
            reason: "é\tx\n".repeat(400),
            hook: "ü".repeat(400),
            ..row()
        };
        let line = r.to_line();
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert_eq!(line.matches('\t').count(), 1);
        let back = HistoryRow::parse(&line).unwrap();
        assert!(back.hook.len() <= MAX_HOOK_ON_LINE && back.hook.starts_with("üü"));
        assert!(back.reason.starts_with("é x "));
    }

    #[test]
    fn bad_lines_and_headers_are_refused() {
        for bad in [
            "",
            "7 2026 app",
            "x 2026-11-27T16:03:54.670Z a h p - - - 0 r\t",
            "7 2026-11-27T16:03:54.670Z a h p NOPE - - 0 r\th",
        ] {
            assert!(HistoryRow::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_history_header("unchanged"), Ok(None));
        assert_eq!(parse_history_header("history 5 2"), Ok(Some((5, 2))));
        assert!(parse_history_header("history 5 1000000")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_history_header("bye").is_err());
        assert_eq!(history_header(5, 2), "0 history 5 2\n");
    }
}
