//! The `hookplane` binary: parses the command line and wires the library together.

/// jemalloc, tuned in `.cargo/config.toml` to give freed memory back to the system within a
/// second: after a burst of large answers the process shrinks back instead of keeping the
/// peak (glibc's arenas kept it). The evaluator processes run this binary too.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::{net::SocketAddr, num::NonZeroU32, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;

use clap::{Parser, Subcommand};
use hookplane::connections::ConnectionLimits;
use hookplane::graphql::{ApiLimits, HttpLimits, WebSocketLimits, slots::SubscriptionCaps};
use hookplane::{
    cluster::Cluster,
    server::{self, Role, ServeConfig},
    telemetry,
};
use hookplane_crds::config::RenderedConfig;
use hookplane_dataplane::{
    ingest::IngestConfig,
    retention::RetentionConfig,
    runtime::RenderedSource,
    sync::{Cidr, DestinationPolicy, PolicyMode, WorkerConfig},
};
use hookplane_mapping::{Limits, SandboxConfig};
use hookplane_store::{Store, StoreOptions};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "hookplane",
    version,
    about = "Real-time integration control plane"
)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(
        long,
        env = "HOOKPLANE_LOG",
        default_value = "info,sqlx=warn,sea_orm=warn",
        global = true
    )]
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

#[derive(clap::Args)]
struct DatabaseArgs {
    /// `sqlite://FILE` (created if missing), a plain file path, or `postgres://...`.
    #[arg(
        long,
        env = "HOOKPLANE_DATABASE_URL",
        default_value = "sqlite://hookplane.db"
    )]
    database_url: String,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address to listen on: `8080` (loopback), `localhost:8080`, `0.0.0.0:8080` (port 0
    /// picks a free port).
    #[arg(long, env = "HOOKPLANE_LISTEN", default_value = "127.0.0.1:8080",
          value_parser = hookplane::listen::parse)]
    listen: SocketAddr,
    #[command(flatten)]
    database: DatabaseArgs,
    /// HTTP connections served at once; more wait in the kernel's backlog.
    #[arg(long, env = "HOOKPLANE_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// File holding the key secrets are encrypted with in the database (created when
    /// missing). Default: beside a SQLite database (`hookplane.db.key`); with PostgreSQL,
    /// give one (the same file to every process), or secrets are stored in clear.
    #[arg(long, env = "HOOKPLANE_SECRET_KEY_FILE")]
    secret_key_file: Option<std::path::PathBuf>,
    /// Seconds a connection may take to send a request's headers, new or idle between
    /// requests (slowloris), before it is closed.
    #[arg(long, env = "HOOKPLANE_HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    header_timeout_seconds: u64,
    /// Largest request head (request line and headers), in bytes (431).
    #[arg(long, env = "HOOKPLANE_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    max_header_bytes: usize,
    /// Log a one-line traffic summary this often while webhooks or deliveries happen (0: never).
    #[arg(long, env = "HOOKPLANE_LOG_SUMMARY_SECONDS", default_value_t = 60)]
    log_summary_seconds: u64,
    #[command(flatten)]
    expressions: ExpressionArgs,
}

