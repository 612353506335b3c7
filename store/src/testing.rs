//! Helpers for tests: a PostgreSQL database of their own (this crate's and the end-to-end
//! tests), and events made the way intake makes them.
//!
//! Tests read `HOOKPLANE_TEST_POSTGRES_URL`. Unset: the test prints why it skips and returns.
//! Set but unreachable: the test fails; a configured database that does not answer is a
//! broken setup, not a reason to pass.

use std::time::SystemTime;

use hookplane_crds::VerificationSpec;
use hookplane_sources::{Incoming, Limits, Received, ResolvedSecrets, VerifierConfig};
use http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::NewEvent;

/// An event the way intake makes one: `payload` as a JSON body with `delivery_id` in its
/// `webhook-id` header, through a real `hookplane_sources::receive` (the `generic` app,
/// verification `none`). Its dedupe key is `webhook-id:<delivery_id>`.
///
/// # Panics
/// When `delivery_id` is not a header value.
pub fn received_event(touchpoint_id: Uuid, payload: &Value, delivery_id: &str) -> NewEvent {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        "webhook-id",
        HeaderValue::from_str(delivery_id).expect("a test delivery id is a header value"),
    );
    let body = payload.to_string().into_bytes();
    let config = VerifierConfig::new(
        VerificationSpec {
            scheme: Some("none".to_owned()),
            ..VerificationSpec::default()
        },
        ResolvedSecrets::new(),
    );
    let app = hookplane_sources::app("generic").expect("the generic app is in the catalog");
    let received = hookplane_sources::receive(
        app,
        Incoming::post(&headers, &body),
        &config,
        &Limits::default(),
        SystemTime::now(),
    );
    let Ok(Received::Events(mut events)) = received else {
        panic!("a JSON body with verification none is received: {received:?}");
    };
    assert_eq!(events.len(), 1, "one event per generic delivery");
    let headers = json!({"content-type": "application/json", "webhook-id": delivery_id});
    NewEvent::received(touchpoint_id, events.remove(0), headers, body)
}

/// The environment variable naming the PostgreSQL server tests use.
pub const POSTGRES_URL_VAR: &str = "HOOKPLANE_TEST_POSTGRES_URL";

/// Databases this module created that are older than this are dropped by later calls (if
/// nothing is connected to them), so aborted test runs do not pile up databases.
const STALE_AFTER_SECS: u64 = 6 * 60 * 60;

/// A URL to a fresh, empty PostgreSQL database (`hp_<uuid>`), or `None` (after printing a
/// skip reason) when `HOOKPLANE_TEST_POSTGRES_URL` is unset.
///
/// # Panics
/// When the variable is set but the server cannot be reached or the database cannot be
/// created: the test must fail then.
pub async fn postgres_url() -> Option<String> {
    let base = match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            eprintln!("skipping: {POSTGRES_URL_VAR} is not set");
            return None;
        }
    };
    let mut url = url::Url::parse(&base)
        .unwrap_or_else(|error| panic!("{POSTGRES_URL_VAR} is not a valid URL: {error}"));
    let admin = connect(&base).await;
    drop_stale_databases(&admin).await;
    let name = format!("hp_{}", Uuid::now_v7().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|error| panic!("could not create the test database {name}: {error}"));
    let _ = admin.close().await;
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

/// Drops a database [`postgres_url`] created, disconnecting whatever is still connected
/// (best effort: errors are printed, not raised). Close every store on it first.
pub async fn drop_postgres_database(url: &str) {
    let Ok(base) = std::env::var(POSTGRES_URL_VAR) else {
        return;
    };
    let Some(name) = url::Url::parse(url)
        .ok()
        .map(|url| url.path().trim_start_matches('/').to_owned())
        .filter(|name| is_test_database(name))
    else {
        return;
    };
    let admin = connect(&base).await;
    // FORCE: a server process of a just-closed pool may still be exiting.
    let forced = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
    if forced.is_err()
        && let Err(error) = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\""))
            .await
    {
        eprintln!("could not drop the test database {name}: {error}");
    }
    let _ = admin.close().await;
}

async fn connect(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(1)
        .connect_timeout(std::time::Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options).await.unwrap_or_else(|error| {
        panic!("{POSTGRES_URL_VAR} is set but PostgreSQL is unreachable: {error}")
    })
}

/// `hp_` followed by a simple UUIDv7.
fn is_test_database(name: &str) -> bool {
    name.strip_prefix("hp_")
        .and_then(|id| Uuid::try_parse(id).ok())
        .is_some_and(|id| id.get_version_num() == 7)
}

async fn drop_stale_databases(admin: &DatabaseConnection) {
    let backend = admin.get_database_backend();
    let Ok(rows) = admin
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT datname FROM pg_database WHERE datname LIKE 'hp\\_%'",
        ))
        .await
    else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    for row in rows {
        let Ok(name) = row.try_get_by_index::<String>(0) else {
            continue;
        };
        let created = name
            .strip_prefix("hp_")
            .and_then(|id| Uuid::try_parse(id).ok())
            .filter(|id| id.get_version_num() == 7)
            .and_then(|id| id.get_timestamp())
            .map(|timestamp| timestamp.to_unix().0);
        if created.is_some_and(|created| now.saturating_sub(created) > STALE_AFTER_SECS) {
            // Fails harmlessly while something is still connected to it.
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                .await;
        }
    }
}
