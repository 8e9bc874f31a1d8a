//! Prometheus metrics. Counters are bumped where things happen; gauges that describe the group
//! are set from the group's current view ([`GroupGauges`], typed, not the admin API's JSON) when
//! `/metrics` is scraped.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// What the group gauges show, taken from the group's typed view at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupGauges {
    pub is_leader: bool,
    pub quorum: bool,
    pub term: u64,
    pub last_applied: Option<u64>,
    pub members_up: usize,
    pub members: usize,
    pub servers: usize,
}

type Labels = Vec<(&'static str, &'static str)>;

pub struct Metrics {
    registry: Registry,
    proposals: Family<Labels, Counter>,
    pub commit_seconds: Histogram,
    pub pool_decision_seconds: Histogram,
    pub probe_seconds: Histogram,
    plugin_commands: Family<Labels, Counter>,
    plugin_connections: Gauge,
    plugin_refused: Family<Labels, Counter>,
    group_refused: Family<Labels, Counter>,
    is_leader: Gauge,
    quorum: Gauge,
    term: Gauge,
    last_applied: Gauge,
    members: Family<Labels, Gauge>,
    servers: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Self {
            registry: Registry::with_prefix("gcsd"),
            proposals: Family::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.0002, 2.0, 14)),
            pool_decision_seconds: Histogram::new(exponential_buckets(0.000_001, 2.0, 16)),
            probe_seconds: Histogram::new(exponential_buckets(0.0002, 2.0, 14)),
            plugin_commands: Family::default(),
            plugin_connections: Gauge::default(),
            plugin_refused: Family::default(),
            group_refused: Family::default(),
            is_leader: Gauge::default(),
            quorum: Gauge::default(),
            term: Gauge::default(),
            last_applied: Gauge::default(),
            members: Family::default(),
            servers: Gauge::default(),
        };
        m.registry.register(
            "proposals",
            "Changes proposed to the group, by result",
            m.proposals.clone(),
        );
        m.registry.register(
            "commit_seconds",
            "Time from proposal to commit",
            m.commit_seconds.clone(),
        );
        m.registry.register(
            "pool_decision_seconds",
            "Time the leader takes to decide one pool",
            m.pool_decision_seconds.clone(),
        );
        m.registry.register(
            "probe_seconds",
            "Time one SQL probe of a server takes, fencing included",
            m.probe_seconds.clone(),
        );
        m.registry.register(
            "plugin_commands",
            "Plugin-port commands served, by command",
            m.plugin_commands.clone(),
        );
        m.registry.register(
            "plugin_connections",
            "Open plugin-port connections",
            m.plugin_connections.clone(),
        );
        m.registry.register(
            "plugin_refused",
            "Plugin-port connections and commands refused, by reason",
            m.plugin_refused.clone(),
        );
        m.registry.register(
            "group_refused",
            "Group-port connections and requests refused, by reason",
            m.group_refused.clone(),
        );
        m.registry.register(
            "is_leader",
            "1 if this member is the Raft leader",
            m.is_leader.clone(),
        );
        m.registry
            .register("quorum", "1 if this member can commit", m.quorum.clone());
        m.registry
            .register("raft_term", "Current Raft term", m.term.clone());
        m.registry.register(
            "last_applied_index",
            "Index of the last applied log entry",
            m.last_applied.clone(),
        );
        m.registry.register(
            "members",
            "Members in the view, by state",
            m.members.clone(),
        );
        m.registry
            .register("servers", "Servers in the serverlist", m.servers.clone());
        m
    }

    pub fn proposal(&self, result: &'static str) {
        self.proposals
            .get_or_create(&vec![("result", result)])
            .inc();
    }

    /// A group connection or request refused: `tls` (no or a bad certificate), `identity`
    /// (the hello's member is not the certificate's), `group` (another group, version or not a
    /// member), `wiped` (a member back with another data directory), `unauthorized` (a request
    /// this peer may not make).
    pub fn group_refused(&self, reason: &'static str) {
        self.group_refused
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    /// A plugin-port connection or command refused: `connections` (over
    /// max_plugin_connections), `subscribers` (over max_plugin_subscribers), `uid` (a Unix-socket
    /// peer not in plugin_allowed_uids), `transport` (a write over TCP with plugin_tcp_writes =
    /// false).
    pub fn plugin_refused(&self, reason: &'static str) {
        self.plugin_refused
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    pub fn plugin_command(&self, command: &'static str) {
        self.plugin_commands
            .get_or_create(&vec![("command", command)])
            .inc();
    }

    /// The text exposition, with the gauges taken from the current group view.
    pub fn render(&self, group: GroupGauges, open_plugin_connections: usize) -> String {
        self.plugin_connections.set(open_plugin_connections as i64);
        self.is_leader.set(i64::from(group.is_leader));
        self.quorum.set(i64::from(group.quorum));
        self.term.set(group.term as i64);
        self.last_applied
            .set(group.last_applied.unwrap_or(0) as i64);
        self.members
            .get_or_create(&vec![("state", "up")])
            .set(group.members_up as i64);
        self.members
            .get_or_create(&vec![("state", "down")])
            .set((group.members - group.members_up) as i64);
        self.servers.set(group.servers as i64);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
