//! Input types: the touchpoint wizard's steps in one input, turned into a `TouchpointSpec`.
//!
//! Secret values arrive here and nowhere else: they are split off into `SecretWrites` and
//! the spec keeps only references to them.

use async_graphql::{Enum, ID, InputObject};
use hookplane_crds as crds;
use hookplane_sources::REDACTED;

use super::types::{HttpMethod, OrderingFailure, PayloadFormat};
use crate::portal::SecretWrites;

#[derive(InputObject)]
pub struct RegisterUrlInput {
    /// The organization's slug: the `{org}` part of endpoint URLs (`[a-z0-9-]`, 1-63).
    pub organization: String,
    /// The public base URL sources reach Hookplane at (`https://hooks.example.com`).
    pub url: String,
}

#[derive(InputObject)]
pub struct CreateConnectionInput {
    /// The organization it belongs to; may be left out when you have only one.
    pub organization_id: Option<ID>,
    pub name: String,
    pub source_app: String,
    pub destination_app: String,
    pub destination_base_url: Option<String>,
    #[graphql(default = true)]
    pub show_in_sync_panel: bool,
    /// Header credentials for the destination (API keys, bearer tokens).
    #[graphql(default)]
    pub credentials: Vec<CredentialInput>,
    pub basic_auth: Option<BasicAuthInput>,
    pub oauth2: Option<OAuth2Input>,
    pub limits: Option<DestinationLimitsInput>,
}

/// A role in an organization; each includes the ones before it.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum TokenRole {
    /// Read specs, buckets, logs and schemas.
    Viewer,
    /// Also resync, switch Auto-sync, pause, preview mappings, see response snippets.
    Operator,
    /// Also create, edit, publish and delete; schemas, tokens and the audit log.
    Admin,
}

impl From<crate::auth::Role> for TokenRole {
    fn from(role: crate::auth::Role) -> Self {
        match role {
            crate::auth::Role::Viewer => Self::Viewer,
            crate::auth::Role::Operator => Self::Operator,
            crate::auth::Role::Admin => Self::Admin,
        }
    }
}

impl From<TokenRole> for crate::auth::Role {
    fn from(role: TokenRole) -> Self {
        match role {
            TokenRole::Viewer => Self::Viewer,
            TokenRole::Operator => Self::Operator,
            TokenRole::Admin => Self::Admin,
        }
    }
}

