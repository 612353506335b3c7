//! A touchpoint's event filter: a jq expression that decides whether an event is delivered.
//!
//! The expression runs against the source payload. No output, `false` or `null` means "skip
//! this event"; any other single value means "deliver it". More than one output is an error
//! (wrap a stream in `any(...)` or `all(...)`), and so is a jq error: an event whose filter
//! fails is neither delivered nor silently skipped.

use std::{
    fmt,
    panic::{self, AssertUnwindSafe},
    sync::Arc,
};

use jaq_json::Val;
use serde_json::Value;

use crate::{
    Limits, big_stack,
    error::{CompileError, CompileErrors, MapError},
    jq::{Expr, Prelude},
    shortcut::fuel,
    value,
};

const MANY_VALUES: &str = "produced more than one value; combine them with any(...) or all(...)";

/// A compiled filter. Cheap to clone; shareable between threads.
#[derive(Clone)]
pub struct Filter {
    expr: Arc<Expr>,
}

impl Filter {
    /// Compile a filter expression.
    pub fn compile(expr: &str) -> Result<Self, CompileErrors> {
        let compiled =
            big_stack::run(|| Expr::compile(&Prelude::new(), expr)).and_then(|compiled| compiled);
        match compiled {
            Ok(compiled) => Ok(Self {
                expr: Arc::new(compiled),
            }),
            Err(message) => Err(CompileErrors {
                errors: vec![CompileError {
                    location: "filter".to_owned(),
                    expr: expr.to_owned(),
                    message,
                }],
            }),
        }
    }

    /// Whether the event with this payload should be delivered.
    pub fn matches(&self, input: &Value) -> Result<bool, MapError> {
        // jaq is not known to panic, but a panic here would take down the worker; an event
        // failing with a message is better.
        panic::catch_unwind(AssertUnwindSafe(|| self.decide(input))).unwrap_or_else(|_| {
            Err(MapError::Internal {
                message: "the jq interpreter panicked on this payload".to_owned(),
            })
        })
    }

    /// The filter's text.
    pub fn text(&self) -> &str {
        self.expr.text()
    }

    /// Decide in this process if the shortcut covers the filter within a step budget derived
    /// from `limits`: `None` means an evaluator process must run it. Never runs jaq.
    pub fn try_shortcut(&self, input: &Value, limits: &Limits) -> Option<bool> {
        let fuel = crate::mapping::in_process_fuel(limits);
        let time = crate::mapping::in_process_time(limits);
        match fuel::metered_for(fuel, time, || self.expr.shortcut_all(input))?.as_slice() {
            [] => Some(false),
            [value] => Some(!matches!(value, Value::Null | Value::Bool(false))),
            _ => None,
        }
    }

    fn decide(&self, input: &Value) -> Result<bool, MapError> {
        match self.expr.shortcut_all(input).as_deref() {
            Some([]) => return Ok(false),
            Some([value]) => return Ok(!matches!(value, Value::Null | Value::Bool(false))),
            // Errors and several values: jaq runs it and says what is wrong.
            _ => {}
        }
        let source = value::to_val(input).map_err(|e| MapError::Input {
            message: e.message("the payload"),
        })?;
        let filter_error = |message| MapError::Filter {
            expr: self.expr.text().to_owned(),
            message,
        };
        let mut outputs = self.expr.run(source);
        let Some(first) = outputs.next() else {
            return Ok(false);
        };
        let keep = truthy(first.map_err(filter_error)?);
        match outputs.next() {
            None => Ok(keep),
            Some(Err(e)) => Err(filter_error(e)),
            Some(Ok(_)) => Err(filter_error(MANY_VALUES.to_owned())),
        }
    }
}

fn truthy(value: Val) -> bool {
    let keep = !matches!(value, Val::Null | Val::Bool(false));
    value::drop_iteratively(value);
    keep
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Filter").field(&self.expr.text()).finish()
    }
}
