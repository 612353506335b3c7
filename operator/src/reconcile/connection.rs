//! Reconcile a Connection into its ConfigMap, receiver Deployment and Service and worker
//! Deployment, and report on it and on each of its Touchpoints.
//!
//! Fetch the touchpoints naming it, the Secrets they and it refer to and the objects it runs
//! as; validate; decide the worker count from the backlog; build; apply what differs (the
//! ConfigMap first, so new pods find it) and delete labelled objects no longer built; write
//! statuses that changed. An invalid connection changes nothing that runs: its status and its
//! touchpoints' say why, and the reconcile waits for a change to it, a touchpoint or a Secret.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use hookplane_crds::{Connection, Touchpoint};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Secret, Service},
    networking::v1::Ingress,
    policy::v1::PodDisruptionBudget,
};
use kube::{Api, Resource, ResourceExt, api::ListParams, runtime::controller::Action};
use serde::{Serialize, de::DeserializeOwned};

use super::{
    Context, Error, claim, key, observed,
    report::{live, report_invalid, write_connection_status, write_touchpoint_status},
    source_of,
};
use crate::{
    apply::{self, Applied},
    backlog::Backlog,
    build::{self, Desired, names},
    cache, scaling,
    status::{self, Observed, Rollout},
    validate::{self, Validated},
};

/// Reconcile one Connection; the entry point the controller calls.
pub async fn reconcile(connection: Arc<Connection>, ctx: Arc<Context>) -> Result<Action, Error> {
    let reconcile = reconcile_connection(&connection, &ctx);
    observed("connection", connection.as_ref(), &ctx, reconcile).await
}

/// What the cluster holds for a connection.
struct World {
    touchpoints: Vec<Touchpoint>,
    secrets: BTreeMap<String, Secret>,
    config_maps: Vec<ConfigMap>,
    services: Vec<Service>,
    deployments: Vec<Deployment>,
    budgets: Vec<PodDisruptionBudget>,
    /// Secrets the operator made for this connection (the database URL).
    owned_secrets: Vec<Secret>,
    ingresses: Vec<Ingress>,
}

#[tracing::instrument(skip_all, fields(connection = %key(connection)))]
async fn reconcile_connection(connection: &Connection, ctx: &Context) -> Result<Action, Error> {
    let Some(namespace) = connection.namespace() else {
        return Ok(Action::await_change());
    };
    if connection.metadata.deletion_timestamp.is_some() {
        // Its objects go with it (owner references); only the scaling memory is ours.
        ctx.stabilizers.forget(&key(connection));
        return Ok(Action::await_change());
    }
    if let Some(ours) = &ctx.claim
        && let claim::Verdict::Elsewhere(holder) = claim::claim(connection, ours, ctx).await?
    {
        let note = format!("left to the operator of Lease {holder}");
        ctx.event(connection, true, "ClaimedByAnotherOperator", "Claim", note)
            .await;
        return Ok(Action::requeue(ctx.settings.backlog_poll));
    }
    // Both boxed: their futures hold every read and apply of a connection, and inline they
    // made the reconcile future large enough to overflow a 2 MiB stack in a debug build.
    let world = Box::pin(fetch(connection, &namespace, ctx)).await?;
    let validated = match validate::validate(connection, &world.touchpoints, &world.secrets) {
        Ok(validated) => validated,
        Err(problem) => {
            report_invalid(connection, &world.touchpoints, &problem, ctx).await?;
            return Ok(Action::await_change());
        }
    };

    let backlog = match ctx.backlog.backlog().await {
        Ok(backlog) => Some(backlog),
        Err(error) => {
            tracing::warn!(error = %error, cause = %source_of(&error), "reading the backlog");
            ctx.metrics
                .errors
                .with_label_values(&["connection", "backlog"])
                .inc();
            None
        }
    };
    let current_workers = find(&world.deployments, &names::worker(validated.name()))
        .and_then(|d| d.spec.as_ref()?.replicas);
    let workers = worker_replicas(&validated, backlog.as_deref(), current_workers, ctx);
    let desired = build::desired(&validated, &ctx.settings, workers);

    let applied = Box::pin(apply_all(&namespace, &desired, &world, ctx)).await?;
    if !applied.changes.is_empty() {
        let note = format!(
            "applied {} (configuration {})",
            applied.changes.join(", "),
            short(&desired.config_hash)
        );
        ctx.event(connection, false, "Applied", "Apply", note).await;
    }
    if current_workers.is_some_and(|current| current != workers) {
        let note = format!(
            "workers {} -> {workers} for a backlog of {}",
            current_workers.unwrap_or_default(),
            backlog
                .as_deref()
                .map_or("unknown".to_owned(), |b| total(&validated, b).to_string())
        );
        ctx.event(connection, false, "Scaled", "Scale", note).await;
    }

    let observed = Observed {
        connection: &validated,
        config_hash: &desired.config_hash,
        workers,
        receivers: Rollout::of(applied.receiver.object()),
        worker_rollout: Rollout::of(applied.worker.object()),
        backlog: backlog.as_deref(),
        settings: &ctx.settings,
    };
    let now = ctx.clock.wall();
    let new = status::connection(
        connection.status.as_ref(),
        connection.metadata.generation,
        &observed,
        now,
    );
    write_connection_status(connection, new, ctx).await?;
    for touchpoint in live(&world.touchpoints) {
        let name = touchpoint.name_any();
        let current = touchpoint.status.as_ref();
        let new = match validated.touchpoints().iter().find(|t| t.name == name) {
            Some(valid) => status::published_touchpoint(current, valid, &observed, now),
            None => {
                let problem = validated
                    .rejected()
                    .iter()
                    .find(|r| r.name == name)
                    .map(|r| r.problem.clone())
                    .expect("validate accepts or rejects every live touchpoint");
                status::rejected_touchpoint(current, touchpoint.metadata.generation, &problem, now)
            }
        };
        write_touchpoint_status(touchpoint, new, ctx).await?;
    }
    Ok(Action::requeue(ctx.settings.backlog_poll))
}

