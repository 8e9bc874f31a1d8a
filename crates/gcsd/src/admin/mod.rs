//! Admin HTTP, for operators, `gcsctl` and monitoring: `/live`, `/ready`, `/cluster`,
//! `/metrics`, member changes, pools (`/pools`, `/history`) and an orderly shutdown.
//!
//! `/live`, `/ready` and `/metrics` are open to probes; everything else changes or reveals the
//! group and needs the admin token ([`token`]). Every route answers only to a `Host` that is an
//! IP address or `localhost`, and [`http::serve`] bounds connections and deadlines.

pub mod http;
pub mod token;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{middleware, Json, Router};
use chrono::Utc;
use proto::admin::{AddMemberRequest, PoolRequest};
use tokio_util::sync::CancellationToken;

use crate::group::Group;
use crate::plugin_port::PluginPort;
use crate::pool_api;
use crate::raft::MemberNode;
use crate::state::{Applied, Command, MemberId};
use crate::wire::ProposeError;

#[derive(Clone)]
pub struct Admin {
    pub group: Arc<Group>,
    pub port: Arc<PluginPort>,
    pub shutdown: CancellationToken,
}

pub fn router(admin: Admin, guard: Arc<http::Guard>) -> Router {
    let guarded = Router::new()
        .route("/cluster", get(cluster))
        .route("/pools", get(pools).post(pool_request))
        .route("/history", get(history))
        .route("/members", post(add_member))
        .route("/members/{id}", delete(remove_member))
        .route("/shutdown", post(shutdown))
        .route_layer(middleware::from_fn_with_state(guard, http::authorized));
    Router::new()
        .route("/live", get(|| async { "live\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(guarded)
        .layer(DefaultBodyLimit::max(http::MAX_BODY))
        .layer(middleware::from_fn(http::deadline))
        .layer(middleware::from_fn(http::local_host_only))
        .with_state(admin)
}

async fn ready(State(a): State<Admin>) -> Response {
    match a.group.quorum_problem() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn cluster(State(a): State<Admin>) -> Response {
    Json(a.group.cluster()).into_response()
}

async fn metrics(State(a): State<Admin>) -> Response {
    let body = a
        .group
        .metrics
        .render(a.group.gauges(), a.port.open_connections());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn pools(State(a): State<Admin>) -> Response {
    Json(pool_api::report(&a.group.state(), a.group.quorum_problem())).into_response()
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    pool: Option<String>,
}

async fn history(State(a): State<Admin>, Query(q): Query<HistoryQuery>) -> Response {
    Json(pool_api::history(&a.group.state(), q.pool.as_deref())).into_response()
}

/// An operator's pool command: checked for form here, committed through the leader, where
/// `apply` decides whether it is allowed.
async fn pool_request(State(a): State<Admin>, Json(req): Json<PoolRequest>) -> Response {
    let cmd = match pool_api::command(req, Utc::now()) {
        Ok(cmd) => cmd,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    outcome(match a.group.propose(Command::Pool(Box::new(cmd))).await {
        Ok(Applied::Done) => Ok("done".into()),
        Ok(Applied::Rejected(why)) => Err(ProposeError::Rejected(why)),
        Err(e) => Err(e),
    })
}

async fn add_member(State(a): State<Admin>, Json(req): Json<AddMemberRequest>) -> Response {
    if req.group_addr.parse::<std::net::SocketAddr>().is_err() {
        return error(
            StatusCode::BAD_REQUEST,
            format!("group_addr {:?} is not an IP:port address", req.group_addr),
        );
    }
    if let Some(problem) = req.name.as_deref().and_then(proto::member_name_problem) {
        return error(StatusCode::BAD_REQUEST, problem);
    }
    let node = MemberNode {
        name: req
            .name
            .unwrap_or_else(|| proto::default_member_name(req.id)),
        group_addr: req.group_addr,
        admin_addr: req.admin_addr.unwrap_or_default(),
        incarnation: None,
    };
    outcome(a.group.add_member(req.id, node).await)
}

async fn remove_member(State(a): State<Admin>, Path(id): Path<MemberId>) -> Response {
    outcome(a.group.remove_member(id).await)
}

async fn shutdown(State(a): State<Admin>) -> Response {
    tracing::info!("shutdown requested over admin HTTP");
    a.shutdown.cancel();
    (StatusCode::ACCEPTED, "shutting down\n").into_response()
}

fn outcome(r: Result<String, ProposeError>) -> Response {
    match r {
        Ok(message) => Json(serde_json::json!({ "message": message })).into_response(),
        Err(e @ ProposeError::Rejected(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
