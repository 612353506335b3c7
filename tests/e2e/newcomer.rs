//! The first five minutes, through the binary: what a newcomer types is accepted, and what
//! goes wrong says where, why and what to do, in one line.

use std::{
    net::TcpListener,
    process::{Command, Output},
    time::{Duration, Instant},
};

const BINARY: &str = env!("CARGO_BIN_EXE_hookplane");

fn hookplane(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(BINARY)
        .args(args)
        .current_dir(dir)
        .env("HOOKPLANE_LOG", "warn")
        .output()
        .expect("the hookplane binary runs")
}

/// What the process said on standard error, as text.
fn said(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The error lines (`error: ...`) of a failed run.
fn error_lines(output: &Output) -> Vec<String> {
    said(output)
        .lines()
        .filter(|line| line.starts_with("error:"))
        .map(str::to_owned)
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port()
}

#[test]
fn an_explicit_rwc_mode_creates_the_database_and_rw_does_not() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let created = hookplane(
        &["migrate", "--database-url", "sqlite://data/hp.db?mode=rwc"],
        dir.path(),
    );
    assert!(created.status.success(), "{}", said(&created));
    assert!(dir.path().join("data/hp.db").exists());

    let refused = hookplane(
        &["migrate", "--database-url", "sqlite://other/hp.db?mode=rw"],
        dir.path(),
    );
    assert!(!refused.status.success());
    assert!(
        !dir.path().join("other").exists(),
        "mode=rw creates nothing"
    );
    let lines = error_lines(&refused);
    assert_eq!(lines.len(), 1, "{}", said(&refused));
    assert!(
        lines[0].contains("other/hp.db") && lines[0].contains("mode=rwc"),
        "{}",
        lines[0]
    );
}

#[test]
fn an_unreachable_postgres_fails_fast_in_one_line_naming_where_and_what_to_do() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let started = Instant::now();
    let output = hookplane(&["serve", "--database-url", &url], dir.path());
    assert!(started.elapsed() < Duration::from_secs(10), "fails fast");
    assert!(!output.status.success());
    let lines = error_lines(&output);
    assert_eq!(lines.len(), 1, "one line: {}", said(&output));
    let line = &lines[0];
    for part in [
        format!("127.0.0.1:{port}"),
        "\"test\"".to_owned(),
        "refused".to_owned(),
        "is PostgreSQL running".to_owned(),
    ] {
        assert!(line.contains(&part), "{part:?} in {line}");
    }
}

