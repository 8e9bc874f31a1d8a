//! The wiring of one gcsd, and nothing else: bind the listeners, open the group, serve it,
//! bootstrap it, spawn the plugin port and admin HTTP, wait for a signal or an admin shutdown,
//! then leave and drain.
//!
//! Raft, the group listener and the group's duties run on their own runtime (`raft`), apart
//! from the plugin port, admin HTTP, probes and load-balancer checks: a flood of local clients
//! keeps this runtime's threads busy, not Raft's, which the kernel schedules beside them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::admin::token::AdminToken;
use crate::config::Config;
use crate::wire::tls::Tls;
use crate::wire::transport::{Tcp, Transport};
use crate::{admin, agent, group, haproxy, lb, local_servers, metrics, plugin_port, probe, wire};

pub async fn run(cfg: Config, token: AdminToken, raft: Handle) -> anyhow::Result<()> {
    // First: a SIGTERM while the group opens (a supervisor stopping a slow start) is then a
    // clean stop once it is open, not death by the signal's default action.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let cfg = Arc::new(cfg);
    // Every plugin connection is a descriptor: take the hard limit, not the default soft one.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) if (n as usize) < cfg.max_plugin_connections + 64 => tracing::warn!(
            limit = n,
            max_plugin_connections = cfg.max_plugin_connections,
            "the open-files limit is below max_plugin_connections; raise it (ulimit -n)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the open-files limit: {e}"),
    }
    // Bind every port first, so a port conflict fails before the group is opened or joined.
    let plugin_listener = plugin_port::bind(&cfg.plugin_listen)
        .with_context(|| format!("cannot listen on plugin_listen {}", cfg.plugin_listen))?;
    let plugin_socket = match &cfg.plugin_socket {
        Some(path) => Some((
            plugin_port::bind_unix(path)
                .with_context(|| format!("cannot listen on plugin_socket {}", path.display()))?,
            plugin_port::SocketFile(path.clone()),
        )),
        None => None,
    };
    if !cfg.plugin_on_loopback() && cfg.plugin_tcp_writes {
        tracing::warn!(
            plugin = %cfg.plugin_listen,
            "insecure_plugin_listen: whoever reaches the plugin port can register, change and \
             remove servers (use plugin_socket and plugin_tcp_writes = false)"
        );
    }
    let admin_listener = TcpListener::bind(&cfg.admin_listen)
        .await
        .with_context(|| format!("cannot listen on admin_listen {}", cfg.admin_listen))?;
    let lb_listener = match &cfg.lb_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on lb_listen {addr}"))?,
        ),
        None => None,
    };
    let agent_listener = match &cfg.agent_check_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on agent_check_listen {addr}"))?,
        ),
        None => None,
    };
    let transport: Arc<dyn Transport> = match cfg.tls_files() {
        Some(files) => Arc::new(Tls::load(&files, cfg.node_id).map_err(Usage)?),
        None => {
            if !cfg.group_on_loopback() {
                tracing::warn!(
                    group = %cfg.group_listen,
                    "insecure_group_transport: members talk in plaintext, unauthenticated; \
                     anyone who reaches the group port can take part (set tls_ca_file, \
                     tls_cert_file and tls_key_file)"
                );
            }
            Arc::new(Tcp)
        }
    };
    // Bound on the Raft runtime, whose threads then drive its I/O.
    let group_listener = on(&raft, {
        let (transport, addr) = (transport.clone(), cfg.group_listen.clone());
        async move { transport.bind(&addr).await }
    })
    .await?
    .with_context(|| format!("cannot listen on group_listen {}", cfg.group_listen))?;

    let metrics = Arc::new(metrics::Metrics::new());
    // redb panics on some damaged files instead of returning an error, wherever the store is
    // read while the group opens: such a store is damaged all the same.
    let group = match raft
        .spawn(group::Group::open(cfg.clone(), metrics, transport))
        .await
    {
        Ok(opened) => opened?,
        Err(e) if e.is_panic() => {
            let why = e.into_panic();
            let why = why
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| why.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let problem = group::Group::store_problem(&cfg);
            return Err(anyhow::anyhow!("reading it failed: {why}").context(problem));
        }
        Err(e) => return Err(e).context("the Raft runtime stopped"),
    };
    let failed = storage_failure(group.clone());
    // Served before bootstrap: a joining member is only added once the leader can reach it.
    raft.spawn(wire::server::serve(group_listener, group.clone()));
    let bootstrapped = group.clone();
    on(&raft, async move { bootstrapped.bootstrap().await }).await??;
    let local = local_servers::LocalServers::new(group.clone());
    tokio::spawn(local.clone().reconcile());
    let password = cfg.probe.password().map_err(anyhow::Error::msg)?;
    let probes = probe::Probes::new(group.clone(), local.clone(), password)?;
    tokio::spawn(probes.clone().run());

    let shutdown = CancellationToken::new();
    let lb = lb::Lb {
        group: group.clone(),
        probes: probes.clone(),
    };
    if let Some(listener) = agent_listener {
        tokio::spawn(agent::serve(listener, lb.clone(), shutdown.clone()));
    }
    for instance in &cfg.haproxy {
        tokio::spawn(haproxy::Pusher::new(group.clone(), instance.clone()).run(shutdown.clone()));
    }
    if let Some(listener) = lb_listener {
        let routes = lb::router(lb).layer(axum::middleware::from_fn(admin::http::deadline));
        tokio::spawn(admin::http::serve(
            listener,
            routes,
            "load-balancer checks",
            shutdown.clone(),
        ));
    }
    let rules = plugin_port::Rules {
        max_connections: cfg.max_plugin_connections,
        max_subscribers: cfg.max_plugin_subscribers,
        idle_timeout: Duration::from_secs(cfg.plugin_idle_timeout_secs),
        commands_per_sec: cfg.plugin_commands_per_sec,
        tcp_writes: cfg.plugin_tcp_writes,
        allowed_uids: cfg.plugin_allowed_uids(),
    };
    let port = Arc::new(plugin_port::PluginPort::new(
        group.clone(),
        local,
        probes,
        rules,
        shutdown.clone(),
    ));
    tokio::spawn(
        port.clone()
            .serve(plugin_port::Listener::Tcp(plugin_listener)),
    );
    let _socket_file = plugin_socket.map(|(listener, file)| {
        tracing::info!(
            socket = %file.0.display(),
            allowed_uids = ?port.rules.allowed_uids,
            "plugin socket"
        );
        tokio::spawn(port.clone().serve(plugin_port::Listener::Unix(listener)));
        file
    });
    let admin = admin::router(
        admin::Admin {
            group: group.clone(),
            port: port.clone(),
            shutdown: shutdown.clone(),
        },
        Arc::new(admin::http::Guard::new(token)),
    );
    tokio::spawn(admin::http::serve(
        admin_listener,
        admin,
        "admin HTTP",
        shutdown.clone(),
    ));
    tracing::info!(
        member = cfg.node_id,
        name = %group.node.name,
        plugin = %cfg.plugin_listen,
        group = %cfg.group_listen,
        admin = %cfg.admin_listen,
        "gcsd started"
    );

    let mut failure: Option<anyhow::Error> = None;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: leaving the group"),
        _ = int.recv() => tracing::info!("SIGINT: leaving the group"),
        () = shutdown.cancelled() => {}
        f = failed => failure = Some(f.into()),
        why = group.identity.refused_as_wiped() => failure = Some(WipedMember(why).into()),
    }
    shutdown.cancel();
    if let Some(failure) = failure {
        // Nothing can be committed (or may be): no leave, no drain.
        return Err(failure);
    }
    // No new connections (the accept loop has stopped); wait for the open ones to say goodbye.
    port.tasks.close();
    let grace = cfg.shutdown_grace();
    let drained = tokio::time::timeout(grace, async {
        group.leave().await;
        port.tasks.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = port.open_connections(),
            "grace period over; closing what is left"
        );
    }
    if tokio::time::timeout(grace, group.raft.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("Raft did not stop within the grace period");
    }
    tracing::info!("gcsd stopped");
    Ok(())
}