#[derive(InputObject)]
pub struct CreateTokenInput {
    /// The organization it acts in; may be left out when you have only one.
    pub organization_id: Option<ID>,
    /// What it is for (shown in lists and the audit log).
    pub name: String,
    pub role: TokenRole,
    /// When it stops working; never, when left out.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A header credential: `header: <prefix><value>`. The value is write-only.
#[derive(InputObject)]
pub struct CredentialInput {
    pub name: String,
    pub header: String,
    pub prefix: Option<String>,
    pub value: String,
}

#[derive(InputObject)]
pub struct BasicAuthInput {
    pub username: String,
    /// Write-only.
    pub password: String,
}

#[derive(InputObject)]
pub struct OAuth2Input {
    pub token_url: String,
    pub client_id: String,
    /// Write-only.
    pub client_secret: String,
    #[graphql(default)]
    pub scopes: Vec<String>,
}

#[derive(InputObject)]
pub struct DestinationLimitsInput {
    /// Requests in flight at once (default 16).
    pub max_concurrency: Option<u32>,
    /// Requests per second (unset: unlimited).
    pub requests_per_second: Option<u32>,
}

/// Limits on one evaluation of the touchpoint's jq (mapping, filter, ordering key); unset
/// fields take the instance's defaults, and values above its maximum are lowered to it.
#[derive(InputObject)]
pub struct ExpressionLimitsInput {
    /// CPU time, in milliseconds (1-60000).
    pub time_ms: Option<u32>,
    /// Memory, in MiB (1-65536).
    pub memory_mib: Option<u32>,
    /// Size of a mapped output as JSON text, in KiB (1-1048576).
    pub output_kib: Option<u32>,
}

impl ExpressionLimitsInput {
    /// The spec's limits; all fields unset is no limits of its own.
    pub fn into_spec(self) -> Option<crds::ExpressionLimits> {
        let Self {
            time_ms,
            memory_mib,
            output_kib,
        } = self;
        let limits = crds::ExpressionLimits {
            time_ms,
            memory_mib,
            output_kib,
        };
        (limits != crds::ExpressionLimits::default()).then_some(limits)
    }
}

#[derive(InputObject)]
pub struct OrderingInput {
    /// jq expression for the ordering key, e.g. `.id`.
    pub key: String,
    #[graphql(default_with = "OrderingFailure::Block")]
    pub on_failure: OrderingFailure,
}

/// Verification settings; which apply depends on the source app (query `apps` for each
/// app's fields). Secret values are write-only.
#[derive(InputObject)]
pub struct VerificationInput {
    /// Scheme: for `generic` (required) none, hmac, standardWebhooks, token, basic, bearer;
    /// for shift4shop and prestashop token (default) or hmac.
    pub scheme: Option<String>,
    /// Signing secret, token or password (write-only).
    pub secret: Option<String>,
    /// Previous signing secret still accepted during rotation (write-only).
    pub previous_secret: Option<String>,
    /// More secrets accepted at once (write-only); replaces the stored list when given.
    pub additional_secrets: Option<Vec<String>>,
    pub header: Option<String>,
    pub query_parameter: Option<String>,
    /// `sha256` (default) or `sha1`.
    pub algorithm: Option<String>,
    /// `hex` (default) or `base64`.
    pub encoding: Option<String>,
    /// Text before the signature in its header, e.g. `sha256=`.
    pub prefix: Option<String>,
    /// What the signature covers, e.g. `{timestamp}.{body}`.
    pub signed_content: Option<String>,
    pub timestamp_header: Option<String>,
    pub id_header: Option<String>,
    pub tolerance_seconds: Option<u32>,
    pub username: Option<String>,
    /// Salesforce organization id.
    pub org_id: Option<String>,
    /// Salesforce outbound message ids accepted (empty: any).
    #[graphql(default)]
    pub action_ids: Vec<String>,
}

#[derive(InputObject)]
pub struct SourceInput {
    #[graphql(default_with = "\"generic\".to_string()")]
    pub app: String,
    pub endpoint: String,
    pub schema: Option<String>,
    #[graphql(default_with = "PayloadFormat::Json")]
    pub format: PayloadFormat,
    pub verification: Option<VerificationInput>,
}

/// One extra header sent with every delivery. A secret header's value is write-only: it is
/// stored apart and shown as `[redacted]`; sending it back as `[redacted]`, or leaving it out,
/// keeps the value it had.
#[derive(InputObject)]
pub struct HeaderInput {
    pub name: String,
    pub value: Option<String>,
    /// Whether the value is a credential. Default: true for `Authorization`, `Cookie` and
    /// names containing `token`, `secret`, `password`, `auth` or `api-key`/`apikey`.
    pub secret: Option<bool>,
}

impl HeaderInput {
    /// Secret when said so; otherwise when its name reads like a credential, or when it
    /// comes back without a new value for a header that was secret (a portal echoing what it
    /// read).
    fn is_secret(&self, previous: Option<&crds::DestinationSpec>) -> bool {
        self.secret.unwrap_or_else(|| {
            is_credential_name(&self.name)
                || (self.new_value().is_none() && kept_reference(previous, &self.name).is_some())
        })
    }

    /// The value given, `None` when it was left out or sent back redacted.
    fn new_value(&self) -> Option<&str> {
        self.value.as_deref().filter(|value| *value != REDACTED)
    }
}

/// Whether a header name reads like a credential. Pure.
pub fn is_credential_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(name.as_str(), "cookie" | "proxy-authorization")
        || ["token", "secret", "password", "auth", "api-key", "apikey"]
            .iter()
            .any(|word| name.contains(word))
}