/// Limits on the GraphQL API (`serve` and `api`); each refusal has its code.
#[derive(clap::Args)]
struct ApiArgs {
    /// Largest GraphQL request body, in bytes (413 REQUEST_TOO_LARGE).
    #[arg(long, env = "HOOKPLANE_GRAPHQL_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    graphql_max_body_bytes: usize,
    /// Seconds a GraphQL request body may take to arrive (408 REQUEST_TIMEOUT).
    #[arg(
        long,
        env = "HOOKPLANE_GRAPHQL_BODY_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    graphql_body_timeout_seconds: u64,
    /// Largest GraphQL answer, in bytes (RESPONSE_TOO_LARGE).
    #[arg(long, env = "HOOKPLANE_GRAPHQL_MAX_RESPONSE_BYTES", default_value_t = 16 * 1024 * 1024)]
    graphql_max_response_bytes: usize,
    /// GraphQL requests per second per token (429 RATE_LIMITED with Retry-After).
    #[arg(long, env = "HOOKPLANE_GRAPHQL_RATE_PER_SECOND", default_value_t = NonZeroU32::new(50).expect("not zero"))]
    graphql_rate_per_second: NonZeroU32,
    /// Requests a token may send at once above its rate.
    #[arg(long, env = "HOOKPLANE_GRAPHQL_RATE_BURST", default_value_t = NonZeroU32::new(100).expect("not zero"))]
    graphql_rate_burst: NonZeroU32,
    /// GraphQL operations running at once; the rest wait for a turn (503 BUSY after the body
    /// timeout).
    #[arg(long, env = "HOOKPLANE_GRAPHQL_MAX_CONCURRENT", default_value_t = 2)]
    graphql_max_concurrent: usize,
    /// Deepest query nesting (QUERY_TOO_COMPLEX).
    #[arg(long, env = "HOOKPLANE_GRAPHQL_MAX_DEPTH", default_value_t = 16)]
    graphql_max_depth: usize,
    /// Largest query complexity: a field counts one, a list field its children once per
    /// entry it may return (`first`) (QUERY_TOO_COMPLEX).
    #[arg(
        long,
        env = "HOOKPLANE_GRAPHQL_MAX_COMPLEXITY",
        default_value_t = 20_000
    )]
    graphql_max_complexity: usize,
    /// Browser origins allowed to open GraphQL WebSockets besides the server's own, such as
    /// `https://portal.example.com` (403 ORIGIN_NOT_ALLOWED otherwise).
    #[arg(long, env = "HOOKPLANE_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// WebSocket connections open at once (503 TOO_MANY_CONNECTIONS).
    #[arg(long, env = "HOOKPLANE_MAX_WEBSOCKETS", default_value_t = 2_000)]
    max_websockets: usize,
    /// Subscriptions open at once on one WebSocket (TOO_MANY_SUBSCRIPTIONS).
    #[arg(
        long,
        env = "HOOKPLANE_MAX_SUBSCRIPTIONS_PER_CONNECTION",
        default_value_t = 100
    )]
    max_subscriptions_per_connection: usize,
    /// Subscriptions open at once with one token (TOO_MANY_SUBSCRIPTIONS).
    #[arg(
        long,
        env = "HOOKPLANE_MAX_SUBSCRIPTIONS_PER_TOKEN",
        default_value_t = 2_000
    )]
    max_subscriptions_per_token: usize,
    /// Origins whose pages may call /graphql from a browser (CORS), comma-separated, e.g.
    /// `https://portal.example.com`. Default: none (CORS off).
    #[arg(long, env = "HOOKPLANE_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    cors_origins: Vec<String>,
    /// Also accept OpenID Connect JWTs from this issuer (`iss`), verified with its JWKS.
    #[arg(long, env = "HOOKPLANE_OIDC_ISSUER", requires = "oidc_audience")]
    oidc_issuer: Option<String>,
    /// The audience (`aud`) a JWT must be for.
    #[arg(long, env = "HOOKPLANE_OIDC_AUDIENCE")]
    oidc_audience: Option<String>,
    /// Where the issuer's keys are (default: its discovery document's `jwks_uri`).
    #[arg(long, env = "HOOKPLANE_OIDC_JWKS_URL")]
    oidc_jwks_url: Option<String>,
    /// The claim with roles per organization: `{"<slug>": "<role>"}` or `["<slug>:<role>"]`.
    #[arg(
        long,
        env = "HOOKPLANE_OIDC_ROLES_CLAIM",
        default_value = "hookplane_roles"
    )]
    oidc_roles_claim: String,
    /// Fewest seconds between two fetches of the issuer's keys (a JWT with an unknown key id
    /// fetches them again).
    #[arg(
        long,
        env = "HOOKPLANE_OIDC_JWKS_MIN_REFRESH_SECONDS",
        default_value_t = 60
    )]
    oidc_jwks_min_refresh_seconds: u64,
}