async fn fetch(connection: &Connection, namespace: &str, ctx: &Context) -> Result<World, Error> {
    let name = connection.name_any();
    let read = |what: &str| {
        let what = what.to_owned();
        move |source| Error::Read { what, source }
    };
    let caches = ctx.caches.get();
    let touchpoints: Vec<Touchpoint> = match caches {
        Some(caches) => {
            caches.ready().await;
            caches.touchpoints_of(namespace, &name)
        }
        None => api(ctx, namespace)
            .list(&ListParams::default())
            .await
            .map_err(read("touchpoints"))?
            .items
            .into_iter()
            .filter(|t: &Touchpoint| t.spec.connection_ref == name)
            .collect(),
    };
    let secret_api: Api<Secret> = api(ctx, namespace);
    let mut secrets = BTreeMap::new();
    for secret in validate::referenced_secrets(connection, &touchpoints) {
        let found = secret_api
            .get_opt(&secret)
            .await
            .map_err(read(&format!("Secret {secret}")))?;
        if let Some(found) = found {
            secrets.insert(secret, found);
        }
    }
    if let Some(caches) = caches {
        return Ok(World {
            config_maps: cache::owned(&caches.config_maps, namespace, &name),
            services: cache::owned(&caches.services, namespace, &name),
            deployments: cache::owned(&caches.deployments, namespace, &name),
            budgets: cache::owned(&caches.budgets, namespace, &name),
            owned_secrets: cache::owned(&caches.secrets, namespace, &name),
            ingresses: cache::owned(&caches.ingresses, namespace, &name),
            touchpoints,
            secrets,
        });
    }
    let selector = build::selector(&name);
    Ok(World {
        config_maps: apply::list(&api(ctx, namespace), &selector)
            .await
            .map_err(read("ConfigMaps"))?,
        services: apply::list(&api(ctx, namespace), &selector)
            .await
            .map_err(read("Services"))?,
        deployments: apply::list(&api(ctx, namespace), &selector)
            .await
            .map_err(read("Deployments"))?,
        budgets: apply::list(&api(ctx, namespace), &selector)
            .await
            .map_err(read("PodDisruptionBudgets"))?,
        owned_secrets: apply::list(&api(ctx, namespace), &selector)
            .await
            .map_err(read("Secrets"))?,
        ingresses: apply::list(&api(ctx, namespace), &selector)
            .await
            .map_err(read("Ingresses"))?,
        touchpoints,
        secrets,
    })
}

/// The worker count: the stabilized recommendation for the backlog, or the current count
/// when the backlog is unknown; within the spec's bounds either way.
fn worker_replicas(
    connection: &Validated,
    backlog: Option<&Backlog>,
    current: Option<i32>,
    ctx: &Context,
) -> i32 {
    let worker = &connection.spec().worker;
    let replicas = match backlog {
        Some(backlog) => ctx.stabilizers.replicas(
            &format!("{}/{}", connection.namespace(), connection.name()),
            ctx.clock.now(),
            Duration::from_secs(worker.scale_down_stabilization_seconds.into()),
            current,
            scaling::recommend(total(connection, backlog), worker),
        ),
        None => current.unwrap_or(worker.min_replicas),
    };
    replicas.clamp(
        worker.min_replicas,
        worker.max_replicas.max(worker.min_replicas),
    )
}

fn total(connection: &Validated, backlog: &Backlog) -> i64 {
    connection
        .touchpoints()
        .iter()
        .map(|t| backlog.get(&t.id).copied().unwrap_or(0))
        .sum()
}

struct AppliedAll {
    receiver: Applied<Deployment>,
    worker: Applied<Deployment>,
    /// `Kind name` of everything written or deleted.
    changes: Vec<String>,
}

