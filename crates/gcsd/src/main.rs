//! gcsd, the mysql-gcs group sidecar: one per host, beside the database server.
//!
//! Startup: typed config (exit 64 when it is wrong), tracing from the environment, the async
//! runtime, then `app::run`: spawn the group, plugin port and admin HTTP, wait for a signal or
//! an admin shutdown, then leave the group cleanly and drain within a grace period.

#![forbid(unsafe_code)]

mod admin;
mod agent;
mod app;
mod config;
mod crash;
mod group;
mod haproxy;
mod identity;
#[cfg(test)]
mod in_memory_group_tests;
mod lb;
mod local_servers;
mod metrics;
mod plugin_port;
mod pool_api;
mod probe;
mod raft;
mod random;
mod sql;
mod state;
mod warn_limit;
mod wire;

use std::process::ExitCode;

use clap::Parser;

use crate::admin::token::AdminToken;
use crate::config::{Cli, Config, SAMPLE};

/// sysexits.h EX_USAGE: the command line or config is wrong.
pub const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_sample_config {
        print!("{SAMPLE}");
        return ExitCode::SUCCESS;
    }
    let cfg = match Config::load(&cli) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("gcsd: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cli.config_check {
        let effective = toml::to_string(&cfg).unwrap_or_else(|e| format!("# cannot print: {e}\n"));
        print!("# configuration is valid; effective values:\n{effective}");
        return ExitCode::SUCCESS;
    }
    // Logging is up first: creating the default token is worth a line.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=off".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let token = match AdminToken::load(&cfg.admin_token_path(), cfg.admin_token_file.is_none()) {
        Ok(token) => token,
        Err(e) => {
            eprintln!("gcsd: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Two runtimes: Raft and the group apart from the local clients (see app.rs).
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(|e| eprintln!("gcsd: cannot start the {name} runtime: {e}"))
    };
    let (Ok(main), Ok(raft)) = (runtime("gcsd-main"), runtime("gcsd-raft")) else {
        return ExitCode::FAILURE;
    };
    let result = main.block_on(app::run(cfg, token, raft.handle().clone()));
    // Tasks still blocked on the broken storage must not hold the exit up.
    main.shutdown_timeout(std::time::Duration::from_secs(1));
    raft.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = app::exit_code(&e);
            if code == 1 {
                tracing::error!("gcsd stopped: {e:#}");
            } else {
                tracing::error!("{e}");
            }
            ExitCode::from(code)
        }
    }
}