/// An origin, `scheme://host[:port]`, as browsers send it (empty: none). Pure.
fn parse_origin(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(String::new());
    }
    let refused = || format!("{text:?} is not an origin: write scheme://host[:port]");
    let url = url::Url::parse(text).map_err(|_| refused())?;
    let bare = matches!(url.path(), "" | "/") && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
        return Err(refused());
    }
    Ok(url.origin().ascii_serialization())
}

impl ApiArgs {
    fn oidc(&self) -> Option<hookplane::auth::oidc::OidcConfig> {
        Some(hookplane::auth::oidc::OidcConfig {
            issuer: self.oidc_issuer.clone()?,
            audience: self.oidc_audience.clone()?,
            jwks_url: self.oidc_jwks_url.clone(),
            roles_claim: self.oidc_roles_claim.clone(),
            refresh_floor: Duration::from_secs(self.oidc_jwks_min_refresh_seconds),
        })
    }

    fn limits(self) -> ApiLimits {
        let Self {
            graphql_max_body_bytes,
            graphql_body_timeout_seconds,
            graphql_max_response_bytes,
            graphql_rate_per_second,
            graphql_rate_burst,
            graphql_max_concurrent,
            graphql_max_depth,
            graphql_max_complexity,
            allowed_origins,
            max_websockets,
            max_subscriptions_per_connection,
            max_subscriptions_per_token,
            oidc_issuer: _,
            oidc_audience: _,
            oidc_jwks_url: _,
            oidc_roles_claim: _,
            oidc_jwks_min_refresh_seconds: _,
            cors_origins,
        } = self;
        ApiLimits {
            http: HttpLimits {
                max_body_bytes: graphql_max_body_bytes,
                body_timeout: Duration::from_secs(graphql_body_timeout_seconds.max(1)),
                max_response_bytes: graphql_max_response_bytes,
                rate_per_second: graphql_rate_per_second,
                rate_burst: graphql_rate_burst,
                max_concurrent: graphql_max_concurrent,
            },
            websockets: WebSocketLimits {
                allowed_origins: allowed_origins
                    .into_iter()
                    .filter(|origin| !origin.trim().is_empty())
                    .collect(),
                subscriptions: SubscriptionCaps {
                    connections: max_websockets,
                    per_connection: max_subscriptions_per_connection,
                    per_token: max_subscriptions_per_token,
                },
            },
            max_depth: graphql_max_depth,
            max_complexity: graphql_max_complexity,
            cors_origins,
        }
    }
}

/// Webhook intake (`serve` and `receiver`).
#[derive(clap::Args)]
struct IntakeArgs {
    /// Largest accepted webhook body, in bytes.
    #[arg(long, env = "HOOKPLANE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Hours a delivery id keeps absorbing repeats of a webhook (longer than the source
    /// apps' retry schedules: Shopify hours, Salesforce 24 h, BigCommerce 48 h).
    #[arg(long, env = "HOOKPLANE_DEDUPE_WINDOW_HOURS", default_value_t = 72)]
    dedupe_window_hours: u64,
}

/// The sync worker and retention (`serve` and `worker`).
#[derive(clap::Args)]
struct DeliveryArgs {
    /// Seconds an event stays leased to a worker before another may claim it.
    #[arg(long, env = "HOOKPLANE_LEASE_SECONDS", default_value_t = 120)]
    lease_seconds: u64,
    /// Longest wait, in milliseconds, between the worker's looks at the bucket when nothing
    /// wakes it (new events, resyncs and retries coming due wake it, also from other
    /// processes on PostgreSQL).
    #[arg(long, env = "HOOKPLANE_WORKER_IDLE_POLL_MS", default_value_t = 1000)]
    worker_idle_poll_ms: u64,
    /// Days SUCCESS, FAILED and SKIPPED events and log entries are kept (UNPROCESSED
    /// events are never purged).
    #[arg(long, env = "HOOKPLANE_RETENTION_DAYS", default_value_t = 30)]
    retention_days: u64,
    /// Seconds between retention runs.
    #[arg(
        long,
        env = "HOOKPLANE_RETENTION_INTERVAL_SECONDS",
        default_value_t = 600
    )]
    retention_interval_seconds: u64,
    #[command(flatten)]
    destinations: DestinationArgs,
}

