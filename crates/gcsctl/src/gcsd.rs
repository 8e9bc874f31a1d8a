//! Plain HTTP to one gcsd admin address. Turns every failure into a [`CtlError`].

use std::io;
use std::time::Duration;

use proto::admin::{AddMemberRequest, HistoryReport, PoolRequest, PoolsReport};
use serde_json::Value;
use ureq::{Agent, RequestBuilder};

use crate::error::CtlError;
use proto::admin::ClusterReport;

/// The requests gcsctl makes; a POST may carry a JSON body.
enum Method {
    Get,
    Post(Option<String>),
    Delete,
}

const RUNNING: &str = "is gcsd running? (--gcsd)";

/// One gcsd admin endpoint.
pub struct Gcsd {
    addr: String,
    timeout: Duration,
    agent: Agent,
    /// `Authorization` header value, when gcsctl has the admin token.
    bearer: Option<String>,
}

impl Gcsd {
    pub fn new(addr: &str, timeout: Duration, token: Option<String>) -> Self {
        let config = Agent::config_builder()
            .timeout_global(Some(timeout))
            // gcsd explains its 4xx/5xx in the body; we want to read it.
            .http_status_as_error(false)
            // Admin addresses are internal; an HTTP_PROXY from the environment would misroute.
            .proxy(None)
            .max_redirects(0)
            .user_agent(concat!("gcsctl/", env!("CARGO_PKG_VERSION")))
            .build();
        Gcsd {
            addr: addr.to_string(),
            timeout,
            agent: config.into(),
            bearer: token.map(|t| format!("Bearer {t}")),
        }
    }

    /// `GET /cluster`, typed, plus the raw JSON so `--json` keeps fields this gcsctl ignores.
    pub fn cluster(&self) -> Result<(ClusterReport, Value), CtlError> {
        self.get_typed("report the cluster", "/cluster", "a cluster report")
    }

    /// `GET /pools`, typed, plus the raw JSON for `--json`.
    pub fn pools(&self) -> Result<(PoolsReport, Value), CtlError> {
        self.get_typed("report the pools", "/pools", "a pools report")
    }

    /// `GET /history`.
    pub fn history(&self, pool: Option<&str>) -> Result<(HistoryReport, Value), CtlError> {
        let path = match pool {
            Some(p) => format!("/history?pool={}", query_escape(p)),
            None => "/history".into(),
        };
        self.get_typed("report the history", &path, "a history report")
    }

    /// `POST /pools`: one operator command.
    pub fn pool_request(&self, action: &str, req: &PoolRequest) -> Result<String, CtlError> {
        let body = serde_json::to_string(req).expect("PoolRequest serializes");
        let answer = self.exchange(action, Method::Post(Some(body)), "/pools")?;
        Ok(message_of(&answer))
    }

