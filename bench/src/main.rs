//! `hookplane-bench`: measures the real `hookplane` binary through its public interfaces
//! (webhooks over HTTP, GraphQL over HTTP and WebSocket, a real destination) and prints one
//! JSON line per scenario with its figures, its targets, and its ratio to a baseline measured
//! in the same run on the same machine.
//!
//! Build both binaries first: `cargo build --release -p hookplane -p hookplane-bench`.
//! Load goes to loopback addresses only and every run is bounded in count and time.

mod bare;
mod child;
mod client;
mod scenarios;
mod sink;
mod stats;
mod workload;
mod ws;

use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::scenarios::{Run, Settings};

#[derive(Parser)]
#[command(
    name = "hookplane-bench",
    about = "Benchmarks of hookplane serve against baselines measured in the same run"
)]
struct Cli {
    /// Run each scenario for a few seconds, with fewer subscribers (what CI runs).
    #[arg(long, env = "HOOKPLANE_BENCH_QUICK", global = true)]
    quick: bool,
    /// Seconds each measured run lasts (default 8, or 2 with --quick).
    #[arg(long, env = "HOOKPLANE_BENCH_DURATION", global = true)]
    duration: Option<f64>,
    /// Concurrent requests in the ingest scenario.
    #[arg(
        long,
        env = "HOOKPLANE_BENCH_CONCURRENCY",
        default_value_t = 64,
        global = true
    )]
    concurrency: usize,
    /// Webhooks per second in the end-to-end scenario's fixed-rate run.
    #[arg(
        long,
        env = "HOOKPLANE_BENCH_RATE",
        default_value_t = 2000.0,
        global = true
    )]
    rate: f64,
    /// WebSocket subscribers in the fan-out scenario (default 1000, or 100 with --quick).
    #[arg(long, env = "HOOKPLANE_BENCH_SUBSCRIBERS", global = true)]
    subscribers: Option<usize>,
    /// Webhooks per second during the fan-out scenario (default 200, or 50 with --quick).
    #[arg(long, env = "HOOKPLANE_BENCH_FANOUT_RATE", global = true)]
    fanout_rate: Option<f64>,
    /// The `hookplane` binary (default: next to this executable).
    #[arg(long, env = "HOOKPLANE_BENCH_BIN", global = true)]
    hookplane_bin: Option<PathBuf>,
    /// A PostgreSQL server for the postgres scenario (`postgres://user@host:port/db`); each
    /// run creates a fresh database there and drops it afterwards.
    #[arg(long, env = "HOOKPLANE_BENCH_POSTGRES_URL", global = true)]
    postgres_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    /// Every scenario below, in order.
    All,
    /// Signed webhooks at fixed concurrency against SQLite, vs a bare axum server.
    Ingest,
    /// The same with Auto-sync on: intake vs the bare server, and the share delivered within
    /// 2 s after the window.
    IngestSync,
    /// A stored backlog delivered with intake idle: deliveries per second.
    Backlog,
    /// Webhook -> 20-field mapping -> destination, open loop at a fixed rate, and a ramp.
    E2e,
    /// The 20-field mapping in-process, vs serde_json parse and serialize.
    Mapping,
    /// WebSocket subscribers on one touchpoint's bucket while webhooks arrive.
    Fanout,
    /// Resident memory idle and under load; start-up time to the first accepted webhook.
    Footprint,
    /// Ingest and end-to-end on PostgreSQL.
    Postgres,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Scenario(Scenario),
    /// The baseline server (started by the benchmark itself).
    #[command(hide = true)]
    BareServer {
        #[arg(long)]
        sink: String,
    },
}

fn main() -> ExitCode {
    let Cli {
        quick,
        duration,
        concurrency,
        rate,
        subscribers,
        fanout_rate,
        hookplane_bin,
        postgres_url,
        command,
    } = Cli::parse();
    let scenario = match command {
        Command::BareServer { sink } => {
            return match bare::run(sink) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Scenario(scenario) => scenario,
    };
    let hookplane = match child::hookplane_binary(hookplane_bin.as_deref()) {
        Ok(path) => path,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let default_duration = if quick { 2.0 } else { 8.0 };
    let settings = Settings {
        quick,
        duration: Duration::from_secs_f64(duration.unwrap_or(default_duration).max(0.2)),
        concurrency: concurrency.max(1),
        rate: rate.max(1.0),
        subscribers: subscribers.unwrap_or(if quick { 100 } else { 1000 }).max(1),
        fanout_rate: fanout_rate
            .unwrap_or(if quick { 50.0 } else { 200.0 })
            .max(1.0),
        hookplane,
        postgres_url,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let failed = runtime.block_on(run_all(scenario, settings));
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Run the chosen scenarios, printing each line as it is ready; true if any failed.
async fn run_all(scenario: Scenario, settings: Settings) -> bool {
    let chosen: &[Scenario] = match scenario {
        Scenario::All => &[
            Scenario::Ingest,
            Scenario::IngestSync,
            Scenario::Backlog,
            Scenario::E2e,
            Scenario::Mapping,
            Scenario::Fanout,
            Scenario::Footprint,
            Scenario::Postgres,
        ],
        _ => std::slice::from_ref(&scenario),
    };
    let mut run = Run::new(settings);
    let mut failed = false;
    let started = std::time::Instant::now();
    for scenario in chosen {
        let name = format!("{scenario:?}").to_lowercase();
        eprintln!(
            "== {name} ({:.0} s so far)",
            started.elapsed().as_secs_f64()
        );
        let lines = match scenario {
            Scenario::Ingest => run.ingest().await.map(|l| vec![l]),
            Scenario::IngestSync => run.ingest_sync().await.map(|l| vec![l]),
            Scenario::Backlog => run.backlog().await.map(|l| vec![l]),
            Scenario::E2e => run.e2e().await.map(|l| vec![l]),
            Scenario::Mapping => run.mapping().await.map(|l| vec![l]),
            Scenario::Fanout => run.fanout().await.map(|l| vec![l]),
            Scenario::Footprint => run.footprint().await.map(|l| vec![l]),
            Scenario::Postgres => run.postgres().await,
            Scenario::All => Ok(vec![]),
        };
        match lines {
            Ok(lines) => lines.iter().for_each(print_line),
            Err(error) => {
                failed = true;
                print_line(&json!({ "scenario": name, "error": format!("{error:#}") }));
            }
        }
    }
    eprintln!("== done in {:.0} s", started.elapsed().as_secs_f64());
    failed
}

fn print_line(line: &Value) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout leaves nobody to tell.
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}