#[derive(InputObject)]
pub struct DestinationInput {
    #[graphql(default_with = "HttpMethod::Post")]
    pub method: HttpMethod,
    /// Absolute URL, or relative to the connection's destination base URL.
    pub url: String,
    #[graphql(default_with = "PayloadFormat::Json")]
    pub format: PayloadFormat,
    #[graphql(default)]
    pub headers: Vec<HeaderInput>,
    /// Root element name for XML deliveries (default `payload`).
    pub xml_root: Option<String>,
}

#[derive(InputObject)]
pub struct MappingRuleInput {
    pub target: String,
    pub expr: String,
}

#[derive(InputObject)]
pub struct MappingInput {
    #[graphql(default)]
    pub rules: Vec<MappingRuleInput>,
    pub program: Option<String>,
}

#[derive(InputObject)]
pub struct DeliveryPolicyInput {
    pub max_attempts: Option<u32>,
    pub initial_backoff_ms: Option<u64>,
    pub max_backoff_ms: Option<u64>,
    pub timeout_seconds: Option<u32>,
    /// Retry 4xx answers other than 408/409/425/429 (default: they fail at once).
    pub retry_client_errors: Option<bool>,
}

#[derive(InputObject)]
pub struct CreateTouchpointInput {
    pub connection_id: ID,
    pub name: String,
    pub help_url: Option<String>,
    #[graphql(default = true)]
    pub show_in_agent: bool,
    pub source: SourceInput,
    pub destination: DestinationInput,
    pub mapping: Option<MappingInput>,
    /// jq; `false` or `null` marks the event SKIPPED.
    pub filter: Option<String>,
    #[graphql(default = false)]
    pub auto_sync: bool,
    pub delivery: Option<DeliveryPolicyInput>,
    /// Deliver events with the same key one at a time, in arrival order.
    pub ordering: Option<OrderingInput>,
    pub expression_limits: Option<ExpressionLimitsInput>,
}

/// Fields left out are unchanged; a given `source`, `destination`, `mapping` or `delivery`
/// replaces that whole part (write-only secrets left out of a new `verification` are kept).
#[derive(InputObject)]
pub struct UpdateTouchpointInput {
    pub id: ID,
    pub name: Option<String>,
    pub help_url: Option<String>,
    pub show_in_agent: Option<bool>,
    pub source: Option<SourceInput>,
    pub destination: Option<DestinationInput>,
    pub mapping: Option<MappingInput>,
    /// jq filter; an empty string removes the filter.
    pub filter: Option<String>,
    pub delivery: Option<DeliveryPolicyInput>,
    /// Ordering; an empty key removes it.
    pub ordering: Option<OrderingInput>,
    /// Limits of its own; all fields unset removes them.
    pub expression_limits: Option<ExpressionLimitsInput>,
}

impl UpdateTouchpointInput {
    /// Apply the fields given to a copy of touchpoint `id`'s draft; new secret values are
    /// written under the touchpoint's Secret name.
    pub fn apply(
        self,
        id: uuid::Uuid,
        spec: &mut crds::TouchpointSpec,
        secrets: &mut SecretWrites,
    ) {
        let Self {
            id: _,
            name,
            help_url,
            show_in_agent,
            source,
            destination,
            mapping,
            filter,
            delivery,
            ordering,
            expression_limits,
        } = self;
        if let Some(name) = name {
            spec.name = name;
        }
        if let Some(help_url) = help_url {
            spec.help_url = Some(help_url).filter(|u| !u.is_empty());
        }
        if let Some(show) = show_in_agent {
            spec.show_in_agent = show;
        }
        // New secret values (verification, destination headers) go under one Secret name.
        let secret_name = format!("touchpoint-{id}");
        if let Some(source) = source {
            let previous = spec.source.verification.clone();
            spec.source = source.into_spec(&secret_name, previous.as_ref(), secrets);
        }
        if let Some(destination) = destination {
            spec.destination =
                destination.into_spec(&secret_name, Some(&spec.destination), secrets);
        }
        if let Some(mapping) = mapping {
            spec.mapping = mapping.into();
        }
        if let Some(filter) = filter {
            spec.filter = Some(filter).filter(|f| !f.trim().is_empty());
        }
        if let Some(delivery) = delivery {
            spec.delivery = delivery.into_spec();
        }
        if let Some(ordering) = ordering {
            spec.ordering = ordering.into_spec();
        }
        if let Some(limits) = expression_limits {
            spec.expression_limits = limits.into_spec();
        }
    }
}

