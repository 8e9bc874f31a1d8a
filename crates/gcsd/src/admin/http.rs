//! Serving HTTP (the admin API and the load-balancer checks) with bounds a flood cannot push
//! past: a connection cap, a header-read deadline that also closes idle keep-alive
//! connections, a request deadline and a small body limit; and the admin API's guards (the
//! `Host` check and the token).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::token::AdminToken;
use crate::warn_limit::WarnLimiter;

/// Open connections per listener; more are accepted and closed at once (and logged).
pub const MAX_CONNECTIONS: usize = 4096;
/// A connection must send a whole request head within this, also between keep-alive requests;
/// so idle and slow (slowloris) connections are closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request is answered within this (propose deadlines are far shorter), or gets a 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Request bodies (the admin API's JSON) are small.
pub const MAX_BODY: usize = 64 * 1024;
/// Open connections get this long to finish after a shutdown.
const DRAIN: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    what: &'static str,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let tasks = TaskTracker::new();
    let full = WarnLimiter::default();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, typically: wait rather than spin.
                    tracing::warn!("{what}: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            full.warn(|n| {
                tracing::warn!("{what}: {MAX_CONNECTIONS} connections open; closed {n} more")
            });
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let conn = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                // Errors are the client's (a timeout, a reset, garbage): nothing to report.
                _ = conn.as_mut() => {}
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, conn).await;
                }
            }
        });
    }
    tasks.close();
    let _ = tokio::time::timeout(DRAIN, tasks.wait()).await;
}

/// Answers 503 to a request not answered within [`REQUEST_TIMEOUT`].
pub async fn deadline(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no answer within {} s\n", REQUEST_TIMEOUT.as_secs()),
        )
            .into_response(),
    }
}

/// Answers 421 unless `Host` names an IP address or `localhost`: a web page the operator
/// visits cannot reach the admin API through a DNS name it controls (DNS rebinding).
pub async fn local_host_only(req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).map(|h| h.as_bytes());
    match host.map(host_problem) {
        Some(Some(why)) => (StatusCode::MISDIRECTED_REQUEST, format!("{why}\n")).into_response(),
        _ => next.run(req).await,
    }
}

/// Why a `Host` header value is not an IP literal or `localhost` (with an optional port).
fn host_problem(host: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(host).unwrap_or("");
    let name = match text.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map(|(v6, _)| v6),
        None => Some(text.rsplit_once(':').map_or(text, |(name, _)| name)),
    };
    let ok = name.is_some_and(|n| {
        n.eq_ignore_ascii_case("localhost") || n.parse::<std::net::IpAddr>().is_ok()
    });
    (!ok).then(|| {
        format!(
            "Host {:?} is not an IP address or localhost; gcsd's admin API answers only those",
            String::from_utf8_lossy(host)
        )
    })
}

/// The admin token check, with its rate-limited warning.
pub struct Guard {
    pub token: AdminToken,
    refused: WarnLimiter,
}

impl Guard {
    pub fn new(token: AdminToken) -> Self {
        Guard {
            token,
            refused: WarnLimiter::default(),
        }
    }
}

/// Answers 401 unless the request carries the admin token.
pub async fn authorized(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let offered = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if guard.token.admits(offered) {
        return next.run(req).await;
    }
    let what = format!("{} {}", req.method(), req.uri().path());
    let given = if offered.is_some() { "a wrong" } else { "no" };
    guard.refused.warn(|n| {
        tracing::warn!(request = %what, "admin request with {given} token refused ({n} refused since the last such line)")
    });
    let message = format!(
        "{what} needs the admin token (Authorization: Bearer <token>); gcsctl reads it with --token-file {}",
        guard.token.path.display()
    );
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ip_literals_and_localhost_are_accepted_hosts() {
        for ok in [
            "127.0.0.1:2280",
            "127.0.0.1",
            "localhost:2280",
            "LOCALHOST",
            "[::1]:2280",
            "[::1]",
            "10.0.0.11:2280",
        ] {
            assert_eq!(host_problem(ok.as_bytes()), None, "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:2280",
            "127.0.0.1.evil.example",
            "[::1",
            "",
            "\u{ff}",
        ] {
            assert!(host_problem(bad.as_bytes()).is_some(), "{bad}");
        }
    }
}