impl DeliveryArgs {
    fn worker(self, concurrency: usize, default_policy: PolicyMode) -> anyhow::Result<Worker> {
        let Self {
            lease_seconds,
            worker_idle_poll_ms,
            retention_days,
            retention_interval_seconds,
            destinations,
        } = self;
        Ok(Worker {
            config: WorkerConfig {
                concurrency,
                lease: Duration::from_secs(lease_seconds.max(1)),
                idle_poll: Duration::from_millis(worker_idle_poll_ms.max(10)),
                destinations: destinations.policy(default_policy)?,
            },
            retention: RetentionConfig {
                max_age: Duration::from_secs(retention_days.saturating_mul(24 * 3600)),
                interval: Duration::from_secs(retention_interval_seconds.max(1)),
                ..RetentionConfig::default()
            },
        })
    }
}

/// What a role runs besides the common parts: intake, delivery, neither or both.
#[derive(Default)]
struct Parts {
    api: Option<ApiArgs>,
    intake: Option<IntakeArgs>,
    worker: Option<Worker>,
    cluster: Option<Cluster>,
}

/// The sync worker's configuration and its retention.
struct Worker {
    config: WorkerConfig,
    retention: RetentionConfig,
}

/// Limits on evaluating the jq users write (mappings, filters, ordering keys, previews). A
/// touchpoint may set its own (`expressionLimits`), up to the maximum.
#[derive(clap::Args)]
struct ExpressionArgs {
    /// CPU time of one evaluation, in milliseconds.
    #[arg(long, env = "HOOKPLANE_EXPRESSION_TIME_MS", default_value_t = 50)]
    expression_time_ms: u64,
    /// Memory one evaluation may allocate, in MiB.
    #[arg(long, env = "HOOKPLANE_EXPRESSION_MEMORY_MIB", default_value_t = 64)]
    expression_memory_mib: u64,
    /// Size of a mapped output as JSON text, in KiB.
    #[arg(long, env = "HOOKPLANE_EXPRESSION_OUTPUT_KIB", default_value_t = 1024)]
    expression_output_kib: usize,
    /// The most CPU time a touchpoint may allow one evaluation, in milliseconds.
    #[arg(long, env = "HOOKPLANE_EXPRESSION_MAX_TIME_MS", default_value_t = 2000)]
    expression_max_time_ms: u64,
    /// The most memory a touchpoint may allow one evaluation, in MiB.
    #[arg(
        long,
        env = "HOOKPLANE_EXPRESSION_MAX_MEMORY_MIB",
        default_value_t = 256
    )]
    expression_max_memory_mib: u64,
    /// The largest mapped output a touchpoint may allow, in KiB.
    #[arg(
        long,
        env = "HOOKPLANE_EXPRESSION_MAX_OUTPUT_KIB",
        default_value_t = 8192
    )]
    expression_max_output_kib: usize,
    /// Evaluator processes, each running one evaluation at a time (0: one per CPU).
    #[arg(long, env = "HOOKPLANE_EVALUATORS", default_value_t = 0)]
    evaluators: usize,
}