    fn get_typed<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        path: &str,
        what: &'static str,
    ) -> Result<(T, Value), CtlError> {
        let body = self.exchange(action, Method::Get, path)?;
        let unreadable = |e: serde_json::Error| CtlError::Unreadable {
            addr: self.addr.clone(),
            what,
            reason: e.to_string(),
        };
        let raw: Value = serde_json::from_str(&body).map_err(unreadable)?;
        let typed = T::deserialize(&raw).map_err(unreadable)?;
        Ok((typed, raw))
    }

    pub fn add_member(&self, req: &AddMemberRequest) -> Result<String, CtlError> {
        let body = serde_json::to_string(req).expect("AddMemberRequest serializes");
        let action = format!("add member {}", req.id);
        let answer = self.exchange(&action, Method::Post(Some(body)), "/members")?;
        Ok(message_of(&answer))
    }

    pub fn remove_member(&self, id: u64) -> Result<String, CtlError> {
        let action = format!("remove member {id}");
        let answer = self.exchange(&action, Method::Delete, &format!("/members/{id}"))?;
        Ok(message_of(&answer))
    }

    pub fn shutdown(&self) -> Result<String, CtlError> {
        let answer = self.exchange("shut down", Method::Post(None), "/shutdown")?;
        Ok(format!("gcsd at {}: {}", self.addr, message_of(&answer)))
    }

    /// One request; the body of a 2xx answer, or the error gcsd gave.
    fn exchange(&self, action: &str, method: Method, path: &str) -> Result<String, CtlError> {
        let url = format!("http://{}{path}", self.addr);
        let sent = match method {
            Method::Get => self.with_token(self.agent.get(&url)).call(),
            Method::Delete => self.with_token(self.agent.delete(&url)).call(),
            Method::Post(Some(json)) => self
                .with_token(self.agent.post(&url))
                .header("content-type", "application/json")
                .send(json),
            Method::Post(None) => self.with_token(self.agent.post(&url)).send_empty(),
        };
        let mut response = sent.map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.unreachable(e))?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(CtlError::Failed {
            addr: self.addr.clone(),
            action: action.to_string(),
            status,
            message: error_of(&body),
        })
    }

    fn with_token<B>(&self, request: RequestBuilder<B>) -> RequestBuilder<B> {
        match &self.bearer {
            Some(bearer) => request.header("authorization", bearer),
            None => request,
        }
    }

    fn unreachable(&self, e: ureq::Error) -> CtlError {
        let (reason, hint) = match e {
            ureq::Error::Io(e) => describe_io(&e),
            ureq::Error::Timeout(_) => (
                format!("no answer within {} ms", self.timeout.as_millis()),
                "is gcsd running and responsive? (--gcsd, --timeout-ms)",
            ),
            ureq::Error::HostNotFound => {
                ("host not found".to_string(), "check the host name (--gcsd)")
            }
            ureq::Error::Protocol(e) => (
                format!("the answer is not HTTP ({e})"),
                "is --gcsd the admin address and not the group address?",
            ),
            e => (e.to_string(), RUNNING),
        };
        CtlError::Unreachable {
            addr: self.addr.clone(),
            reason,
            hint,
        }
    }
}

/// Socket errors in plain words (without "(os error 111)"), and what to check.
fn describe_io(e: &io::Error) -> (String, &'static str) {
    use io::ErrorKind as K;
    let plain = match e.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset",
        K::ConnectionAborted => "connection aborted",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::TimedOut => "timed out",
        // Name lookup failures land here too, so the address is worth a look.
        _ => {
            return (
                e.to_string(),
                "check the address and that gcsd is running (--gcsd)",
            )
        }
    };
    (plain.to_string(), RUNNING)
}

/// Pool names are letters, digits and `_-.` (gcsd refuses others), but a typo must still make
/// a well-formed URL.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// gcsd answers `{"message": ...}`; anything else is shown as text.
fn message_of(body: &str) -> String {
    field_or_text(body, "message", "done")
}

/// gcsd errors are `{"error": ...}`; axum's own rejections (422) are plain text.
fn error_of(body: &str) -> String {
    field_or_text(body, "error", "no explanation given")
}

fn field_or_text(body: &str, field: &str, empty: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get(field)?.as_str().map(str::to_string));
    let text = from_json.unwrap_or_else(|| body.trim().to_string());
    if text.is_empty() {
        empty.to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_json_or_text() {
        assert_eq!(
            message_of(r#"{"message":"member 2 added"}"#),
            "member 2 added"
        );
        assert_eq!(message_of("shutting down\n"), "shutting down");
        assert_eq!(message_of(""), "done");
        assert_eq!(error_of(r#"{"error":"no quorum"}"#), "no quorum");
        assert_eq!(
            error_of("Failed to deserialize the JSON body\n"),
            "Failed to deserialize the JSON body"
        );
        assert_eq!(error_of("  "), "no explanation given");
    }

    #[test]
    fn add_member_omits_unset_options() {
        let req = AddMemberRequest {
            id: 2,
            group_addr: "127.0.0.1:12301".into(),
            name: None,
            admin_addr: Some("127.0.0.1:12281".into()),
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"id":2,"group_addr":"127.0.0.1:12301","admin_addr":"127.0.0.1:12281"}"#
        );
    }

    #[test]
    fn refused_connection_is_worded_plainly() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            describe_io(&e),
            (
                "connection refused".to_string(),
                "is gcsd running? (--gcsd)"
            )
        );
    }
}
