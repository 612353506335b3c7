//! Restart on the same database: everything is still there and waiting events continue.

use std::time::Duration;

use serde_json::json;

use crate::{
    flows::{self, SET_AUTO_SYNC, order, order_mapping, post_webhook},
    on_both_backends,
    support::{Backend, Destination, Server, destination::Mode, eventually, gql_ok},
};

on_both_backends!(restart_keeps_everything_and_continues);

async fn restart_keeps_everything_and_continues(backend: Backend) {
    let destination = Destination::start(Mode::Ok).await;
    let server = Server::start(&backend).await;
    let connection = flows::connection(&server).await;
    let touchpoint = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "Orders",
            "source": { "endpoint": "orders", "verification": { "scheme": "none" } },
            "destination": { "url": destination.url("/erp") },
            "mapping": order_mapping(),
        }),
    )
    .await;
    flows::publish(&server, &touchpoint).await;
    let client = reqwest::Client::new();
    for number in 1..=10 {
        let (status, _) = post_webhook(&client, &server, "orders", &order(number, false)).await;
        assert_eq!(status, 200);
    }
    // Auto-sync is off: the events wait as UNPROCESSED.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(flows::counts(&server, &touchpoint).await["unprocessed"], 10);
    assert!(destination.received().is_empty());
    let logs_before = flows::logs(&server, &touchpoint).await.len();
    server.stop().await;

    let server = Server::start(&backend).await;
    let data = gql_ok(
        &server,
        "query($id: ID!) { touchpoint(id: $id) { name endpointUrl publishedGeneration autoSync } }",
        json!({ "id": touchpoint }),
    )
    .await;
    assert_eq!(
        data["touchpoint"],
        json!({
            "name": "Orders",
            "endpointUrl": "https://hooks.acme.test/hooks/acme/orders",
            "publishedGeneration": 1,
            "autoSync": false,
        })
    );
    assert_eq!(
        flows::bucket(&server, &touchpoint, Some("UNPROCESSED"))
            .await
            .len(),
        10
    );
    assert_eq!(flows::logs(&server, &touchpoint).await.len(), logs_before);

    // The restarted server still receives, and auto-sync drains everything.
    let (status, _) = post_webhook(&client, &server, "orders", &order(11, false)).await;
    assert_eq!(status, 200);
    gql_ok(
        &server,
        SET_AUTO_SYNC,
        json!({ "id": touchpoint, "enabled": true }),
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "waiting events delivered",
        || async { (flows::counts(&server, &touchpoint).await["success"] == 11).then_some(()) },
    )
    .await;
    assert_eq!(destination.received().len(), 11);
    server.stop().await;
}