#[test]
fn a_missing_postgres_database_says_how_to_create_it() {
    let Ok(url) = std::env::var("HOOKPLANE_TEST_POSTGRES_URL") else {
        eprintln!("skipped: HOOKPLANE_TEST_POSTGRES_URL is unset");
        return;
    };
    let mut missing = url::Url::parse(&url).expect("a URL");
    missing.set_path("/hookplane_no_such_database");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let output = hookplane(&["migrate", "--database-url", missing.as_str()], dir.path());
    assert!(!output.status.success());
    let lines = error_lines(&output);
    assert_eq!(lines.len(), 1, "one line: {}", said(&output));
    assert!(
        lines[0].contains("does not exist")
            && lines[0].contains("createdb")
            && lines[0].contains("hookplane_no_such_database"),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn listen_takes_a_port_alone_or_a_host_name() {
    for listen in [
        free_port().to_string(),
        format!("localhost:{}", free_port()),
    ] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut child = tokio::process::Command::new(BINARY)
            .args(["serve", "--listen", &listen, "--database-url", "hp.db"])
            .current_dir(dir.path())
            .env("HOOKPLANE_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("serve starts");
        let stdout = child.stdout.take().expect("piped");
        let banner = tokio::time::timeout(Duration::from_secs(30), async {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Some(line) = lines.next_line().await.expect("stdout") {
                if line.starts_with("Hookplane listening on") {
                    // Keep reading, so the server never writes to a closed pipe.
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    return line;
                }
            }
            panic!("serve --listen {listen} exited before listening");
        })
        .await
        .expect("listening within 30 s");
        let port = listen.rsplit(':').next().expect("a port");
        assert!(banner.ends_with(&format!(":{port}")), "{banner}");
        let healthz = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .expect("healthz");
        assert_eq!(healthz.status(), 200);
        child.kill().await.expect("stopped");
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let refused = hookplane(&["serve", "--listen", "localhost:http"], dir.path());
    assert!(!refused.status.success());
    assert!(
        said(&refused).contains("not a port number"),
        "{}",
        said(&refused)
    );
}

#[test]
fn a_sink_whose_port_is_taken_names_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = taken.local_addr().expect("an address");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let output = hookplane(&["sink", "--listen", &address.to_string()], dir.path());
    assert!(!output.status.success());
    let lines = error_lines(&output);
    assert_eq!(lines.len(), 1, "{}", said(&output));
    assert!(
        lines[0].contains(&address.to_string()) && lines[0].contains("in use"),
        "{}",
        lines[0]
    );
}

/// At the default level the server says what happened: one line per publish, one per failed
/// event, and a summary of the traffic while it flows.
#[tokio::test]
async fn the_default_log_tells_what_happened() {
    use crate::{
        flows,
        support::{Backend, Destination, Server, destination::Mode, eventually},
    };

    let backend = Backend::sqlite();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = dir.path().join("hookplane.log");
    let server = Server::start_logging_to(&backend, &["--log-summary-seconds", "1"], &log).await;
    let destination = Destination::start(Mode::RejectWhere("id", 2)).await;
    let connection = flows::connection(&server).await;
    let touchpoint = flows::published_touchpoint(
        &server,
        &connection,
        "orders",
        serde_json::json!({ "destination": { "url": destination.url("/erp") } }),
    )
    .await;
    let client = reqwest::Client::new();
    for id in [1, 2] {
        let (status, _) =
            flows::post_webhook(&client, &server, "orders", &serde_json::json!({ "id": id })).await;
        assert_eq!(status, 200);
    }
    let lines = eventually(Duration::from_secs(20), "the log to tell it all", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        async move {
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            let has = |needle: &str| lines.iter().any(|line| line.contains(needle));
            (has("published \"orders\" generation 1")
                && has("event failed")
                && has("summary: 2 webhooks received, 1 delivered, 1 failed"))
            .then_some(lines)
        }
    })
    .await;
    let failed = lines
        .iter()
        .find(|line| line.contains("event failed"))
        .expect("checked above");
    assert!(
        failed.contains("WARN") && failed.contains(&touchpoint),
        "{failed}"
    );
    server.stop().await;
}

/// `--help` of each role lists only the flags it uses.
#[test]
fn each_role_shows_only_its_own_flags() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let flags = |role: &str| {
        let help = hookplane(&[role, "--help"], dir.path());
        assert!(help.status.success());
        String::from_utf8_lossy(&help.stdout)
            .split_whitespace()
            .filter(|word| word.starts_with("--"))
            .map(|word| word.trim_end_matches(',').to_owned())
            .collect::<Vec<_>>()
    };
    let intake = ["--max-body-bytes", "--dedupe-window-hours"];
    let delivery = [
        "--lease-seconds",
        "--worker-idle-poll-ms",
        "--retention-days",
        "--retention-interval-seconds",
        "--destination-policy",
    ];
    let has = |list: &[String], flag: &str| list.iter().any(|f| f == flag);
    let serve = flags("serve");
    for flag in intake
        .iter()
        .chain(&delivery)
        .chain(&["--worker-concurrency"])
    {
        assert!(has(&serve, flag), "serve uses {flag}");
    }
    let api = flags("api");
    for flag in intake
        .iter()
        .chain(&delivery)
        .chain(&["--worker-concurrency"])
    {
        assert!(!has(&api, flag), "api does not use {flag}");
    }
    let receiver = flags("receiver");
    for flag in intake {
        assert!(has(&receiver, flag), "receiver uses {flag}");
    }
    for flag in delivery.iter().chain(&["--worker-concurrency"]) {
        assert!(!has(&receiver, flag), "receiver does not use {flag}");
    }
    let worker = flags("worker");
    for flag in delivery {
        assert!(has(&worker, flag), "worker uses {flag}");
    }
    for flag in intake.iter().chain(&["--worker-concurrency"]) {
        assert!(!has(&worker, flag), "worker does not use {flag}");
    }
}
