//! Health checks for load balancers (`lb_listen`), in the spirit of Patroni's REST API: each
//! member answers for its own servers, from the committed pools ([`pool::verdict`]) and what its
//! own probes last saw. Read-only routes only; never the admin API.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use pool::verdict::{self, Ask, Refusal, Request, Standing};

use crate::group::Group;
use crate::pool_api;
use crate::probe::Probes;

#[derive(Clone)]
pub struct Lb {
    pub group: Arc<Group>,
    pub probes: Arc<Probes>,
}

impl Lb {
    /// The answer to one check, from the committed pools and this member's last probes.
    pub fn check(&self, req: &Request) -> Result<String, Refusal> {
        let state = self.group.state();
        let locals = self.probes.locals(&state);
        let no_quorum = self.group.vouch_problem();
        let standing = Standing {
            no_quorum: no_quorum.as_deref(),
            now: chrono::Utc::now(),
            hold: self.group.config().primary_hold(),
        };
        verdict::check(&state.pools, req, &locals, &standing)
    }
}

#[derive(serde::Deserialize)]
struct CheckQuery {
    pool: Option<String>,
    server: Option<String>,
    lag: Option<u64>,
}

pub fn router(lb: Lb) -> Router {
    Router::new()
        .route("/primary", get(primary))
        .route("/replica", get(replica))
        .route("/health", get(health))
        .route("/pools/{name}", get(one_pool))
        .route("/servers/{server}", get(one_server))
        .with_state(lb)
}

async fn primary(State(lb): State<Lb>, Query(q): Query<CheckQuery>) -> Response {
    answer(&lb, q, Ask::Primary)
}

async fn replica(State(lb): State<Lb>, Query(q): Query<CheckQuery>) -> Response {
    let max_lag = q.lag;
    answer(&lb, q, Ask::Replica { max_lag })
}

async fn health(State(lb): State<Lb>, Query(q): Query<CheckQuery>) -> Response {
    answer(&lb, q, Ask::Health)
}

fn answer(lb: &Lb, q: CheckQuery, ask: Ask) -> Response {
    let server = match q.server.as_deref().map(pool::parse_addr).transpose() {
        Ok(server) => server,
        Err(why) => return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    };
    let req = Request {
        ask,
        pool: q.pool,
        server,
    };
    match lb.check(&req) {
        Ok(why) => (StatusCode::OK, format!("{why}\n")).into_response(),
        Err(Refusal::UnknownPool(why)) => {
            (StatusCode::NOT_FOUND, format!("{why}\n")).into_response()
        }
        Err(Refusal::No(why)) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
        }
    }
}

async fn one_pool(State(lb): State<Lb>, Path(name): Path<String>) -> Response {
    let report = pool_api::report(&lb.group.state(), lb.group.quorum_problem());
    match report.pools.into_iter().find(|p| p.name == name) {
        Some(p) => Json(p).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no pool named {name:?}\n")).into_response(),
    }
}

async fn one_server(State(lb): State<Lb>, Path(server): Path<String>) -> Response {
    if let Err(why) = pool::parse_addr(&server) {
        return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
    }
    let mut report = pool_api::report(&lb.group.state(), lb.group.quorum_problem());
    report
        .pools
        .retain(|p| p.servers.iter().any(|s| s.server == server));
    if report.pools.is_empty() {
        return (StatusCode::NOT_FOUND, format!("{server} is in no pool\n")).into_response();
    }
    for p in &mut report.pools {
        p.servers.retain(|s| s.server == server);
    }
    Json(report).into_response()
}
