//! Conversion between `serde_json::Value` and jaq's `Val`, bounded in depth.
//!
//! Both directions copy directly, without going through JSON text. Numbers keep their kind:
//! integers stay integers (beyond `i64`/`u64` jaq keeps a big integer, which becomes the nearest
//! `f64` on the way out), floats stay floats. JSON has no NaN or infinity, so on the way out NaN
//! becomes `null` and infinities the largest finite `f64`, as jq prints them. Byte strings
//! (from jaq's `tobytes`) become text, with invalid UTF-8 replaced; object keys must be strings.
//!
//! Values nested deeper than [`MAX_DEPTH`] are refused in both directions: jaq and serde_json
//! walk values recursively, and a deep enough value overflows the stack. A refused output is
//! dropped iteratively for the same reason.

use jaq_json::{Map as ValMap, Num, Rc, Val};
use serde_json::{Map, Number, Value};

/// Deepest nesting of arrays and objects accepted in a payload or produced by a mapping.
/// serde_json's own parser stops at 128, so every parsed payload fits.
pub(crate) const MAX_DEPTH: usize = 256;

/// Why a value could not be converted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ConvertError {
    TooDeep,
    NonStringKey(String),
}

impl ConvertError {
    pub(crate) fn message(&self, what: &str) -> String {
        match self {
            Self::TooDeep => format!("{what} is nested deeper than {MAX_DEPTH} levels"),
            Self::NonStringKey(key) => {
                format!("{what} has an object key that is not a string: {key}")
            }
        }
    }
}

/// Convert a payload into a jaq value.
pub(crate) fn to_val(value: &Value) -> Result<Val, ConvertError> {
    to_val_at(value, 0)
}

fn to_val_at(value: &Value, depth: usize) -> Result<Val, ConvertError> {
    Ok(match value {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => Val::Num(num_from_json(n)),
        Value::String(s) => Val::utf8_str(s.clone()),
        Value::Array(items) => {
            let depth = deeper(depth)?;
            let items = items.iter().map(|item| to_val_at(item, depth));
            Val::Arr(Rc::new(items.collect::<Result<_, _>>()?))
        }
        Value::Object(fields) => {
            let depth = deeper(depth)?;
            let mut map = ValMap::with_capacity_and_hasher(fields.len(), Default::default());
            for (key, field) in fields {
                map.insert(Val::utf8_str(key.clone()), to_val_at(field, depth)?);
            }
            Val::obj(map)
        }
    })
}

fn deeper(depth: usize) -> Result<usize, ConvertError> {
    if depth >= MAX_DEPTH {
        Err(ConvertError::TooDeep)
    } else {
        Ok(depth + 1)
    }
}

