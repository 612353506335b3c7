//! Source schemas: JSON Schema documents (draft 2020-12) that a touchpoint's payloads are
//! validated against, imported as they are or inferred from a sample payload.
//!
//! Validation never fetches anything: remote `$ref`s are not resolved (the crate is built
//! without its resolvers), so a schema cannot make the worker reach the network.

use std::sync::Arc;

use serde_json::{Map, Value, json};

/// Most validation errors reported for one payload.
const MAX_ERRORS: usize = 10;

/// A compiled schema.
#[derive(Clone)]
pub struct SourceSchema {
    pub name: String,
    validator: Arc<jsonschema::Validator>,
}

impl SourceSchema {
    /// Compile a JSON Schema document; the error says what is wrong with it.
    pub fn compile(name: &str, document: &Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(document).map_err(|error| error.to_string())?;
        Ok(Self {
            name: name.to_owned(),
            validator: Arc::new(validator),
        })
    }

    /// `Ok` when the payload matches; otherwise up to ten errors, each naming where.
    pub fn check(&self, payload: &Value) -> Result<(), Vec<String>> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(payload)
            .take(MAX_ERRORS)
            .map(|error| {
                let path = error.instance_path().to_string();
                let at = if path.is_empty() {
                    "/".to_owned()
                } else {
                    path
                };
                format!("at {at}: {error}")
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Infer a schema from a sample: types, the properties of objects (every key of the sample
/// required), and arrays whose items are merged into one schema.
pub fn infer(title: &str, sample: &Value) -> Value {
    let mut schema = infer_value(sample);
    if let Value::Object(object) = &mut schema {
        object.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        object.insert("title".into(), json!(title));
    }
    schema
}

fn infer_value(value: &Value) -> Value {
    match value {
        Value::Null => json!({ "type": "null" }),
        Value::Bool(_) => json!({ "type": "boolean" }),
        Value::Number(number) if number.is_i64() || number.is_u64() => json!({ "type": "integer" }),
        Value::Number(_) => json!({ "type": "number" }),
        Value::String(_) => json!({ "type": "string" }),
        Value::Array(items) => {
            let merged = items.iter().map(infer_value).reduce(merge);
            match merged {
                Some(items) => json!({ "type": "array", "items": items }),
                None => json!({ "type": "array" }),
            }
        }
        Value::Object(object) => {
            let properties: Map<String, Value> = object
                .iter()
                .map(|(key, value)| (key.clone(), infer_value(value)))
                .collect();
            let required: Vec<&String> = object.keys().collect();
            json!({ "type": "object", "properties": properties, "required": required })
        }
    }
}

/// One schema that accepts what either accepts (as far as inference needs).
fn merge(a: Value, b: Value) -> Value {
    if a == b {
        return a;
    }
    let kind = |v: &Value| v["type"].as_str().map(str::to_owned);
    match (kind(&a).as_deref(), kind(&b).as_deref()) {
        (Some("object"), Some("object")) => {
            let mut properties = a["properties"].as_object().cloned().unwrap_or_default();
            for (key, schema) in b["properties"].as_object().cloned().unwrap_or_default() {
                let merged = match properties.remove(&key) {
                    Some(existing) => merge(existing, schema),
                    None => schema,
                };
                properties.insert(key, merged);
            }
            let required_b: Vec<&Value> = b["required"]
                .as_array()
                .map(|r| r.iter().collect())
                .unwrap_or_default();
            let required: Vec<Value> = a["required"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter(|k| required_b.contains(k))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            json!({ "type": "object", "properties": properties, "required": required })
        }
        (Some("array"), Some("array")) => match (a.get("items"), b.get("items")) {
            (Some(x), Some(y)) => json!({ "type": "array", "items": merge(x.clone(), y.clone()) }),
            (Some(x), None) | (None, Some(x)) => json!({ "type": "array", "items": x }),
            (None, None) => json!({ "type": "array" }),
        },
        (Some("integer"), Some("number")) | (Some("number"), Some("integer")) => {
            json!({ "type": "number" })
        }
        (Some("null"), Some(other)) | (Some(other), Some("null")) if other != "null" => {
            let mut nullable = if kind(&a).as_deref() == Some("null") {
                b
            } else {
                a
            };
            nullable["type"] = json!([other, "null"]);
            nullable
        }
        _ => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Value {
        json!({
            "id": 1001,
            "total": "49.90",
            "paid": true,
            "discount": 0.5,
            "note": null,
            "customer": { "id": 7, "email": "a@example.com" },
            "lines": [
                { "sku": "A", "qty": 1 },
                { "sku": "B", "qty": 2, "gift": true }
            ]
        })
    }

    #[test]
    fn an_inferred_schema_accepts_its_sample_and_rejects_other_shapes() {
        let schema =
            SourceSchema::compile("Order", &infer("Order", &order())).expect("valid schema");
        assert_eq!(schema.check(&order()), Ok(()));
        let mut wrong = order();
        wrong["customer"]["id"] = json!("seven");
        wrong.as_object_mut().expect("object").remove("total");
        let errors = schema.check(&wrong).expect_err("invalid");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors.iter().any(|e| e.starts_with("at /customer/id:")),
            "{errors:?}"
        );
        assert!(errors.iter().any(|e| e.contains("total")), "{errors:?}");
    }

    #[test]
    fn array_items_merge_into_one_schema() {
        let schema = infer("Order", &order());
        let items = &schema["properties"]["lines"]["items"];
        assert_eq!(
            items["required"],
            json!(["qty", "sku"]),
            "only keys every item has"
        );
        assert_eq!(items["properties"]["gift"], json!({ "type": "boolean" }));
        let mixed = infer("x", &json!([1, 2.5, null]));
        assert_eq!(mixed["items"]["type"], json!(["number", "null"]));
    }

    #[test]
    fn a_broken_schema_is_reported() {
        let error = SourceSchema::compile("x", &json!({ "type": "no-such-type" }))
            .err()
            .expect("invalid schema");
        assert!(!error.is_empty());
    }

    #[test]
    fn errors_are_bounded() {
        let schema = SourceSchema::compile(
            "x",
            &json!({ "type": "array", "items": { "type": "string" } }),
        )
        .expect("valid");
        let errors = schema.check(&json!(vec![1; 100])).expect_err("invalid");
        assert_eq!(errors.len(), MAX_ERRORS);
    }
}
