//! The test harness: a migrated store on a fresh database of either backend, fixtures, and
//! `backend_tests!`, which turns one `async fn name(h: &Harness)` into `name::sqlite` and
//! `name::postgres` tests.

use std::sync::Mutex;

use chrono::{TimeDelta, Utc};
use hookplane_crds::{ConnectionSpec, DestinationSpec, SourceSpec, TouchpointSpec};
use hookplane_store::{
    Backend, Connection, Event, LogLevel, NewEvent, NewLog, Outcome, Store, StoreOptions,
    Touchpoint, testing,
};
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

pub struct Harness {
    pub store: Store,
    pub backend: Backend,
    /// The database `store` is on.
    pub url: String,
    dir: TempDir,
    databases: Mutex<Vec<String>>,
}

impl Harness {
    pub async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        Self::open(url, Backend::Sqlite, dir).await
    }

    pub async fn postgres() -> Option<Harness> {
        let url = testing::postgres_url().await?;
        let dir = tempfile::tempdir().expect("a temp dir");
        let harness = Self::open(url.clone(), Backend::Postgres, dir).await;
        harness.databases.lock().expect("not poisoned").push(url);
        Some(harness)
    }

    async fn open(url: String, backend: Backend, dir: TempDir) -> Harness {
        let store = Store::open(&url, StoreOptions::default())
            .await
            .expect("open the store");
        assert_eq!(store.backend(), backend);
        store.migrate().await.expect("migrate");
        Harness {
            store,
            backend,
            url,
            dir,
            databases: Mutex::new(Vec::new()),
        }
    }

    /// A URL to another empty database of the same backend.
    pub async fn fresh_url(&self) -> String {
        match self.backend {
            Backend::Sqlite => format!(
                "sqlite://{}",
                self.dir
                    .path()
                    .join(format!("{}.db", Uuid::now_v7().simple()))
                    .display()
            ),
            Backend::Postgres => {
                let url = testing::postgres_url()
                    .await
                    .expect("PostgreSQL is configured");
                self.databases
                    .lock()
                    .expect("not poisoned")
                    .push(url.clone());
                url
            }
        }
    }

    /// Another migrated store, on a fresh database of the same backend, opened with
    /// `options` (a manual clock, another dedupe window). Close it before the test ends.
    pub async fn store_with(&self, options: StoreOptions) -> Store {
        let store = Store::open(&self.fresh_url().await, options)
            .await
            .expect("open the store");
        store.migrate().await.expect("migrate");
        store
    }

    pub async fn finish(self) {
        self.store.close().await;
        let databases = std::mem::take(&mut *self.databases.lock().expect("not poisoned"));
        for url in databases {
            testing::drop_postgres_database(&url).await;
        }
    }

    pub async fn connection(&self) -> Connection {
        self.store
            .create_connection(
                organization(&self.store).await,
                connection_spec("Shop to ERP"),
            )
            .await
            .expect("create a connection")
    }

    /// A touchpoint that is published with auto-sync on: the worker runs it.
    pub async fn running_touchpoint(&self, endpoint: &str) -> Touchpoint {
        running_touchpoint(&self.store, endpoint).await
    }
}

/// The organization `acme` of `store`, created the first time.
pub async fn organization(store: &Store) -> uuid::Uuid {
    if let Some(organization) = store.organization_by_slug("acme").await.expect("read") {
        return organization.id;
    }
    match store
        .create_organization("acme", "https://hooks.acme.test")
        .await
    {
        Ok(organization) => organization.id,
        // Another task made it first.
        Err(_) => {
            store
                .organization_by_slug("acme")
                .await
                .expect("read")
                .expect("created")
                .id
        }
    }
}

/// A touchpoint of a new connection in `store`, published with auto-sync on.
pub async fn running_touchpoint(store: &Store, endpoint: &str) -> Touchpoint {
    let connection = store
        .create_connection(organization(store).await, connection_spec("Shop to ERP"))
        .await
        .expect("create a connection");
    let touchpoint = store
        .create_touchpoint(touchpoint_spec(connection.id, endpoint))
        .await
        .expect("create a touchpoint");
    store
        .publish_touchpoint(touchpoint.id)
        .await
        .expect("publish");
    store
        .set_auto_sync(touchpoint.id, true)
        .await
        .expect("auto-sync on")
}