/// Apply in a deliberate order (configuration, Service, receivers, workers), then delete
/// what is labelled for this connection but no longer built.
async fn apply_all(
    namespace: &str,
    desired: &Desired,
    world: &World,
    ctx: &Context,
) -> Result<AppliedAll, Error> {
    let mut changes = Vec::new();
    // The database URL first: the pods cannot start without it.
    if let Some(database) = &desired.database {
        let applied = apply_one(ctx, namespace, database, &world.owned_secrets).await?;
        if applied.changed() {
            changes.push(format!("Secret {}", database.name_any()));
        }
    }
    let config_map = apply_one(ctx, namespace, &desired.config_map, &world.config_maps).await?;
    let service = apply_one(ctx, namespace, &desired.service, &world.services).await?;
    let receiver = apply_one(ctx, namespace, &desired.receiver, &world.deployments).await?;
    let budget = apply_one(ctx, namespace, &desired.receiver_budget, &world.budgets).await?;
    let worker = apply_one(ctx, namespace, &desired.worker, &world.deployments).await?;
    if let Some(ingress) = &desired.receiver_ingress {
        let applied = apply_one(ctx, namespace, ingress, &world.ingresses).await?;
        if applied.changed() {
            changes.push(format!("Ingress {}", ingress.name_any()));
        }
    }
    for (kind, applied) in [
        (
            "ConfigMap",
            config_map.changed().then(|| config_map.object().name_any()),
        ),
        (
            "Service",
            service.changed().then(|| service.object().name_any()),
        ),
        (
            "Deployment",
            receiver.changed().then(|| receiver.object().name_any()),
        ),
        (
            "PodDisruptionBudget",
            budget.changed().then(|| budget.object().name_any()),
        ),
        (
            "Deployment",
            worker.changed().then(|| worker.object().name_any()),
        ),
    ] {
        changes.extend(applied.map(|name| format!("{kind} {name}")));
    }
    let config_name = desired.config_map.name_any();
    let service_name = desired.service.name_any();
    let deployment_names = [desired.receiver.name_any(), desired.worker.name_any()];
    changes.extend(prune(ctx, namespace, &world.config_maps, &[&config_name]).await?);
    changes.extend(prune(ctx, namespace, &world.services, &[&service_name]).await?);
    let keep: Vec<&str> = deployment_names.iter().map(String::as_str).collect();
    changes.extend(prune(ctx, namespace, &world.deployments, &keep).await?);
    let budget_name = desired.receiver_budget.name_any();
    changes.extend(prune(ctx, namespace, &world.budgets, &[&budget_name]).await?);
    let ingress_name = desired.receiver_ingress.as_ref().map(|i| i.name_any());
    let keep: Vec<&str> = ingress_name.iter().map(String::as_str).collect();
    changes.extend(prune(ctx, namespace, &world.ingresses, &keep).await?);
    // Without a URL (never in `run`) the Secret is left as it is rather than deleted.
    if let Some(database) = &desired.database {
        let keep = database.name_any();
        changes.extend(prune(ctx, namespace, &world.owned_secrets, &[&keep]).await?);
    }
    Ok(AppliedAll {
        receiver,
        worker,
        changes,
    })
}

async fn apply_one<K>(
    ctx: &Context,
    namespace: &str,
    desired: &K,
    existing: &[K],
) -> Result<Applied<K>, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let name = desired.name_any();
    let kind = kind_of::<K>();
    let applied = apply::apply(&api(ctx, namespace), desired, find(existing, &name))
        .await
        .map_err(|source| Error::Apply {
            kind,
            name: name.clone(),
            source,
        })?;
    if applied.changed() {
        ctx.metrics.wrote(kind, "apply");
        tracing::info!(kind, name, "applied");
    }
    Ok(applied)
}

async fn prune<K>(
    ctx: &Context,
    namespace: &str,
    existing: &[K],
    keep: &[&str],
) -> Result<Vec<String>, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let kind = kind_of::<K>();
    let deleted = apply::prune(&api(ctx, namespace), existing, keep)
        .await
        .map_err(|source| Error::Delete {
            kind,
            name: "objects labelled for this connection".into(),
            source,
        })?;
    for name in &deleted {
        ctx.metrics.wrote(kind, "delete");
        tracing::info!(kind, name, "deleted, no longer needed");
    }
    Ok(deleted
        .into_iter()
        .map(|name| format!("deleted {kind} {name}"))
        .collect())
}

fn find<'a, K: Resource>(objects: &'a [K], name: &str) -> Option<&'a K> {
    objects
        .iter()
        .find(|o| o.meta().name.as_deref() == Some(name))
}

fn api<K>(ctx: &Context, namespace: &str) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    Api::namespaced(ctx.client.clone(), namespace)
}

fn kind_of<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "ConfigMap" => "ConfigMap",
        "Service" => "Service",
        "Deployment" => "Deployment",
        "PodDisruptionBudget" => "PodDisruptionBudget",
        "Secret" => "Secret",
        "Ingress" => "Ingress",
        _ => "object",
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
