//! Touchpoint and connection spec validation: the only way to a [`ValidatedTouchpoint`] or a
//! [`ValidatedConnection`].
//!
//! Validation needs no I/O: the caller fetches the connection and hands it in. A validated
//! touchpoint carries its compiled mapping, filter, ordering key and URL template, so nothing
//! downstream (the worker, the receiver's route table, the operator's build step) can run a
//! spec that did not pass here. Both values have private fields: they can only be made by
//! validating.

use std::{fmt, sync::Arc};

use hookplane_crds::{ConnectionSpec, MappingSpec, TouchpointSpec};
use hookplane_mapping::{Filter, Mapping};
use url::Url;

use crate::template::UrlTemplate;

/// A connection spec that passed [`validate_connection`].
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedConnection {
    spec: Arc<ConnectionSpec>,
}

impl ValidatedConnection {
    pub fn spec(&self) -> &ConnectionSpec {
        &self.spec
    }
}

/// A touchpoint spec that passed [`validate_touchpoint`], with its jq programs compiled: its
/// source app exists and can verify with the configured settings, its mapping, filter and
/// ordering key compile, and its destination URL template resolves against the connection.
#[derive(Clone)]
pub struct ValidatedTouchpoint {
    spec: Arc<TouchpointSpec>,
    mapping: Mapping,
    filter: Option<Filter>,
    ordering_key: Option<Mapping>,
    destination_url: UrlTemplate,
}

impl ValidatedTouchpoint {
    pub fn spec(&self) -> &TouchpointSpec {
        &self.spec
    }

    /// The compiled mapping (rules and/or program).
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// The compiled filter; false means SKIPPED.
    pub fn filter(&self) -> Option<&Filter> {
        self.filter.as_ref()
    }

    /// The ordering key expression, when events are ordered per key.
    pub fn ordering_key(&self) -> Option<&Mapping> {
        self.ordering_key.as_ref()
    }

    /// The destination URL template, compiled: relative templates resolve against the
    /// connection's base URL, and placeholders are filled from the mapped output.
    pub fn destination_url(&self) -> &UrlTemplate {
        &self.destination_url
    }
}

impl fmt::Debug for ValidatedTouchpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatedTouchpoint")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// Two validated touchpoints are equal when their specs are: everything else is compiled
/// from the spec.
impl PartialEq for ValidatedTouchpoint {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

/// One reason a spec is invalid, with a stable code and the field it concerns.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl SpecError {
    fn new(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Longest endpoint path accepted.
const MAX_ENDPOINT_LEN: usize = 200;

/// Check an endpoint path: segments of `A-Za-z0-9._~-` separated by single slashes.
pub fn validate_endpoint(endpoint: &str) -> Result<(), SpecError> {
    let invalid = |message: &str| SpecError::new("INVALID_ENDPOINT", "source.endpoint", message);
    if endpoint.is_empty() {
        return Err(invalid("the endpoint must not be empty"));
    }
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(invalid("the endpoint is longer than 200 characters"));
    }
    let segment_ok = |segment: &str| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
    };
    if !endpoint.split('/').all(segment_ok) {
        return Err(invalid(
            "the endpoint is path segments of letters, digits, '-', '_', '.' and '~' separated by single '/'",
        ));
    }
    Ok(())
}

/// Validate a touchpoint spec against its connection and compile its jq programs: the verdict
/// on whether it can run (be published, rendered by the operator, loaded by the data plane).
pub fn validate_touchpoint(
    spec: &TouchpointSpec,
    connection: &ValidatedConnection,
) -> Result<ValidatedTouchpoint, Vec<SpecError>> {
    check(spec, connection.spec(), Verdict::Run)
}

/// Whether a spec can be saved as a portal draft: everything [`validate_touchpoint`] checks
/// except that the source's verification is complete (a draft may wait for its secret; it is
/// not published without it). The draft's jq programs come compiled, for previews.
pub fn check_draft(
    spec: &TouchpointSpec,
    connection: &ValidatedConnection,
) -> Result<DraftTouchpoint, Vec<SpecError>> {
    check(spec, connection.spec(), Verdict::Draft).map(DraftTouchpoint)
}

/// A draft that passed [`check_draft`]: its mapping, filter and ordering key can be previewed,
/// but it is not a [`ValidatedTouchpoint`] and nothing runs it.
pub struct DraftTouchpoint(ValidatedTouchpoint);

impl DraftTouchpoint {
    pub fn mapping(&self) -> &Mapping {
        self.0.mapping()
    }