impl SourceInput {
    /// The source spec, with secrets written under `secret_name` (keys `secret`,
    /// `previousSecret`). `previous` supplies references kept when no new value is given.
    pub fn into_spec(
        self,
        secret_name: &str,
        previous: Option<&crds::VerificationSpec>,
        writes: &mut SecretWrites,
    ) -> crds::SourceSpec {
        let verification = self.verification.map(|input| {
            let mut reference =
                |value: Option<String>, key: &str, kept: Option<&crds::SecretKeyRef>| match value {
                    Some(value) => {
                        let reference = crds::SecretKeyRef {
                            name: secret_name.to_owned(),
                            key: key.to_owned(),
                        };
                        writes.0.push((reference.clone(), value));
                        Some(reference)
                    }
                    None => kept.cloned(),
                };
            let additional_secret_refs = match input.additional_secrets {
                Some(values) => values
                    .into_iter()
                    .enumerate()
                    .filter_map(|(index, value)| {
                        reference(Some(value), &format!("additionalSecret{index}"), None)
                    })
                    .collect(),
                None => previous
                    .map(|p| p.additional_secret_refs.clone())
                    .unwrap_or_default(),
            };
            crds::VerificationSpec {
                scheme: input.scheme,
                secret_ref: reference(
                    input.secret,
                    "secret",
                    previous.and_then(|p| p.secret_ref.as_ref()),
                ),
                previous_secret_ref: reference(
                    input.previous_secret,
                    "previousSecret",
                    previous.and_then(|p| p.previous_secret_ref.as_ref()),
                ),
                additional_secret_refs,
                header: input.header,
                query_parameter: input.query_parameter,
                algorithm: input.algorithm,
                encoding: input.encoding,
                prefix: input.prefix,
                signed_content: input.signed_content,
                timestamp_header: input.timestamp_header,
                id_header: input.id_header,
                tolerance_seconds: input.tolerance_seconds,
                username: input.username,
                org_id: input.org_id,
                action_ids: input.action_ids,
            }
        });
        crds::SourceSpec {
            app: self.app,
            endpoint: self.endpoint,
            schema: self.schema,
            format: self.format.into(),
            verification,
        }
    }
}

impl DestinationInput {
    /// The secret headers that would have no value: neither given nor kept from `previous`
    /// (the request is refused with these named).
    pub fn missing_secret_values(&self, previous: Option<&crds::DestinationSpec>) -> Vec<String> {
        self.headers
            .iter()
            .filter(|header| header.is_secret(previous) && header.new_value().is_none())
            .filter(|header| kept_reference(previous, &header.name).is_none())
            .map(|header| header.name.clone())
            .collect()
    }

    /// The destination spec, with secret header values written under `secret_name` (key
    /// `header-<name>`). `previous` supplies the references of secret headers sent back
    /// without a new value.
    pub fn into_spec(
        self,
        secret_name: &str,
        previous: Option<&crds::DestinationSpec>,
        writes: &mut SecretWrites,
    ) -> crds::DestinationSpec {
        let headers = self
            .headers
            .into_iter()
            .map(|header| {
                if !header.is_secret(previous) {
                    return crds::HeaderSpec {
                        value: header.value.unwrap_or_default(),
                        secret_key_ref: None,
                        name: header.name,
                    };
                }
                let secret_key_ref = match header.new_value() {
                    Some(value) => {
                        let reference = crds::SecretKeyRef {
                            name: secret_name.to_owned(),
                            key: format!("header-{}", header.name.to_ascii_lowercase()),
                        };
                        writes.0.push((reference.clone(), value.to_owned()));
                        Some(reference)
                    }
                    None => kept_reference(previous, &header.name),
                };
                crds::HeaderSpec {
                    name: header.name,
                    value: String::new(),
                    secret_key_ref,
                }
            })
            .collect();
        crds::DestinationSpec {
            method: self.method.into(),
            url: self.url,
            format: self.format.into(),
            headers,
            xml_root: self.xml_root.filter(|r| !r.is_empty()),
        }
    }
}