impl ExpressionArgs {
    /// Evaluators are this binary, started as `hookplane evaluator`.
    fn sandbox(self) -> anyhow::Result<SandboxConfig> {
        let Self {
            expression_time_ms,
            expression_memory_mib,
            expression_output_kib,
            expression_max_time_ms,
            expression_max_memory_mib,
            expression_max_output_kib,
            evaluators,
        } = self;
        let limits = |time_ms: u64, memory_mib: u64, output_kib: usize| Limits {
            time: Duration::from_millis(time_ms.max(1)),
            memory: memory_mib.max(1).saturating_mul(1 << 20),
            output: output_kib.max(1).saturating_mul(1 << 10),
            ..Limits::default()
        };
        let defaults = limits(
            expression_time_ms,
            expression_memory_mib,
            expression_output_kib,
        );
        let max = limits(
            expression_max_time_ms,
            expression_max_memory_mib,
            expression_max_output_kib,
        );
        if defaults.capped(&max) != defaults {
            anyhow::bail!(
                "the --expression-* defaults must not exceed the --expression-max-* limits"
            );
        }
        let processes = match evaluators {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        };
        Ok(SandboxConfig {
            program: std::env::current_exe().context("locating this binary to run evaluators")?,
            args: vec!["evaluator".to_owned()],
            processes,
            defaults,
            max,
        })
    }
}

/// Which addresses deliveries (and OAuth2 token requests) may connect to, checked on the
/// address connected to after DNS resolution. Link-local and cloud metadata addresses and
/// Hookplane's own listeners are refused whatever these say.
#[derive(clap::Args)]
struct DestinationArgs {
    /// `permissive` allows loopback and private ranges, `strict` only public addresses (plus
    /// `--destination-allow`). Default: permissive for `serve`, strict for `worker`.
    #[arg(long, env = "HOOKPLANE_DESTINATION_POLICY", value_parser = ["permissive", "strict"])]
    destination_policy: Option<String>,
    /// CIDRs allowed even under `strict` (e.g. `10.1.0.0/16,fd00:1::/64`).
    #[arg(long, env = "HOOKPLANE_DESTINATION_ALLOW", value_delimiter = ',')]
    destination_allow: Vec<String>,
    /// CIDRs refused even under `permissive`; they win over `--destination-allow`.
    #[arg(long, env = "HOOKPLANE_DESTINATION_DENY", value_delimiter = ',')]
    destination_deny: Vec<String>,
}

impl DestinationArgs {
    /// The policy, with `default` when no mode is given.
    fn policy(self, default: PolicyMode) -> anyhow::Result<DestinationPolicy> {
        let Self {
            destination_policy,
            destination_allow,
            destination_deny,
        } = self;
        let mode = match destination_policy.as_deref() {
            None => default,
            Some("strict") => PolicyMode::Strict,
            Some(_) => PolicyMode::Permissive,
        };
        let cidrs = |list: Vec<String>, flag: &str| {
            list.iter()
                .filter(|cidr| !cidr.trim().is_empty())
                .map(|cidr| cidr.parse::<Cidr>().with_context(|| format!("--{flag}")))
                .collect::<anyhow::Result<Vec<_>>>()
        };
        Ok(DestinationPolicy {
            mode,
            allow: cidrs(destination_allow, "destination-allow")?,
            deny: cidrs(destination_deny, "destination-deny")?,
            own_listeners: Vec::new(),
        })
    }
}

#[derive(clap::Args)]
struct RenderedArgs {
    /// The rendered configuration file (the operator's ConfigMap); reloaded when it changes.
    #[arg(long, env = "HOOKPLANE_CONFIG", default_value = hookplane_crds::config::CONFIG_PATH)]
    config: PathBuf,
    /// Where referenced Secrets are mounted (`<dir>/<secret>/<key>`).
    #[arg(long, env = "HOOKPLANE_SECRETS_DIR", default_value = hookplane_crds::config::SECRETS_DIR)]
    secrets_dir: PathBuf,
    /// The `{org}` part of endpoint URLs (default: the connection's namespace).
    #[arg(long, env = "HOOKPLANE_ORGANIZATION")]
    organization: Option<String>,
}

