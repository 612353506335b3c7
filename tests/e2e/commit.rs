//! A webhook is acknowledged only after the commit that holds it: when the commit itself
//! fails, every webhook of that batch answers 503 and none is stored.
//!
//! The failure is injected in the database the running server uses: a constraint checked
//! only at COMMIT (a deferred foreign key to a missing row on SQLite, a deferred constraint
//! trigger on PostgreSQL) fires for every new event, so each insert succeeds and each commit
//! fails; the writer must roll back and recover once the constraint is gone.

use sea_orm::{ConnectionTrait, Database};
use serde_json::json;

use crate::{
    flows, on_both_backends,
    support::{Backend, Server},
};

on_both_backends!(a_batch_whose_commit_fails_is_not_acknowledged_and_not_stored);

const SQLITE_ARM: [&str; 3] = [
    "CREATE TABLE commit_bomb_parent (id INTEGER PRIMARY KEY)",
    "CREATE TABLE commit_bomb (x INTEGER REFERENCES commit_bomb_parent(id) DEFERRABLE INITIALLY DEFERRED)",
    "CREATE TRIGGER commit_bomb_on_event AFTER INSERT ON events BEGIN INSERT INTO commit_bomb VALUES (1); END",
];
const SQLITE_DISARM: [&str; 3] = [
    "DROP TRIGGER commit_bomb_on_event",
    "DROP TABLE commit_bomb",
    "DROP TABLE commit_bomb_parent",
];
const POSTGRES_ARM: [&str; 2] = [
    "CREATE FUNCTION commit_bomb() RETURNS trigger LANGUAGE plpgsql AS \
     $$ BEGIN RAISE EXCEPTION 'injected commit failure'; END $$",
    "CREATE CONSTRAINT TRIGGER commit_bomb_on_event AFTER INSERT ON events \
     DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION commit_bomb()",
];
const POSTGRES_DISARM: [&str; 2] = [
    "DROP TRIGGER commit_bomb_on_event ON events",
    "DROP FUNCTION commit_bomb()",
];

async fn a_batch_whose_commit_fails_is_not_acknowledged_and_not_stored(backend: Backend) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let log = dir.path().join("server.log");
    let server = Server::start_logging_to(&backend, &[], &log).await;
    let connection = flows::connection(&server).await;
    let touchpoint = flows::published_touchpoint(
        &server,
        &connection,
        "orders",
        json!({ "destination": { "url": "http://127.0.0.1:9/orders" }, "autoSync": false }),
    )
    .await;
    let client = reqwest::Client::new();
    let (status, _) = flows::post_webhook(&client, &server, "orders", &json!({ "id": 0 })).await;
    assert_eq!(status, 200, "the server stores before the failure is armed");

    let postgres = backend.database_url.starts_with("postgres");
    let (arm, disarm) = if postgres {
        (&POSTGRES_ARM[..], &POSTGRES_DISARM[..])
    } else {
        (&SQLITE_ARM[..], &SQLITE_DISARM[..])
    };
    let db = Database::connect(backend.database_url.as_str())
        .await
        .expect("the test reaches the server's database");
    for statement in arm {
        db.execute_unprepared(statement).await.expect(statement);
    }

    // Concurrent webhooks: the writer commits them in batches, and every commit fails.
    let sends = (1..=40).map(|id| {
        let client = client.clone();
        let server = &server;
        async move { flows::post_webhook(&client, server, "orders", &json!({ "id": id })).await }
    });
    let answers = futures::future::join_all(sends).await;
    for (status, body) in &answers {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["code"], "STORAGE_UNAVAILABLE", "{body}");
    }

    // The operator's log tells why, not only that storing failed.
    let cause = if postgres {
        "injected commit failure"
    } else {
        "FOREIGN KEY constraint failed"
    };
    let logged = std::fs::read_to_string(&log).expect("the server's log");
    assert!(
        logged
            .lines()
            .any(|line| line.contains("storing webhook") && line.contains(cause)),
        "the log names the database's cause ({cause}):\n{logged}"
    );

    for statement in disarm {
        db.execute_unprepared(statement).await.expect(statement);
    }
    let stored = flows::bucket(&server, &touchpoint, None).await;
    let ids: Vec<_> = stored
        .iter()
        .map(|entry| entry["payload"]["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!(0)],
        "only the webhook acknowledged before is stored"
    );

    // Once commits succeed again, so do webhooks (the same ones, retried by their senders).
    let (status, _) = flows::post_webhook(&client, &server, "orders", &json!({ "id": 1 })).await;
    assert_eq!(status, 200);
    assert_eq!(flows::bucket(&server, &touchpoint, None).await.len(), 2);
    db.close().await.ok();
    server.stop().await;
}
