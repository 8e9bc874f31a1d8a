//! The member-to-member wire: length-prefixed JSON frames, versioned, over a [`Transport`].
//!
//! A connection opens with a `Hello` each way (magic, wire version, sender id, group id); after
//! that the client sends one `Request` frame at a time and reads one `Response`. The hello is
//! where TLS and authentication will negotiate later.
//!
//! Everything that crosses the wire is defined here, next to `WIRE_VERSION`: a change to any of
//! these types is a change of the wire.

pub mod authz;
pub mod server;
pub mod tls;
pub mod transport;

use std::time::Duration;

use openraft::error::RaftError;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{SnapshotMeta, Vote};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufStream};

use crate::raft::{MemberNode, TypeConfig};
use crate::state::{Applied, Command, GroupState, MemberId};
use transport::{BoxStream, Transport};

pub const MAGIC: &str = "mysql-gcs group";
pub const WIRE_VERSION: u32 = 1;
/// Large enough for a snapshot of thousands of servers, small enough to refuse garbage early.
pub const MAX_FRAME: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub magic: String,
    pub version: u32,
    pub from: MemberId,
    /// The sender's group id; none for a member that has not joined one yet.
    pub group: Option<String>,
    /// The sender's data directory's incarnation (see `identity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
    /// In an answer: the sender refuses this peer as a wiped member, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wiped: Option<String>,
}

/// How a member introduces itself and judges a peer's introduction.
pub trait Handshake: Send + Sync {
    fn hello(&self) -> Hello;
    /// `Err` says why the peer is refused, for the operator.
    fn accept(&self, hello: &Hello)
        -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// A change of the group's membership, executed by the leader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add this member to the group (as a learner; the leader promotes voters).
    AddMember { id: MemberId, node: MemberNode },
    /// Remove this member from the group for good.
    RemoveMember { id: MemberId },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<MemberId>),
    FullSnapshot {
        vote: Vote<MemberId>,
        meta: SnapshotMeta<MemberId, MemberNode>,
        state: Box<GroupState>,
    },
    /// Commit this command; sent to the leader by a member that is not.
    Propose(Command),
    /// A [`MembershipChange::AddMember`], sent to the leader.
    AddMember {
        id: MemberId,
        node: MemberNode,
    },
    /// A [`MembershipChange::RemoveMember`], sent to the leader.
    RemoveMember {
        id: MemberId,
    },
}

impl From<MembershipChange> for Request {
    fn from(change: MembershipChange) -> Self {
        match change {
            MembershipChange::AddMember { id, node } => Request::AddMember { id, node },
            MembershipChange::RemoveMember { id } => Request::RemoveMember { id },
        }
    }
}

/// Why a change was not committed.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum ProposeError {
    #[error("{}", proto::no_quorum_text(.0))]
    NoQuorum(String),
    #[error("{0}")]
    Rejected(String),
    #[error("this member is not the leader")]
    NotLeader { leader: Option<MemberNode> },
    #[error("{0}")]
    Failed(String),
    /// Refused before it was proposed: the group or this member lists the most servers it may.
    /// Never sent between members.
    #[error("too many servers: {0}")]
    Full(String),
}

/// A command the leader committed, and where in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Committed {
    pub applied: Applied,
    pub index: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<MemberId>, RaftError<MemberId>>),
    Vote(Result<VoteResponse<MemberId>, RaftError<MemberId>>),
    FullSnapshot(Result<SnapshotResponse<MemberId>, String>),
    Propose(Result<Committed, ProposeError>),
    Admin(Result<String, ProposeError>),
    /// The request could not be decoded or served.
    Refused(String),
}

impl Response {
    /// What kind of answer this is, for a message about an unexpected one (the whole answer
    /// may be a log batch or a snapshot).
    pub fn kind(&self) -> &'static str {
        match self {
            Response::AppendEntries(_) => "AppendEntries",
            Response::Vote(_) => "Vote",
            Response::FullSnapshot(_) => "FullSnapshot",
            Response::Propose(_) => "Propose",
            Response::Admin(_) => "Admin",
            Response::Refused(_) => "Refused",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr} speaks an incompatible wire: {detail}")]
    Incompatible { addr: String, detail: String },
}

pub async fn write_frame<T: Serialize>(
    w: &mut (impl AsyncWriteExt + Unpin),
    msg: &T,
) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l as usize <= MAX_FRAME)
        .ok_or_else(|| {
            std::io::Error::other(format!("frame of {} bytes is too large", body.len()))
        })?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await
}

/// The largest hello: a few fields; a peer announcing more is not a member.
pub const MAX_HELLO: usize = 4096;

pub async fn read_frame<T: DeserializeOwned>(
    r: &mut (impl AsyncReadExt + Unpin),
) -> std::io::Result<T> {
    read_frame_of_at_most(r, MAX_FRAME).await
}

/// One frame of at most `max` bytes. The body is kept as it arrives, never allocated at the
/// announced size: a peer that announces a large frame and trickles it holds only what it sent.
pub async fn read_frame_of_at_most<T: DeserializeOwned>(
    r: &mut (impl AsyncReadExt + Unpin),
    max: usize,
) -> std::io::Result<T> {
    let len = read_frame_len(r, max).await?;
    serde_json::from_slice(&read_frame_body(r, len).await?).map_err(std::io::Error::other)
}

