//! Errors of compiling and applying mappings and filters.
//!
//! Every error names where it happened (a `location` such as `rules[2].expr`, a rule's target,
//! `program` or `filter`) and the jq text, so a reconciler can put it on a resource's status and
//! a worker on an event without further context. Messages quote at most a few hundred characters
//! of jq values: a type error on a whole payload must not copy the payload into the error.

use std::fmt;

/// Longest excerpt of an expression quoted by `Display`.
const MAX_EXPR_QUOTE: usize = 120;
/// Longest message kept from jaq; longer ones keep their head and tail.
const MAX_MESSAGE: usize = 400;

/// One problem found while compiling a mapping or a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    /// Where the problem is: `program`, `filter`, `rules[2].expr` or `rules[2].target`.
    pub location: String,
    /// The expression (or target) text as written.
    pub expr: String,
    /// What is wrong, with `line:column` when jaq reports a position.
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expr = excerpt(&self.expr, MAX_EXPR_QUOTE);
        write!(f, "{} ({expr}): {}", self.location, self.message)
    }
}

/// Every problem found while compiling a mapping or a filter (never empty).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", join(.errors))]
pub struct CompileErrors {
    /// The problems, in the order of the spec (program, then rules by index).
    pub errors: Vec<CompileError>,
}

fn join(errors: &[CompileError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

/// Applying a compiled mapping or filter to a payload failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum MapError {
    /// An expression exceeded one of its [`Limits`](crate::Limits): the event fails, and
    /// retrying it cannot help until the expression (or its limits) change.
    #[error(
        "{location} ({}) exceeded its {limit} limit ({detail})",
        excerpt(.expr, MAX_EXPR_QUOTE)
    )]
    LimitExceeded {
        /// Which limit.
        limit: crate::Limit,
        /// Where: `program`, `rules[2] (CardCode)`, `filter` or `ordering key`.
        location: String,
        /// The expression that exceeded it.
        expr: String,
        /// The limit's value, e.g. `50 ms of CPU time`.
        detail: String,
    },
    /// A rule's expression failed, produced no value or more than one, or its value could not
    /// be placed at the rule's target.
    #[error("rule \"{target}\" ({}): {message}", excerpt(.expr, MAX_EXPR_QUOTE))]
    Rule {
        /// The rule's target, e.g. `Address.City`.
        target: String,
        /// The rule's jq expression.
        expr: String,
        /// What went wrong.
        message: String,
    },
    /// The mapping's program failed or did not produce exactly one value.
    #[error("program ({}): {message}", excerpt(.expr, MAX_EXPR_QUOTE))]
    Program {
        /// The program text.
        expr: String,
        /// What went wrong.
        message: String,
    },
    /// Rules can only add fields to an object, but the program produced something else.
    #[error(
        "program ({}) produced {found}, but the rules need an object to set fields on",
        excerpt(.expr, MAX_EXPR_QUOTE)
    )]
    NotAnObject {
        /// The program text.
        expr: String,
        /// What the program produced, e.g. `an array`.
        found: String,
    },
    /// A filter failed or produced more than one value.
    #[error("filter ({}): {message}", excerpt(.expr, MAX_EXPR_QUOTE))]
    Filter {
        /// The filter text.
        expr: String,
        /// What went wrong.
        message: String,
    },
    /// The payload itself cannot be processed (for example, it is nested too deeply).
    #[error("payload: {message}")]
    Input {
        /// What is wrong with the payload.
        message: String,
    },
    /// jaq panicked: a bug in jaq, caught so that it fails one event instead of the worker.
    #[error("internal error: {message}")]
    Internal {
        /// What happened.
        message: String,
    },
}

impl MapError {
    /// Stable code: `MAPPING_LIMIT_EXCEEDED` for a limit, `MAPPING_FAILED` for the rest.
    pub fn code(&self) -> &'static str {
        match self {
            Self::LimitExceeded { .. } => "MAPPING_LIMIT_EXCEEDED",
            _ => "MAPPING_FAILED",
        }
    }

    /// The limit exceeded, if that is what failed.
    pub fn limit(&self) -> Option<crate::Limit> {
        match self {
            Self::LimitExceeded { limit, .. } => Some(*limit),
            _ => None,
        }
    }

    /// The same error, a limit exceeded named at `location`: an expression compiled as a
    /// mapping program but used for something else (an ordering key) says so.
    pub fn at(self, location: &str) -> Self {
        match self {
            Self::LimitExceeded {
                limit,
                expr,
                detail,
                ..
            } => Self::LimitExceeded {
                limit,
                location: location.to_owned(),
                expr,
                detail,
            },
            other => other,
        }
    }
}

/// `text` if it is short, else its start and end around an ellipsis.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let head: String = text.chars().take(max * 2 / 3).collect();
    let tail_len = max - max * 2 / 3;
    let tail: String = {
        let mut tail: Vec<char> = text.chars().rev().take(tail_len).collect();
        tail.reverse();
        tail.into_iter().collect()
    };
    format!("{head}…{tail}")
}

/// A message from jaq, shortened so that quoted payloads stay readable.
pub(crate) fn message(text: &str) -> String {
    excerpt(text, MAX_MESSAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_keeps_short_text_and_shortens_long_text() {
        assert_eq!(excerpt("short", 10), "short");
        let long = "a".repeat(50) + &"z".repeat(50);
        let cut = excerpt(&long, 30);
        assert_eq!(cut.chars().count(), 31);
        assert!(cut.starts_with("aaaa") && cut.ends_with("zzzz") && cut.contains('…'));
    }

    #[test]
    fn compile_errors_join_every_error() {
        let errors = CompileErrors {
            errors: vec![
                CompileError {
                    location: "program".into(),
                    expr: ".a |".into(),
                    message: "expected a term".into(),
                },
                CompileError {
                    location: "rules[1].target".into(),
                    expr: "a..b".into(),
                    message: "empty segment".into(),
                },
            ],
        };
        assert_eq!(
            errors.to_string(),
            "program (.a |): expected a term; rules[1].target (a..b): empty segment"
        );
    }

    #[test]
    fn rule_error_names_target_and_expression() {
        let err = MapError::Rule {
            target: "CardCode".into(),
            expr: ".customer.id | tostring".into(),
            message: "cannot index \"x\" with \"id\"".into(),
        };
        assert_eq!(
            err.to_string(),
            r#"rule "CardCode" (.customer.id | tostring): cannot index "x" with "id""#
        );
    }
}
