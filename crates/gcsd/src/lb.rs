//! Health checks for load balancers (`lb_listen`), in the spirit of Patroni's REST API: each
//! member answers for its own servers, from the committed pools ([`pool::verdict`]) and what its
//! own probes last saw. Read-only routes only; never the admin API.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use pool::verdict::{self, Ask, Refusal};

use crate::group::Group;
use crate::pool_api;
use crate::probe::Probes;

#[derive(Clone)]
pub struct Lb {
    pub group: Arc<Group>,
    pub probes: Arc<Probes>,
}

#[derive(serde::Deserialize)]
struct CheckQuery {
    pool: Option<String>,
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
    answer(&lb, q.pool.as_deref(), &Ask::Primary)
}

async fn replica(State(lb): State<Lb>, Query(q): Query<CheckQuery>) -> Response {
    answer(&lb, q.pool.as_deref(), &Ask::Replica { max_lag: q.lag })
}

async fn health(State(lb): State<Lb>, Query(q): Query<CheckQuery>) -> Response {
    answer(&lb, q.pool.as_deref(), &Ask::Health)
}

fn answer(lb: &Lb, pool: Option<&str>, ask: &Ask) -> Response {
    let state = lb.group.state();
    let no_quorum = lb.group.quorum_problem().or_else(|| {
        let lease = lb.group.config().fence_after();
        (lb.group.lease_age() >= lease)
            .then(|| format!("no quorum heard for {} ms (the lease)", lease.as_millis()))
    });
    let locals = lb.probes.locals(&state);
    match verdict::check(&state.pools, pool, &locals, no_quorum.as_deref(), ask) {
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
