//! A fake OpenClaw gateway on 127.0.0.1: records every `POST /hooks/agent` and answers as
//! told. With `complete_after`, it plays the agent too: some time after admitting a run it
//! closes the job with the real `agentbus complete-job`, as an OpenClaw agent following
//! its AGENTS.md would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How the fake answers.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// This status with `{ok, runId}` (200, 202) or an error body.
    Status(u16),
    /// Never answer within the client's timeout (sleeps, then closes).
    Hang(Duration),
    /// As a real gateway with this hooks token: `GET /readyz` 200; a POST with another
    /// token 401; a POST without a message 400 ("message required"); else admitted (200).
    Gateway(&'static str),
    /// A misbehaving proxy: this status, with every request header echoed in the body.
    Echo(u16),
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of a marker line (`AGENTBUS_JOB_ID: ...`) in the message.
    pub fn marker(&self, name: &str) -> Option<String> {
        let message = self.body["message"].as_str()?;
        message
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_string)
    }
}

pub struct FakeHook {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl FakeHook {
    /// Starts a fake answering `answer`; with `complete_after`, it then completes each
    /// admitted job through the real binary against `database_url`.
    pub fn start(answer: Answer, complete_after: Option<(Duration, String)>) -> FakeHook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake hook");
        let url = format!(
            "http://{}/hooks/agent",
            listener.local_addr().expect("local addr")
        );
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = Arc::clone(&log);
                let complete_after = complete_after.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, answer, &log, complete_after);
                });
            }
        });
        FakeHook { url, received }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (or panics after `within`).
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let until = Instant::now() + within;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < until,
                "fake hook got {} requests, expected {n}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn serve(
    stream: TcpStream,
    answer: Answer,
    log: &Mutex<Vec<Received>>,
    complete_after: Option<(Duration, String)>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let at = Instant::now();
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim().to_string(), v.trim().to_string());
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.parse().unwrap_or(0);
                }
                headers.push((k, v));
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let received = Received { at, headers, body };
        log.lock().unwrap().push(received.clone());

        let mut stream = stream.try_clone()?;
        let status = match answer {
            Answer::Hang(d) => {
                std::thread::sleep(d);
                return Ok(());
            }
            Answer::Status(status) | Answer::Echo(status) => status,
            Answer::Gateway(token) => {
                let bearer = received.header("authorization").unwrap_or("");
                if request_line.starts_with("GET /readyz") {
                    200
                } else if bearer != format!("Bearer {token}") {
                    401
                } else if received.body.get("message").is_none() {
                    400
                } else {
                    200
                }
            }
        };
        let run_id = format!("run-{}", uuid::Uuid::new_v4().simple());
        let body = if let Answer::Echo(_) = answer {
            let echoed: Vec<String> = received
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            serde_json::json!({"error": "bad gateway", "request_headers": echoed}).to_string()
        } else if (200..300).contains(&status) {
            format!("{{\"ok\":true,\"runId\":\"{run_id}\"}}")
        } else {
            format!("{{\"ok\":false,\"error\":\"fake says {status}\"}}")
        };
        write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        stream.flush()?;
        if (200..300).contains(&status) {
            if let Some((delay, url)) = &complete_after {
                let (delay, url) = (*delay, url.clone());
                let job = received.marker("AGENTBUS_JOB_ID");
                let token = received.marker("AGENTBUS_LEASE_TOKEN");
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    if let (Some(job), Some(token)) = (job, token) {
                        let out = super::run_cli(
                            &[
                                "complete-job",
                                &job,
                                "--lease-token",
                                &token,
                                "--summary",
                                "fake agent done",
                            ],
                            &[("DATABASE_URL", url.as_str())],
                            None,
                        );
                        assert_eq!(out.code, 0, "fake agent's complete-job: {}", out.stderr);
                    }
                });
            }
        }
    }
}
