//! A stateful in-memory Kubernetes API server over real HTTP, so that the real
//! `hookplane api --kubernetes` binary (and `kubectl`-like clients in tests) can run against it.
//!
//! Everything about the objects is real and comes from `kube-fake-client`: the state,
//! create/get/list/update/patch/delete, server-side apply with `managedFields` and 409
//! conflicts, `uid`, `generation`, `resourceVersion` (one global counter), the status
//! subresource, label and field selectors on LIST and the `Status` bodies of errors.
//!
//! This front adds what the fake lacks, a module each:
//! - `forward`: HTTP in front of the fake, with `Status` answers of its own and LISTs that carry
//!   the journal's resourceVersion. The axum server itself starts here, on
//!   `127.0.0.1:<free port>`.
//! - `journal`: every change as a watch event, each with a resourceVersion above all earlier ones.
//! - `watch`: WATCH from the journal, with selectors, bookmarks and timeouts.
//! - `request`: what a request addresses, read from its URI.
//!
//! Mutations, lists and watch starts take one lock, so the journal's order is the fake's order.
//!
//! Where the fake differs from a real API server, tests see the fake: every write bumps
//! `resourceVersion` (and every non-status write `generation`) even when nothing changed, so a
//! no-op apply is a MODIFIED event; server-side apply merges the applied fields in and never
//! removes fields a manager stopped applying; DELETE removes at once, ignoring finalizers.

mod forward;
mod journal;
mod request;
#[cfg(test)]
mod tests;
mod watch;

use std::{path::Path, sync::Arc};

use axum::Router;
use hookplane_crds::{Connection, Touchpoint};
use k8s_openapi::api::core::v1::Secret;
use tempfile::TempDir;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use self::{
    forward::{Front, handle},
    journal::Journal,
};

/// The server, its kubeconfig file, and clients for it. Dropping it stops the server and ends
/// every watch.
pub struct FakeKubeApi {
    url: String,
    namespace: String,
    kubeconfig: std::path::PathBuf,
    _dir: TempDir,
    shutdown: CancellationToken,
}

impl FakeKubeApi {
    /// Starts on 127.0.0.1:<free port>, knowing Touchpoint and Connection (both with the status
    /// subresource) and Secret.
    pub async fn start(namespace: &str) -> FakeKubeApi {
        // Any client of it (ours, or one a test builds from the kubeconfig) needs it, also
        // when the test runs alone in its process (cargo-nextest).
        install_crypto_provider();
        let fake = kube_fake_client::ClientBuilder::new()
            .with_resource::<Touchpoint>()
            .with_status_subresource::<Touchpoint>()
            .with_resource::<Connection>()
            .with_status_subresource::<Connection>()
            .with_resource::<Secret>()
            .with_return_managed_fields()
            .build()
            .await
            .expect("building the fake Kubernetes client");
        let shutdown = CancellationToken::new();
        let front = Front {
            fake,
            journal: Arc::new(Mutex::new(Journal::new())),
            shutdown: shutdown.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake Kubernetes API");
        let address = listener.local_addr().expect("local address");
        let app = Router::new().fallback(handle).with_state(front);
        let server =
            axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        tokio::spawn(async move { server.await });

        let url = format!("http://{address}");
        let dir = tempfile::tempdir().expect("a temporary directory for the kubeconfig");
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&url, namespace))
            .expect("writing the kubeconfig");
        FakeKubeApi {
            url,
            namespace: namespace.to_owned(),
            kubeconfig,
            _dir: dir,
            shutdown,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The default namespace of [`Self::client`] and of the kubeconfig's context.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A kubeconfig file: one cluster (`server: <url>`), one user without credentials and one
    /// context with `namespace: <namespace>`, the current one.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A real kube client talking HTTP to this server, default namespace [`Self::namespace`].
    pub async fn client(&self) -> kube::Client {
        install_crypto_provider();
        let url = self.url.parse().expect("the server URL is a valid URI");
        let mut config = kube::Config::new(url);
        config.default_namespace = self.namespace.clone();
        kube::Client::try_from(config).expect("building a kube client for the fake API")
    }
}

impl Drop for FakeKubeApi {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// kube's TLS stack needs a process-wide crypto provider once more than one is compiled in.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn kubeconfig_yaml(url: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster:
      server: {url}
users:
  - name: fake
    user: {{}}
contexts:
  - name: fake
    context:
      cluster: fake
      user: fake
      namespace: {namespace}
current-context: fake
"
    )
}
