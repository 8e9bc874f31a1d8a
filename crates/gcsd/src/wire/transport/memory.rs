//! An in-process network for tests: members are addresses in one `Network`, connections are
//! in-memory pipes, and a test can cut links (both ways or one way), isolate a member and heal.
//!
//! A link is the ability of one member to reach another: `cut_one_way(a, b)` means `a` can no
//! longer reach `b`, as behind a firewall that drops `a`'s new connections to `b`. Connections
//! `a` opens to `b` hang (until the caller's timeout, as a dropped SYN does), and those it has
//! open break: reads and writes fail, and bytes in flight are lost. Connections `b` opens to
//! `a` keep working. Every exchange on the wire is a round trip on the opener's connection, so
//! a cut of single packets in one direction would break both directions, as it does for TCP.

use std::collections::{HashMap, HashSet};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;

use super::{Acceptor, BoxFuture, BoxStream, Connected, Pending, Transport};

/// Room in each direction of a pipe; a whole snapshot frame need not fit, it is streamed.
const PIPE_BYTES: usize = 256 << 10;

#[derive(Clone, Default)]
pub struct Network(Arc<Mutex<Links>>);

#[derive(Default)]
struct Links {
    listeners: HashMap<String, mpsc::UnboundedSender<(BoxStream, String)>>,
    /// (from, to): `from` cannot reach `to`.
    cut: HashSet<(String, String)>,
    isolated: HashSet<String>,
}

impl Links {
    fn delivers(&self, from: &str, to: &str) -> bool {
        !self.isolated.contains(from)
            && !self.isolated.contains(to)
            && !self.cut.contains(&(from.to_owned(), to.to_owned()))
    }
}

impl Network {
    /// The transport of the member at `addr`.
    pub fn endpoint(&self, addr: &str) -> Endpoint {
        Endpoint {
            net: self.clone(),
            me: addr.to_owned(),
        }
    }

    /// `from` can no longer reach `to`; `to` still reaches `from`.
    pub fn cut_one_way(&self, from: &str, to: &str) {
        self.0.lock().cut.insert((from.to_owned(), to.to_owned()));
    }

    /// `a` and `b` no longer reach each other.
    pub fn cut(&self, a: &str, b: &str) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// `a` reaches no one and no one reaches `a`.
    pub fn isolate(&self, a: &str) {
        self.0.lock().isolated.insert(a.to_owned());
    }

    /// Every link works again.
    pub fn heal(&self) {
        let mut links = self.0.lock();
        links.cut.clear();
        links.isolated.clear();
    }

    fn delivers(&self, from: &str, to: &str) -> bool {
        self.0.lock().delivers(from, to)
    }
}

/// One member's view of the network.
pub struct Endpoint {
    net: Network,
    me: String,
}

impl Transport for Endpoint {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Connected>> {
        Box::pin(async move {
            let (open, listener) = {
                let links = self.net.0.lock();
                let open = links.delivers(&self.me, addr);
                (open, links.listeners.get(addr).cloned())
            };
            if !open {
                return std::future::pending().await;
            }
            let Some(listener) = listener else {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("nothing listens on {addr}"),
                ));
            };
            let (mine, theirs) = tokio::io::duplex(PIPE_BYTES);
            let end = |inner| Pipe {
                inner,
                net: self.net.clone(),
                opener: self.me.clone(),
                acceptor: addr.to_owned(),
            };
            listener
                .send((Box::new(end(theirs)), self.me.clone()))
                .map_err(|_| io::Error::new(io::ErrorKind::ConnectionRefused, "listener closed"))?;
            Ok(Connected::plain(end(mine)))
        })
    }

    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Acceptor>>> {
        Box::pin(async move {
            let mut links = self.net.0.lock();
            if links.listeners.get(addr).is_some_and(|l| !l.is_closed()) {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{addr} is in use"),
                ));
            }
            let (tx, rx) = mpsc::unbounded_channel();
            links.listeners.insert(addr.to_owned(), tx);
            Ok(Box::new(Listener(rx)) as Box<dyn Acceptor>)
        })
    }
}

struct Listener(mpsc::UnboundedReceiver<(BoxStream, String)>);

impl Acceptor for Listener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Pending, String)>> {
        Box::pin(async move {
            let (stream, peer) = self
                .0
                .recv()
                .await
                .ok_or_else(|| io::Error::other("network dropped"))?;
            let ready: Pending = Box::pin(std::future::ready(Ok(Connected {
                stream,
                member: None,
            })));
            Ok((ready, peer))
        })
    }
}

/// One end of a connection; judges its link at every read and write.
struct Pipe {
    inner: DuplexStream,
    net: Network,
    opener: String,
    acceptor: String,
}

impl Pipe {
    fn broken(&self) -> Option<io::Error> {
        (!self.net.delivers(&self.opener, &self.acceptor)).then(|| {
            io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("{} can no longer reach {}", self.opener, self.acceptor),
            )
        })
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let got_bytes = matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before;
        match self.broken() {
            Some(e) if got_bytes => Poll::Ready(Err(e)),
            _ => polled,
        }
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.broken() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn pair(net: &Network, a: &str, b: &str) -> (BoxStream, BoxStream) {
        let mut listener = net.endpoint(b).bind(b).await.unwrap();
        let client = net.endpoint(a).connect(b).await.unwrap();
        let (server, from) = listener.accept().await.unwrap();
        assert_eq!(from, a);
        (client.stream, server.await.unwrap().stream)
    }

    #[tokio::test]
    async fn a_one_way_cut_breaks_the_cut_side_only() {
        let net = Network::default();
        let (mut a, mut b) = pair(&net, "a", "b").await;
        // b can no longer reach a: a's own connection to b still works both ways.
        net.cut_one_way("b", "a");
        a.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        b.read_exact(&mut got).await.unwrap();
        b.write_all(b"pong").await.unwrap();
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
        // a can no longer reach b: its connection breaks at both ends.
        net.cut_one_way("a", "b");
        let err = a.write_all(b"ping").await.unwrap_err();
        assert_eq!(err.to_string(), "a can no longer reach b");
        assert!(b.write_all(b"pong").await.is_err());
        net.heal();
        b.write_all(b"pong").await.unwrap();
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
    }

    #[tokio::test]
    async fn bytes_in_flight_are_lost_when_the_link_is_cut() {
        let net = Network::default();
        let (mut a, mut b) = pair(&net, "a", "b").await;
        a.write_all(b"ping").await.unwrap();
        net.isolate("b");
        let mut got = [0u8; 4];
        assert!(b.read_exact(&mut got).await.is_err());
    }

    #[tokio::test]
    async fn no_connection_across_a_cut_and_none_to_nobody() {
        let net = Network::default();
        let _listener = net.endpoint("b").bind("b").await.unwrap();
        net.cut_one_way("a", "b");
        let a = net.endpoint("a");
        let attempt = tokio::time::timeout(std::time::Duration::from_millis(50), a.connect("b"));
        assert!(attempt.await.is_err(), "connect must hang across a cut");
        net.heal();
        assert!(net.endpoint("a").connect("b").await.is_ok());
        let err = net.endpoint("a").connect("c").await.err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert!(net.endpoint("b").bind("b").await.is_err(), "b is bound");
    }
}
