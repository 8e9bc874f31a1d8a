//! `GET /cluster` as gcsctl reads it, and how it is shown to an operator.
//!
//! Unknown fields are ignored on purpose: a newer gcsd may report more.

use chrono::{DateTime, Utc};
use proto::admin::ClusterReport;

/// "gcsd1 (id 1)", falling back to the bare id for a member not in the list.
fn member_label(c: &ClusterReport, id: u64) -> String {
    match c.members.iter().find(|m| m.id == id) {
        Some(m) => format!("{} (id {id})", m.name),
        None => format!("id {id}"),
    }
}

/// Without quorum the member cannot learn of changes, so what it lists may be old.
pub fn stale_warning(c: &ClusterReport) -> Option<String> {
    if c.quorum {
        return None;
    }
    let why = match &c.quorum_problem {
        Some(p) => format!(" ({p})"),
        None => String::new(),
    };
    Some(format!(
        "warning: {} has no quorum{why}; this list may be stale",
        c.name
    ))
}

/// The one-screen summary of `gcsctl status`.
pub fn render_status(c: &ClusterReport) -> String {
    let leader = c
        .leader
        .map_or("none".to_string(), |id| member_label(c, id));
    let quorum = match (c.quorum, &c.quorum_problem) {
        (true, _) => "yes".to_string(),
        (false, Some(p)) => format!("no ({p})"),
        (false, None) => "no".to_string(),
    };
    let up = c.members.iter().filter(|m| m.up).count();
    let voters = c.members.iter().filter(|m| m.voter).count();
    let lines = [
        ("member", format!("{} (id {}), {}", c.name, c.me, c.role)),
        ("leader", leader),
        ("term", c.term.to_string()),
        ("quorum", quorum),
        ("view id", c.view_id.to_string()),
        (
            "last applied",
            c.last_applied.map_or("none".to_string(), |n| n.to_string()),
        ),
        ("members", format!("{up}/{} up", c.members.len())),
        ("voters", voters.to_string()),
        ("servers", c.servers.len().to_string()),
    ];
    lines
        .iter()
        .map(|(label, value)| format!("{:<14}{value}\n", format!("{label}:")))
        .collect()
}

pub fn render_members(c: &ClusterReport) -> String {
    let rows: Vec<Vec<String>> = c
        .members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.name.clone(),
                if m.voter { "voter" } else { "non-voter" }.to_string(),
                match (m.up, &m.down_reason) {
                    (true, _) => "up".to_string(),
                    (false, Some(why)) => format!("down ({why})"),
                    (false, None) => "down".to_string(),
                },
                if c.leader == Some(m.id) { "*" } else { "" }.to_string(),
                m.group_addr.clone(),
                or_dash(&m.admin_addr),
                m.since.as_ref().map_or("-".to_string(), short_time),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "ROLE",
            "STATE",
            "LEADER",
            "GROUP-ADDR",
            "ADMIN-ADDR",
            "SINCE",
        ],
        &rows,
    )
}

pub fn render_servers(c: &ClusterReport) -> String {
    let rows: Vec<Vec<String>> = c
        .servers
        .iter()
        .map(|s| {
            vec![
                s.member.clone(),
                s.host.clone(),
                s.port.clone(),
                s.status.to_string(),
                s.role.to_string(),
                format!("{}s", s.ttl_secs),
                short_time(&s.last_update),
            ]
        })
        .collect();
    table(
        &[
            "MEMBER",
            "HOST",
            "PORT",
            "STATUS",
            "ROLE",
            "TTL",
            "LAST-UPDATE",
        ],
        &rows,
    )
}

/// Left-aligned columns two spaces apart; an empty list still shows its header.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: &mut dyn Iterator<Item = &str>| {
        let mut line = String::new();
        for (cell, width) in cells.zip(&widths) {
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 2));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_row(&mut headers.iter().copied());
    for row in rows {
        push_row(&mut row.iter().map(String::as_str));
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}

/// Whole seconds are enough on screen; `--json` keeps the full precision.
fn short_time(ts: &DateTime<Utc>) -> String {
    ts.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-" } else { s }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"me":1,"name":"gcsd1","role":"leader","leader":1,"term":1,
      "quorum":true,"quorum_problem":null,"last_applied":2,"view_id":1,"future_field":[1,2],
      "members":[
        {"id":1,"name":"gcsd1","group_addr":"127.0.0.1:12300","admin_addr":"127.0.0.1:12280",
         "voter":true,"up":true,"down_reason":null,"since":"2026-11-22T00:23:00.329317493Z"},
        {"id":2,"name":"gcsd2","group_addr":"127.0.0.1:12301","admin_addr":"",
         "voter":false,"up":false,"down_reason":"timeout","since":null,"zone":"b"}],
      "servers":[{"member":"gcsd1","member_id":1,"host":"db1","port":"3306","status":"on",
         "role":"master","ttl_secs":3,"last_update":"2026-11-22T00:23:03.650Z"}]}"#;

    fn sample() -> ClusterReport {
        serde_json::from_str(SAMPLE).expect("sample parses despite unknown fields")
    }

    #[test]
    fn table_aligns_columns_to_the_widest_cell() {
        let rows = vec![
            vec!["1".to_string(), "gcsd1".to_string(), "x".to_string()],
            vec!["10".to_string(), "g".to_string(), "".to_string()],
        ];
        assert_eq!(
            table(&["ID", "NAME", "END"], &rows),
            "ID  NAME   END\n\
             1   gcsd1  x\n\
             10  g\n"
        );
    }

    #[test]
    fn empty_table_prints_header_and_none() {
        assert_eq!(table(&["MEMBER", "HOST"], &[]), "MEMBER  HOST\n(none)\n");
    }

    #[test]
    fn status_summarises_the_cluster() {
        assert_eq!(
            render_status(&sample()),
            "member:       gcsd1 (id 1), leader\n\
             leader:       gcsd1 (id 1)\n\
             term:         1\n\
             quorum:       yes\n\
             view id:      1\n\
             last applied: 2\n\
             members:      1/2 up\n\
             voters:       1\n\
             servers:      1\n"
        );
    }

    #[test]
    fn status_without_quorum_or_leader() {
        let mut c = sample();
        c.quorum = false;
        c.quorum_problem = Some("leader unknown".into());
        c.leader = None;
        c.last_applied = None;
        let out = render_status(&c);
        assert!(out.contains("leader:       none\n"), "{out}");
        assert!(out.contains("quorum:       no (leader unknown)\n"), "{out}");
        assert!(out.contains("last applied: none\n"), "{out}");
        assert_eq!(
            stale_warning(&c).as_deref(),
            Some("warning: gcsd1 has no quorum (leader unknown); this list may be stale")
        );
        assert_eq!(stale_warning(&sample()), None);
    }

    #[test]
    fn members_table() {
        assert_eq!(
            render_members(&sample()),
            "ID  NAME   ROLE       STATE           LEADER  GROUP-ADDR       ADMIN-ADDR       SINCE\n\
             1   gcsd1  voter      up              *       127.0.0.1:12300  127.0.0.1:12280  2026-11-22T00:23:00Z\n\
             2   gcsd2  non-voter  down (timeout)          127.0.0.1:12301  -                -\n"
        );
    }

    #[test]
    fn servers_table() {
        assert_eq!(
            render_servers(&sample()),
            "MEMBER  HOST  PORT  STATUS  ROLE    TTL  LAST-UPDATE\n\
             gcsd1   db1   3306  on      master  3s   2026-11-22T00:23:03Z\n"
        );
    }
}