/// A JSON number as a jaq number: `i64`/`u64` as integers, everything else as a float.
pub(crate) fn num_from_json(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::from_integral(i)
    } else if let Some(u) = n.as_u64() {
        Num::from_integral(u)
    } else {
        Num::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Convert a jaq value produced by a mapping into JSON; a refused value is dropped safely.
pub(crate) fn into_json(val: Val) -> Result<Value, ConvertError> {
    let converted = to_json_at(&val, 0);
    if converted.is_err() {
        drop_iteratively(val);
    }
    converted
}

fn to_json_at(val: &Val, depth: usize) -> Result<Value, ConvertError> {
    Ok(match val {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => num_to_json(n),
        Val::TStr(bytes) | Val::BStr(bytes) => Value::String(text(bytes)),
        Val::Arr(items) => {
            let depth = deeper(depth)?;
            let items = items.iter().map(|item| to_json_at(item, depth));
            Value::Array(items.collect::<Result<_, _>>()?)
        }
        Val::Obj(fields) => {
            let depth = deeper(depth)?;
            let mut map = Map::new();
            for (key, field) in fields.iter() {
                let key = match key {
                    Val::TStr(bytes) | Val::BStr(bytes) => text(bytes),
                    other => return Err(ConvertError::NonStringKey(other.to_string())),
                };
                map.insert(key, to_json_at(field, depth)?);
            }
            Value::Object(map)
        }
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A jaq number as JSON, following what jq prints for numbers JSON cannot hold.
pub(crate) fn num_to_json(n: &Num) -> Value {
    match n {
        Num::Int(i) => Value::from(*i),
        Num::BigInt(big) => {
            let digits = big.to_string();
            if let Ok(u) = digits.parse::<u64>() {
                Value::from(u)
            } else if let Ok(i) = digits.parse::<i64>() {
                Value::from(i)
            } else {
                float(digits.parse().unwrap_or(f64::NAN))
            }
        }
        Num::Float(f) => float(*f),
        // A literal in the jq text such as `1.50` or `1e400`, which jaq keeps as written.
        Num::Dec(literal) => float(literal.parse().unwrap_or(f64::NAN)),
    }
}

fn float(f: f64) -> Value {
    let finite = if f.is_infinite() {
        f64::MAX.copysign(f)
    } else {
        f
    };
    Number::from_f64(finite).map_or(Value::Null, Value::Number)
}

/// Drop a value without recursing once per nesting level.
pub(crate) fn drop_iteratively(val: Val) {
    let mut pending = vec![val];
    while let Some(val) = pending.pop() {
        match val {
            Val::Arr(items) => {
                if let Ok(items) = Rc::try_unwrap(items) {
                    pending.extend(items);
                }
            }
            Val::Obj(fields) => {
                if let Ok(fields) = Rc::try_unwrap(fields) {
                    pending.extend(fields.into_iter().flat_map(|(k, v)| [k, v]));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn round_trip(value: Value) -> Value {
        into_json(to_val(&value).expect("shallow")).expect("representable")
    }

    #[test]
    fn values_survive_a_round_trip() {
        let value = json!({
            "null": null, "t": true, "f": false, "int": -42, "big": u64::MAX, "min": i64::MIN,
            "float": 1.5, "whole_float": 2.0, "text": "héllo", "nested": {"a": [1, {"b": []}]}
        });
        assert_eq!(round_trip(value.clone()), value);
        assert!(round_trip(json!(2.0)).is_f64(), "a float stays a float");
        assert!(round_trip(json!(2)).is_i64(), "an integer stays an integer");
    }

    #[test]
    fn numbers_json_cannot_hold_become_what_jq_prints() {
        assert_eq!(num_to_json(&Num::Float(f64::NAN)), Value::Null);
        assert_eq!(num_to_json(&Num::Float(f64::INFINITY)), json!(f64::MAX));
        assert_eq!(
            num_to_json(&Num::Float(f64::NEG_INFINITY)),
            json!(-f64::MAX)
        );
        assert_eq!(num_to_json(&Num::Dec(Rc::new("1.50".into()))), json!(1.5));
        let beyond_u64 = Num::from_str_radix("100000000000000000000000", 10).expect("digits");
        assert_eq!(num_to_json(&beyond_u64), json!(1e23));
        let big_negative = Num::from_str_radix("-9223372036854775808", 10).expect("digits");
        assert_eq!(num_to_json(&big_negative), json!(i64::MIN));
    }

    #[test]
    fn byte_strings_become_text_and_other_keys_are_refused() {
        let bytes = Val::byte_str(b"ok \xff".to_vec());
        assert_eq!(into_json(bytes), Ok(json!("ok \u{fffd}")));
        let mut map = ValMap::default();
        map.insert(Val::from(1isize), Val::Null);
        let refused = into_json(Val::obj(map));
        assert_eq!(refused, Err(ConvertError::NonStringKey("1".into())));
    }

    #[test]
    fn too_deep_values_are_refused_both_ways() {
        let mut deep = json!(0);
        for _ in 0..=MAX_DEPTH {
            deep = json!([deep]);
        }
        assert_eq!(to_val(&deep).err(), Some(ConvertError::TooDeep));

        let mut val = Val::Null;
        for _ in 0..100_000 {
            val = [val].into_iter().collect();
        }
        assert_eq!(into_json(val), Err(ConvertError::TooDeep));
    }

    #[test]
    fn exactly_max_depth_is_accepted() {
        let mut deep = json!(0);
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        assert_eq!(round_trip(deep.clone()), deep);
    }
}
