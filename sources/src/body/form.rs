//! `application/x-www-form-urlencoded` bodies to JSON, and JSON to form encoding.
//!
//! Decoding (`from_form`):
//! - The payload is an object; values are strings (`+` and `%XX` decoded, invalid UTF-8
//!   replaced by U+FFFD).
//! - A repeated name becomes an array in order: `a=1&a=2` is `{"a": ["1", "2"]}`.
//! - PHP bracket names nest, as WooCommerce and PrestaShop send them: `a[b]=c` is
//!   `{"a": {"b": "c"}}`, `a[]=1&a[]=2` and `a[0]=1&a[1]=2` are `{"a": ["1", "2"]}`. Like
//!   PHP's `json_encode`, a nested object whose keys are exactly `0..n-1` is an array.
//!   Unlike PHP, a repeated bracket name collects values into an array instead of keeping the
//!   last, and `.` or spaces in names are kept. A name whose brackets are not well-formed
//!   (`a[b`, `a]`, `[x]`, `a[b]c`) is used literally. A bracketed name replaces plain values of
//!   the same base name.
//!
//! Encoding (`to_form`): the reverse, PHP `http_build_query` style — nested objects as
//! `a[b]=c`, arrays as `a[0]=x&a[1]=y`, numbers and booleans as their JSON text, `null` as an
//! empty value; empty objects and arrays send nothing.
//!
//! Guarantees: decoding never fails on content, only on the size, field-count and bracket
//! depth limits; `from_form(to_form(v)) == v` for objects of strings, string arrays and nested
//! objects whose keys are not all indexes.

use serde_json::{Map, Value};

use crate::body::{EncodeError, Limits, MAX_ENCODE_DEPTH, ParseError, check_size};

/// Decodes a form-encoded body.
pub fn from_form(body: &[u8], limits: &Limits) -> Result<Value, ParseError> {
    check_size(body, limits)?;
    let mut root = Map::new();
    for (count, (name, value)) in url::form_urlencoded::parse(body).enumerate() {
        if count >= limits.max_nodes {
            return Err(ParseError::TooManyNodes {
                limit: limits.max_nodes,
            });
        }
        let value = Value::String(value.into_owned());
        match split_brackets(&name) {
            Some((base, path)) => {
                if path.len() > limits.max_depth {
                    return Err(ParseError::TooDeep {
                        limit: limits.max_depth,
                    });
                }
                insert_path(&mut root, base, &path, value);
            }
            None => push(&mut root, name.into_owned(), value),
        }
    }
    for value in root.values_mut() {
        lists_to_arrays(value);
    }
    Ok(Value::Object(root))
}

/// `a[b][]` is `("a", [Some("b"), None])`; `None` when the name has no well-formed brackets.
fn split_brackets(name: &str) -> Option<(&str, Vec<Option<&str>>)> {
    let open = name.find('[')?;
    let (base, mut rest) = name.split_at(open);
    if base.is_empty() {
        return None;
    }
    let mut path = Vec::new();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        let segment = &inner[..close];
        if segment.contains('[') {
            return None;
        }
        path.push((!segment.is_empty()).then_some(segment));
        rest = &inner[close + 1..];
    }
    Some((base, path))
}

/// Sets `value` at `base[path...]`, creating objects on the way.
fn insert_path(root: &mut Map<String, Value>, base: &str, path: &[Option<&str>], value: Value) {
    let mut container = object_at(root, base.to_owned());
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    for segment in parents {
        let key = segment_key(container, *segment);
        container = object_at(container, key);
    }
    let key = segment_key(container, *last);
    push(container, key, value);
}

/// The key a segment names; `[]` appends after the largest index, as PHP does.
fn segment_key(container: &Map<String, Value>, segment: Option<&str>) -> String {
    match segment {
        Some(key) => key.to_owned(),
        None => container
            .keys()
            .filter_map(|k| k.parse::<usize>().ok())
            .max()
            .map_or(0, |m| m.saturating_add(1))
            .to_string(),
    }
}

/// The object at `key`, replacing any plain value there.
fn object_at(map: &mut Map<String, Value>, key: String) -> &mut Map<String, Value> {
    let slot = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(inner) => inner,
        _ => unreachable!("the slot was just made an object"),
    }
}

/// Adds a value; a repeated key collects its values into an array.
fn push(map: &mut Map<String, Value>, key: String, value: Value) {
    match map.get_mut(&key) {
        None => {
            map.insert(key, value);
        }
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
    }
}

