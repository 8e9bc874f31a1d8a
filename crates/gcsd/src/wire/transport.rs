//! How members reach each other: the one seam between the group and the network. `Tcp` is
//! production; [`memory`] is an in-process network whose links a test can cut.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// A byte stream to or from another member.
pub trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Stream for T {}

pub type BoxStream = Box<dyn Stream>;
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Opens connections to other members and listens for theirs.
pub trait Transport: Send + Sync {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<BoxStream>>;
    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<Box<dyn Acceptor>>>;
}

/// The listening side: each accepted stream, and who it came from (for logs).
pub trait Acceptor: Send {
    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<(BoxStream, String)>>;
}

/// TCP, with Nagle off: every frame is a whole request or answer, and a heartbeat must not
/// wait for an ACK.
pub struct Tcp;

impl Transport for Tcp {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<BoxStream>> {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true).ok();
            Ok(Box::new(stream) as BoxStream)
        })
    }

    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<Box<dyn Acceptor>>> {
        Box::pin(async move { Ok(Box::new(TcpListener::bind(addr).await?) as Box<dyn Acceptor>) })
    }
}

impl Acceptor for TcpListener {
    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (stream, peer) = TcpListener::accept(self).await?;
            stream.set_nodelay(true).ok();
            Ok((Box::new(stream) as BoxStream, peer.to_string()))
        })
    }
}

#[cfg(test)]
pub mod memory;
