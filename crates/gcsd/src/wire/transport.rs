//! How members reach each other: the one seam between the group and the network. `Tcp` is
//! plaintext (loopback, or an operator's explicit opt-out), the `tls` module's mutual TLS; the
//! `memory` module is an in-process network whose links a test can cut.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::state::MemberId;

/// A byte stream to or from another member.
pub trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Stream for T {}

pub type BoxStream = Box<dyn Stream>;
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connection to or from another member, and the member its certificate names (none
/// without TLS: then only the peer's hello says who it is).
pub struct Connected {
    pub stream: BoxStream,
    pub member: Option<MemberId>,
}

impl Connected {
    pub fn plain(stream: impl Stream + 'static) -> Self {
        Connected {
            stream: Box::new(stream),
            member: None,
        }
    }
}

/// An accepted connection whose handshake (TLS) is still to be done: awaited by the task that
/// serves the connection, never by the accept loop, so a slow peer holds up no one else.
pub type Pending = BoxFuture<'static, std::io::Result<Connected>>;

/// Opens connections to other members and listens for theirs.
pub trait Transport: Send + Sync {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<Connected>>;
    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<Box<dyn Acceptor>>>;
}

/// The listening side: each accepted connection, and who it came from (for logs).
pub trait Acceptor: Send {
    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<(Pending, String)>>;
}

/// TCP, with Nagle off: every frame is a whole request or answer, and a heartbeat must not
/// wait for an ACK.
pub struct Tcp;

impl Transport for Tcp {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<Connected>> {
        Box::pin(async move { Ok(Connected::plain(connect_tcp(addr).await?)) })
    }

    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<Box<dyn Acceptor>>> {
        Box::pin(async move { Ok(Box::new(TcpListener::bind(addr).await?) as Box<dyn Acceptor>) })
    }
}

impl Acceptor for TcpListener {
    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<(Pending, String)>> {
        Box::pin(async move {
            let (stream, peer) = accept_tcp(self).await?;
            let ready: Pending = Box::pin(std::future::ready(Ok(Connected::plain(stream))));
            Ok((ready, peer))
        })
    }
}

pub async fn connect_tcp(addr: &str) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true).ok();
    Ok(stream)
}

pub async fn accept_tcp(listener: &TcpListener) -> std::io::Result<(TcpStream, String)> {
    let (stream, peer) = listener.accept().await?;
    stream.set_nodelay(true).ok();
    Ok((stream, peer.to_string()))
}

#[cfg(test)]
pub mod memory;
