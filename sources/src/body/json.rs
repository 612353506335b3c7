//! JSON bodies: decoded as they are, within the size and depth limits.
//!
//! Guarantees: the payload is exactly the sender's JSON value (any top-level type); nesting
//! deeper than `Limits::max_depth` is rejected (serde_json additionally stops at 128 levels
//! while parsing, so the stack is bounded); errors report a position, never content.

use serde_json::Value;

use crate::body::{Limits, ParseError, check_size};

/// Decodes a JSON body.
pub fn from_json(body: &[u8], limits: &Limits) -> Result<Value, ParseError> {
    check_size(body, limits)?;
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        if e.to_string().starts_with("recursion limit exceeded") {
            ParseError::TooDeep {
                limit: limits.max_depth,
            }
        } else {
            ParseError::Json {
                line: e.line(),
                column: e.column(),
            }
        }
    })?;
    if depth(&value) > limits.max_depth {
        return Err(ParseError::TooDeep {
            limit: limits.max_depth,
        });
    }
    Ok(value)
}

/// Nesting depth of a value (a scalar is 0), computed without recursion.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decodes_any_json() {
        let limits = Limits::default();
        assert_eq!(
            from_json(br#"{"a":[1,"x"]}"#, &limits).expect("valid"),
            json!({"a":[1,"x"]})
        );
        assert_eq!(from_json(b"[]", &limits).expect("valid"), json!([]));
        assert_eq!(from_json(b"\"s\"", &limits).expect("valid"), json!("s"));
    }

    #[test]
    fn keeps_escaped_slashes_as_slashes() {
        // WooCommerce (PHP json_encode) escapes `/`; the payload is the unescaped value.
        let v = from_json(br#"{"url":"https:\/\/example.com\/"}"#, &Limits::default());
        assert_eq!(v.expect("valid"), json!({"url": "https://example.com/"}));
    }

    #[test]
    fn malformed_and_empty_are_400() {
        let limits = Limits::default();
        assert_eq!(
            from_json(b"{", &limits).unwrap_err().code(),
            "MALFORMED_JSON"
        );
        assert_eq!(from_json(b"  ", &limits).unwrap_err().code(), "EMPTY_BODY");
        assert_eq!(
            from_json(b"\xff", &limits).unwrap_err().code(),
            "MALFORMED_JSON"
        );
    }

    #[test]
    fn depth_is_limited() {
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        assert!(from_json(b"[[[1]]]", &limits).is_ok());
        assert_eq!(
            from_json(b"[[[[1]]]]", &limits).unwrap_err().code(),
            "PAYLOAD_TOO_DEEP"
        );
        let very_deep = "[".repeat(10_000);
        let err = from_json(very_deep.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "PAYLOAD_TOO_DEEP");
    }
}
