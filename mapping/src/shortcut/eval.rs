//! Evaluating a recognised expression on a `serde_json::Value`.
//!
//! `one` computes the single value of an expression that must have exactly one; `run` appends
//! every value of an expression to `out`. Each node kind is handled in one of them and
//! delegated from the other. Every function returns `None` to decline, and the caller then lets
//! jaq run the whole expression.

use jaq_core::ValT;
use jaq_json::Val;
use serde_json::{Map, Value};

use super::{
    Builtin, Node, Piece, Step,
    fuel::{burn, burn_value},
};
use crate::{natives, value};

const NULL: &Value = &Value::Null;

impl Node {
    pub(super) fn one(&self, input: &Value) -> Option<Value> {
        burn(1)?;
        match self {
            Self::Literal(literal) => {
                burn_value(literal)?;
                Some(literal.clone())
            }
            Self::Id => {
                burn_value(input)?;
                Some(input.clone())
            }
            Self::Path(base, steps) if !steps.iter().any(|s| matches!(s, Step::Iterate)) => {
                match **base {
                    Self::Id => follow(input, steps),
                    _ => follow(&base.one(input)?, steps),
                }
            }
            Self::Pipe(l, r) => r.one(&l.one(input)?),
            Self::Logic(l, stop, r) => {
                let l = truthy(&l.one(input)?);
                Some(Value::Bool(if l == *stop {
                    l
                } else {
                    truthy(&r.one(input)?)
                }))
            }
            Self::Math(l, op, r) => {
                let (l, r) = (l.one(input)?, r.one(input)?);
                burn(math_cost(&l, &r))?;
                value::into_json(op.run(jaq(&l)?, jaq(&r)?).ok()?).ok()
            }
            Self::Cmp(l, op, r) => {
                let (l, r) = (jaq(&l.one(input)?)?, jaq(&r.one(input)?)?);
                Some(Value::Bool(op.run(&l, &r)))
            }
            Self::Array(None) => Some(Value::Array(Vec::new())),
            Self::Array(Some(inner)) => {
                let mut items = Vec::new();
                inner.run(input, &mut items)?;
                Some(Value::Array(items))
            }
            Self::Object(fields) => {
                let mut object = Map::new();
                for (key, field) in fields {
                    object.insert(key.clone(), field.one(input)?);
                }
                Some(Value::Object(object))
            }
            Self::Text(pieces) => {
                let mut text = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => text.push_str(t),
                        Piece::Term(term) => match term.one(input)? {
                            Value::String(s) => text.push_str(&s),
                            other => text.push_str(&jaq(&other)?.to_string()),
                        },
                    }
                }
                Some(Value::String(text))
            }
            Self::Call(builtin) if !builtin.is_stream() => builtin.one(input),
            _ => {
                let mut out = Vec::new();
                self.run(input, &mut out)?;
                only(out)
            }
        }
    }

    pub(super) fn run(&self, input: &Value, out: &mut Vec<Value>) -> Option<()> {
        burn(1)?;
        match self {
            Self::Path(base, steps) => match **base {
                Self::Id => walk(input, steps, out),
                _ => walk(&base.one(input)?, steps, out),
            },
            Self::Pipe(l, r) => {
                let mut middle = Vec::new();
                l.run(input, &mut middle)?;
                middle.iter().try_for_each(|v| r.run(v, out))
            }
            Self::Comma(l, r) => {
                l.run(input, out)?;
                r.run(input, out)
            }
            Self::Alt(l, r) => {
                let mut left = Vec::new();
                l.run(input, &mut left)?;
                left.retain(truthy);
                if left.is_empty() {
                    r.run(input, out)
                } else {
                    out.append(&mut left);
                    Some(())
                }
            }
            Self::If(branches, otherwise) => {
                for (condition, then) in branches.iter() {
                    if truthy(&condition.one(input)?) {
                        return then.run(input, out);
                    }
                }
                otherwise.run(input, out)
            }
            Self::Call(Builtin::Empty) => Some(()),
            Self::Call(Builtin::Select(condition)) => {
                if truthy(&condition.one(input)?) {
                    burn_value(input)?;
                    out.push(input.clone());
                }
                Some(())
            }
            _ => {
                out.push(self.one(input)?);
                Some(())
            }
        }
    }
}

impl Builtin {
    fn is_stream(&self) -> bool {
        matches!(self, Self::Empty | Self::Select(_))
    }

    fn one(&self, input: &Value) -> Option<Value> {
        let text = || match input {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        };
        Some(match self {
            Self::ToString => {
                burn_value(input)?;
                match input {
                    Value::String(_) => input.clone(),
                    other => Value::String(jaq(other)?.to_string()),
                }
            }
            Self::ToJson => {
                burn_value(input)?;
                Value::String(jaq(input)?.to_string())
            }
            Self::ToNumber => value::into_json(natives::tonumber(jaq(input)?).ok()?).ok()?,
            Self::Downcase => Value::String(text()?.to_ascii_lowercase()),
            Self::Upcase => Value::String(text()?.to_ascii_uppercase()),
            Self::Length => Value::from(match input {
                Value::Null => 0,
                Value::String(s) => s.chars().count(),
                Value::Array(items) => items.len(),
                Value::Object(fields) => fields.len(),
                Value::Bool(_) | Value::Number(_) => return None,
            }),
            Self::Not => Value::Bool(!truthy(input)),
            Self::Add => {
                burn_value(input)?;
                let mut sum = Val::Null;
                for item in children(input)? {
                    sum = (sum + jaq(item)?).ok()?;
                }
                value::into_json(sum).ok()?
            }
            Self::Map(f) => {
                let mut items = Vec::new();
                children(input)?.try_for_each(|item| f.run(item, &mut items))?;
                Value::Array(items)
            }
            Self::LtrimStr(fix) => {
                let text = text()?;
                Value::String(text.strip_prefix(fix.as_str()).unwrap_or(text).to_owned())
            }
            Self::RtrimStr(fix) => {
                let text = text()?;
                Value::String(text.strip_suffix(fix.as_str()).unwrap_or(text).to_owned())
            }
            Self::StartsWith(fix) => Value::Bool(text()?.starts_with(fix.as_str())),
            Self::EndsWith(fix) => Value::Bool(text()?.ends_with(fix.as_str())),
            Self::Split(separator) => {
                burn(split_cost(text()?, separator))?;
                let parts = (jaq(input)? / Val::from(separator.clone())).ok()?;
                value::into_json(parts).ok()?
            }
            Self::Join(separator) => {
                let Value::Array(items) = input else {
                    return None;
                };
                burn_value(input)?;
                burn((separator.len() as u64).saturating_mul(items.len() as u64))?;
                let mut joined = String::new();
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        joined.push_str(separator);
                    }
                    match item {
                        Value::String(s) => joined.push_str(s),
                        other => joined.push_str(&jaq(other)?.to_string()),
                    }
                }
                Value::String(joined)
            }
            Self::Empty | Self::Select(_) => return None,
        })
    }
}