/// The secret a header of `previous` named `name` had its value in.
fn kept_reference(
    previous: Option<&crds::DestinationSpec>,
    name: &str,
) -> Option<crds::SecretKeyRef> {
    previous?
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case(name))?
        .secret_key_ref
        .clone()
}

impl OrderingInput {
    /// `None` when the key is blank (removes ordering).
    pub fn into_spec(self) -> Option<crds::OrderingSpec> {
        (!self.key.trim().is_empty()).then(|| crds::OrderingSpec {
            key: self.key,
            on_failure: self.on_failure.into(),
        })
    }
}

impl From<MappingInput> for crds::MappingSpec {
    fn from(input: MappingInput) -> Self {
        Self {
            rules: input
                .rules
                .into_iter()
                .map(|r| crds::MappingRule {
                    target: r.target,
                    expr: r.expr,
                })
                .collect(),
            program: input.program.filter(|p| !p.trim().is_empty()),
        }
    }
}

impl DeliveryPolicyInput {
    pub fn into_spec(self) -> crds::DeliveryPolicy {
        let defaults = crds::DeliveryPolicy::default();
        crds::DeliveryPolicy {
            max_attempts: self.max_attempts.unwrap_or(defaults.max_attempts),
            initial_backoff_ms: self
                .initial_backoff_ms
                .unwrap_or(defaults.initial_backoff_ms),
            max_backoff_ms: self.max_backoff_ms.unwrap_or(defaults.max_backoff_ms),
            timeout_seconds: self.timeout_seconds.unwrap_or(defaults.timeout_seconds),
            retry_client_errors: self
                .retry_client_errors
                .unwrap_or(defaults.retry_client_errors),
        }
    }
}

impl CreateConnectionInput {
    /// The connection's spec, with its credential values split off under `secret_name`.
    pub fn into_spec(self, secret_name: &str, writes: &mut SecretWrites) -> crds::ConnectionSpec {
        let mut reference = |key: String, value: String| {
            let reference = crds::SecretKeyRef {
                name: secret_name.to_owned(),
                key,
            };
            writes.0.push((reference.clone(), value));
            reference
        };
        let credentials = self
            .credentials
            .into_iter()
            .map(|credential| crds::CredentialSpec {
                secret_key_ref: reference(
                    format!("credential-{}", credential.name),
                    credential.value,
                ),
                name: credential.name,
                header: credential.header,
                prefix: credential.prefix,
            })
            .collect();
        let basic_auth = self.basic_auth.map(|basic| crds::BasicAuthSpec {
            username: basic.username,
            password_ref: reference("basicPassword".to_owned(), basic.password),
        });
        let oauth2 = self.oauth2.map(|oauth2| crds::OAuth2Spec {
            token_url: oauth2.token_url,
            client_id: oauth2.client_id,
            client_secret_ref: reference("oauth2ClientSecret".to_owned(), oauth2.client_secret),
            scopes: oauth2.scopes,
        });
        let defaults = crds::DestinationLimits::default();
        let limits = self
            .limits
            .map_or(defaults.clone(), |limits| crds::DestinationLimits {
                max_concurrency: limits.max_concurrency.unwrap_or(defaults.max_concurrency),
                requests_per_second: limits.requests_per_second,
            });
        crds::ConnectionSpec {
            name: self.name,
            source_app: self.source_app,
            destination_app: self.destination_app,
            destination_base_url: self.destination_base_url,
            show_in_sync_panel: self.show_in_sync_panel,
            credentials,
            basic_auth,
            oauth2,
            limits,
            receiver: crds::ReceiverSpec::default(),
            worker: crds::WorkerSpec::default(),
        }
    }
}
