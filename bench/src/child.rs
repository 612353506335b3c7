//! Child processes under test: the real `hookplane serve`, and this binary's own bare server
//! (the baseline). Each is started on `127.0.0.1:0` and found by the address it prints.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// The line `hookplane serve` prints once it accepts connections.
const HOOKPLANE_LISTENING: &str = "Hookplane listening on http://";
const OWNER_TOKEN: &str = "Owner token (shown once, keep it): ";
/// The line the bare server prints once it accepts connections.
pub const BARE_LISTENING: &str = "Bare server listening on http://";

/// Where the `hookplane` binary is: `explicit`, else next to this executable (cargo puts
/// both in the same target directory).
pub fn hookplane_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_owned());
        }
        bail!("--hookplane-bin {} does not exist", path.display());
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    let dir = exe
        .parent()
        .context("this executable has no parent directory")?;
    let candidate = dir.join("hookplane");
    if candidate.is_file() {
        return Ok(candidate);
    }
    bail!(
        "the hookplane binary is not at {}: build both with \
         `cargo build --release -p hookplane -p hookplane-bench` (or without --release for a \
         debug run), or pass --hookplane-bin",
        candidate.display()
    )
}

/// A running server process. Killed when dropped.
pub struct Server {
    pub address: SocketAddr,
    pub pid: u32,
    /// From spawning the process to reading its "listening" line.
    pub listening_after: Duration,
    pub spawned_at: Instant,
    /// The owner token `hookplane serve` prints on a fresh database, for its API.
    pub token: Option<String>,
    child: Child,
}

impl Server {
    /// `hookplane serve` on `database_url`, logging warnings only.
    pub async fn hookplane(binary: &Path, database_url: &str) -> Result<Self> {
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--database-url", database_url])
            .env("HOOKPLANE_LOG", "warn");
        Self::spawn(command, HOOKPLANE_LISTENING).await
    }

    /// A data-plane role (`receiver` or `worker`) of `hookplane`, logging warnings only.
    pub async fn role(
        binary: &Path,
        role: &str,
        database_url: &str,
        args: &[String],
    ) -> Result<Self> {
        let mut command = Command::new(binary);
        command
            .arg(role)
            .args(["--listen", "127.0.0.1:0", "--database-url", database_url])
            .args(args)
            .env("HOOKPLANE_LOG", "warn");
        Self::spawn(command, &format!("Hookplane {role} listening on http://")).await
    }

    /// This binary's bare server; `sink` is where its relay route delivers.
    pub async fn bare(sink: &str) -> Result<Self> {
        let exe = std::env::current_exe().context("locating this executable")?;
        let mut command = Command::new(exe);
        command.args(["bare-server", "--sink", sink]);
        Self::spawn(command, BARE_LISTENING).await
    }

    async fn spawn(mut command: Command, listening: &str) -> Result<Self> {
        let spawned_at = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        let pid = child.id().context("the child has a pid")?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut token = None;
        let address = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.context("reading stdout")? {
                if let Some(rest) = line.strip_prefix(OWNER_TOKEN) {
                    token = Some(rest.trim().to_owned());
                }
                if let Some(rest) = line.strip_prefix(listening) {
                    return rest
                        .trim()
                        .parse::<SocketAddr>()
                        .with_context(|| format!("parsing the address in {line:?}"));
                }
            }
            bail!("the server exited before listening")
        })
        .await
        .context("the server did not listen within 30 s")??;
        let listening_after = spawned_at.elapsed();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            address,
            pid,
            listening_after,
            spawned_at,
            token,
            child,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.address)
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        proc_status_kib(self.pid, "VmRSS")
    }

    /// Peak resident memory so far, in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        proc_status_kib(self.pid, "VmHWM")
    }

    /// SIGTERM and wait up to 30 s for the exit; SIGKILL after that.
    pub async fn stop(mut self) -> Result<()> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid);
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(exit) => {
                exit.context("waiting for the server")?;
                Ok(())
            }
            Err(_) => {
                self.child.kill().await.context("killing the server")?;
                bail!("the server did not stop within 30 s of SIGTERM")
            }
        }
    }
}

/// A `kB` field of `/proc/<pid>/status`.
fn proc_status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Samples a process's resident memory every `every` until stopped; keeps the largest.
pub struct RssSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(pid: u32, every: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut max = 0;
            loop {
                if let Ok(kib) = proc_status_kib(pid, "VmRSS") {
                    max = max.max(kib);
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = &mut stopped => return max,
                }
            }
        });
        Self { stop, task }
    }

    /// The largest resident size seen, in KiB.
    pub async fn finish(self) -> u64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0)
    }
}