pub fn connection_spec(name: &str) -> ConnectionSpec {
    ConnectionSpec {
        name: name.to_owned(),
        source_app: "shopify".to_owned(),
        destination_app: "generic".to_owned(),
        destination_base_url: Some("https://erp.example.com".to_owned()),
        show_in_sync_panel: true,
        // The crds crate is growing fields the store does not care about.
        ..ConnectionSpec::default()
    }
}

pub fn touchpoint_spec(connection_id: Uuid, endpoint: &str) -> TouchpointSpec {
    TouchpointSpec {
        connection_ref: connection_id.to_string(),
        name: format!("Orders via {endpoint}"),
        show_in_agent: true,
        source: SourceSpec {
            app: "shopify".to_owned(),
            endpoint: endpoint.to_owned(),
            ..SourceSpec::default()
        },
        destination: DestinationSpec {
            url: "/orders".to_owned(),
            ..DestinationSpec::default()
        },
        ..TouchpointSpec::default()
    }
}

/// An event the way intake makes one: `payload` as a JSON body with `delivery_id` in its
/// `webhook-id` header, through a real `hookplane_sources::receive` (the `generic` app,
/// verification `none`). Its dedupe key is `webhook-id:<delivery_id>`.
pub fn received(touchpoint_id: Uuid, payload: Value, delivery_id: &str) -> NewEvent {
    hookplane_store::testing::received_event(touchpoint_id, &payload, delivery_id)
}

/// Event `n` (payload `{"n": n}`) of its own delivery: it never dedupes with another.
pub fn new_event(touchpoint_id: Uuid, n: usize) -> NewEvent {
    received(touchpoint_id, json!({"n": n}), &Uuid::now_v7().to_string())
}

pub fn new_log(touchpoint_id: Uuid, level: LogLevel, message: &str) -> NewLog {
    NewLog {
        touchpoint_id,
        event_id: None,
        level,
        message: message.to_owned(),
        fields: json!({}),
    }
}

/// Appends `count` events one request each and returns their ids, oldest first.
pub async fn append(store: &Store, touchpoint_id: Uuid, count: usize) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let appended = store
            .append_events(vec![new_event(touchpoint_id, n)])
            .await
            .expect("append");
        ids.push(appended[0].event().id);
    }
    ids
}

/// Leases exactly the event `id` (UNPROCESSED, at a running touchpoint, not blocked) and
/// returns the lease: claims everything claimable whatever its due time, keeps `id` and hands
/// the rest back.
pub async fn lease(store: &Store, id: Uuid) -> Uuid {
    let far = Utc::now() + TimeDelta::days(3650);
    let claimed = store
        .claim_due_events(far, std::time::Duration::from_secs(60), u64::MAX)
        .await
        .expect("claim");
    let mut lease = None;
    for event in claimed {
        let lease_id = event.lease_id.expect("a claimed event carries its lease");
        if event.id == id {
            lease = Some(lease_id);
        } else {
            store
                .release_lease(event.id, lease_id)
                .await
                .expect("release");
        }
    }
    lease.unwrap_or_else(|| panic!("event {id} was not claimable"))
}

/// Leases `id` and records `outcome` for it.
pub async fn settle(store: &Store, id: Uuid, outcome: Outcome) -> Event {
    let lease_id = lease(store, id).await;
    store
        .record_outcome(id, lease_id, outcome)
        .await
        .expect("record the outcome")
}

macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    let harness = crate::common::Harness::sqlite().await;
                    super::$name(&harness).await;
                    harness.finish().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    let Some(harness) = crate::common::Harness::postgres().await else {
                        return;
                    };
                    super::$name(&harness).await;
                    harness.finish().await;
                }
            }
        )*
    };
}

pub(crate) use backend_tests;
