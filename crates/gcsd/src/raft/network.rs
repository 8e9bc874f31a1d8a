//! openraft's client side of the member-to-member wire, over any `Transport`. It also records
//! when each peer last answered: openraft 0.9's metrics have no per-follower contact times, and
//! the leader's view of who is alive is built from these.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{Snapshot, Vote};
use parking_lot::Mutex;

use super::{MemberNode, TypeConfig};
use crate::identity::Identity;
use crate::state::MemberId;
use crate::wire::transport::Transport;
use crate::wire::{Connection, Request, Response, WireError};

/// When each peer last answered a request of ours.
#[derive(Clone, Default)]
pub struct Contacts(Arc<Mutex<HashMap<MemberId, Instant>>>);

impl Contacts {
    pub fn record(&self, peer: MemberId) {
        self.0.lock().insert(peer, Instant::now());
    }

    /// How long ago each peer last answered.
    pub fn ages(&self) -> BTreeMap<MemberId, Duration> {
        self.0
            .lock()
            .iter()
            .map(|(&peer, t)| (peer, t.elapsed()))
            .collect()
    }
}

/// Makes one `PeerLink` per target, as openraft asks.
#[derive(Clone)]
pub struct Network {
    pub me: Identity,
    pub transport: Arc<dyn Transport>,
    pub contacts: Contacts,
    pub connect_timeout: Duration,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerLink;

    async fn new_client(&mut self, target: MemberId, node: &MemberNode) -> PeerLink {
        PeerLink {
            net: self.clone(),
            target,
            addr: node.group_addr.clone(),
            conn: None,
        }
    }
}

/// A persistent connection to one peer, re-opened after any failure.
pub struct PeerLink {
    net: Network,
    target: MemberId,
    addr: String,
    conn: Option<Connection>,
}

type RpcResult<T, E = RaftError<MemberId>> = Result<T, RPCError<MemberId, MemberNode, E>>;

impl PeerLink {
    async fn call(&mut self, req: &Request, timeout: Duration) -> Result<Response, WireError> {
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => self.conn.insert(
                Connection::open(
                    &*self.net.transport,
                    &self.addr,
                    &self.net.me,
                    self.net.connect_timeout.min(timeout),
                )
                .await?,
            ),
        };
        match conn.call(req, timeout).await {
            Ok(resp) => {
                self.net.contacts.record(self.target);
                Ok(resp)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RemoteError<MemberId, MemberNode, E> {
        RemoteError::new(self.target, e)
    }
}

/// A peer we could not reach at all is `Unreachable` (openraft backs off); a broken exchange is
/// a `Network` error (openraft retries at once).
fn rpc_error<E: std::error::Error>(e: WireError) -> RPCError<MemberId, MemberNode, E> {
    match e {
        WireError::Connect { .. } | WireError::Incompatible { .. } => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

fn unexpected(resp: &Response) -> NetworkError {
    NetworkError::new(&std::io::Error::other(format!(
        "unexpected answer from peer: {}",
        resp.kind()
    )))
}

impl RaftNetwork<TypeConfig> for PeerLink {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<MemberId>> {
        match self
            .call(&Request::AppendEntries(rpc), option.hard_ttl())
            .await
            .map_err(rpc_error)?
        {
            Response::AppendEntries(Ok(r)) => Ok(r),
            Response::AppendEntries(Err(e)) => Err(RPCError::RemoteError(self.remote(e))),
            other => Err(RPCError::Network(unexpected(&other))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<MemberId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<MemberId>> {
        match self
            .call(&Request::Vote(rpc), option.hard_ttl())
            .await
            .map_err(rpc_error)?
        {
            Response::Vote(Ok(r)) => Ok(r),
            Response::Vote(Err(e)) => Err(RPCError::RemoteError(self.remote(e))),
            other => Err(RPCError::Network(unexpected(&other))),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<MemberId>,
        snapshot: Snapshot<TypeConfig>,
        _cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<MemberId>, StreamingError<TypeConfig, Fatal<MemberId>>> {
        let req = Request::FullSnapshot {
            vote,
            meta: snapshot.meta,
            state: snapshot.snapshot,
        };
        let resp = self
            .call(&req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                WireError::Connect { .. } | WireError::Incompatible { .. } => {
                    StreamingError::Unreachable(Unreachable::new(&e))
                }
                _ => StreamingError::Network(NetworkError::new(&e)),
            })?;
        match resp {
            Response::FullSnapshot(Ok(r)) => Ok(r),
            Response::FullSnapshot(Err(e)) => Err(StreamingError::Network(NetworkError::new(
                &std::io::Error::other(format!("peer refused the snapshot: {e}")),
            ))),
            other => Err(StreamingError::Network(unexpected(&other))),
        }
    }

    fn backoff(&self) -> Backoff {
        // Short, so a member that comes back is heard from (and re-admitted) quickly.
        Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
