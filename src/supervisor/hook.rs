//! Waking an agent over HTTP: OpenClaw's `POST /hooks/agent`.
//!
//! OpenClaw answers 2xx `{ok, runId}` when it has *admitted* the run, long before the agent
//! finishes (older gateways answer 202). A 2xx is therefore never "done": the job stays
//! running under its lease until the agent closes it with `agentbus`. The same
//! `Idempotency-Key` (`<job_id>:<attempt>`) makes the gateway replay the same run instead
//! of starting a second one.

use std::fmt;
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

/// A bearer token. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a token; surrounding whitespace (a file's trailing newline) is dropped.
    pub fn new(token: &str) -> Option<Secret> {
        let t = token.trim();
        (!t.is_empty()).then(|| Secret(t.to_string()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where and how to wake one agent.
#[derive(Debug, Clone)]
pub struct HookTarget {
    /// The hook URL, e.g. `http://127.0.0.1:18789/hooks/agent`.
    pub url: String,
    /// Bearer token; `None` sends no Authorization header.
    pub token: Option<Secret>,
    /// OpenClaw `agentId`.
    pub agent_id: String,
    /// OpenClaw `sessionKey`, when the agent should run in a fixed session.
    pub session_key: Option<String>,
    /// `timeoutSeconds` for the agent's run.
    pub timeout_seconds: u32,
}

/// One wake request.
#[derive(Debug, Clone)]
pub struct WakeRequest<'a> {
    /// The job.
    pub job_id: Uuid,
    /// Its attempt number (part of the idempotency key).
    pub attempt: i32,
    /// A short label for the run (`name`).
    pub name: &'a str,
    /// The job prompt (`message`).
    pub message: &'a str,
}

/// What the gateway said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// 2xx: the run was admitted (not finished).
    Admitted {
        /// The HTTP status.
        status: u16,
        /// The gateway's `runId`, when its body had one.
        run_id: Option<String>,
    },
    /// A 4xx other than 408/429, or a redirect: the configuration is wrong (URL, token,
    /// agent id). Retrying the same request will not help.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        detail: String,
    },
    /// 5xx, 408, 429, a timeout or a connection error: try again later.
    Retryable {
        /// The HTTP status, if a response arrived.
        status: Option<u16>,
        /// What went wrong.
        detail: String,
        /// Whether the gateway may have started the run anyway (a timeout after the
        /// request was sent); `false` when it certainly did not (refused connection,
        /// unknown host, an error status).
        may_have_run: bool,
    },
}

/// A shared HTTP client (one connection pool for every wake-up).
#[derive(Clone)]
pub struct HookClient {
    agent: ureq::Agent,
    redactor: crate::redact::Redactor,
    request_timeout: Duration,
}

impl fmt::Debug for HookClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HookClient")
    }
}

impl HookClient {
    /// A client whose requests give up after `request_timeout`; every text that comes back
    /// (bodies, transport errors) passes through `redactor`.
    pub fn new(request_timeout: Duration, redactor: crate::redact::Redactor) -> HookClient {
        let agent = ureq::AgentBuilder::new()
            .timeout(request_timeout)
            .redirects(0)
            .user_agent(concat!("agentbus-supervisor/", env!("CARGO_PKG_VERSION")))
            .build();
        HookClient {
            agent,
            redactor,
            request_timeout,
        }
    }

    /// Sends one wake request.
    pub fn wake(&self, target: &HookTarget, req: &WakeRequest<'_>) -> HookOutcome {
        let mut body = json!({
            "agentId": target.agent_id,
            "name": req.name,
            "message": req.message,
            "deliver": false,
            "timeoutSeconds": target.timeout_seconds,
        });
        if let (Some(key), Some(map)) = (&target.session_key, body.as_object_mut()) {
            map.insert("sessionKey".into(), Value::String(key.clone()));
        }
        let mut request = self
            .agent
            .post(&target.url)
            .set("Content-Type", "application/json")
            .set(
                "Idempotency-Key",
                &format!("{}:{}", req.job_id, req.attempt),
            );
        if let Some(token) = &target.token {
            request = request.set("Authorization", &format!("Bearer {}", token.expose()));
        }
        match request.send_string(&body.to_string()) {
            Ok(response) => {
                let status = response.status();
                if !(200..300).contains(&status) {
                    // Redirects (not followed) and 1xx land here.
                    return HookOutcome::Rejected {
                        status,
                        detail: format!("unexpected HTTP {status} {}", response.status_text()),
                    };
                }
                let text = response.into_string().unwrap_or_default();
                let run_id = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
                    v.get("runId")
                        .and_then(Value::as_str)
                        .map(|s| s.chars().take(200).collect())
                });
                HookOutcome::Admitted { status, run_id }
            }
            Err(ureq::Error::Status(status, response)) => {
                // A gateway or a proxy may echo the request (and its Authorization header).
                let detail = self.excerpt(&response.into_string().unwrap_or_default(), target);
                if status >= 500 || status == 408 || status == 429 {
                    HookOutcome::Retryable {
                        status: Some(status),
                        detail: format!("HTTP {status}: {detail}"),
                        may_have_run: false,
                    }
                } else {
                    HookOutcome::Rejected {
                        status,
                        detail: format!("HTTP {status}: {detail}"),
                    }
                }
            }
            Err(ureq::Error::Transport(t)) => HookOutcome::Retryable {
                status: None,
                may_have_run: !matches!(
                    t.kind(),
                    ureq::ErrorKind::ConnectionFailed
                        | ureq::ErrorKind::Dns
                        | ureq::ErrorKind::InvalidUrl
                        | ureq::ErrorKind::UnknownScheme
                ),
                detail: if timed_out(&t) {
                    format!(
                        "no answer within {:.1} s (the gateway may still start the run)",
                        self.request_timeout.as_secs_f64()
                    )
                } else {
                    self.excerpt(&transport_detail(&t), target)
                },
            },
        }
    }
}

impl HookClient {
    /// What may be kept of a text that came back: redacted (the target's token too), one
    /// line, at most 300 characters.
    fn excerpt(&self, s: &str, target: &HookTarget) -> String {
        let token = target.token.as_ref().map(Secret::expose);
        let extra: Vec<&str> = token.into_iter().collect();
        let out = self.redactor.clean(s, &extra, 300);
        if out.is_empty() {
            return "(empty body)".to_string();
        }
        out
    }
}

/// Whether the request ran out of time (ureq reports it as an I/O error, "Network Error").
fn timed_out(t: &ureq::Transport) -> bool {
    let mut source = std::error::Error::source(t);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) {
                return true;
            }
        }
        source = e.source();
    }
    t.to_string().contains("timed out")
}

fn transport_detail(t: &ureq::Transport) -> String {
    // The message may carry the URL (its credentials are masked by the redactor).
    let mut s = format!("{}", t.kind());
    if let Some(m) = t.message() {
        s.push_str(": ");
        s.push_str(m);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new(" abc123\n").unwrap_or_else(|| Secret(String::new()));
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "abc123");
        assert!(Secret::new(" \n").is_none());
    }
}