#[derive(clap::Args)]
struct ClusterArgs {
    /// Cluster mode: publishing a touchpoint applies its Touchpoint and Connection resources,
    /// secrets become Kubernetes Secrets, and every resource of the namespace (kubectl-applied
    /// ones too) is mirrored into the portal. Uses the in-cluster service account, or
    /// KUBECONFIG / ~/.kube/config.
    #[arg(long, env = "HOOKPLANE_KUBERNETES", default_value_t = false)]
    kubernetes: bool,
    /// The namespace of the resources (default: the pod's, or the kubeconfig context's).
    #[arg(long, env = "HOOKPLANE_NAMESPACE", requires = "kubernetes")]
    namespace: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, the receiver and the sync worker in one process.
    Serve {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        intake: IntakeArgs,
        /// Events mapped and delivered at once (outcomes waiting for their commit: up to four
        /// times as many).
        #[arg(long, env = "HOOKPLANE_WORKER_CONCURRENCY", default_value_t = 32)]
        worker_concurrency: usize,
        #[command(flatten)]
        delivery: DeliveryArgs,
    },
    /// Kubernetes data plane: receive webhooks for the touchpoints of one rendered
    /// configuration (written by hookplane-operator).
    Receiver {
        #[command(flatten)]
        rendered: RenderedArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        intake: IntakeArgs,
    },
    /// The GraphQL API alone, over the shared database (on Kubernetes, beside the operator's
    /// receivers and workers, which do the intake and delivery).
    Api {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Kubernetes data plane: deliver the events of one rendered configuration's touchpoints.
    /// It delivers as many events at once as its connection's `worker.concurrency`.
    Worker {
        #[command(flatten)]
        rendered: RenderedArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        delivery: DeliveryArgs,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Manage API tokens: create (printed once), list, revoke.
    Token {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(subcommand)]
        command: hookplane::auth::cli::TokenCommand,
    },
    /// Print the GraphQL schema (SDL).
    Sdl,
    /// An evaluator process: evaluates jq requests on standard input under their limits
    /// (started by the server itself; not for interactive use).
    #[command(hide = true)]
    Evaluator,
    /// A destination for trying Hookplane out: prints every request and answers 200.
    Sink {
        /// Address to listen on: `9000`, `localhost:9000`, `0.0.0.0:9000`.
        #[arg(long, env = "HOOKPLANE_SINK_LISTEN", default_value = "127.0.0.1:9000",
              value_parser = hookplane::listen::parse)]
        listen: SocketAddr,
    },
}

fn main() -> ExitCode {
    let Cli {
        log,
        log_json,
        command,
    } = Cli::parse();
    match command {
        Command::Sdl => {
            print!("{}", hookplane::graphql::sdl());
            return ExitCode::SUCCESS;
        }
        Command::Evaluator => return hookplane_mapping::sandbox::serve(),
        _ => {}
    }
    telemetry::init_tracing(&log, log_json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            run,
            api,
            intake,
            worker_concurrency,
            delivery,
        } => {
            let parts = Parts {
                api: Some(api),
                intake: Some(intake),
                worker: Some(delivery.worker(worker_concurrency, PolicyMode::Permissive)?),
                cluster: None,
            };
            serve(Role::All, None, run, parts, |address| {
                println!("Hookplane listening on http://{address}");
                println!("GraphiQL: http://{address}/graphql");
            })
            .await
        }
        Command::Api { cluster, run, api } => {
            let cluster = if cluster.kubernetes {
                Some(connect_cluster(cluster.namespace).await?)
            } else {
                None
            };
            let parts = Parts {
                api: Some(api),
                cluster,
                ..Parts::default()
            };
            serve(Role::Api, None, run, parts, |address| {
                println!("Hookplane API listening on http://{address}");
                println!("GraphiQL: http://{address}/graphql");
            })
            .await
        }
        Command::Receiver {
            rendered,
            run,
            intake,
        } => {
            let parts = Parts {
                intake: Some(intake),
                ..Parts::default()
            };
            serve(Role::Receiver, Some(rendered), run, parts, |address| {
                println!("Hookplane receiver listening on http://{address}");
            })
            .await
        }
        Command::Worker {
            rendered,
            run,
            delivery,
        } => {
            // The connection sets how many deliveries its workers run at once.
            let json = std::fs::read_to_string(&rendered.config)
                .with_context(|| format!("reading {}", rendered.config.display()))?;
            let config = RenderedConfig::from_json(&json)
                .with_context(|| format!("parsing {}", rendered.config.display()))?;
            let concurrency = config.connection.spec.worker.concurrency.max(1) as usize;
            let parts = Parts {
                worker: Some(delivery.worker(concurrency, PolicyMode::Strict)?),
                ..Parts::default()
            };
            serve(Role::Worker, Some(rendered), run, parts, |address| {
                println!("Hookplane worker listening on http://{address}");
            })
            .await
        }
        Command::Migrate {
            database: DatabaseArgs { database_url },
        } => {
            let store = Store::open(&database_url, StoreOptions::default()).await?;
            store.migrate().await?;
            store.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::Token {
            database: DatabaseArgs { database_url },
            command,
        } => {
            let store = Store::open(&database_url, StoreOptions::default()).await?;
            store.migrate().await?;
            let result = hookplane::auth::cli::run(&store, command).await;
            store.close().await;
            result
        }
        Command::Sdl | Command::Evaluator => Ok(()),
        Command::Sink { listen } => {
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            hookplane::sink::run(listen, shutdown, |address| {
                println!("Sink listening on http://{address}");
            })
            .await
            .with_context(|| format!("the sink could not listen on {listen}"))?;
            Ok(())
        }
    }
}

