//! The `hookplane-operator` binary: parses the command line and wires the library together.

use std::{
    collections::BTreeMap, net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc,
    time::Duration,
};

use clap::{Parser, Subcommand};
use hookplane_operator::{
    backlog::DatabaseBacklog,
    build::ReceiverIngress,
    controller, leader,
    metrics::Metrics,
    reconcile::{Context, SystemClock, claim::Claim},
    render, server,
    settings::{DatabaseUrl, Settings},
    wakeups,
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "hookplane-operator",
    version,
    about = "Runs Hookplane Connections and Touchpoints on Kubernetes"
)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "HOOKPLANE_LOG", default_value = "info", global = true)]
    log: String,
    /// Log as JSON lines.
    #[arg(
        long,
        env = "HOOKPLANE_LOG_JSON",
        default_value_t = false,
        global = true
    )]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile Connections and Touchpoints (only while holding the leader Lease).
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
    /// Print, as YAML, the objects the operator would build for the Connections, Touchpoints
    /// and Secrets in FILES (no cluster needed; the backlog is taken as empty, and the
    /// database Secret of each connection, which holds the URL, is left out).
    Render {
        #[command(flatten)]
        data_plane: DataPlaneArgs,
        /// YAML files (several documents each allowed).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    data_plane: DataPlaneArgs,
    /// PostgreSQL URL of the data plane's database: the backlog is counted there, and its
    /// change relay (`LISTEN hookplane_changes`) wakes connections whose backlog moved.
    #[arg(long, env = "HOOKPLANE_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "HOOKPLANE_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "HOOKPLANE_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Seconds between reconciles of a connection without changes: the fallback when change
    /// notifications are missed.
    #[arg(long, env = "HOOKPLANE_BACKLOG_POLL_SECONDS", default_value_t = 30)]
    backlog_poll_seconds: u64,
    /// Milliseconds the change relay's notifications are gathered before the connections
    /// they concern are reconciled (one wake per window however many events a burst holds).
    #[arg(long, env = "HOOKPLANE_BACKLOG_WAKE_MILLIS", default_value_t = 500)]
    backlog_wake_millis: u64,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "HOOKPLANE_LEASE_NAME",
        default_value = "hookplane-operator"
    )]
    lease_name: String,
    /// Namespace of the Lease (default: the client's namespace, i.e. the operator pod's).
    #[arg(long, env = "HOOKPLANE_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "HOOKPLANE_LEASE_SECONDS", default_value_t = 15)]
    lease_seconds: u64,
    /// This replica's identity in the Lease and in Events (default: `$HOSTNAME`).
    #[arg(long, env = "HOOKPLANE_POD_NAME")]
    identity: Option<String>,
}

/// What shapes the receiver and worker objects.
#[derive(clap::Args)]
struct DataPlaneArgs {
    /// The Hookplane image receivers and workers run.
    #[arg(
        long,
        env = "HOOKPLANE_IMAGE",
        default_value = "ghcr.io/hookplane/hookplane:latest"
    )]
    image: String,
    /// `imagePullPolicy` of receivers and workers.
    #[arg(
        long,
        env = "HOOKPLANE_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    image_pull_policy: String,
    /// Public base URL webhooks arrive at, for `status.endpointUrl`.
    #[arg(long, env = "HOOKPLANE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Organization slug in endpoint URLs, for `status.endpointUrl`.
    #[arg(long, env = "HOOKPLANE_ORGANIZATION")]
    organization: Option<String>,
    /// Service account of receiver and worker pods.
    #[arg(long, env = "HOOKPLANE_DATA_PLANE_SERVICE_ACCOUNT")]
    data_plane_service_account: Option<String>,
    /// Make an Ingress per connection routing its touchpoints' webhook paths
    /// (`/hooks/<organization>/<endpoint>`, Exact) to its receivers.
    #[arg(long, env = "HOOKPLANE_RECEIVER_INGRESS", default_value_t = false)]
    receiver_ingress: bool,
    /// `ingressClassName` of those Ingresses (default: the cluster's default class).
    #[arg(long, env = "HOOKPLANE_RECEIVER_INGRESS_CLASS")]
    receiver_ingress_class: Option<String>,
    /// Host of those Ingresses (default: every host).
    #[arg(long, env = "HOOKPLANE_RECEIVER_INGRESS_HOST")]
    receiver_ingress_host: Option<String>,
    /// Annotations of those Ingresses: a JSON object of strings.
    #[arg(long, env = "HOOKPLANE_RECEIVER_INGRESS_ANNOTATIONS", value_parser = annotations)]
    receiver_ingress_annotations: Option<BTreeMap<String, String>>,
}

fn annotations(text: &str) -> Result<BTreeMap<String, String>, String> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    serde_json::from_str(text).map_err(|e| format!("not a JSON object of strings: {e}"))
}

impl DataPlaneArgs {
    fn settings(self, backlog_poll: Duration, database_url: Option<String>) -> Settings {
        let Self {
            image,
            image_pull_policy,
            public_url,
            organization,
            data_plane_service_account,
            receiver_ingress,
            receiver_ingress_class,
            receiver_ingress_host,
            receiver_ingress_annotations,
        } = self;
        Settings {
            image,
            image_pull_policy,
            database_url: database_url.map(DatabaseUrl),
            public_base_url: non_empty(public_url),
            organization: non_empty(organization),
            service_account: non_empty(data_plane_service_account),
            receiver_ingress: receiver_ingress.then(|| ReceiverIngress {
                class_name: non_empty(receiver_ingress_class),
                host: non_empty(receiver_ingress_host),
                annotations: receiver_ingress_annotations.unwrap_or_default(),
            }),
            backlog_poll,
        }
    }
}

