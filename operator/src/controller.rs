//! Wire the reconcilers to the watches (see [`crate::watches`] for which change wakes what).

use std::sync::Arc;

use futures::{Stream, StreamExt, future};
use hookplane_crds::{Connection, Touchpoint};
use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Secret, Service},
        networking::v1::Ingress,
        policy::v1::PodDisruptionBudget,
    },
};
use kube::{
    Api, Client, Resource,
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::{
    build::{MANAGED_BY_LABEL, MANAGER},
    cache::Caches,
    reconcile::{self, Context, Error, error_policy},
    wakeups::{self, Wake},
    watches,
};

/// Run both controllers until `shutdown`, watching `namespace` or, with `None`, every
/// namespace; `wakes` (the database's change relay, see [`crate::wakeups`]) wakes Connections
/// whose backlog moved.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    wakes: impl Stream<Item = Wake> + Send + 'static,
    shutdown: CancellationToken,
) {
    let scoped = Scoped {
        client: ctx.client.clone(),
        namespace,
    };
    let touchpoints = touchpoint_controller(&scoped);
    let (connections, caches) = connection_controller(&scoped, touchpoints.store(), wakes);
    // Set once per process: the controllers run once.
    let _ = ctx.caches.set(caches);
    let touchpoints = touchpoints
        .graceful_shutdown_on(cancelled(shutdown.clone()))
        .run(reconcile::touchpoint::reconcile, error_policy, ctx.clone())
        .for_each(|result| log(result, "touchpoint"));
    let connections = connections
        .graceful_shutdown_on(cancelled(shutdown))
        .run(reconcile::connection::reconcile, error_policy, ctx)
        .for_each(|result| log(result, "connection"));
    future::join(touchpoints, connections).await;
}

/// The Touchpoint controller, woken by its Touchpoints and by the Connections they name.
pub fn touchpoint_controller(scoped: &Scoped) -> Controller<Touchpoint> {
    let all = watcher::Config::default();
    let controller = Controller::new(scoped.of::<Touchpoint>(), all.clone());
    let touchpoints = controller.store();
    controller.watches(scoped.of::<Connection>(), all, move |connection| {
        watches::touchpoints_of_connection(&connection, &touchpoints.state())
    })
}

/// The Connection controller, woken by its Connections, the objects they own (the database
/// Secret among them: deleted, it is made again), the Touchpoints naming them, the Secrets
/// either refers to and `wakes` (backlog changes); and the caches its reconciles read, filled
/// by the same watches. `touchpoints` is a cache of every Touchpoint (the Touchpoint
/// controller's).
pub fn connection_controller(
    scoped: &Scoped,
    touchpoints: Store<Touchpoint>,
    wakes: impl Stream<Item = Wake> + Send + 'static,
) -> (Controller<Connection>, Caches) {
    let all = watcher::Config::default();
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    let controller = Controller::new(scoped.of::<Connection>(), all.clone());
    let connections = controller.store();
    let (waking_touchpoints, waking_connections) = (touchpoints.clone(), connections.clone());
    let woken = wakes.flat_map(move |wake| {
        futures::stream::iter(wakeups::connections_to_wake(
            &wake,
            &waking_touchpoints.state(),
            &waking_connections.state(),
        ))
    });
    let (config_maps, config_map_changes) = cached::<ConfigMap>(scoped, &owned);
    let (services, service_changes) = cached::<Service>(scoped, &owned);
    let (deployments, deployment_changes) = cached::<Deployment>(scoped, &owned);
    let (budgets, budget_changes) = cached::<PodDisruptionBudget>(scoped, &owned);
    let (ingresses, ingress_changes) = cached::<Ingress>(scoped, &owned);
    let (secrets, secret_changes) = cached::<Secret>(scoped, &owned);
    let caches = Caches {
        touchpoints: touchpoints.clone(),
        config_maps,
        services,
        deployments,
        budgets,
        secrets,
        ingresses,
    };
    let controller = controller
        .reconcile_on(woken)
        .owns_stream(config_map_changes)
        .owns_stream(service_changes)
        .owns_stream(deployment_changes)
        .owns_stream(budget_changes)
        .owns_stream(ingress_changes)
        .owns_stream(secret_changes)
        .watches(scoped.of::<Touchpoint>(), all.clone(), |touchpoint| {
            watches::connection_of_touchpoint(&touchpoint)
        })
        // Metadata only: a change is all that matters here (the reconcile reads the data of
        // the Secrets it uses), and every Secret of the cluster, Helm's release Secrets among
        // them, would otherwise sit in memory in full.
        .watches(
            scoped.of::<PartialObjectMeta<Secret>>(),
            all,
            move |secret| {
                watches::connections_using_secret(
                    &secret,
                    &connections.state(),
                    &touchpoints.state(),
                )
            },
        );
    (controller, caches)
}

/// A reflector on the objects of kind `K` that `config` selects: its cache, and the changes
/// it saw (for `owns_stream`).
fn cached<K>(
    scoped: &Scoped,
    config: &watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let changes = watcher(scoped.of::<K>(), config.clone())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    (reader, changes)
}

/// An `Api` in one namespace or in all.
pub struct Scoped {
    pub client: Client,
    pub namespace: Option<String>,
}

impl Scoped {
    fn of<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        match &self.namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        }
    }
}

async fn cancelled(token: CancellationToken) {
    token.cancelled().await
}

type Outcome<K> =
    Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<Error, watcher::Error>>;

async fn log<K: Resource>(result: Outcome<K>, controller: &'static str)
where
    K::DynamicType: std::fmt::Debug,
{
    match result {
        Ok((object, _)) => tracing::debug!(controller, %object, "reconciled"),
        // The reconciler logged and recorded its own failures (see `error_policy`).
        Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
        Err(kube::runtime::controller::Error::ObjectNotFound(object)) => {
            tracing::debug!(controller, %object, "gone before its reconcile")
        }
        Err(error) => tracing::warn!(controller, %error, "controller"),
    }
}
