//! The member-to-member wire: TCP, length-prefixed JSON frames, versioned.
//!
//! A connection opens with a `Hello` each way (magic, wire version, sender id); after that the
//! client sends one `Request` frame at a time and reads one `Response`. The hello is where TLS
//! and authentication will negotiate later.

use std::time::Duration;

use openraft::error::RaftError;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{SnapshotMeta, Vote};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::raft::store::Identity;
use crate::raft::{MemberNode, TypeConfig};
use crate::state::{Command, GroupState, MemberId};

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
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<MemberId>),
    FullSnapshot {
        vote: Vote<MemberId>,
        meta: SnapshotMeta<MemberId, MemberNode>,
        state: GroupState,
    },
    /// Commit this command; sent to the leader by a member that is not.
    Propose(Command),
    /// Add this member to the group (as a learner); sent to the leader.
    AddMember {
        id: MemberId,
        node: MemberNode,
    },
    /// Remove this member from the group for good; sent to the leader.
    RemoveMember {
        id: MemberId,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<MemberId>, RaftError<MemberId>>),
    Vote(Result<VoteResponse<MemberId>, RaftError<MemberId>>),
    FullSnapshot(Result<SnapshotResponse<MemberId>, String>),
    Propose(Result<crate::group::Committed, crate::group::ProposeError>),
    Admin(Result<String, crate::group::ProposeError>),
    /// The request could not be decoded or served.
    Refused(String),
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

pub async fn read_frame<T: DeserializeOwned>(
    r: &mut (impl AsyncReadExt + Unpin),
) -> std::io::Result<T> {
    let len = r.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes exceeds the limit of {MAX_FRAME}"
        )));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(std::io::Error::other)
}

/// A client connection to one member, one request in flight at a time.
pub struct Connection {
    addr: String,
    reader: BufReader<OwnedReadHalf>,
    writer: BufWriter<OwnedWriteHalf>,
}

impl Connection {
    pub async fn open(addr: &str, me: &Identity, timeout: Duration) -> Result<Self, WireError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| WireError::Timeout {
                addr: addr.to_owned(),
                timeout,
            })?
            .map_err(|source| WireError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        stream.set_nodelay(true).ok();
        let (r, w) = stream.into_split();
        let mut conn = Self {
            addr: addr.to_owned(),
            reader: BufReader::new(r),
            writer: BufWriter::new(w),
        };
        let answer: Hello = conn.exchange(&me.hello(), timeout).await?;
        me.accept(&answer)
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
            write_frame(&mut self.writer, msg).await?;
            read_frame(&mut self.reader).await
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