/// An optional flag set to an empty string (e.g. an empty environment variable from a Helm
/// value) means "not set".
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn main() -> ExitCode {
    let Cli {
        log,
        log_json,
        command,
    } = Cli::parse();
    init_tracing(&log, log_json);
    match command {
        Command::Crd => {
            print!("{}", hookplane_crds::manifest::yaml());
            ExitCode::SUCCESS
        }
        Command::Render { data_plane, files } => render_files(data_plane, &files),
        Command::Run(args) => {
            let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime starts");
            match runtime.block_on(run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "hookplane-operator stops");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_tracing(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn render_files(data_plane: DataPlaneArgs, files: &[PathBuf]) -> ExitCode {
    let mut documents = Vec::new();
    for file in files {
        let parsed = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                serde_saphyr::from_multiple::<serde_json::Value>(&text).map_err(|e| e.to_string())
            });
        match parsed {
            Ok(docs) => documents.extend(docs),
            Err(error) => {
                eprintln!("{}: {error}", file.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let settings = data_plane.settings(Duration::from_secs(30), None);
    match render::render(&documents, &settings) {
        Ok((objects, problems)) => {
            for problem in &problems {
                eprintln!("warning: {problem}");
            }
            let yaml = serde_saphyr::to_string_multiple(&objects).expect("objects serialize");
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "{error}: {}",
                std::error::Error::source(&error)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    let RunArgs {
        data_plane,
        database_url,
        namespace,
        listen,
        backlog_poll_seconds,
        backlog_wake_millis,
        lease_name,
        lease_namespace,
        lease_seconds,
        identity,
    } = args;
    // More than one rustls provider may be compiled in; kube's TLS needs one chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default().await?;
    let namespace = non_empty(namespace);
    let identity = non_empty(identity)
        .or_else(|| non_empty(std::env::var("HOSTNAME").ok()))
        .unwrap_or_else(|| format!("hookplane-operator-{}", std::process::id()));
    let settings = data_plane.settings(
        Duration::from_secs(backlog_poll_seconds.max(1)),
        Some(database_url.clone()),
    );
    let metrics = Arc::new(Metrics::new());
    let pool = DatabaseBacklog::connect(&database_url, Duration::from_secs(10))?;
    let backlog = Arc::new(DatabaseBacklog::new(pool.clone(), Duration::from_secs(5)));
    let lease_namespace =
        non_empty(lease_namespace).unwrap_or_else(|| client.default_namespace().to_owned());
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            settings,
            backlog.clone(),
            metrics.clone(),
            Arc::new(SystemClock),
            Some(identity.clone()),
        )
        .claiming(Claim {
            lease_namespace: lease_namespace.clone(),
            lease_name: lease_name.clone(),
        }),
    );

    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));

    let (leading, mut leading_rx) = watch::channel(false);
    let (reachable, reachable_rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "serving /metrics, /healthz and /readyz");
    let server = axum::serve(listener, server::router(metrics.clone(), reachable_rx))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let server = tokio::spawn(async move { server.await });

    let lease_duration = Duration::from_secs(lease_seconds.max(3));
    let lock = leader::LeaseLock::new(
        Api::<Lease>::namespaced(client.clone(), &lease_namespace),
        &lease_name,
        &identity,
        lease_duration,
    );
    let mut campaign = tokio::spawn(leader::campaign(
        lock,
        lease_duration / 3,
        lease_duration * 2 / 3,
        leading,
        reachable,
        shutdown.clone(),
    ));

    tracing::info!(%identity, lease = %lease_name, namespace = %lease_namespace, "waiting to lead");
    let outcome = tokio::select! {
        led = leading_rx.wait_for(|leading| *leading) => led.map(drop).map_err(|e| e.to_string()),
        () = shutdown.cancelled() => Err("stopped before leading".to_owned()),
        ended = &mut campaign => Err(format!("leader election ended: {ended:?}")),
    };
    let result = match outcome {
        Ok(()) => {
            metrics.leader.set(1);
            let (wake, wakes) = mpsc::channel(16);
            tokio::spawn(wakeups::listen(
                pool,
                backlog,
                Duration::from_millis(backlog_wake_millis),
                wake,
                metrics.clone(),
                shutdown.clone(),
            ));
            let wakes = ReceiverStream::new(wakes);
            let controllers = controller::run(ctx, namespace, wakes, shutdown.clone());
            tokio::select! {
                () = controllers => Ok(()),
                ended = &mut campaign => match ended {
                    Ok(Err(lost)) => Err(Box::new(lost) as Box<dyn std::error::Error>),
                    _ => Ok(()),
                },
            }
        }
        Err(reason) => {
            tracing::info!(%reason, "not leading");
            Ok(())
        }
    };
    metrics.leader.set(0);
    shutdown.cancel();
    let _ = campaign.await;
    let _ = server.await;
    result
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
    shutdown.cancel();
}
