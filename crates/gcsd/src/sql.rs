//! The SQL side of probing and fencing: one short session with a database server, every step
//! under its own deadline in milliseconds.
//!
//! Built on `mysql_async` (pure Rust, on tokio): a deadline is a `tokio::time::timeout`, and
//! giving up drops the future, which closes the socket, so a hung server holds no thread and
//! delays nothing else. (libmysqlclient's timeouts are whole seconds; its non-blocking API would
//! need hand-written FFI and a readiness loop around Connector/C's coroutines, and would be the
//! only unsafe code in gcsd. See the README, "Probes".)

use std::path::Path;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};
use pool::{Probe, ProbeFacts, ReplicaFacts};
use proto::ServerKey;

/// How to reach the servers: the probe account and the deadlines.
#[derive(Clone)]
pub struct Access {
    pub user: String,
    pub password: Option<String>,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
}

/// The password is never printed.
impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("connect_timeout", &self.connect_timeout)
            .field("query_timeout", &self.query_timeout)
            .finish()
    }
}

/// Why a session could not be opened, or a step failed.
#[derive(Debug)]
pub enum SqlError {
    /// Nobody listens: the server's process is gone.
    Refused(String),
    /// No answer within the deadline.
    TimedOut(String),
    Other(String),
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlError::Refused(t) | SqlError::TimedOut(t) | SqlError::Other(t) => f.write_str(t),
        }
    }
}

/// One connection to one server.
pub struct Session {
    conn: Conn,
    server: String,
    query_timeout: Duration,
}

impl Session {
    pub async fn open(server: &ServerKey, access: &Access) -> Result<Session, SqlError> {
        let name = pool::addr(server);
        let port: u16 = server
            .port
            .parse()
            .map_err(|_| SqlError::Other(format!("{name}: the port is not a TCP port")))?;
        let opts = OptsBuilder::default()
            .ip_or_hostname(server.host.clone())
            .tcp_port(port)
            .prefer_socket(false);
        Self::connect(opts, name, access).await
    }

    /// A session over a Unix socket of this host (`[probe] fence_sockets`), as the probe user
    /// at 'localhost'; `server` names it in messages.
    pub async fn open_socket(
        path: &Path,
        server: &ServerKey,
        access: &Access,
    ) -> Result<Session, SqlError> {
        let name = format!("{} (socket {})", pool::addr(server), path.display());
        let opts = OptsBuilder::default().socket(Some(path.display().to_string()));
        Self::connect(opts, name, access).await
    }

    async fn connect(
        opts: OptsBuilder,
        name: String,
        access: &Access,
    ) -> Result<Session, SqlError> {
        let opts = opts
            .user(Some(access.user.clone()))
            .pass(access.password.clone())
            // Known up front, so opening a session is the handshake and nothing more.
            .max_allowed_packet(Some(16 << 20))
            .wait_timeout(Some(60))
            .stmt_cache_size(0);
        let conn = match tokio::time::timeout(access.connect_timeout, Conn::new(opts)).await {
            Err(_) => {
                return Err(SqlError::TimedOut(format!(
                    "Could not connect to mysql host {name}: no answer within {} ms",
                    access.connect_timeout.as_millis()
                )))
            }
            Ok(Err(e)) if is_refused(&e) => {
                return Err(SqlError::Refused(format!(
                    "Could not connect to mysql host {name}: connection refused"
                )))
            }
            Ok(Err(e)) => {
                return Err(SqlError::Other(format!(
                    "Could not connect to mysql host {name}: {e}"
                )))
            }
            Ok(Ok(conn)) => conn,
        };
        Ok(Session {
            conn,
            server: name,
            query_timeout: access.query_timeout,
        })
    }

