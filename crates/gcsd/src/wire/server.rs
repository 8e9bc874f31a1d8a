//! The serving side of the member-to-member wire: one task per connection, one request at a
//! time, each handed to this member's Raft or group logic. `app` binds the listener and spawns
//! [`serve`]; the group never binds a port itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use openraft::raft::AppendEntriesResponse;
use openraft::Snapshot;
use tokio::io::BufStream;

use super::transport::{Acceptor, Connected};
use super::{
    authz, read_frame_of_at_most, read_frame_within, write_frame, Handshake, Hello,
    MembershipChange, Request, Response, MAX_FRAME, MAX_HELLO,
};
use crate::group::Group;
use crate::warn_limit::WarnLimiter;

/// A peer must finish its handshake (TLS), and then introduce itself, each within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections not yet introduced (in the TLS handshake or before their hello), in all and
/// from one source address: a flood of connections that never authenticate holds at most these
/// slots, each for at most two `HELLO_TIMEOUT`s, and cannot exhaust memory or descriptors.
const MAX_PENDING: usize = 64;
const MAX_PENDING_PER_SOURCE: usize = 8;
/// A request whose first bytes arrived must arrive whole within this.
const FRAME_DEADLINE: Duration = Duration::from_secs(30);

pub async fn serve(mut listener: Box<dyn Acceptor>, group: Arc<Group>) {
    let admission = Arc::new(Admission::default());
    let refusals = Arc::new(WarnLimiter::default());
    loop {
        match listener.accept().await {
            Ok((pending, peer)) => {
                let Some(ticket) = admission.admit(&peer) else {
                    group.metrics.group_refused("busy");
                    refusals.warn(|n| {
                        tracing::warn!(
                            %peer,
                            "group port: {MAX_PENDING} connections (or {MAX_PENDING_PER_SOURCE} from one address) are not yet introduced; closed {n} more"
                        )
                    });
                    continue;
                };
                let group = group.clone();
                let refusals = refusals.clone();
                tokio::spawn(async move {
                    let connected = match tokio::time::timeout(HELLO_TIMEOUT, pending).await {
                        Ok(Ok(connected)) => connected,
                        Ok(Err(e)) => {
                            refuse(&group, &refusals, "tls", &format!("{peer}: {e}"));
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "no handshake within {HELLO_TIMEOUT:?}");
                            return;
                        }
                    };
                    if let Err(e) = serve_peer(connected, ticket, &group, &refusals).await {
                        tracing::debug!(%peer, "group connection closed: {e}");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("group listener cannot accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Counts and logs (at most one line per interval) a refused connection or request.
fn refuse(group: &Group, refusals: &WarnLimiter, reason: &'static str, why: &str) {
    group.metrics.group_refused(reason);
    refusals.warn(|n| {
        tracing::warn!("refused a group connection ({n} since the last such line): {why}")
    });
}

async fn serve_peer(
    connected: Connected,
    ticket: Ticket,
    group: &Group,
    refusals: &WarnLimiter,
) -> std::io::Result<()> {
    let mut stream = BufStream::new(connected.stream);
    let hello: Hello =
        tokio::time::timeout(HELLO_TIMEOUT, read_frame_of_at_most(&mut stream, MAX_HELLO))
            .await
            .map_err(|_| std::io::Error::other("no hello in time"))??;
    if let Some(certified) = connected.member.filter(|&m| m != hello.from) {
        let why = format!(
            "the certificate of member {certified} says hello as member {}",
            hello.from
        );
        refuse(group, refusals, "identity", &why);
        return Ok(());
    }
    // A wiped member is told why, so that it stops instead of retrying.
    let wiped = group.identity.wiped_peer(&hello);
    let mut mine = group.identity.hello();
    mine.wiped = wiped.clone();
    write_frame(&mut stream, &mine).await?;
    if let Some(why) = wiped {
        refuse(group, refusals, "wiped", &why);
        return Ok(());
    }
    if let Err(why) = group.identity.accept(&hello).await {
        refuse(group, refusals, "group", &why);
        return Ok(());
    }
    drop(ticket);
    // Who asks: the certificate's member with TLS (checked equal above), the hello's claim
    // without.
    let peer = hello.from;
    loop {
        let req: Request = read_frame_within(&mut stream, MAX_FRAME, FRAME_DEADLINE).await?;
        let resp = match authz::authorize(peer, &req, &group.known()) {
            Ok(()) => answer(group, req).await,
            Err(why) => {
                group.metrics.group_refused("unauthorized");
                tracing::debug!("refused a group request: {why}");
                Response::Refused(why)
            }
        };
        write_frame(&mut stream, &resp).await?;
    }
}

/// Connections not yet introduced, in all and by source address.
#[derive(Default)]
struct Admission(Mutex<HashMap<String, usize>>);

/// A connection's place among those not yet introduced; given back when dropped.
struct Ticket {
    admission: Arc<Admission>,
    source: String,
}

impl Admission {
    /// A ticket for a connection from `peer` (`address:port`), unless [`MAX_PENDING`] or
    /// [`MAX_PENDING_PER_SOURCE`] are reached.
    fn admit(self: &Arc<Self>, peer: &str) -> Option<Ticket> {
        let source = peer.rsplit_once(':').map_or(peer, |(ip, _)| ip).to_owned();
        let mut pending = self.0.lock();
        let total: usize = pending.values().sum();
        let from_source = pending.entry(source.clone()).or_default();
        if total >= MAX_PENDING || *from_source >= MAX_PENDING_PER_SOURCE {
            return None;
        }
        *from_source += 1;
        Some(Ticket {
            admission: self.clone(),
            source,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut pending = self.admission.0.lock();
        if let Some(n) = pending.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                pending.remove(&self.source);
            }
        }
    }
}

async fn answer(group: &Group, req: Request) -> Response {
    match req {
        Request::AppendEntries(rpc) => {
            let r = group.raft.append_entries(rpc).await;
            if matches!(r, Ok(ref a) if !matches!(a, AppendEntriesResponse::HigherVote(_))) {
                group.heard_from_leader();
            }
            Response::AppendEntries(r)
        }
        Request::Vote(rpc) => Response::Vote(group.raft.vote(rpc).await),
        Request::FullSnapshot { vote, meta, state } => {
            let snapshot = Snapshot {
                meta,
                snapshot: state,
            };
            let r = group
                .snapshot_gate
                .receiving(group.raft.install_full_snapshot(vote, snapshot))
                .await;
            if r.is_ok() {
                group.heard_from_leader();
            }
            Response::FullSnapshot(r.map_err(|e| e.to_string()))
        }
        Request::Propose(cmd) => Response::Propose(group.propose_here(cmd).await),
        Request::AddMember { id, node } => {
            let change = MembershipChange::AddMember { id, node };
            Response::Admin(group.admin_here(change).await)
        }
        Request::RemoveMember { id } => {
            let change = MembershipChange::RemoveMember { id };
            Response::Admin(group.admin_here(change).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_connections_are_capped_in_all_and_per_source() {
        let admission = Arc::new(Admission::default());
        let from_a: Vec<Ticket> = (0..MAX_PENDING_PER_SOURCE)
            .map(|i| admission.admit(&format!("10.0.0.1:{i}")).unwrap())
            .collect();
        assert!(admission.admit("10.0.0.1:9999").is_none(), "per source");
        let mut others: Vec<Ticket> = (0..MAX_PENDING - MAX_PENDING_PER_SOURCE)
            .map(|i| admission.admit(&format!("10.0.1.{i}:1")).unwrap())
            .collect();
        assert!(admission.admit("10.0.2.1:1").is_none(), "in all");
        others.pop();
        assert!(
            admission.admit("10.0.2.1:1").is_some(),
            "a place given back"
        );
        drop(from_a);
        assert!(admission.admit("10.0.0.1:1").is_some());
    }
}
