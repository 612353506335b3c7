//! The receiver and worker Deployments and the receiver Service.
//!
//! Both Deployments run the one Hookplane image; the first argument chooses the role. Their
//! pods mount the connection's ConfigMap at `/etc/hookplane/config`, each referenced Secret at
//! `/etc/hookplane/secrets/<name>`, and read the database URL from the Secret named in the
//! operator's settings (see `hookplane_crds::config`). The pod templates carry the hashes of
//! the configuration and of the Secrets' data, so a change to either rolls the pods.

use std::collections::BTreeMap;

use hookplane_crds::config::{
    CONFIG_DIR, CONFIG_HASH_ANNOTATION, CONFIG_PATH, DATABASE_URL_ENV, LISTEN_PORT, SECRETS_DIR,
};
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment},
        core::v1::{
            Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
            EnvVar, EnvVarSource, HTTPGetAction, PodSecurityContext, PodSpec, PodTemplateSpec,
            Probe, ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource,
            SecurityContext, Service, ServicePort, ServiceSpec, TopologySpreadConstraint, Volume,
            VolumeMount,
        },
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::{SECRETS_HASH_ANNOTATION, labels, metadata, names, selector_labels, sha256_hex};
use crate::{
    settings::{DATABASE_SECRET_KEY, Settings},
    validate::Validated,
};

/// The two roles of the data plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Receiver,
    Worker,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Receiver => "receiver",
            Self::Worker => "worker",
        }
    }
}

/// The receivers: never fewer than one, and none removed before its replacement is ready, so
/// a webhook always finds one.
pub fn receiver_deployment(
    connection: &Validated,
    settings: &Settings,
    config_hash: &str,
) -> Deployment {
    let receiver = &connection.spec().receiver;
    let strategy = DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(1)),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    };
    deployment(
        connection,
        settings,
        Role::Receiver,
        receiver.replicas.max(1),
        config_hash,
        receiver.resources.clone(),
        Some(strategy),
    )
}

/// The workers, `replicas` of them (the scaling decision; may be 0).
pub fn worker_deployment(
    connection: &Validated,
    settings: &Settings,
    config_hash: &str,
    replicas: i32,
) -> Deployment {
    deployment(
        connection,
        settings,
        Role::Worker,
        replicas.max(0),
        config_hash,
        connection.spec().worker.resources.clone(),
        None,
    )
}

/// At most one receiver down at a time in a voluntary disruption (a node drain), so a
/// connection keeps answering webhooks while its nodes are replaced. `maxUnavailable`, not
/// `minAvailable`: a connection left at one receiver can still be drained.
pub fn receiver_budget(connection: &Validated) -> PodDisruptionBudget {
    let name = names::receiver(connection.name());
    PodDisruptionBudget {
        metadata: metadata(connection, name, Role::Receiver.as_str()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(connection.name(), Role::Receiver.as_str())),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// The Service in front of the receivers, port 80 to their `http` port.
pub fn receiver_service(connection: &Validated) -> Service {
    let name = names::receiver(connection.name());
    Service {
        metadata: metadata(connection, name, Role::Receiver.as_str()),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(connection.name(), Role::Receiver.as_str())),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn deployment(
    connection: &Validated,
    settings: &Settings,
    role: Role,
    replicas: i32,
    config_hash: &str,
    resources: Option<ResourceRequirements>,
    strategy: Option<DeploymentStrategy>,
) -> Deployment {
    let name = match role {
        Role::Receiver => names::receiver(connection.name()),
        Role::Worker => names::worker(connection.name()),
    };
    let annotations = BTreeMap::from([
        (CONFIG_HASH_ANNOTATION.to_owned(), config_hash.to_owned()),
        (SECRETS_HASH_ANNOTATION.to_owned(), secrets_hash(connection)),
    ]);
    let (volumes, mounts) = volumes(connection);
    let container = Container {
        name: role.as_str().into(),
        image: Some(settings.image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        args: Some(vec![
            role.as_str().into(),
            "--config".into(),
            CONFIG_PATH.into(),
            "--listen".into(),
            format!("0.0.0.0:{LISTEN_PORT}"),
        ]),
        env: Some(
            [
                EnvVar {
                    name: DATABASE_URL_ENV.into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: names::database(connection.name()),
                            key: DATABASE_SECRET_KEY.into(),
                            optional: None,
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                },
                EnvVar {
                    name: "HOOKPLANE_LOG_JSON".into(),
                    value: Some("true".into()),
                    ..EnvVar::default()
                },
            ]
            .into_iter()
            .chain(settings.organization.as_ref().map(|organization| EnvVar {
                name: "HOOKPLANE_ORGANIZATION".into(),
                value: Some(organization.clone()),
                ..EnvVar::default()
            }))
            .collect(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: LISTEN_PORT.into(),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(probe("/readyz", 5, 3)),
        liveness_probe: Some(probe("/healthz", 10, 6)),
        resources,
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        service_account_name: settings.service_account.clone(),
        // The data plane never talks to the Kubernetes API.
        automount_service_account_token: Some(false),
        // Workers finish their in-flight deliveries; receivers their open requests.
        termination_grace_period_seconds: Some(match role {
            Role::Receiver => 30,
            Role::Worker => 60,
        }),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        // Spread over nodes, then zones, so one node going away does not take every receiver
        // (or worker) of a connection with it; ScheduleAnyway, so a small cluster still runs
        // them all.
        topology_spread_constraints: Some(
            ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
                .into_iter()
                .map(|key| TopologySpreadConstraint {
                    max_skew: 1,
                    topology_key: key.into(),
                    when_unsatisfiable: "ScheduleAnyway".into(),
                    label_selector: Some(LabelSelector {
                        match_labels: Some(selector_labels(connection.name(), role.as_str())),
                        ..LabelSelector::default()
                    }),
                    ..TopologySpreadConstraint::default()
                })
                .collect(),
        ),
        ..PodSpec::default()
    };
    Deployment {
        metadata: metadata(connection, name, role.as_str()),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            revision_history_limit: Some(3),
            selector: LabelSelector {
                match_labels: Some(selector_labels(connection.name(), role.as_str())),
                ..LabelSelector::default()
            },
            strategy,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(connection.name(), role.as_str())),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// The ConfigMap, each referenced Secret (volumes `secret-0`, `secret-1`, ... in name order)
/// and a writable `/tmp` (the root file system is read-only).
fn volumes(connection: &Validated) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(connection.name()),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        mount("config", CONFIG_DIR.into()),
        mount("tmp", "/tmp".into()),
    ];
    for (index, secret) in connection.secrets().keys().enumerate() {
        let name = format!("secret-{index}");
        volumes.push(Volume {
            name: name.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(mount(&name, format!("{SECRETS_DIR}/{secret}")));
    }
    (volumes, mounts)
}

fn mount(volume: &str, path: String) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path,
        read_only: Some(volume != "tmp"),
        ..VolumeMount::default()
    }
}

/// SHA-256 of the referenced Secrets' data (names, keys and values, canonical JSON).
fn secrets_hash(connection: &Validated) -> String {
    let canonical =
        serde_json::to_vec(connection.secrets()).expect("secret data serializes to JSON");
    sha256_hex(&canonical)
}