    pub fn filter(&self) -> Option<&Filter> {
        self.0.filter()
    }

    pub fn ordering_key(&self) -> Option<&Mapping> {
        self.0.ordering_key()
    }
}

/// Which verdict a check gives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Draft,
    Run,
}

fn check(
    spec: &TouchpointSpec,
    connection: &ConnectionSpec,
    verdict: Verdict,
) -> Result<ValidatedTouchpoint, Vec<SpecError>> {
    let mut errors = Vec::new();
    match hookplane_sources::app(&spec.source.app) {
        None => errors.push(SpecError::new(
            "UNKNOWN_APP",
            "source.app",
            format!(
                "{:?} is not in the app catalog (query `apps`)",
                spec.source.app
            ),
        )),
        Some(app) if verdict == Verdict::Run => {
            let verification = spec.source.verification.clone().unwrap_or_default();
            if let Err(error) = app.validate(&verification) {
                errors.push(SpecError::new(
                    error.code(),
                    "source.verification",
                    error.to_string(),
                ));
            }
        }
        Some(_) => {}
    }
    if spec.name.trim().is_empty() {
        errors.push(SpecError::new(
            "INVALID_INPUT",
            "name",
            "the name must not be empty",
        ));
    }
    if let Err(error) = validate_endpoint(&spec.source.endpoint) {
        errors.push(error);
    }
    if let Some(help_url) = &spec.help_url
        && Url::parse(help_url).is_err()
    {
        errors.push(SpecError::new(
            "INVALID_URL",
            "helpUrl",
            "not an absolute URL",
        ));
    }
    let mapping = Mapping::compile(&spec.mapping).map_err(|compile| {
        for error in compile.errors {
            errors.push(SpecError::new(
                "INVALID_MAPPING",
                &format!("mapping.{}", error.location),
                format!("{} (in `{}`)", error.message, error.expr),
            ));
        }
    });
    let filter = match spec.filter.as_deref() {
        None => Ok(None),
        Some(expr) => Filter::compile(expr).map(Some).map_err(|compile| {
            for error in compile.errors {
                errors.push(SpecError::new("INVALID_FILTER", "filter", error.message));
            }
        }),
    };
    let ordering_key = match &spec.ordering {
        None => Ok(None),
        Some(ordering) => Mapping::compile(&MappingSpec {
            rules: Vec::new(),
            program: Some(ordering.key.clone()),
        })
        .map(Some)
        .map_err(|compile| {
            for error in compile.errors {
                errors.push(SpecError::new(
                    "INVALID_ORDERING",
                    "ordering.key",
                    error.message,
                ));
            }
        }),
    };
    let destination_url =
        resolve_destination(&spec.destination.url, connection).map_err(|error| errors.push(error));
    let policy = &spec.delivery;
    if policy.max_attempts == 0 || policy.max_attempts > 100 {
        errors.push(SpecError::new(
            "INVALID_INPUT",
            "delivery.maxAttempts",
            "must be between 1 and 100",
        ));
    }
    if policy.timeout_seconds == 0 || policy.timeout_seconds > 600 {
        errors.push(SpecError::new(
            "INVALID_INPUT",
            "delivery.timeoutSeconds",
            "must be between 1 and 600",
        ));
    }
    if policy.initial_backoff_ms > policy.max_backoff_ms {
        errors.push(SpecError::new(
            "INVALID_INPUT",
            "delivery.initialBackoffMs",
            "must not exceed delivery.maxBackoffMs",
        ));
    }
    if let Some(root) = &spec.destination.xml_root
        && !is_xml_name(root)
    {
        errors.push(SpecError::new(
            "INVALID_INPUT",
            "destination.xmlRoot",
            "not an XML element name (a letter or `_`, then letters, digits, `.`, `_` or `-`)",
        ));
    }
    for (index, header) in spec.destination.headers.iter().enumerate() {
        let name_ok = http::header::HeaderName::from_bytes(header.name.as_bytes()).is_ok();
        // A value from a secret is checked when it is read (an invalid one is not sent).
        let value_ok = header.secret_key_ref.is_some()
            || http::header::HeaderValue::from_str(&header.value).is_ok();
        if !name_ok || !value_ok {
            errors.push(SpecError::new(
                "INVALID_INPUT",
                &format!("destination.headers[{index}]"),
                "not a valid HTTP header",
            ));
        }
    }
    match (mapping, filter, ordering_key, destination_url) {
        (Ok(mapping), Ok(filter), Ok(ordering_key), Ok(destination_url)) if errors.is_empty() => {
            Ok(ValidatedTouchpoint {
                spec: Arc::new(spec.clone()),
                mapping,
                filter,
                ordering_key,
                destination_url,
            })
        }
        _ => Err(errors),
    }
}

