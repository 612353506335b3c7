//! The standard library mappings run with: jaq's, minus what must not run on a server, plus
//! safer versions of a few filters.
//!
//! - Withdrawn (calling them is a compile error): `env` (it would expose the server's
//!   environment, which holds secrets), `halt`/`halt_error` (jaq's own runner exits the
//!   process on them), `input`/`inputs` (a mapping sees one payload).
//! - `fromjson` parses with serde_json, whose parser stops at 128 levels of nesting; jaq's
//!   parser recurses without limit, so `"[" * 100000 | fromjson` overflowed the stack. It
//!   parses exactly one value.
//! - `tonumber` accepts numbers and strings that are a whole number literal (surrounding
//!   whitespace allowed); jaq's yields `12` and then an error for `"12x"`.
//! - `debug` and `stderr` pass their input through without writing payloads to the log.

use jaq_core::{
    Error, RunPtr, ValR,
    native::{self, Fun, bome, v},
};
use jaq_json::{Num, Val};

use crate::{jq::Data, value};

/// Native filters removed from jaq's standard library.
const WITHDRAWN: &[&str] = &["env", "halt", "input", "inputs"];
/// Native filters replaced by the ones below.
const REPLACED: &[&str] = &["fromjson", "debug_empty", "stderr_empty"];
/// jq definitions (name, arity) removed because they use withdrawn or replaced filters.
pub(crate) const REPLACED_DEFS: &[(&str, usize)] = &[
    ("tonumber", 0),
    ("halt", 0),
    ("halt_error", 0),
    ("halt_error", 1),
];
/// Names worth a hint when a program calls them: they exist in jq but not here.
pub(crate) const NOT_AVAILABLE: &[&str] = &[
    "env",
    "$ENV",
    "halt",
    "halt_error",
    "input",
    "inputs",
    "input_filename",
    "$__loc__",
];

/// Every native filter available to mappings.
pub(crate) fn funs() -> impl Iterator<Item = Fun<Data>> {
    let jaq = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let kept = jaq.filter(|(name, _, _)| !WITHDRAWN.contains(name) && !REPLACED.contains(name));
    let own: [native::Filter<RunPtr<Data>>; 4] = [
        ("fromjson", v(0), |cv| bome(fromjson(&cv.1))),
        ("tonumber", v(0), |cv| bome(tonumber(cv.1))),
        ("debug_empty", v(0), |_| Box::new(core::iter::empty())),
        ("stderr_empty", v(0), |_| Box::new(core::iter::empty())),
    ];
    kept.chain(own.into_iter().map(native::run::<Data>))
}

fn fromjson(input: &Val) -> ValR<Val> {
    let (Val::TStr(bytes) | Val::BStr(bytes)) = input else {
        return Err(Error::typ(input.clone(), "string"));
    };
    let parsed: serde_json::Value = serde_json::from_slice(&bytes[..])
        .map_err(|e| Error::str(format_args!("cannot parse {input} as JSON: {e}")))?;
    value::to_val(&parsed).map_err(|e| Error::str(e.message("the parsed JSON")))
}

pub(crate) fn tonumber(input: Val) -> ValR<Val> {
    let parsed = match &input {
        Val::Num(_) => return Ok(input),
        Val::TStr(bytes) | Val::BStr(bytes) => std::str::from_utf8(bytes).ok().and_then(number),
        _ => return Err(Error::typ(input, "string or number")),
    };
    parsed
        .map(Val::Num)
        .ok_or_else(|| Error::str(format_args!("cannot parse {input} as a number")))
}

/// A whole JSON number literal; integers of any size stay integers.
fn number(text: &str) -> Option<Num> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Num::from_str_radix(text, 10).or_else(|| {
        let n: serde_json::Number = serde_json::from_str(text).ok()?;
        Some(value::num_from_json(&n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Val {
        Val::from(s.to_owned())
    }

    #[test]
    fn tonumber_parses_whole_literals_only() {
        assert_eq!(tonumber(text("42")), Ok(Val::from(42isize)));
        assert_eq!(tonumber(text(" -1.5 ")), Ok(Val::from(-1.5)));
        assert_eq!(tonumber(Val::from(7isize)), Ok(Val::from(7isize)));
        let big = tonumber(text("123456789012345678901234567890")).expect("big integer");
        assert_eq!(big.to_string(), "123456789012345678901234567890");
        for bad in ["12x", "", "NaN", "1_000", "0x10", "+"] {
            let err = tonumber(text(bad)).expect_err(bad);
            assert!(err.to_string().contains("as a number"), "{bad}: {err}");
        }
        assert!(tonumber(Val::Null).is_err());
    }

    #[test]
    fn fromjson_is_depth_limited() {
        assert_eq!(
            fromjson(&text("[1]")).map(|v| v.to_string()),
            Ok("[1]".into())
        );
        assert!(fromjson(&text(&"[".repeat(100_000))).is_err());
        assert!(fromjson(&text("1 2")).is_err(), "exactly one value");
        assert!(fromjson(&Val::Null).is_err());
    }

    #[test]
    fn withdrawn_filters_are_gone() {
        let names: Vec<&str> = funs().map(|(name, _, _)| name).collect();
        for name in WITHDRAWN {
            assert!(!names.contains(name), "{name}");
        }
        for name in ["fromjson", "tonumber", "length", "tojson", "todateiso8601"] {
            assert_eq!(names.iter().filter(|n| *n == &name).count(), 1, "{name}");
        }
    }
}