/// The value at the end of `steps`, none of which iterates.
fn follow(mut current: &Value, steps: &[Step]) -> Option<Value> {
    for (i, step) in steps.iter().enumerate() {
        current = match (step, current) {
            (Step::Slice(from, upto), _) => {
                return follow(
                    &slice(current, from.as_ref(), upto.as_ref())?,
                    &steps[i + 1..],
                );
            }
            (_, Value::Null) => NULL,
            (Step::Key(key), Value::Object(fields)) => fields.get(key).unwrap_or(NULL),
            (Step::Index(i), Value::Array(items)) => items.get(*i).unwrap_or(NULL),
            _ => return None,
        };
    }
    burn_value(current)?;
    Some(current.clone())
}

/// Every value at the end of `steps`, appended to `out`.
fn walk(current: &Value, steps: &[Step], out: &mut Vec<Value>) -> Option<()> {
    let Some((step, rest)) = steps.split_first() else {
        burn_value(current)?;
        out.push(current.clone());
        return Some(());
    };
    match (step, current) {
        (Step::Iterate, _) => children(current)?.try_for_each(|child| walk(child, rest, out)),
        (Step::Slice(from, upto), _) => {
            walk(&slice(current, from.as_ref(), upto.as_ref())?, rest, out)
        }
        (_, Value::Null) => walk(NULL, rest, out),
        (Step::Key(key), Value::Object(fields)) => walk(fields.get(key).unwrap_or(NULL), rest, out),
        (Step::Index(i), Value::Array(items)) => walk(items.get(*i).unwrap_or(NULL), rest, out),
        _ => None,
    }
}

/// What an arithmetic operation may build: strings and arrays are joined or repeated
/// (`"x" * 1e12`), so their result is charged before jaq makes it.
fn math_cost(l: &Value, r: &Value) -> u64 {
    let size = |v: &Value| match v {
        Value::String(s) => s.len() as u64,
        Value::Array(items) => items.len() as u64 * 8,
        Value::Object(fields) => fields.len() as u64 * 16,
        _ => 8,
    };
    let times = |v: &Value| {
        v.as_f64()
            .map_or(1, |n| n.abs().min(u64::MAX as f64) as u64)
    };
    match (l, r) {
        (Value::String(_), Value::Number(_)) => size(l).saturating_mul(times(r)),
        (Value::Number(_), Value::String(_)) => size(r).saturating_mul(times(l)),
        _ => size(l).saturating_add(size(r)),
    }
}

/// What splitting `text` at `separator` builds. Every part becomes a value of its own, in jaq
/// and then in serde_json, about 128 bytes beyond its text; fuel is a sixteenth of the memory
/// limit, so 16 units a part keep the parts within half of it. Counted before jaq splits:
/// `"x" * 4e6 | split("")` used to build four million values (500 MiB) in the caller.
fn split_cost(text: &str, separator: &str) -> u64 {
    const PART: u64 = 16;
    let parts = if separator.is_empty() {
        text.chars().count()
    } else {
        text.matches(separator).count() + 1
    };
    (text.len() as u64).saturating_add((parts as u64).saturating_mul(PART))
}

/// `.[from:upto]` of a string or array, by jaq's rules.
fn slice(current: &Value, from: Option<&Value>, upto: Option<&Value>) -> Option<Value> {
    if !matches!(current, Value::String(_) | Value::Array(_)) {
        return None;
    }
    let bound = |b: Option<&Value>| match b {
        None => Some(None),
        Some(b) => jaq(b).map(Some),
    };
    let (from, upto) = (bound(from)?, bound(upto)?);
    value::into_json(jaq(current)?.range(from.as_ref()..upto.as_ref()).ok()?).ok()
}

/// The elements of an array or the values of an object, in jaq's order.
fn children(value: &Value) -> Option<Box<dyn Iterator<Item = &Value> + '_>> {
    match value {
        Value::Array(items) => Some(Box::new(items.iter())),
        Value::Object(fields) => Some(Box::new(fields.values())),
        _ => None,
    }
}

fn only(mut values: Vec<Value>) -> Option<Value> {
    if values.len() == 1 {
        values.pop()
    } else {
        None
    }
}

fn truthy(value: &Value) -> bool {
    !matches!(value, Value::Null | Value::Bool(false))
}

/// A (small) operand as a jaq value, for jaq's own operations.
fn jaq(value: &Value) -> Option<Val> {
    value::to_val(value).ok()
}