    /// Runs one step under the query deadline.
    async fn step<T>(
        &mut self,
        what: &str,
        f: impl AsyncFnOnce(&mut Conn) -> Result<T, mysql_async::Error>,
    ) -> Result<T, SqlError> {
        let deadline = self.query_timeout;
        match tokio::time::timeout(deadline, f(&mut self.conn)).await {
            Err(_) => Err(SqlError::TimedOut(format!(
                "Query Error: {what} on {} took more than {} ms",
                self.server,
                deadline.as_millis()
            ))),
            Ok(Err(e)) => Err(SqlError::Other(format!(
                "Query Error: {what} on {}: {e}",
                self.server
            ))),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// Reads what the checks need: `read_only`, `server_id`, the GTID position and the
    /// replica status.
    pub async fn facts(&mut self) -> Result<ProbeFacts, SqlError> {
        let (read_only, server_id, gtid): (bool, u32, String) = self
            .step("SELECT @@read_only", async |c| {
                c.query_first(
                    "SELECT @@global.read_only, @@global.server_id, @@global.gtid_binlog_pos",
                )
                .await
            })
            .await?
            .ok_or_else(|| SqlError::Other(format!("Query Error: no row from {}", self.server)))?;
        let replica: Option<Row> = self
            .step("SHOW SLAVE STATUS", async |c| {
                c.query_first("SHOW SLAVE STATUS").await
            })
            .await?;
        Ok(ProbeFacts {
            read_only,
            server_id,
            gtid_binlog_pos: gtid,
            replica: replica.map(|row| {
                let text = |col: &str| {
                    row.get_opt::<Option<String>, _>(col)
                        .and_then(Result::ok)
                        .flatten()
                        .unwrap_or_default()
                };
                ReplicaFacts {
                    io_running: text("Slave_IO_Running"),
                    sql_running: text("Slave_SQL_Running"),
                    source_server_id: text("Master_Server_Id").parse().unwrap_or(0),
                    seconds_behind: text("Seconds_Behind_Master").parse().ok(),
                    last_io_error: text("Last_IO_Error"),
                    last_sql_error: text("Last_SQL_Error"),
                }
            }),
        })
    }

    /// `SET GLOBAL read_only`.
    pub async fn set_read_only(&mut self, on: bool) -> Result<(), SqlError> {
        let q = if on {
            "SET GLOBAL read_only = ON"
        } else {
            "SET GLOBAL read_only = OFF"
        };
        self.step(q, async |c| c.query_drop(q).await).await
    }

    /// Fences this session's server if it is `server` (its `@@port`, and its `@@server_id` when
    /// one is known): `None` if it is another server, else whether it was writable.
    pub async fn fence_if(
        &mut self,
        port: &str,
        server_id: Option<u32>,
    ) -> Result<Option<bool>, SqlError> {
        let (its_port, its_id, read_only): (u32, u32, bool) = self
            .step("SELECT @@port", async |c| {
                c.query_first("SELECT @@global.port, @@global.server_id, @@global.read_only")
                    .await
            })
            .await?
            .ok_or_else(|| SqlError::Other(format!("Query Error: no row from {}", self.server)))?;
        if its_port.to_string() != port || server_id.is_some_and(|id| id != its_id) {
            return Ok(None);
        }
        if !read_only {
            self.set_read_only(true).await?;
        }
        Ok(Some(!read_only))
    }

    /// `@@gtid_current_pos`: everything this server has applied or written.
    pub async fn gtid_current_pos(&mut self) -> Result<String, SqlError> {
        let pos: Option<String> = self
            .step("SELECT @@gtid_current_pos", async |c| {
                c.query_first("SELECT @@global.gtid_current_pos").await
            })
            .await?;
        Ok(pos.unwrap_or_default())
    }

    /// The server's process id, from its pid file, if the server runs on this host: the file
    /// is readable here and names a live `mariadbd` or `mysqld`.
    pub async fn local_pid(&mut self) -> Option<i32> {
        let (pid_file, datadir): (String, String) = self
            .step("SELECT @@pid_file", async |c| {
                c.query_first("SELECT @@global.pid_file, @@global.datadir")
                    .await
            })
            .await
            .ok()??;
        let path = std::path::Path::new(&datadir).join(pid_file);
        let pid: i32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        matches!(comm.trim(), "mariadbd" | "mysqld").then_some(pid)
    }

    /// Closes the session politely, within the query deadline (else it is simply dropped).
    pub async fn close(self) {
        let _ = tokio::time::timeout(self.query_timeout, self.conn.disconnect()).await;
    }
}

/// One probe: connect, then read the facts. Every outcome is an answer.
pub async fn probe(server: &ServerKey, access: &Access) -> (Probe, Option<Session>) {
    match Session::open(server, access).await {
        Err(SqlError::Refused(why)) => (Probe::Refused(why), None),
        Err(SqlError::TimedOut(why)) => (Probe::Hung(why), None),
        Err(SqlError::Other(why)) => (Probe::Unreachable(why), None),
        Ok(mut session) => match session.facts().await {
            Ok(facts) => (Probe::Answered(facts), Some(session)),
            Err(SqlError::TimedOut(why)) => (Probe::Hung(why), None),
            Err(e) => (Probe::QueryFailed(e.to_string()), None),
        },
    }
}

fn is_refused(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => {
            io.kind() == std::io::ErrorKind::ConnectionRefused
        }
        _ => false,
    }
}