/// One frame of at most `max` bytes whose body, once its length has arrived, arrives within
/// `deadline`: waiting for a frame is free, trickling one is not.
pub async fn read_frame_within<T: DeserializeOwned>(
    r: &mut (impl AsyncReadExt + Unpin),
    max: usize,
    deadline: Duration,
) -> std::io::Result<T> {
    let len = read_frame_len(r, max).await?;
    let body = tokio::time::timeout(deadline, read_frame_body(r, len))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("a frame of {len} bytes did not arrive within {deadline:?}"),
            )
        })??;
    serde_json::from_slice(&body).map_err(std::io::Error::other)
}

async fn read_frame_len(r: &mut (impl AsyncReadExt + Unpin), max: usize) -> std::io::Result<usize> {
    let len = r.read_u32().await? as usize;
    if len > max {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes exceeds the limit of {max}"
        )));
    }
    Ok(len)
}

async fn read_frame_body(
    r: &mut (impl AsyncReadExt + Unpin),
    len: usize,
) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    let read = r.take(len as u64).read_to_end(&mut body).await?;
    if read < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(body)
}

/// A client connection to one member, one request in flight at a time.
pub struct Connection {
    addr: String,
    stream: BufStream<BoxStream>,
}

impl Connection {
    pub async fn open(
        transport: &dyn Transport,
        addr: &str,
        me: &impl Handshake,
        timeout: Duration,
    ) -> Result<Self, WireError> {
        let stream = tokio::time::timeout(timeout, transport.connect(addr))
            .await
            .map_err(|_| WireError::Timeout {
                addr: addr.to_owned(),
                timeout,
            })?
            .map_err(|source| WireError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let mut conn = Self {
            addr: addr.to_owned(),
            stream: BufStream::new(stream.stream),
        };
        let answer: Hello = conn.exchange(&me.hello(), timeout).await?;
        if let Some(certified) = stream.member.filter(|&m| m != answer.from) {
            return Err(WireError::Incompatible {
                addr: addr.to_owned(),
                detail: format!(
                    "it presents the certificate of member {certified} but says it is member {}",
                    answer.from
                ),
            });
        }
        me.accept(&answer)
            .await
            .map_err(|detail| WireError::Incompatible {
                addr: addr.to_owned(),
                detail,
            })?;
        Ok(conn)
    }

    pub async fn call(&mut self, req: &Request, timeout: Duration) -> Result<Response, WireError> {
        self.exchange(req, timeout).await
    }

    async fn exchange<Q: Serialize, A: DeserializeOwned>(
        &mut self,
        msg: &Q,
        timeout: Duration,
    ) -> Result<A, WireError> {
        let io = async {
            write_frame(&mut self.stream, msg).await?;
            read_frame(&mut self.stream).await
        };
        tokio::time::timeout(timeout, io)
            .await
            .map_err(|_| WireError::Timeout {
                addr: self.addr.clone(),
                timeout,
            })?
            .map_err(|source| WireError::Io {
                addr: self.addr.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hello over MAX_HELLO is refused from its length alone; a frame that announces more
    /// than the peer sends ends in an error, and what is kept is what arrived.
    #[tokio::test]
    async fn frames_are_bounded_by_what_they_may_be_and_what_arrived() {
        let (mut peer, mut me) = tokio::io::duplex(1 << 16);
        peer.write_u32(MAX_HELLO as u32 + 1).await.unwrap();
        let err = read_frame_of_at_most::<Hello>(&mut me, MAX_HELLO)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "frame of 4097 bytes exceeds the limit of 4096"
        );

        let (mut peer, mut me) = tokio::io::duplex(1 << 16);
        peer.write_u32(MAX_FRAME as u32).await.unwrap();
        peer.write_all(b"{\"magic\"").await.unwrap();
        drop(peer);
        let err = read_frame::<Hello>(&mut me).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);

        let (mut peer, mut me) = tokio::io::duplex(1 << 16);
        let hello = Hello {
            magic: "gcsd".into(),
            version: 1,
            from: 2,
            group: None,
            incarnation: None,
            wiped: None,
        };
        write_frame(&mut peer, &hello).await.unwrap();
        let got: Hello = read_frame_of_at_most(&mut me, MAX_HELLO).await.unwrap();
        assert_eq!((got.magic, got.from), ("gcsd".to_owned(), 2));
    }

    /// The membership requests keep the bytes of wire version 1.
    #[test]
    fn membership_requests_keep_their_wire_shape() {
        let node = MemberNode {
            name: "gcsd2".into(),
            group_addr: "10.0.0.2:2300".into(),
            admin_addr: "127.0.0.1:2280".into(),
            incarnation: None,
        };
        let add = Request::from(MembershipChange::AddMember { id: 2, node });
        let text = serde_json::to_string(&add).unwrap();
        assert_eq!(
            text,
            r#"{"AddMember":{"id":2,"node":{"name":"gcsd2","group_addr":"10.0.0.2:2300","admin_addr":"127.0.0.1:2280"}}}"#
        );
        let back: Request = serde_json::from_str(&text).unwrap();
        assert!(matches!(back, Request::AddMember { id: 2, .. }));
        let remove = Request::from(MembershipChange::RemoveMember { id: 3 });
        let text = serde_json::to_string(&remove).unwrap();
        assert_eq!(text, r#"{"RemoveMember":{"id":3}}"#);
        let back: Request = serde_json::from_str(&text).unwrap();
        assert!(matches!(back, Request::RemoveMember { id: 3 }));
    }
}
