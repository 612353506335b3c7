//! Admit Touchpoint and Connection objects the way `kubectl apply` meets them on a real API
//! server: schema defaults, then the generated openAPIV3Schema (unknown fields rejected, as
//! with strict field validation), then the CEL rules (`x-kubernetes-validations`, transition
//! rules included, given the old object).
//!
//! For tests: no API server can run on the machines this project is built on, so this is how
//! the examples, the objects the API publishes and the fake API server's writes are checked
//! against the CRDs a cluster would enforce.
//!
//! What this cannot check: the API server's own CEL cost budget and its structural-schema
//! checks of the CRD itself; `kubernetes-validate` in `operator/validate/run.sh` checks the
//! CRD objects against the apiextensions schema.

use hookplane_crds::manifest;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_cel::{RootContext, Validator};
use serde_json::{Value, json};

/// The CRD of `kind` (`Touchpoint`, `Connection`).
pub fn crd_for(kind: &str) -> Option<CustomResourceDefinition> {
    manifest::crds()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind)
}

/// The openAPIV3Schema of a CRD's (only) version.
pub fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the generated CRDs have an openAPIV3Schema");
    serde_json::to_value(schema).expect("a schema serializes")
}

/// `object` with the schema's defaults filled in, as the API server stores it.
pub fn with_defaults(object: &Value) -> Value {
    match object["kind"].as_str().and_then(crd_for) {
        Some(crd) => kube_cel::apply_defaults(&schema_of(&crd), object),
        None => object.clone(),
    }
}

/// Validate `object` (optionally as an update of `old`) as the API server would; the errors
/// as text, empty when it is admitted.
pub fn admit(object: &Value, old: Option<&Value>) -> Vec<String> {
    let Some(kind) = object["kind"].as_str() else {
        return vec!["the object has no kind".to_owned()];
    };
    let Some(crd) = crd_for(kind) else {
        return vec![format!("no CustomResourceDefinition for kind {kind:?}")];
    };
    let schema = schema_of(&crd);
    let defaulted = kube_cel::apply_defaults(&schema, object);
    let validator =
        jsonschema::validator_for(&strict(&schema, true)).expect("the generated schema compiles");
    let mut errors: Vec<String> = validator
        .iter_errors(&defaulted)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    let context = RootContext {
        api_version: "hookplane.io/v1alpha1".into(),
        api_group: "hookplane.io".into(),
        kind: kind.into(),
    };
    if let Err(cel) = Validator::new().validate_with_context(&schema, object, old, Some(&context)) {
        errors.extend(cel.iter().map(|e| e.to_string()));
    }
    errors
}

/// OpenAPI v3 -> JSON Schema as the API server applies it: `nullable` allows null, and below
/// the root an object accepts only its declared properties.
fn strict(schema: &Value, root: bool) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = serde_json::Map::new();
    for (key, value) in map {
        let value = match key.as_str() {
            "properties" | "patternProperties" => Value::Object(
                value
                    .as_object()
                    .expect("properties is an object")
                    .iter()
                    .map(|(k, v)| (k.clone(), strict(v, false)))
                    .collect(),
            ),
            "items" | "additionalProperties" => strict(value, false),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                value
                    .as_array()
                    .expect("a junctor is an array")
                    .iter()
                    .map(|v| strict(v, false))
                    .collect(),
            ),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    if map.get("nullable") == Some(&Value::Bool(true))
        && let Some(Value::String(ty)) = map.get("type")
    {
        out.insert("type".into(), json!([ty, "null"]));
    }
    if !root && map.contains_key("properties") && !map.contains_key("additionalProperties") {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    if root {
        out.insert(
            "required".into(),
            json!(["apiVersion", "kind", "metadata", "spec"]),
        );
    }
    out.into()
}
