//! The server side of the member-to-member wire: one task per connection, one request at a
//! time, each handed to this member's Raft or group logic.

use std::sync::Arc;
use std::time::Duration;

use openraft::raft::AppendEntriesResponse;
use openraft::Snapshot;
use tokio::io::{BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use crate::group::Group;
use crate::wire::{read_frame, write_frame, Hello, Request, Response};

/// A peer must introduce itself within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn serve(listener: TcpListener, group: Arc<Group>) {
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

async fn serve_peer(stream: TcpStream, group: &Group) -> std::io::Result<()> {
    stream.set_nodelay(true).ok();
    let (r, w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let mut writer = BufWriter::new(w);
    let hello: Hello = tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut reader))
        .await
        .map_err(|_| std::io::Error::other("no hello in time"))??;
    write_frame(&mut writer, &group.identity.hello()).await?;
    if let Err(why) = group.identity.accept(&hello) {
        tracing::warn!("refused a group connection: {why}");
        return Ok(());
    }
    loop {
        let req: Request = read_frame(&mut reader).await?;
        let resp = answer(group, req).await;
        write_frame(&mut writer, &resp).await?;
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
                snapshot: Box::new(state),
            };
            let r = group.raft.install_full_snapshot(vote, snapshot).await;
            if r.is_ok() {
                group.heard_from_leader();
            }
            Response::FullSnapshot(r.map_err(|e| e.to_string()))
        }
        Request::Propose(cmd) => Response::Propose(group.propose_here(cmd).await),
        req @ (Request::AddMember { .. } | Request::RemoveMember { .. }) => {
            Response::Admin(group.admin_here(req).await)
        }
    }
}
