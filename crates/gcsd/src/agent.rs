//! HAProxy's agent-check (`agent_check_listen`): HAProxy connects, sends its `agent-send` line
//! (which says the backend's role: `primary pool=main`, `replica pool=main lag=10`, ...), reads
//! one reply line and closes. The reply is [`pool::verdict::agent_reply`] of the same check the
//! HTTP routes answer, so both always agree.

use std::sync::Arc;
use std::time::Duration;

use pool::verdict::{agent_reply, Request, MAX_AGENT_LINE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::lb::Lb;

/// How long HAProxy has to send its line once connected (it sends it at once).
const READ_DEADLINE: Duration = Duration::from_millis(500);
/// Checks answered at once; more wait for a turn (HAProxy times them out by itself).
const MAX_OPEN: usize = 256;

pub async fn serve(listener: TcpListener, lb: Lb, shutdown: CancellationToken) {
    let open = Arc::new(Semaphore::new(MAX_OPEN));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => return,
            p = open.clone().acquire_owned() => p.expect("never closed"),
        };
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("agent-check: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let lb = lb.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &lb).await {
                tracing::debug!("agent-check: {e}");
            }
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, lb: &Lb) -> std::io::Result<()> {
    let reply = match read_line(&mut stream).await {
        Ok(line) => match Request::parse_agent(&line) {
            Ok(req) => agent_reply(&lb.check(&req)),
            Err(why) => {
                tracing::warn!("agent-check: bad agent-send line: {why}");
                format!("down # {why}\n")
            }
        },
        Err(why) => {
            tracing::warn!("agent-check: {why}");
            format!("down # {why}\n")
        }
    };
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

/// The agent-send line: up to its newline, the end of the stream, or the deadline.
async fn read_line(stream: &mut TcpStream) -> Result<String, String> {
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    let read = tokio::time::timeout(READ_DEADLINE, async {
        while !buf.contains(&b'\n') && buf.len() <= MAX_AGENT_LINE {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let line = match buf.iter().position(|&b| b == b'\n') {
        Some(end) => &buf[..end],
        None if buf.len() > MAX_AGENT_LINE => {
            return Err(format!(
                "agent-send line longer than {MAX_AGENT_LINE} bytes"
            ))
        }
        None if buf.is_empty() && read.is_err() => {
            return Err(format!(
                "no agent-send line within {} ms: set agent-send \"primary pool=NAME\\n\" (see the README)",
                READ_DEADLINE.as_millis()
            ))
        }
        None => &buf[..],
    };
    String::from_utf8(line.to_vec()).map_err(|_| "agent-send line is not UTF-8".to_owned())
}
