//! Rule targets: dotted paths such as `Address.City` that name a field of the output object.
//!
//! A target is split on `.` into segments, none of which may be empty or blank. Targets of one
//! mapping must be distinct, and none may lie inside another (`Address` and `Address.City`),
//! because the result would depend on rule order. Setting a target creates the objects on its
//! way and replaces an existing value at its end; a non-object on its way is an error.

use serde_json::{Map, Value};

/// A parsed rule target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    segments: Box<[String]>,
}

impl Target {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("target is empty".to_owned());
        }
        let segments: Box<[String]> = text.split('.').map(str::to_owned).collect();
        if segments.iter().any(|s| s.trim().is_empty()) {
            return Err(
                "target has an empty segment; use dots only between field names".to_owned(),
            );
        }
        Ok(Self { segments })
    }

    #[cfg(test)]
    pub(crate) fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Put `value` at this target inside `object`.
    pub(crate) fn set(&self, object: &mut Map<String, Value>, value: Value) -> Result<(), String> {
        let Some((last, parents)) = self.segments.split_last() else {
            return Err("target is empty".to_owned());
        };
        let mut current = object;
        for (depth, segment) in parents.iter().enumerate() {
            let entry = current
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            current = match entry {
                Value::Object(inner) => inner,
                other => {
                    let path = self.segments[..=depth].join(".");
                    let kind = kind(other);
                    return Err(format!(
                        "cannot set a field inside \"{path}\", which is {kind}"
                    ));
                }
            };
        }
        current.insert(last.clone(), value);
        Ok(())
    }
}

/// A JSON value's kind with an article, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// For each target that repeats or lies inside another, its index and the message.
pub(crate) fn conflicts(targets: &[(usize, Target)]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (pos, (index, target)) in targets.iter().enumerate() {
        let earlier = targets[..pos].iter().find(|(_, t)| t == target);
        if let Some((other, _)) = earlier {
            found.push((*index, format!("duplicate target (also rules[{other}])")));
            continue;
        }
        let outer = targets.iter().find(|(_, t)| {
            t.segments.len() < target.segments.len() && target.segments.starts_with(&t.segments)
        });
        if let Some((other, t)) = outer {
            let outer_text = t.segments.join(".");
            let message = format!("target lies inside target \"{outer_text}\" of rules[{other}]");
            found.push((*index, message));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn target(text: &str) -> Target {
        Target::parse(text).expect(text)
    }

    #[test]
    fn empty_segments_are_rejected() {
        for bad in ["", " ", "a..b", ".a", "a.", "a. .b"] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(target("Address.City").segments(), ["Address", "City"]);
        assert_eq!(target("Card Code").segments(), ["Card Code"]);
    }

    #[test]
    fn set_builds_nested_objects_and_replaces_leaves() {
        let mut object = Map::new();
        target("Address.City")
            .set(&mut object, json!("Oslo"))
            .expect("set");
        target("Address.Zip")
            .set(&mut object, json!("0150"))
            .expect("set");
        target("Name").set(&mut object, json!(1)).expect("set");
        target("Name").set(&mut object, json!(2)).expect("replace");
        assert_eq!(
            Value::Object(object),
            json!({"Address": {"City": "Oslo", "Zip": "0150"}, "Name": 2})
        );
    }

    #[test]
    fn set_refuses_to_descend_into_non_objects() {
        let mut object = json!({"Address": "Main St 1"})
            .as_object()
            .cloned()
            .expect("object");
        let err = target("Address.City.Name").set(&mut object, json!("Oslo"));
        assert_eq!(
            err,
            Err("cannot set a field inside \"Address\", which is a string".into())
        );
    }

    #[test]
    fn duplicates_and_nested_targets_conflict() {
        let targets = ["A.B", "A", "B", "A"].map(target);
        let found = conflicts(&targets.into_iter().enumerate().collect::<Vec<_>>());
        assert_eq!(
            found,
            [
                (0, "target lies inside target \"A\" of rules[1]".to_owned()),
                (3, "duplicate target (also rules[1])".to_owned()),
            ]
        );
    }
}
