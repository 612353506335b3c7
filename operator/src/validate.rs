//! Validate a Connection and its Touchpoints against what the cluster holds: the only way to a
//! [`Validated`] connection, which is all the build step accepts.
//!
//! No I/O: the reconciler fetches the touchpoints and the referenced Secrets and hands them in.
//! A problem with the connection itself stops everything (nothing is built, what runs keeps
//! running); a problem with one touchpoint leaves only that touchpoint out. Every problem has
//! a stable `reason` (the condition reason users see) and a message that says what to do.

use std::collections::{BTreeMap, BTreeSet};

use hookplane_crds::{Connection, ConnectionSpec, SecretKeyRef, Touchpoint, identity};
use hookplane_validation::{SpecError, ValidatedConnection, ValidatedTouchpoint};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::ResourceExt;

/// Why something cannot run, as a condition reason and a message for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase condition reason, e.g. `SecretNotFound`.
    pub reason: &'static str,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Problem {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Longest Connection name: `hookplane-<name>-receiver` must fit a 63-character DNS label.
pub const MAX_CONNECTION_NAME: usize = 44;

/// A connection that passed validation, with the touchpoints that can run and those that
/// cannot. Only [`validate`] makes one.
#[derive(Clone, Debug)]
pub struct Validated {
    namespace: String,
    name: String,
    uid: String,
    id: String,
    generation: Option<i64>,
    connection: ValidatedConnection,
    touchpoints: Vec<ValidTouchpoint>,
    rejected: Vec<RejectedTouchpoint>,
    secrets: BTreeMap<String, BTreeMap<String, ByteString>>,
}

/// A touchpoint that can run.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidTouchpoint {
    pub name: String,
    /// Its Hookplane id ([`identity::hookplane_id`]).
    pub id: String,
    /// `metadata.generation`, for `status.observedGeneration`.
    pub generation: i64,
    /// The generation the rendered configuration carries ([`identity::published_generation`]).
    pub published_generation: i64,
    /// The spec, as the one validation (`hookplane_validation`) accepted it.
    pub touchpoint: ValidatedTouchpoint,
}

/// A touchpoint left out of the running configuration, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct RejectedTouchpoint {
    pub name: String,
    pub problem: Problem,
}

impl Validated {
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Kubernetes `metadata.uid`, for owner references.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The connection's Hookplane id ([`identity::hookplane_id`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn generation(&self) -> Option<i64> {
        self.generation
    }

    pub fn spec(&self) -> &ConnectionSpec {
        self.connection.spec()
    }

    /// The touchpoints that run, sorted by name.
    pub fn touchpoints(&self) -> &[ValidTouchpoint] {
        &self.touchpoints
    }

    /// The touchpoints left out, sorted by name.
    pub fn rejected(&self) -> &[RejectedTouchpoint] {
        &self.rejected
    }

    /// The data of every Secret the running configuration refers to, by Secret name.
    pub fn secrets(&self) -> &BTreeMap<String, BTreeMap<String, ByteString>> {
        &self.secrets
    }
}

/// Validate `connection` with `touchpoints` (those whose `connectionRef` names it) against
/// `secrets` (the referenced Secrets that exist, by name).
pub fn validate(
    connection: &Connection,
    touchpoints: &[Touchpoint],
    secrets: &BTreeMap<String, Secret>,
) -> Result<Validated, Problem> {
    let name = connection.name_any();
    let namespace = connection
        .namespace()
        .ok_or_else(|| Problem::new("InvalidObject", "the Connection has no namespace"))?;
    let uid = connection
        .uid()
        .ok_or_else(|| Problem::new("InvalidObject", "the Connection has no uid"))?;
    let id = identity::hookplane_id(&connection.metadata).unwrap_or_else(|| uid.clone());
    check_connection_name(&name)?;
    let spec = &connection.spec;
    if spec.worker.min_replicas > spec.worker.max_replicas {
        return Err(Problem::new(
            "InvalidWorkerSettings",
            format!(
                "worker.minReplicas ({}) exceeds worker.maxReplicas ({})",
                spec.worker.min_replicas, spec.worker.max_replicas
            ),
        ));
    }
    let validated_connection =
        hookplane_validation::validate_connection(spec).map_err(|errors| {
            let reason = match errors.first().map(|e| e.field.as_str()) {
                Some("destinationBaseUrl") => "InvalidDestinationBaseUrl",
                _ => "InvalidConnection",
            };
            Problem::new(reason, all_of(&errors))
        })?;
    let mut used_secrets = BTreeSet::new();
    for credential in &spec.credentials {
        check_secret(&credential.secret_key_ref, secrets, "credential")?;
        used_secrets.insert(credential.secret_key_ref.name.clone());
    }

    let mut sorted: Vec<&Touchpoint> = touchpoints
        .iter()
        .filter(|t| t.metadata.deletion_timestamp.is_none())
        .collect();
    // The oldest touchpoint keeps a contested endpoint.
    sorted.sort_by_key(|t| (t.creation_timestamp().map(|time| time.0), t.name_any()));
    let mut endpoints: BTreeMap<&str, String> = BTreeMap::new();
    let mut valid = Vec::new();
    let mut rejected = Vec::new();
    for touchpoint in sorted {
        let name = touchpoint.name_any();
        let checked = check_touchpoint(touchpoint, &validated_connection, secrets).and_then(
            |validated| match endpoints.get(touchpoint.spec.source.endpoint.as_str()) {
                Some(owner) => Err(Problem::new(
                    "EndpointConflict",
                    format!(
                        "endpoint {:?} is already used by touchpoint {owner}; choose another source.endpoint",
                        touchpoint.spec.source.endpoint
                    ),
                )),
                None => Ok(validated),
            },
        );
        match checked {
            Ok(validated) => {
                endpoints.insert(&touchpoint.spec.source.endpoint, name.clone());
                used_secrets.extend(touchpoint.spec.secret_refs().map(|r| r.name.clone()));
                valid.push(ValidTouchpoint {
                    name,
                    id: identity::hookplane_id(&touchpoint.metadata).unwrap_or_default(),
                    generation: touchpoint.metadata.generation.unwrap_or(1),
                    published_generation: identity::published_generation(&touchpoint.metadata),
                    touchpoint: validated,
                });
            }
            Err(problem) => rejected.push(RejectedTouchpoint { name, problem }),
        }
    }
    valid.sort_by(|a, b| a.name.cmp(&b.name));
    rejected.sort_by(|a, b| a.name.cmp(&b.name));

    let secrets = used_secrets
        .into_iter()
        .map(|name| {
            let data = secrets
                .get(&name)
                .and_then(|s| s.data.clone())
                .unwrap_or_default();
            (name, data)
        })
        .collect();
    Ok(Validated {
        namespace,
        name,
        uid,
        id,
        generation: connection.metadata.generation,
        connection: validated_connection,
        touchpoints: valid,
        rejected,
        secrets,
    })
}