/// Validate a connection spec: names, apps in the catalog, URLs, credentials and limits.
pub fn validate_connection(spec: &ConnectionSpec) -> Result<ValidatedConnection, Vec<SpecError>> {
    let mut errors = Vec::new();
    if spec.name.trim().is_empty() {
        errors.push(SpecError::new(
            "INVALID_INPUT",
            "name",
            "the name must not be empty",
        ));
    }
    for (field, app) in [
        ("sourceApp", &spec.source_app),
        ("destinationApp", &spec.destination_app),
    ] {
        if hookplane_sources::app(app).is_none() {
            errors.push(SpecError::new(
                "UNKNOWN_APP",
                field,
                format!("{app:?} is not in the app catalog (query `apps`)"),
            ));
        }
    }
    let http_url =
        |url: &str| Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
    if let Some(base) = &spec.destination_base_url
        && !http_url(base)
    {
        errors.push(SpecError::new(
            "INVALID_URL",
            "destinationBaseUrl",
            "must be an absolute http(s) URL",
        ));
    }
    if let Some(oauth2) = &spec.oauth2 {
        if !http_url(&oauth2.token_url) {
            errors.push(SpecError::new(
                "INVALID_URL",
                "oauth2.tokenUrl",
                "must be an absolute http(s) URL",
            ));
        }
        if oauth2.client_id.is_empty() {
            errors.push(SpecError::new(
                "INVALID_INPUT",
                "oauth2.clientId",
                "must not be empty",
            ));
        }
    }
    let mut names = std::collections::HashSet::new();
    for (index, credential) in spec.credentials.iter().enumerate() {
        let field = format!("credentials[{index}]");
        if credential.name.is_empty() || !names.insert(credential.name.as_str()) {
            errors.push(SpecError::new(
                "INVALID_INPUT",
                &field,
                "credential names are unique and not empty",
            ));
        }
        if http::header::HeaderName::from_bytes(credential.header.as_bytes()).is_err() {
            errors.push(SpecError::new(
                "INVALID_INPUT",
                &field,
                "not a valid header name",
            ));
        }
    }
    if !(1..=1000).contains(&spec.limits.max_concurrency) {
        errors.push(SpecError::new(
            "INVALID_INPUT",
            "limits.maxConcurrency",
            "must be between 1 and 1000",
        ));
    }
    if spec.limits.requests_per_second == Some(0) {
        errors.push(SpecError::new(
            "INVALID_INPUT",
            "limits.requestsPerSecond",
            "must be at least 1 (leave it unset for no limit)",
        ));
    }
    if errors.is_empty() {
        Ok(ValidatedConnection {
            spec: Arc::new(spec.clone()),
        })
    } else {
        Err(errors)
    }
}

/// The `xmlRoot` pattern of the CRD: `^[A-Za-z_][A-Za-z0-9._-]*$`.
fn is_xml_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn resolve_destination(url: &str, connection: &ConnectionSpec) -> Result<UrlTemplate, SpecError> {
    let invalid = |message: String| SpecError::new("INVALID_URL", "destination.url", message);
    let base = match connection.destination_base_url.as_deref().map(Url::parse) {
        None => None,
        Some(Ok(base)) => Some(base),
        Some(Err(_)) => return Err(invalid("the connection's base URL is invalid".into())),
    };
    UrlTemplate::compile(url, base.as_ref()).map_err(|error| invalid(error.to_string()))
}

#[cfg(test)]
mod tests {
    use hookplane_crds::{DestinationSpec, MappingRule, SourceSpec, VerificationSpec};

    use super::*;

    fn connection() -> ValidatedConnection {
        validate_connection(&ConnectionSpec {
            name: "shop to erp".into(),
            source_app: "generic".into(),
            destination_app: "generic".into(),
            destination_base_url: Some("http://erp.local/api/".into()),
            show_in_sync_panel: true,
            credentials: Default::default(),
            basic_auth: None,
            oauth2: None,
            limits: Default::default(),
            receiver: Default::default(),
            worker: Default::default(),
        })
        .expect("a valid connection")
    }

