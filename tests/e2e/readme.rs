//! The README's quickstart, run as written (with this test's ports), so it cannot go stale.

use std::time::Duration;

use crate::support::{Backend, Destination, Server, destination::Mode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quickstart_works() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let script = readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|block| block.contains("gql()"))
        .expect("the quickstart block");
    let backend = Backend::sqlite();
    let server = Server::start(&backend).await;
    let sink = Destination::start(Mode::Ok).await;
    let script = script
        .replace("127.0.0.1:8080", &server.address.to_string())
        .replace("127.0.0.1:9000", &sink.address.to_string());
    // Twice against the same database: a newcomer pastes it again, and it works again.
    for run in 1..=2 {
        let output = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .env("HOOKPLANE_TOKEN", &server.token)
                .output(),
        )
        .await
        .expect("the quickstart finishes within a minute")
        .expect("bash runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "run {run}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let last = stdout.lines().last().unwrap_or_default();
        assert!(
            last.contains(r#""status":"SUCCESS""#) && last.contains(r#""CardCode":"7""#),
            "run {run}: the last line shows the entry SUCCESS with its mapped output: {stdout}"
        );
        // Each run sends its own order a second later than the last.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let delivered = sink.received();
    assert_eq!(delivered.len(), 2, "one delivery per run");
    assert!(delivered.iter().all(|d| d.path == "/erp/orders"));
    // The quickstart ends at the portal, where it says it is.
    assert!(readme.contains("open the portal at <http://127.0.0.1:8080/>"));
    let portal = reqwest::get(server.url("/")).await.expect("the portal");
    assert_eq!(portal.status(), 200);
    assert!(
        portal
            .text()
            .await
            .expect("a page")
            .contains("/assets/portal/app.js"),
        "the portal's page is served at /"
    );
    server.stop().await;
}
