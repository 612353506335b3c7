//! JSON to XML for destinations, the decoding convention in reverse:
//! `"@name"` keys become attributes, `"#text"` the element's text, other keys child elements,
//! arrays repeated elements, `null` an empty element, numbers and booleans their JSON text.
//!
//! Guarantees: output is well-formed UTF-8 XML with a declaration; text and attribute values
//! are escaped; a key that is not an XML name is an error (never silently renamed); for any
//! value `from_xml` produced, `from_xml(to_xml(v[root], root)) == v`.

use std::fmt::Write as _;

use quick_xml::escape::escape;
use serde_json::Value;

use crate::body::{EncodeError, MAX_ENCODE_DEPTH};

/// Encodes `value` as an XML document whose root element is `root_name`.
pub fn to_xml(value: &Value, root_name: &str) -> Result<String, EncodeError> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    element(&mut out, root_name, value, 0)?;
    Ok(out)
}

fn element(out: &mut String, name: &str, value: &Value, depth: usize) -> Result<(), EncodeError> {
    if depth > MAX_ENCODE_DEPTH {
        return Err(EncodeError::TooDeep(MAX_ENCODE_DEPTH));
    }
    check_name(name)?;
    match value {
        Value::Array(items) => {
            // An array is the element repeated; a nested array has no element of its own.
            for item in items {
                element(out, name, item, depth + 1)?;
            }
        }
        Value::Null => {
            let _ = write!(out, "<{name}/>");
        }
        Value::Object(fields) => {
            let _ = write!(out, "<{name}");
            for (key, v) in fields {
                if let Some(attribute) = key.strip_prefix('@') {
                    check_name(attribute)?;
                    let _ = write!(out, " {attribute}=\"{}\"", escape(scalar_text(v).as_str()));
                }
            }
            let has_content = fields.keys().any(|k| !k.starts_with('@'));
            if !has_content {
                out.push_str("/>");
                return Ok(());
            }
            out.push('>');
            if let Some(text) = fields.get("#text") {
                out.push_str(&escape(scalar_text(text).as_str()));
            }
            for (key, v) in fields {
                if !key.starts_with('@') && key != "#text" {
                    element(out, key, v, depth + 1)?;
                }
            }
            let _ = write!(out, "</{name}>");
        }
        scalar => {
            let text = scalar_text(scalar);
            if text.is_empty() {
                let _ = write!(out, "<{name}></{name}>");
            } else {
                let _ = write!(out, "<{name}>{}</{name}>", escape(text.as_str()));
            }
        }
    }
    Ok(())
}

/// The text of a scalar; arrays and objects in text positions become their JSON text.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Checks `name` is an XML name: a letter, `_` or `:` first, then letters, digits, `_`, `:`,
/// `-` or `.`.
fn check_name(name: &str) -> Result<(), EncodeError> {
    let mut chars = name.chars();
    let valid_start = |c: char| c.is_alphabetic() || c == '_' || c == ':';
    let valid_rest = |c: char| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.');
    match chars.next() {
        Some(first) if valid_start(first) && chars.all(valid_rest) => Ok(()),
        _ => Err(EncodeError::InvalidXmlName(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::body::{Limits, from_xml};

    fn round_trip(doc: Value) {
        let (root, inner) = doc
            .as_object()
            .and_then(|m| m.iter().next())
            .expect("a document has one root key");
        let xml = to_xml(inner, root).expect("encodable");
        let back = from_xml(xml.as_bytes(), &Limits::default()).expect("decodable");
        assert_eq!(back, doc, "{xml}");
    }

    #[test]
    fn encodes_by_the_convention() {
        // Keys in alphabetical order, so the expectation holds with or without serde_json's
        // `preserve_order`.
        let v =
            json!({"@id": "7", "gift": null, "item": [{"sku": "a"}, {"sku": "b"}], "total": 9.5});
        assert_eq!(
            to_xml(&v, "order").expect("encodable"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><order id=\"7\"><gift/>\
             <item><sku>a</sku></item><item><sku>b</sku></item><total>9.5</total></order>"
        );
        assert_eq!(
            to_xml(&json!("a<b & \"c\""), "t").expect("encodable"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><t>a&lt;b &amp; &quot;c&quot;</t>"
        );
    }

    #[test]
    fn invalid_names_are_errors() {
        assert!(to_xml(&json!({"1abc": "x"}), "r").is_err());
        assert!(to_xml(&json!({"a b": "x"}), "r").is_err());
        assert!(to_xml(&json!({"@": "x"}), "r").is_err());
        assert!(to_xml(&json!("x"), "").is_err());
    }

    #[test]
    fn round_trips() {
        round_trip(json!({"order": {"@id": "7", "total": "9.50", "note": null}}));
        round_trip(json!({"a": {"i": ["1", "2"], "j": {"@k": "v", "#text": "t"}}}));
        round_trip(json!({"r": "text with <markup> & \"quotes\" 'and' ünïcode"}));
        round_trip(json!({"r": {"x": [{"y": "1"}, null, "z"]}}));
    }

    #[test]
    fn deep_values_are_errors_not_overflows() {
        let mut v = json!("leaf");
        for _ in 0..(MAX_ENCODE_DEPTH + 5) {
            v = json!({ "a": v });
        }
        assert_eq!(
            to_xml(&v, "r").unwrap_err(),
            EncodeError::TooDeep(MAX_ENCODE_DEPTH)
        );
    }
}
