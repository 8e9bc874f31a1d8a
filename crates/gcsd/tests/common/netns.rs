//! Hosts as network namespaces, for partition tests with real processes.
//!
//! ```text
//!   root namespace: the test, bridge gcsB<pid><tag> with 10.199.X.1/24
//!     ├─ veth ── namespace gcsT<pid><tag>a: lo, veth0 10.199.X.11
//!     ├─ veth ── namespace gcsT<pid><tag>b: lo, veth0 10.199.X.12
//!     └─ veth ── namespace gcsT<pid><tag>c: lo, veth0 10.199.X.13
//! ```
//!
//! X is a /24 in 10.199.0.0/16 that no interface or route on this host uses yet. Every address
//! a test sends to is inside these namespaces. A host is cut off with `iptables` inside its
//! namespace: DROP on INPUT from and OUTPUT to the other hosts' addresses, so the test
//! (10.199.X.1) still reaches it. Healing deletes those rules.
//!
//! Traffic between the namespaces crosses the bridge, and where Docker runs (br_netfilter
//! loaded, FORWARD policy DROP) bridged packets meet the root namespace's FORWARD chain: the
//! net accepts its own bridge there while it exists, as Docker does for docker0. `Drop`
//! removes the namespaces (with their rules), the veths, the bridge and that rule; processes
//! running in the namespaces must be stopped first (drop them before the `Net`).
//!
//! Needs root, `ip` and `iptables` (scripts/setup.sh installs them): without them a test
//! fails, it does not skip.

use std::process::Command;

/// Three hosts on a bridge.
pub struct Net {
    pub namespaces: Vec<String>,
    veths: Vec<String>,
    bridge: String,
    /// The hosts' addresses, in order.
    pub ips: Vec<String>,
    /// The DROP rules in force: (namespace, chain, match flag, peer address).
    rules: Vec<(String, &'static str, &'static str, String)>,
    /// The addresses taken away: (namespace, address/prefix).
    dropped: Vec<(String, String)>,
}

impl Net {
    /// Three fresh namespaces; `tag` tells apart the nets of one test process.
    pub fn new(tag: char) -> Self {
        preflight();
        let pid = std::process::id();
        let seed = pid as usize * 4 + (tag as usize % 4);
        let net = free_subnet(seed);
        let mut me = Net {
            namespaces: "abc"
                .chars()
                .map(|s| format!("gcsT{pid}{tag}{s}"))
                .collect(),
            veths: "abc"
                .chars()
                .map(|s| format!("gcsV{pid}{tag}{s}"))
                .collect(),
            bridge: format!("gcsB{pid}{tag}"),
            ips: (11..=13).map(|h| format!("{net}.{h}")).collect(),
            rules: Vec::new(),
            dropped: Vec::new(),
        };
        // Leftovers of an earlier run with the same names (a reused pid).
        me.teardown();

        let br = me.bridge.clone();
        run(&["ip", "link", "add", &br, "type", "bridge"]);
        run(&["ip", "addr", "add", &format!("{net}.1/24"), "dev", &br]);
        run(&["ip", "link", "set", &br, "up"]);
        let mut accept = me.forward_rule("-I");
        accept.insert(5, "1");
        run(&accept);
        for ((ns, veth), ip) in me.namespaces.iter().zip(&me.veths).zip(&me.ips) {
            run(&["ip", "netns", "add", ns]);
            run(&[
                "ip", "link", "add", veth, "type", "veth", "peer", "name", "veth0", "netns", ns,
            ]);
            run(&["ip", "link", "set", veth, "master", &br]);
            run(&["ip", "link", "set", veth, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "veth0",
            ]);
            run(&["ip", "-n", ns, "link", "set", "veth0", "up"]);
        }
        me
    }

    /// Drops all traffic between host `i` and the other hosts, inside `i`'s namespace.
    pub fn isolate(&mut self, i: usize) {
        let ns = self.namespaces[i].clone();
        for (j, peer) in self.ips.iter().enumerate() {
            if j == i {
                continue;
            }
            for (chain, flag) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
                run(&[
                    "ip", "netns", "exec", &ns, "iptables", "-w", "5", "-A", chain, flag, peer,
                    "-j", "DROP",
                ]);
                self.rules.push((ns.clone(), chain, flag, peer.clone()));
            }
        }
    }

    /// Removes host `i`'s address from its interface, as `docker network disconnect` removes
    /// the interface: nothing reaches that address any more, from anywhere, the host's own
    /// processes included. `heal` puts it back.
    pub fn drop_address(&mut self, i: usize) {
        let ns = self.namespaces[i].clone();
        let addr = format!("{}/24", self.ips[i]);
        run(&["ip", "-n", &ns, "addr", "del", &addr, "dev", "veth0"]);
        self.dropped.push((ns, addr));
    }

    pub fn heal(&mut self) {
        for (ns, addr) in std::mem::take(&mut self.dropped) {
            run(&["ip", "-n", &ns, "addr", "add", &addr, "dev", "veth0"]);
        }
        for (ns, chain, flag, peer) in std::mem::take(&mut self.rules) {
            run(&[
                "ip", "netns", "exec", &ns, "iptables", "-w", "5", "-D", chain, flag, &peer, "-j",
                "DROP",
            ]);
        }
    }

    /// Removes everything by name; whatever does not exist is skipped.
    fn teardown(&mut self) {
        for veth in &self.veths {
            quiet(&["ip", "link", "del", veth]);
        }
        for ns in &self.namespaces {
            quiet(&["ip", "netns", "del", ns]);
        }
        quiet(&["ip", "link", "del", &self.bridge]);
        quiet(&self.forward_rule("-D"));
    }

    /// `iptables <op> FORWARD` for the rule that lets the bridge forward between its ports.
    fn forward_rule<'a>(&'a self, op: &'a str) -> Vec<&'a str> {
        let br = self.bridge.as_str();
        vec![
            "iptables", "-w", "5", op, "FORWARD", "-i", br, "-o", br, "-j", "ACCEPT",
        ]
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Root, `ip` and `iptables` are required; their absence is a failure, not a skip.
fn preflight() {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "partition tests must run as root (they create network namespaces, a bridge and \
         iptables rules); CI runs as root: run them with sudo or as root"
    );
    for (tool, version_flag, package) in [("ip", "-V", "iproute2"), ("iptables", "-V", "iptables")]
    {
        match Command::new(tool).arg(version_flag).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "`{tool} {version_flag}` failed ({}): {}; run scripts/setup.sh",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!(
                "`{tool}` is needed by the partition tests and cannot be run ({e}): \
                 run scripts/setup.sh, which installs the {package} package"
            ),
        }
    }
}

/// A 10.199.X prefix that no interface address or route on this host uses.
fn free_subnet(seed: usize) -> String {
    let mut used = output(&["ip", "-4", "-o", "addr", "show"]);
    used.push_str(&output(&["ip", "-4", "route", "show"]));
    (0..240)
        .map(|k| format!("10.199.{}", 10 + (seed + k) % 240))
        .find(|net| !used.contains(&format!("{net}.")))
        .expect("a free /24 in 10.199.0.0/16")
}

fn output(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "`{}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(args: &[&str]) {
    output(args);
}

fn quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}