/// Turns nested objects keyed exactly `0..n-1` into arrays, bottom-up.
fn lists_to_arrays(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(lists_to_arrays),
        Value::Object(map) => {
            map.values_mut().for_each(lists_to_arrays);
            let is_list =
                !map.is_empty() && (0..map.len()).all(|i| map.contains_key(i.to_string().as_str()));
            if is_list {
                let mut items = Vec::with_capacity(map.len());
                for i in 0..map.len() {
                    items.push(map.remove(i.to_string().as_str()).unwrap_or_default());
                }
                *value = Value::Array(items);
            }
        }
        _ => {}
    }
}

/// Encodes an object as a form body.
pub fn to_form(value: &Value) -> Result<String, EncodeError> {
    let Value::Object(fields) = value else {
        return Err(EncodeError::NotAnObject);
    };
    let mut pairs = Vec::new();
    for (key, v) in fields {
        flatten(key.clone(), v, &mut pairs, 0)?;
    }
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, v) in &pairs {
        serializer.append_pair(name, v);
    }
    Ok(serializer.finish())
}

fn flatten(
    name: String,
    value: &Value,
    pairs: &mut Vec<(String, String)>,
    depth: usize,
) -> Result<(), EncodeError> {
    if depth > MAX_ENCODE_DEPTH {
        return Err(EncodeError::TooDeep(MAX_ENCODE_DEPTH));
    }
    match value {
        Value::Object(fields) => {
            for (key, v) in fields {
                flatten(format!("{name}[{key}]"), v, pairs, depth + 1)?;
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(format!("{name}[{i}]"), v, pairs, depth + 1)?;
            }
        }
        Value::String(s) => pairs.push((name, s.clone())),
        Value::Null => pairs.push((name, String::new())),
        other => pairs.push((name, other.to_string())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(body: &str) -> Value {
        from_form(body.as_bytes(), &Limits::default()).expect("forms always decode")
    }

    #[test]
    fn flat_and_repeated_fields() {
        assert_eq!(parse("webhook_id=12"), json!({"webhook_id": "12"}));
        assert_eq!(
            parse("a=1&a=2&b=x+y%21"),
            json!({"a": ["1", "2"], "b": "x y!"})
        );
        assert_eq!(parse("a=&b"), json!({"a": "", "b": ""}));
    }

    #[test]
    fn php_brackets_nest() {
        assert_eq!(
            parse("order[id]=7&order[lines][0][sku]=A&order[lines][1][sku]=B&tags[]=x&tags[]=y"),
            json!({"order": {"id": "7", "lines": [{"sku": "A"}, {"sku": "B"}]}, "tags": ["x", "y"]})
        );
        assert_eq!(parse("a%5Bb%5D=c"), json!({"a": {"b": "c"}}));
        assert_eq!(parse("a[1]=x&a[2]=y"), json!({"a": {"1": "x", "2": "y"}}));
        assert_eq!(parse("a[b]=1&a[b]=2"), json!({"a": {"b": ["1", "2"]}}));
        assert_eq!(parse("a=1&a[b]=2"), json!({"a": {"b": "2"}}));
    }

    #[test]
    fn malformed_brackets_are_literal() {
        assert_eq!(
            parse("a[b=1&c]=2&[d]=3&e[f]g=4"),
            json!({"a[b": "1", "c]": "2", "[d]": "3", "e[f]g": "4"})
        );
    }

    #[test]
    fn limits_apply() {
        let limits = Limits {
            max_nodes: 2,
            max_depth: 2,
            ..Limits::default()
        };
        assert_eq!(
            from_form(b"a=1&b=2&c=3", &limits).unwrap_err().code(),
            "PAYLOAD_TOO_COMPLEX"
        );
        assert!(from_form(b"a[b][c]=1", &limits).is_ok());
        assert_eq!(
            from_form(b"a[b][c][d]=1", &limits).unwrap_err().code(),
            "PAYLOAD_TOO_DEEP"
        );
    }

    #[test]
    fn encodes_php_style_and_round_trips() {
        let v = json!({"a": "1 2", "b": {"c": "&", "d": ["x", "y"]}, "e": [{"f": "g"}]});
        let body = to_form(&v).expect("an object");
        assert_eq!(
            body,
            "a=1+2&b%5Bc%5D=%26&b%5Bd%5D%5B0%5D=x&b%5Bd%5D%5B1%5D=y&e%5B0%5D%5Bf%5D=g"
        );
        assert_eq!(parse(&body), v);
        assert_eq!(
            to_form(&json!({"n": 1.5, "t": true, "z": null})).expect("an object"),
            "n=1.5&t=true&z="
        );
        assert_eq!(to_form(&json!([1])).unwrap_err(), EncodeError::NotAnObject);
    }
}