    fn spec() -> TouchpointSpec {
        TouchpointSpec {
            connection_ref: "c".into(),
            name: "orders".into(),
            source: SourceSpec {
                app: "generic".into(),
                endpoint: "shop/orders".into(),
                verification: Some(VerificationSpec {
                    scheme: Some("none".into()),
                    ..VerificationSpec::default()
                }),
                ..SourceSpec::default()
            },
            destination: DestinationSpec {
                url: "orders".into(),
                ..DestinationSpec::default()
            },
            ..TouchpointSpec::default()
        }
    }

    fn codes(result: Result<ValidatedTouchpoint, Vec<SpecError>>) -> Vec<&'static str> {
        match result {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(|e| e.code).collect(),
        }
    }

    #[test]
    fn a_valid_spec_resolves_its_relative_destination() {
        let valid = validate_touchpoint(&spec(), &connection()).expect("valid");
        assert_eq!(
            valid
                .destination_url()
                .fill(&serde_json::Value::Null)
                .expect("no placeholders")
                .as_str(),
            "http://erp.local/api/orders"
        );
    }

    #[test]
    fn destination_url_templates_are_checked_at_validation() {
        let mut templated = spec();
        templated.destination.url = "orders/{.id}?email={.customer.email}".into();
        let valid = validate_touchpoint(&templated, &connection()).expect("valid");
        let url = valid
            .destination_url()
            .fill(&serde_json::json!({"id": 7, "customer": {"email": "a@b.c"}}))
            .expect("filled");
        assert_eq!(url.as_str(), "http://erp.local/api/orders/7?email=a%40b.c");
        for bad in ["orders/{.id", "orders/{id}", "http://{.host}/x", "orders/}"] {
            templated.destination.url = bad.into();
            let errors = validate_touchpoint(&templated, &connection()).expect_err("invalid");
            assert_eq!(errors.len(), 1, "{bad}");
            assert_eq!(errors[0].code, "INVALID_URL", "{bad}");
            assert_eq!(errors[0].field, "destination.url", "{bad}");
        }
    }

    #[test]
    fn endpoints_are_checked() {
        for bad in ["", "/a", "a/", "a//b", "a b", "../x", "a/./b", "ü"] {
            assert!(
                validate_endpoint(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        for good in ["orders", "shop/orders-v2", "a.b_c~d"] {
            assert!(
                validate_endpoint(good).is_ok(),
                "{good:?} should be accepted"
            );
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut bad = spec();
        bad.name = " ".into();
        bad.source.endpoint = String::new();
        bad.mapping.rules = vec![MappingRule {
            target: "x".into(),
            expr: ".a |".into(),
        }];
        bad.filter = Some("nosuchfn(1)".into());
        bad.destination.url = "ftp://x".into();
        bad.delivery.max_attempts = 0;
        assert_eq!(
            codes(validate_touchpoint(&bad, &connection())),
            vec![
                "INVALID_INPUT",
                "INVALID_ENDPOINT",
                "INVALID_MAPPING",
                "INVALID_FILTER",
                "INVALID_URL",
                "INVALID_INPUT"
            ]
        );
    }

    #[test]
    fn xml_root_must_be_an_element_name() {
        let mut xml = spec();
        xml.destination.xml_root = Some("Order".into());
        assert!(validate_touchpoint(&xml, &connection()).is_ok());
        xml.destination.xml_root = Some("1 order".into());
        assert_eq!(
            codes(validate_touchpoint(&xml, &connection())),
            vec!["INVALID_INPUT"]
        );
    }

    #[test]
    fn relative_destination_needs_a_base_url() {
        let mut conn = connection().spec().clone();
        conn.destination_base_url = None;
        let conn = validate_connection(&conn).expect("valid without a base URL");
        assert_eq!(
            codes(validate_touchpoint(&spec(), &conn)),
            vec!["INVALID_URL"]
        );
    }

    #[test]
    fn a_draft_may_wait_for_its_secret_but_cannot_run_without_it() {
        let mut unsigned = spec();
        unsigned.source.app = "shopify".into();
        unsigned.source.verification = None;
        assert!(check_draft(&unsigned, &connection()).is_ok());
        assert_eq!(
            codes(validate_touchpoint(&unsigned, &connection())),
            vec!["SECRET_REQUIRED"]
        );
        unsigned.source.app = "shopfy".into();
        let Err(errors) = check_draft(&unsigned, &connection()) else {
            panic!("an unknown app is refused");
        };
        assert_eq!(errors[0].code, "UNKNOWN_APP");
        assert_eq!(errors[0].field, "source.app");
    }
}
