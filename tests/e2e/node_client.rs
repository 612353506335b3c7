//! A third-party client: the `graphql-ws` npm package (installed from npm by this test, into
//! the test's temporary directory) subscribes to a resync bucket with a token in
//! `connection_init`, sees every entry, and is disconnected when its token is revoked.
//!
//! Skipped, with the reason printed, on a machine without Node.js and npm.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{ChildStdout, Command},
};

use crate::{
    flows,
    support::{Backend, Destination, Server, destination::Mode, graphql::gql_ok},
};

/// Entries sent once the subscription is known to be live.
const ENTRIES: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_ws_from_npm_sees_every_entry_and_is_cut_off_on_revoke() {
    let Some(script) = install_graphql_ws().await else {
        return;
    };
    let backend = Backend::sqlite();
    let server = Server::start(&backend).await;
    let destination = Destination::start(Mode::Ok).await;
    let connection = flows::connection(&server).await;
    let touchpoint = flows::published_touchpoint(
        &server,
        &connection,
        "orders",
        json!({ "destination": { "url": destination.url("/orders") } }),
    )
    .await;
    let created = gql_ok(
        &server,
        "mutation { createToken(input: { name: \"portal\", role: VIEWER }) { secret token { id } } }",
        json!({}),
    )
    .await;
    let secret = created["createToken"]["secret"].as_str().expect("a secret");
    let token_id = created["createToken"]["token"]["id"]
        .as_str()
        .expect("an id");

    let mut node = Command::new("node")
        .arg(&script)
        .args([&server.ws_url(), secret, &touchpoint])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut lines = BufReader::new(node.stdout.take().expect("piped")).lines();
    let connected = next_line(&mut lines, Duration::from_secs(15)).await;
    assert_eq!(
        connected,
        Some(json!({ "connected": true })),
        "the token is accepted"
    );

    // Until the subscription is live, a webhook may come too early to be seen: send probes
    // until one is, then the entries that must all be seen.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut probe = 0;
    'live: loop {
        assert!(
            Instant::now() < deadline,
            "the subscription never delivered"
        );
        probe += 1;
        flows::post_webhook(&client, &server, "orders", &json!({ "probe": probe })).await;
        while let Some(line) = next_line(&mut lines, Duration::from_millis(300)).await {
            if line["next"]["data"]["resyncBucket"]["kind"] == "CREATED" {
                break 'live;
            }
        }
    }
    for n in 0..ENTRIES {
        flows::post_webhook(&client, &server, "orders", &json!({ "n": n })).await;
    }
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.len() < probe - 1 + ENTRIES && Instant::now() < deadline {
        let Some(line) = next_line(&mut lines, Duration::from_secs(1)).await else {
            continue;
        };
        assert!(line.get("error").is_none(), "subscription error: {line}");
        let change = &line["next"]["data"]["resyncBucket"];
        if change["kind"] == "CREATED" {
            seen.insert(
                change["entry"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    let bucket = flows::bucket(&server, &touchpoint, None).await;
    assert_eq!(bucket.len(), probe + ENTRIES);
    // Every entry after the one that proved the subscription live.
    assert!(
        seen.len() >= ENTRIES,
        "the client saw {} of the {ENTRIES} entries sent once it was live",
        seen.len()
    );

    let revoked_at = Instant::now();
    gql_ok(
        &server,
        "mutation($id: ID!) { revokeToken(id: $id) { revokedAt } }",
        json!({ "id": token_id }),
    )
    .await;
    let closed = loop {
        let Some(line) = next_line(&mut lines, Duration::from_secs(6)).await else {
            panic!("the client was still connected 6 s after its token was revoked");
        };
        if line.get("closed").is_some() {
            break line;
        }
    };
    let took = revoked_at.elapsed();
    assert!(
        took <= Duration::from_secs(5),
        "disconnected {took:?} after the revocation: {closed}"
    );
    let exit = tokio::time::timeout(Duration::from_secs(5), node.wait())
        .await
        .expect("the client exits once disconnected")
        .expect("waiting for node");
    assert!(exit.success());
    eprintln!("graphql-ws client: disconnected {took:?} after revocation ({closed})");
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>, wait: Duration) -> Option<Value> {
    match tokio::time::timeout(wait, lines.next_line()).await {
        Ok(Ok(Some(line))) => Some(serde_json::from_str(&line).unwrap_or(json!({ "raw": line }))),
        _ => None,
    }
}

/// `npm install graphql-ws ws` into the test's temporary directory, with the client script
/// beside (ES modules find packages from where the script is); the script's path, or `None`
/// (printed) without Node.js and npm.
async fn install_graphql_ws() -> Option<PathBuf> {
    let version = |program: &'static str| async move {
        Command::new(program)
            .arg("--version")
            .output()
            .await
            .is_ok_and(|output| output.status.success())
    };
    if !version("node").await || !version("npm").await {
        eprintln!("skipping the graphql-ws client test: node and npm are not installed");
        return None;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("graphql-ws-client");
    std::fs::create_dir_all(&dir).expect("a directory for the npm packages");
    let output = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--prefix",
        ])
        .arg(&dir)
        .args(["graphql-ws@6", "ws@8", "graphql@17"])
        .output()
        .await
        .expect("npm runs");
    assert!(
        output.status.success(),
        "npm install graphql-ws ws graphql failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let script = dir.join("subscribe.mjs");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/node/subscribe.mjs"),
        &script,
    )
    .expect("the client script is copied beside its packages");
    Some(script)
}
