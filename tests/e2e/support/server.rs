//! Start and stop the real `hookplane serve` binary.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// Where a test's data lives. Cloning shares the same database.
#[derive(Clone)]
pub struct Backend {
    pub database_url: String,
    /// The instance owner's token, as the first server on this database printed it.
    owner_token: Arc<Mutex<Option<String>>>,
    _dir: Option<Arc<tempfile::TempDir>>,
}

impl Backend {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path: PathBuf = dir.path().join("hookplane.db");
        Self {
            database_url: format!("sqlite://{}", path.display()),
            owner_token: Arc::default(),
            _dir: Some(Arc::new(dir)),
        }
    }

    /// A fresh PostgreSQL database, or `None` (with the reason printed) when
    /// `HOOKPLANE_TEST_POSTGRES_URL` is unset.
    pub async fn postgres() -> Option<Self> {
        let database_url = hookplane_store::testing::postgres_url().await?;
        Some(Self {
            database_url,
            owner_token: Arc::default(),
            _dir: None,
        })
    }
}

/// What `hookplane serve` prints, once, on a fresh database.
pub const OWNER_TOKEN_LINE: &str = "Owner token (shown once, keep it): ";

/// A running `hookplane serve`. Killed when dropped.
pub struct Server {
    pub address: SocketAddr,
    /// The instance owner's token (empty for roles that serve no API on a fresh database).
    pub token: String,
    child: Child,
}

impl Server {
    pub async fn start(backend: &Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    pub async fn start_with(backend: &Backend, extra_args: &[&str]) -> Self {
        Self::start_role(
            backend,
            "serve",
            "Hookplane listening on http://",
            extra_args,
        )
        .await
    }

    /// Start `hookplane <role>` and wait for its `banner` line with the address.
    pub async fn start_role(
        backend: &Backend,
        role: &str,
        banner: &str,
        extra_args: &[&str],
    ) -> Self {
        Self::start_role_with_env(backend, role, banner, extra_args, &[]).await
    }

    /// [`Server::start_role`] with extra environment variables.
    pub async fn start_role_with_env(
        backend: &Backend,
        role: &str,
        banner: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let env = [&[("HOOKPLANE_LOG", "warn")], env].concat();
        Self::spawn(backend, role, banner, extra_args, &env, Stdio::inherit()).await
    }

    /// `hookplane serve` at the default log level, its log (standard error) written to `log`.
    pub async fn start_logging_to(
        backend: &Backend,
        extra_args: &[&str],
        log: &std::path::Path,
    ) -> Self {
        let file = std::fs::File::create(log).expect("a log file");
        let banner = "Hookplane listening on http://";
        Self::spawn(backend, "serve", banner, extra_args, &[], Stdio::from(file)).await
    }

    async fn spawn(
        backend: &Backend,
        role: &str,
        banner: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookplane"))
            .arg(role)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                &backend.database_url,
            ])
            .args(extra_args)
            .env_remove("HOOKPLANE_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("the hookplane binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let address = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("reading stdout") {
                if let Some(token) = line.strip_prefix(OWNER_TOKEN_LINE) {
                    *backend.owner_token.lock().expect("not poisoned") = Some(token.to_owned());
                }
                if let Some(rest) = line.strip_prefix(banner) {
                    return rest.trim().parse::<SocketAddr>().expect("a socket address");
                }
            }
            panic!("hookplane exited before listening");
        })
        .await
        .expect("hookplane starts listening within 30 s");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let token = backend
            .owner_token
            .lock()
            .expect("not poisoned")
            .clone()
            .unwrap_or_default();
        Self {
            address,
            token,
            child,
        }
    }

    /// The server's process id, to read its `/proc` entries.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server is running")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The value of the unlabelled metric `name` (or of `name{labels}`) on `/metrics`.
    pub async fn metric(&self, name: &str) -> i64 {
        let metrics = reqwest::get(self.url("/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("a body");
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/graphql/ws", self.address)
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn stop(mut self) {
        let pid = self.child.id().expect("the server is running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server stops within 30 s of SIGTERM")
            .expect("waiting for the server");
        assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
    }

    /// SIGKILL: no chance to finish anything.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("killing the server");
    }
}
