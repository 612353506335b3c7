//! Test harness: the real `hookplane` binary, a real destination HTTP server, GraphQL over
//! HTTP and over a WebSocket, on SQLite and (when configured) PostgreSQL.

pub mod chaos;
pub mod destination;
pub mod graphql;
pub mod kube_api;
pub mod server;

use std::time::Duration;

pub use destination::Destination;
pub use graphql::{Subscription, gql_error_code, gql_ok, new_token, post_as};
pub use server::{Backend, Server};

/// Poll `check` until it returns `Some`, or panic after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Run a scenario on SQLite, and on PostgreSQL when `HOOKPLANE_TEST_POSTGRES_URL` is set.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::sqlite()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(backend) = $crate::support::Backend::postgres().await else {
                        return;
                    };
                    super::$name(backend).await;
                }
            }
        )*
    };
}

/// A process's resident set, in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server runs");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Held by tests that load the cores on purpose (the hostile corpus, the combined API
/// attacks, the portal's browser tests), so they do not run at the same time and skew each
/// other's timings.
pub static CPU_HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
