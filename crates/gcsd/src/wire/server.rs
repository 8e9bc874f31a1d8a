//! The serving side of the member-to-member wire: one task per connection, one request at a
//! time, each handed to this member's Raft or group logic. `app` binds the listener and spawns
//! [`serve`]; the group never binds a port itself.

use std::sync::Arc;
use std::time::Duration;

use openraft::raft::AppendEntriesResponse;
use openraft::Snapshot;
use tokio::io::BufStream;

use super::transport::{Acceptor, BoxStream};
use super::{
    authz, read_frame, read_frame_of_at_most, write_frame, Handshake, Hello, MembershipChange,
    Request, Response, MAX_HELLO,
};
use crate::group::Group;

/// A peer must introduce itself within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn serve(mut listener: Box<dyn Acceptor>, group: Arc<Group>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let group = group.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_peer(stream, &group).await {
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

async fn serve_peer(stream: BoxStream, group: &Group) -> std::io::Result<()> {
    let mut stream = BufStream::new(stream);
    let hello: Hello =
        tokio::time::timeout(HELLO_TIMEOUT, read_frame_of_at_most(&mut stream, MAX_HELLO))
            .await
            .map_err(|_| std::io::Error::other("no hello in time"))??;
    // A wiped member is told why, so that it stops instead of retrying.
    let wiped = group.identity.wiped_peer(&hello);
    let mut mine = group.identity.hello();
    mine.wiped = wiped.clone();
    write_frame(&mut stream, &mine).await?;
    if let Some(why) = wiped {
        group.metrics.group_refused("wiped");
        tracing::warn!("refused a group connection: {why}");
        return Ok(());
    }
    if let Err(why) = group.identity.accept(&hello).await {
        group.metrics.group_refused("group");
        tracing::warn!("refused a group connection: {why}");
        return Ok(());
    }
    // Who asks: the certificate's member with TLS, the hello's claim without.
    let peer = hello.from;
    loop {
        let req: Request = read_frame(&mut stream).await?;
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
            let r = group.raft.install_full_snapshot(vote, snapshot).await;
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
