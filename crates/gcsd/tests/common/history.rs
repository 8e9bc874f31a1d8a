//! The shared history checker: every change a client was told is committed (`0 OK`) must be
//! there at the end, on every member, unless a later acknowledged change undid it. A change
//! that got any other answer, or none, may or may not have been committed: either is fine.

use std::collections::BTreeMap;

use super::Gcsd;

/// What the end state must say about one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Listed,
    Absent,
    /// Its last change was not acknowledged: it may have been committed or not.
    Either,
}

/// The acknowledged `join`s and `leave`s sent through [`History::send`].
#[derive(Debug, Default)]
pub struct History {
    servers: BTreeMap<String, Expect>,
    acknowledged: usize,
    unknown: usize,
}

impl History {
    /// Sends `join <host> <port> ...` or `leave <host> <port>` to `m` on a fresh connection and
    /// records what the answer promises. Returns the answer ("" when the connection failed).
    pub fn send(&mut self, m: &Gcsd, line: &str) -> String {
        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.cmd(line)))
            .unwrap_or_default();
        self.record(line, &reply);
        reply
    }

    /// Records `line`'s answer `reply`.
    pub fn record(&mut self, line: &str, reply: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let server = format!("{} {}", words[1], words[2]);
        let acked = reply == "0 OK\n";
        let expect = match (words[0], acked) {
            ("join", true) => Expect::Listed,
            ("leave", true) => Expect::Absent,
            (_, false) => Expect::Either,
            (verb, true) => panic!("the history records join and leave, not {verb}"),
        };
        if acked {
            self.acknowledged += 1;
        } else {
            self.unknown += 1;
        }
        self.servers.insert(server, expect);
    }

    /// (acknowledged, unknown) changes recorded.
    pub fn counts(&self) -> (usize, usize) {
        (self.acknowledged, self.unknown)
    }

    /// Whether `m` lists every server whose last change was an acknowledged join, and none
    /// whose last was an acknowledged leave; `Err` names the first few differences.
    pub fn check(&self, m: &Gcsd) -> Result<(), String> {
        let listed: std::collections::BTreeSet<String> = m.servers().into_iter().collect();
        let wrong: Vec<String> = self
            .servers
            .iter()
            .filter_map(|(server, expect)| match (expect, listed.contains(server)) {
                (Expect::Listed, false) => Some(format!("{server} missing")),
                (Expect::Absent, true) => Some(format!("{server} listed after its leave")),
                _ => None,
            })
            .collect();
        match wrong.len() {
            0 => Ok(()),
            n => Err(format!(
                "member {}: {n} acknowledged changes not in its list: {}",
                m.id,
                wrong[..n.min(5)].join(", ")
            )),
        }
    }
}