/// Runs `task` on the runtime `rt` (and whatever it spawns there too), and waits for it.
async fn on<T: Send + 'static>(
    rt: &Handle,
    task: impl std::future::Future<Output = T> + Send + 'static,
) -> anyhow::Result<T> {
    rt.spawn(task).await.context("the Raft runtime stopped")
}

/// Raft stopped on a storage error (disk full, I/O error) or a panic: this member can take no
/// further part. `main` exits with [`StorageFailure::EXIT_CODE`] (EX_IOERR) so a supervisor
/// restarts it once the disk is fixed, while the rest of the group goes on.
#[derive(Debug, thiserror::Error)]
#[error(
    "storage failure, this member stops: {0}; exiting with code 74 (fix the disk, then restart it)"
)]
pub struct StorageFailure(String);

impl StorageFailure {
    pub const EXIT_CODE: u8 = 74;
}

/// The group refused this member: its data directory is not the one it joined with (it was
/// wiped, or replaced). `main` exits with [`WipedMember::EXIT_CODE`] (EX_CONFIG): restarting
/// cannot help, the operator must act.
#[derive(Debug, thiserror::Error)]
#[error("the group refuses this member, exiting with code 78: {0}")]
pub struct WipedMember(String);

impl WipedMember {
    pub const EXIT_CODE: u8 = 78;
}

/// A configuration that cannot be acted on, found once the data directory was read. `main`
/// exits with 64 (EX_USAGE), as for a wrong config file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// The exit code for the error `run` ended with: one a supervisor or operator can act on.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.is::<StorageFailure>() {
        StorageFailure::EXIT_CODE
    } else if e.is::<WipedMember>() {
        WipedMember::EXIT_CODE
    } else if e.is::<Usage>() {
        crate::EXIT_CONFIG
    } else {
        1
    }
}

/// Resolves when Raft stops for any reason but a normal shutdown.
async fn storage_failure(group: Arc<group::Group>) -> StorageFailure {
    let mut metrics = group.raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow().running_state {
            if !matches!(fatal, openraft::error::Fatal::Stopped) {
                return StorageFailure(fatal.to_string());
            }
        }
        if metrics.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
