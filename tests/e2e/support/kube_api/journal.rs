//! The journal: every successful POST, PUT, PATCH and DELETE is recorded as a watch event of its
//! collection, from the object the fake answered with: ADDED when the name did not exist,
//! MODIFIED otherwise, DELETED for objects that a DELETE made disappear (cascades to
//! dependents and deletecollection included, found by listing every collection the journal
//! knows). The fake does not bump the resourceVersion on delete; a DELETED event gets a fresh
//! one by applying a hidden `ConfigMap` (`kube-system/fake-kube-api-clock`), so every event
//! has a resourceVersion above all earlier ones, as on a real API server, and a watch resumed
//! from any event's resourceVersion misses nothing.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{
    forward::Front,
    request::{Collection, Target},
};

/// Namespace of the hidden `ConfigMap` whose applies give DELETED events a fresh resourceVersion.
const CLOCK_NAMESPACE: &str = "kube-system";
/// Name of that `ConfigMap`.
const CLOCK_NAME: &str = "fake-kube-api-clock";
/// Journal events a watch may fall behind before it is ended with 410 `Expired`.
const BROADCAST_CAPACITY: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    Added,
    Modified,
    Deleted,
}

/// One journal entry: an object as it was after a change.
pub(super) struct Recorded {
    pub(super) collection: Collection,
    pub(super) change: Change,
    pub(super) object: Value,
    /// The object before a MODIFIED change, to tell selector entries and exits apart.
    pub(super) previous: Option<Value>,
    pub(super) resource_version: u64,
}

/// Every change so far, the last state of every existing object, and the live feed of changes.
pub(super) struct Journal {
    events: Vec<Arc<Recorded>>,
    objects: BTreeMap<Collection, BTreeMap<String, Value>>,
    pub(super) highest: u64,
    live: broadcast::Sender<Arc<Recorded>>,
}

impl Journal {
    pub(super) fn new() -> Journal {
        Journal {
            events: Vec::new(),
            objects: BTreeMap::new(),
            highest: 0,
            live: broadcast::channel(BROADCAST_CAPACITY).0,
        }
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<Arc<Recorded>> {
        self.live.subscribe()
    }

    pub(super) fn since(&self, resource_version: u64) -> impl Iterator<Item = &Arc<Recorded>> {
        self.events
            .iter()
            .filter(move |event| event.resource_version > resource_version)
    }

    /// Collections with at least one existing object, and those objects' names.
    fn existing(&self) -> Vec<(Collection, Vec<String>)> {
        let names = |(collection, objects): (&Collection, &BTreeMap<String, Value>)| {
            (!objects.is_empty()).then(|| (collection.clone(), objects.keys().cloned().collect()))
        };
        self.objects.iter().filter_map(names).collect()
    }

    fn record_write(&mut self, collection: Collection, object: Value) {
        let Some(name) = object_name(&object).map(str::to_owned) else {
            return;
        };
        let resource_version = resource_version(&object).unwrap_or(self.highest);
        let objects = self.objects.entry(collection.clone()).or_default();
        let previous = objects.insert(name, object.clone());
        let change = if previous.is_some() {
            Change::Modified
        } else {
            Change::Added
        };
        self.publish(Recorded {
            collection,
            change,
            object,
            previous,
            resource_version,
        });
    }

    fn record_delete(&mut self, collection: &Collection, name: &str, resource_version: u64) {
        let removed = self
            .objects
            .get_mut(collection)
            .and_then(|objects| objects.remove(name));
        let Some(mut object) = removed else {
            return;
        };
        set_resource_version(&mut object, resource_version);
        self.publish(Recorded {
            collection: collection.clone(),
            change: Change::Deleted,
            object,
            previous: None,
            resource_version,
        });
    }

    fn publish(&mut self, recorded: Recorded) {
        self.highest = self.highest.max(recorded.resource_version);
        let recorded = Arc::new(recorded);
        self.events.push(Arc::clone(&recorded));
        // No subscribers is fine: later watches replay `events`.
        let _ = self.live.send(recorded);
    }
}

pub(super) fn record_write(journal: &mut Journal, target: &Target, object: Value) {
    if object.get("kind").and_then(Value::as_str) == Some("Status") {
        return;
    }
    let mut collection = target.collection().clone();
    if let Some(namespace) = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        collection.namespace = Some(namespace.to_owned());
    }
    journal.record_write(collection, object);
}

impl Front {
    /// Records a DELETED event for every known object the fake no longer lists: the one deleted
    /// and whatever went with it (dependents, the rest of a deleted collection).
    pub(super) async fn record_deletions(&self, journal: &mut Journal) {
        for (collection, names) in journal.existing() {
            let Ok(listed) = self.list_objects(&collection).await else {
                continue;
            };
            let remaining: Vec<&str> = listed.items.iter().filter_map(object_name).collect();
            for name in names
                .iter()
                .filter(|name| !remaining.contains(&name.as_str()))
            {
                let resource_version = self.tick_clock(journal).await;
                journal.record_delete(&collection, name, resource_version);
            }
        }
    }

    /// Takes a fresh resourceVersion from the fake's global counter by applying the clock.
    async fn tick_clock(&self, journal: &Journal) -> u64 {
        let clock: Api<ConfigMap> = Api::namespaced(self.fake.clone(), CLOCK_NAMESPACE);
        let tick = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": CLOCK_NAME },
            "data": { "tick": journal.events.len().to_string() },
        });
        let params = PatchParams::apply("fake-kube-api").force();
        let applied = clock
            .patch(CLOCK_NAME, &params, &Patch::Apply(&tick))
            .await
            .expect("the fake applies a ConfigMap");
        applied
            .metadata
            .resource_version
            .and_then(|version| version.parse().ok())
            .expect("the fake gives every write a numeric resourceVersion")
    }
}

fn object_name(object: &Value) -> Option<&str> {
    object.pointer("/metadata/name").and_then(Value::as_str)
}

fn resource_version(object: &Value) -> Option<u64> {
    object
        .pointer("/metadata/resourceVersion")?
        .as_str()?
        .parse()
        .ok()
}

pub(super) fn set_resource_version(object: &mut Value, resource_version: u64) {
    if let Some(object) = object.as_object_mut() {
        let metadata = object.entry("metadata").or_insert_with(|| json!({}));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert(
                "resourceVersion".to_owned(),
                json!(resource_version.to_string()),
            );
        }
    }
}
