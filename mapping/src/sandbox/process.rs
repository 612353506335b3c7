//! One evaluator process, seen from the server: start it, send a request, wait for the answer
//! while watching its CPU time, and name the limit when it dies instead.

use std::{
    collections::VecDeque,
    path::Path,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
    task::JoinHandle,
};

use super::protocol::{Job, Response};
use crate::{Limit, Limits, MapError};

/// Lines of the evaluator's standard error kept to explain its death.
const STDERR_LINES: usize = 8;

/// Longest wait for a new evaluator to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// CPU time per `/proc` clock tick (`USER_HZ` is 100 on Linux).
const TICK: Duration = Duration::from_millis(10);

/// How an exchange ended.
pub(super) enum Exchange {
    /// The evaluator answered and can take the next request.
    Answered(Response),
    /// The evaluator is gone (killed past its time, or died); the limit it hit.
    Ended(Limit),
}

/// A running evaluator.
pub(super) struct Evaluator {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_reader: JoinHandle<()>,
}

/// A request, serialized without copying the payload.
#[derive(Serialize)]
struct RequestRef<'a> {
    job: &'a Job,
    payload: &'a Value,
    limits: &'a Limits,
}

impl Evaluator {
    /// Start an evaluator and wait (at most [`START_TIMEOUT`]) until it reads requests.
    pub(super) async fn start(program: &Path, args: &[String]) -> std::io::Result<Self> {
        let mut child = Command::new(program)
            .args(args)
            // Expressions see only the event: not even the server's environment is passed on.
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let missing = || std::io::Error::other("the evaluator's pipes were not opened");
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(missing)?).lines();
        let stderr_pipe = child.stderr.take().ok_or_else(missing)?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr);
        let stderr_reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr_pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut tail = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if tail.len() == STDERR_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        let mut evaluator = Self {
            child,
            stdin,
            stdout,
            stderr,
            stderr_reader,
        };
        match tokio::time::timeout(START_TIMEOUT, evaluator.stdout.next_line()).await {
            Ok(Ok(Some(line))) if matches!(serde_json::from_str(&line), Ok(Response::Ready)) => {
                Ok(evaluator)
            }
            _ => Err(std::io::Error::other(
                "the evaluator did not start (it should print that it is ready)",
            )),
        }
    }

    /// Send one request and wait for its answer, at most `limits.time` of the evaluator's CPU
    /// time and `wall` of real time.
    pub(super) async fn exchange(
        &mut self,
        job: &Job,
        payload: &Value,
        limits: &Limits,
        wall: Duration,
    ) -> Exchange {
        let request = RequestRef {
            job,
            payload,
            limits,
        };
        let mut line = match serde_json::to_vec(&request) {
            Ok(line) => line,
            Err(error) => {
                return Exchange::Answered(Response::Failed(MapError::Input {
                    message: format!("the payload cannot be sent to an evaluator: {error}"),
                }));
            }
        };
        line.push(b'\n');
        if self.stdin.write_all(&line).await.is_err() || self.stdin.flush().await.is_err() {
            return Exchange::Ended(self.ended().await);
        }
        let pid = self.child.id();
        let mut cpu_at_start = pid.and_then(cpu_time);
        let mut started = Instant::now();
        let check_every = (limits.time / 2).max(TICK);
        loop {
            match tokio::time::timeout(check_every, self.stdout.next_line()).await {
                Ok(Ok(Some(line))) => match serde_json::from_str(&line) {
                    Ok(Response::Compiled) => {
                        // Compiling is not the expression's time: count from here.
                        cpu_at_start = pid.and_then(cpu_time);
                        started = Instant::now();
                    }
                    Ok(response) => return Exchange::Answered(response),
                    Err(error) => {
                        return Exchange::Answered(Response::Failed(MapError::Internal {
                            message: format!("the evaluator's answer was unreadable: {error}"),
                        }));
                    }
                },
                Ok(Ok(None) | Err(_)) => return Exchange::Ended(self.ended().await),
                Err(_) => {
                    let used = match (cpu_at_start, pid.and_then(cpu_time)) {
                        (Some(start), Some(now)) => now.saturating_sub(start),
                        // Without /proc, wall time is all there is.
                        _ => started.elapsed(),
                    };
                    if used >= limits.time || started.elapsed() >= wall {
                        let _ = self.child.start_kill();
                        let _ = self.child.wait().await;
                        return Exchange::Ended(Limit::Time);
                    }
                }
            }
        }
    }

    /// The evaluator stopped answering: wait for it and name why from how it ended.
    async fn ended(&mut self) -> Limit {
        let status = self.child.wait().await.ok();
        // Its last words reach the pipe before it exits; give the reader a moment to take them.
        let _ = tokio::time::timeout(Duration::from_millis(200), &mut self.stderr_reader).await;
        let tail = self
            .stderr
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        classify(status, &tail)
    }
}

/// The limit an evaluator's death means, from Rust's last words on its standard error.
fn classify(status: Option<ExitStatus>, stderr: &str) -> Limit {
    if stderr.contains("overflowed its stack") {
        Limit::Stack
    } else if stderr.contains("memory allocation of") || stderr.contains("capacity overflow") {
        Limit::Memory
    } else {
        tracing::warn!(?status, %stderr, "an evaluator process ended unexpectedly");
        Limit::Evaluator
    }
}

/// User and system CPU time of process `pid` so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u32 = fields.next()?.parse().ok()?;
    let system: u32 = fields.next()?.parse().ok()?;
    Some(TICK * user.saturating_add(system))
}
