//! The `hookplane` binary: parses the command line and wires the library together.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use hookplane::{
    ingest::IngestConfig,
    server::{self, RetentionConfig, ServeConfig},
    sync::WorkerConfig,
    telemetry,
};
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

#[derive(Subcommand)]
enum Command {
    /// Run the API, the receiver and the sync worker in one process.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, env = "HOOKPLANE_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        database: DatabaseArgs,
        /// Largest accepted webhook body, in bytes.
        #[arg(long, env = "HOOKPLANE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
        max_body_bytes: usize,
        /// Events delivered at once.
        #[arg(long, env = "HOOKPLANE_WORKER_CONCURRENCY", default_value_t = 32)]
        worker_concurrency: usize,
        /// Seconds an event stays leased to a worker before another may claim it.
        #[arg(long, env = "HOOKPLANE_LEASE_SECONDS", default_value_t = 120)]
        lease_seconds: u64,
        /// Hours a delivery id keeps absorbing repeats of a webhook (longer than the source
        /// apps' retry schedules: Shopify hours, Salesforce 24 h, BigCommerce 48 h).
        #[arg(long, env = "HOOKPLANE_DEDUPE_WINDOW_HOURS", default_value_t = 72)]
        dedupe_window_hours: u64,
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
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Print the GraphQL schema (SDL).
    Sdl,
    /// A destination for trying Hookplane out: prints every request and answers 200.
    Sink {
        /// Address to listen on.
        #[arg(long, env = "HOOKPLANE_SINK_LISTEN", default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
    },
}

fn main() -> ExitCode {
    let Cli {
        log,
        log_json,
        command,
    } = Cli::parse();
    if let Command::Sdl = command {
        print!("{}", hookplane::graphql::sdl());
        return ExitCode::SUCCESS;
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
            listen,
            database: DatabaseArgs { database_url },
            max_body_bytes,
            worker_concurrency,
            lease_seconds,
            dedupe_window_hours,
            retention_days,
            retention_interval_seconds,
        } => {
            let config = ServeConfig {
                listen,
                database_url,
                dedupe_window: Duration::from_secs(dedupe_window_hours.saturating_mul(3600)),
                ingest: IngestConfig { max_body_bytes },
                worker: WorkerConfig {
                    concurrency: worker_concurrency,
                    lease: Duration::from_secs(lease_seconds.max(1)),
                    ..WorkerConfig::default()
                },
                retention: RetentionConfig {
                    max_age: Duration::from_secs(retention_days.saturating_mul(24 * 3600)),
                    interval: Duration::from_secs(retention_interval_seconds.max(1)),
                    ..RetentionConfig::default()
                },
            };
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            server::serve(config, shutdown, |address| {
                println!("Hookplane listening on http://{address}");
                println!("GraphiQL: http://{address}/graphql");
            })
            .await?;
            Ok(())
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
        Command::Sdl => Ok(()),
        Command::Sink { listen } => {
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            hookplane::sink::run(listen, shutdown, |address| {
                println!("Sink listening on http://{address}");
            })
            .await?;
            Ok(())
        }
    }
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