/// The problem that keeps a touchpoint from running because its Connection does not exist.
pub fn connection_not_found(touchpoint: &Touchpoint) -> Problem {
    Problem::new(
        "ConnectionNotFound",
        format!(
            "Connection {:?} does not exist in namespace {:?}: create it, or recreate this touchpoint with another connectionRef",
            touchpoint.spec.connection_ref,
            touchpoint.namespace().unwrap_or_default()
        ),
    )
}

/// The problem that keeps every touchpoint of an invalid connection from running.
pub fn connection_invalid(connection: &str, problem: &Problem) -> Problem {
    Problem::new(
        "ConnectionInvalid",
        format!(
            "Connection {connection:?} cannot run: {} ({})",
            problem.message, problem.reason
        ),
    )
}

fn check_connection_name(name: &str) -> Result<(), Problem> {
    let label = !name.is_empty()
        && name.len() <= MAX_CONNECTION_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if label {
        Ok(())
    } else {
        Err(Problem::new(
            "InvalidName",
            format!(
                "the Connection name {name:?} must be a DNS label (a-z, 0-9, '-') of at most {MAX_CONNECTION_NAME} characters; recreate it under such a name"
            ),
        ))
    }
}

/// The one validation's verdict on a touchpoint ([`hookplane_validation::validate_touchpoint`]),
/// so the operator never renders a touchpoint the receivers and workers would refuse to run;
/// then its verification Secrets must exist.
fn check_touchpoint(
    touchpoint: &Touchpoint,
    connection: &ValidatedConnection,
    secrets: &BTreeMap<String, Secret>,
) -> Result<ValidatedTouchpoint, Problem> {
    let validated = hookplane_validation::validate_touchpoint(&touchpoint.spec, connection)
        .map_err(|errors| spec_problem(&errors))?;
    if let Some(verification) = &touchpoint.spec.source.verification {
        for reference in verification.secret_refs() {
            check_secret(reference, secrets, "verification")?;
        }
    }
    for header in &touchpoint.spec.destination.headers {
        if let Some(reference) = &header.secret_key_ref {
            check_secret(reference, secrets, "destination header")?;
        }
    }
    Ok(validated)
}

/// The reason follows the first problem; the message lists them all.
fn spec_problem(errors: &[SpecError]) -> Problem {
    let reason = match errors.first().map(|e| (e.code, e.field.as_str())) {
        Some(("UNKNOWN_APP", _)) => "UnknownSourceApp",
        Some((_, "source.verification")) => "InvalidVerification",
        Some(("INVALID_MAPPING", _)) => "InvalidMapping",
        Some(("INVALID_FILTER", _)) => "InvalidFilter",
        Some(("INVALID_ORDERING", _)) => "InvalidOrdering",
        Some(("INVALID_ENDPOINT", _)) => "InvalidEndpoint",
        Some(("INVALID_URL", "destination.url")) => "InvalidDestinationUrl",
        _ => "InvalidSpec",
    };
    Problem::new(reason, all_of(errors))
}

/// Every problem of a spec, in one message.
fn all_of(errors: &[SpecError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn check_secret(
    reference: &SecretKeyRef,
    secrets: &BTreeMap<String, Secret>,
    what: &str,
) -> Result<(), Problem> {
    let secret = secrets.get(&reference.name).ok_or_else(|| {
        Problem::new(
            "SecretNotFound",
            format!(
                "the {what} Secret {:?} does not exist in this namespace: create it with the key {:?}",
                reference.name, reference.key
            ),
        )
    })?;
    let has_key = secret
        .data
        .as_ref()
        .is_some_and(|data| data.contains_key(&reference.key))
        || secret
            .string_data
            .as_ref()
            .is_some_and(|data| data.contains_key(&reference.key));
    if has_key {
        Ok(())
    } else {
        Err(Problem::new(
            "SecretKeyNotFound",
            format!(
                "the {what} Secret {:?} has no key {:?}: add it",
                reference.name, reference.key
            ),
        ))
    }
}

/// The names of every Secret `connection` and `touchpoints` refer to.
pub fn referenced_secrets(connection: &Connection, touchpoints: &[Touchpoint]) -> BTreeSet<String> {
    let credentials = connection
        .spec
        .credentials
        .iter()
        .map(|c| c.secret_key_ref.name.clone());
    let touchpoints = touchpoints.iter().flat_map(|t| {
        t.spec
            .secret_refs()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
    });
    credentials.chain(touchpoints).collect()
}