/// A Kubernetes client from the environment, for cluster mode.
async fn connect_cluster(namespace: Option<String>) -> anyhow::Result<Cluster> {
    // kube's TLS needs one process-wide crypto provider; another may be compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster service account, or KUBECONFIG)")?;
    let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_owned());
    Ok(Cluster::new(client, namespace))
}

async fn serve(
    role: Role,
    rendered: Option<RenderedArgs>,
    run: RunArgs,
    parts: Parts,
    on_listening: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let RunArgs {
        listen,
        database: DatabaseArgs { database_url },
        log_summary_seconds,
        max_connections,
        secret_key_file,
        header_timeout_seconds,
        max_header_bytes,
        expressions,
    } = run;
    let Parts {
        api,
        intake,
        worker,
        cluster,
    } = parts;
    let sandbox = expressions.sandbox()?;
    let rendered = rendered.map(
        |RenderedArgs {
             config,
             secrets_dir,
             organization,
         }| RenderedSource {
            config,
            secrets_dir,
            organization,
        },
    );
    let (ingest, dedupe_window) = match intake {
        Some(IntakeArgs {
            max_body_bytes,
            dedupe_window_hours,
        }) => (
            IngestConfig { max_body_bytes },
            Duration::from_secs(dedupe_window_hours.saturating_mul(3600)),
        ),
        None => (
            IngestConfig::default(),
            StoreOptions::default().dedupe_window,
        ),
    };
    let (worker, retention) = match worker {
        Some(Worker { config, retention }) => (config, retention),
        None => (WorkerConfig::default(), RetentionConfig::default()),
    };
    let config = ServeConfig {
        role,
        rendered,
        listen,
        database_url,
        dedupe_window,
        ingest,
        worker,
        retention,
        sandbox,
        cluster,
        log_summary: Duration::from_secs(log_summary_seconds),
        oidc: api.as_ref().and_then(ApiArgs::oidc),
        api_limits: api.map(ApiArgs::limits).unwrap_or_default(),
        connection_limits: ConnectionLimits {
            max_connections,
            header_timeout: Duration::from_secs(header_timeout_seconds.max(1)),
            max_header_bytes,
            ..ConnectionLimits::default()
        },
        secret_key_file,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    server::serve(config, shutdown, on_listening).await?;
    Ok(())
}

/// Cancel `shutdown` on SIGINT or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
