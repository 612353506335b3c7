//! A touchpoint's mapping, compiled once per published spec and applied to every event.
//!
//! [`Mapping::compile`] reports every problem of a spec at once. [`Mapping::apply`] evaluates
//! the program and the rules through the shortcut where it applies and converts the payload to
//! jaq's value type at most once, for the expressions that need jaq; only their results are
//! converted back. The semantics are described in the crate documentation.

use std::{
    fmt,
    panic::{self, AssertUnwindSafe},
    sync::Arc,
    time::Duration,
};

use hookplane_crds::MappingSpec;
use serde_json::{Map, Value};

use crate::{
    Limit, Limits, big_stack,
    error::{CompileError, CompileErrors, MapError},
    jq::{EvalError, Expr, Prelude, Source},
    shortcut::fuel,
    target::{self, Target},
};

/// A touchpoint's mapping, compiled. Cheap to clone; shareable between threads.
#[derive(Clone)]
pub struct Mapping {
    inner: Arc<Inner>,
}

struct Inner {
    /// What was compiled, for an evaluator process to compile again.
    spec: MappingSpec,
    program: Option<Expr>,
    rules: Vec<Rule>,
}

struct Rule {
    target_text: String,
    target: Target,
    expr: Expr,
}

impl Mapping {
    /// Compile a mapping spec, reporting every problem found.
    pub fn compile(spec: &MappingSpec) -> Result<Self, CompileErrors> {
        let compiled =
            big_stack::run(|| compile_spec(spec)).map_err(|message| CompileErrors {
                errors: vec![CompileError {
                    location: "mapping".to_owned(),
                    expr: String::new(),
                    message,
                }],
            })??;
        Ok(Self {
            inner: Arc::new(compiled),
        })
    }

    /// Apply the mapping to a source payload.
    pub fn apply(&self, input: &Value) -> Result<Value, MapError> {
        // jaq is not known to panic, but a panic here would take down the worker; an event
        // failing with a message is better.
        panic::catch_unwind(AssertUnwindSafe(|| self.inner.apply(input))).unwrap_or_else(|_| {
            Err(MapError::Internal {
                message: "the jq interpreter panicked on this payload".to_owned(),
            })
        })
    }
}

impl Mapping {
    /// The spec this mapping was compiled from.
    pub fn spec(&self) -> &MappingSpec {
        &self.inner.spec
    }

    /// Apply the mapping in this process if the shortcut covers every expression and the result
    /// stays within `limits` (a step budget derived from them, and [`IN_PROCESS_TIME`] at
    /// most): `None` means an evaluator
    /// process must run it ([`crate::Sandbox`]). Never runs jaq, so it cannot loop or abort.
    pub fn try_shortcut(&self, input: &Value, limits: &Limits) -> Option<Result<Value, MapError>> {
        let inner = &self.inner;
        if inner.program.is_none() && inner.rules.is_empty() {
            return Some(Ok(input.clone()));
        }
        let output = fuel::metered_for(in_process_fuel(limits), in_process_time(limits), || {
            let mut output = match &inner.program {
                Some(program) => {
                    let out = program.shortcut_one(input)?;
                    if inner.rules.is_empty() {
                        return Some(Ok(out));
                    }
                    match out {
                        Value::Object(fields) => fields,
                        other => {
                            return Some(Err(MapError::NotAnObject {
                                expr: program.text().to_owned(),
                                found: target::kind(&other).to_owned(),
                            }));
                        }
                    }
                }
                None => Map::new(),
            };
            for rule in &inner.rules {
                let out = rule.expr.shortcut_one(input)?;
                if let Err(message) = rule.target.set(&mut output, out) {
                    return Some(Err(MapError::Rule {
                        target: rule.target_text.clone(),
                        expr: rule.expr.text().to_owned(),
                        message,
                    }));
                }
            }
            Some(Ok(Value::Object(output)))
        })?;
        match &output {
            Ok(value) if !within(value, limits) => None,
            _ => Some(output),
        }
    }
}

/// Fuel for an in-process shortcut run: a fraction of the memory limit, so what it may build
/// stays well below what an evaluator would be allowed.
pub(crate) fn in_process_fuel(limits: &Limits) -> u64 {
    (limits.memory / 16).min(limits.output as u64 * 4).max(1)
}

/// Longest an in-process shortcut run may hold the caller's thread (a worker of the server's
/// async runtime): what the shortcut is for takes microseconds; an expression that needs more
/// goes to an evaluator, where only the evaluator waits on it.
const IN_PROCESS_TIME: Duration = Duration::from_millis(5);

/// Time for an in-process shortcut run: [`IN_PROCESS_TIME`], or the expression's own time
/// limit when that is shorter.
pub(crate) fn in_process_time(limits: &Limits) -> Duration {
    limits.time.min(IN_PROCESS_TIME)
}

/// Whether a result is surely within the output and depth limits; when unsure, an evaluator
/// measures it exactly.
pub(crate) fn within(value: &Value, limits: &Limits) -> bool {
    let cap = limits.output as u64 / 2;
    fuel::weight(value, cap.saturating_add(1)) <= cap
        && fuel::depth(value, limits.depth.saturating_add(1)) <= limits.depth
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules = self.inner.rules.iter();
        let rules: Vec<(&str, &str)> = rules
            .map(|r| (r.target_text.as_str(), r.expr.text()))
            .collect();
        f.debug_struct("Mapping")
            .field("program", &self.inner.program.as_ref().map(Expr::text))
            .field("rules", &rules)
            .finish()
    }
}

fn compile_spec(spec: &MappingSpec) -> Result<Inner, CompileErrors> {
    let prelude = Prelude::new();
    let mut errors = Vec::new();
    let mut error = |location: String, expr: &str, message: String| {
        errors.push(CompileError {
            location,
            expr: expr.to_owned(),
            message,
        });
    };

    let program_text = spec.program.as_deref().filter(|p| !p.trim().is_empty());
    let program = program_text.and_then(|text| {
        Expr::compile(&prelude, text)
            .map_err(|message| error("program".to_owned(), text, message))
            .ok()
    });

    let mut rules = Vec::with_capacity(spec.rules.len());
    let mut targets = Vec::with_capacity(spec.rules.len());
    for (index, rule) in spec.rules.iter().enumerate() {
        let target = Target::parse(&rule.target)
            .map_err(|message| error(format!("rules[{index}].target"), &rule.target, message));
        let expr = Expr::compile(&prelude, &rule.expr)
            .map_err(|message| error(format!("rules[{index}].expr"), &rule.expr, message));
        if let Ok(target) = &target {
            targets.push((index, target.clone()));
        }
        if let (Ok(target), Ok(expr)) = (target, expr) {
            let target_text = rule.target.clone();
            rules.push(Rule {
                target_text,
                target,
                expr,
            });
        }
    }
    for (index, message) in target::conflicts(&targets) {
        let text = &spec.rules[index].target;
        error(format!("rules[{index}].target"), text, message);
    }

    if errors.is_empty() {
        Ok(Inner {
            spec: spec.clone(),
            program,
            rules,
        })
    } else {
        errors.sort_by_key(|e| location_order(&e.location));
        Err(CompileErrors { errors })
    }
}

/// Sort key: the program first, then rules by index, target before expr.
fn location_order(location: &str) -> (usize, usize) {
    let Some(rest) = location.strip_prefix("rules[") else {
        return (0, 0);
    };
    let (index, field) = rest.split_once(']').unwrap_or((rest, ""));
    let index = index.parse::<usize>().map_or(usize::MAX, |i| i + 1);
    (index, usize::from(field != ".target"))
}

impl Inner {
    fn apply(&self, input: &Value) -> Result<Value, MapError> {
        if self.program.is_none() && self.rules.is_empty() {
            return Ok(input.clone());
        }
        let mut source = Source::new(input);
        let mut output = match &self.program {
            Some(program) => {
                let out = program.single_json(&mut source).map_err(|e| {
                    fail(e, "program".to_owned(), program, |message| {
                        MapError::Program {
                            expr: program.text().to_owned(),
                            message,
                        }
                    })
                })?;
                if self.rules.is_empty() {
                    return Ok(out);
                }
                match out {
                    Value::Object(fields) => fields,
                    other => {
                        return Err(MapError::NotAnObject {
                            expr: program.text().to_owned(),
                            found: target::kind(&other).to_owned(),
                        });
                    }
                }
            }
            None => Map::new(),
        };
        for (index, rule) in self.rules.iter().enumerate() {
            rule.apply(index, &mut source, &mut output)?;
        }
        Ok(Value::Object(output))
    }
}

impl Rule {
    /// Apply rule `index` (its place in the spec, for naming it in a limit exceeded).
    fn apply(
        &self,
        index: usize,
        source: &mut Source<'_>,
        output: &mut Map<String, Value>,
    ) -> Result<(), MapError> {
        let rule_error = |message| MapError::Rule {
            target: self.target_text.clone(),
            expr: self.expr.text().to_owned(),
            message,
        };
        let out = self.expr.single_json(source).map_err(|e| {
            let location = format!("rules[{index}] ({})", self.target_text);
            fail(e, location, &self.expr, rule_error)
        })?;
        self.target.set(output, out).map_err(rule_error)
    }
}

/// A failed evaluation as the error of the expression it belongs to, or of the payload. A
/// result nested deeper than any value may be is the `depth` limit, exceeded at `location`
/// (named as [`crate::Sandbox`] names a part of a mapping).
fn fail(
    error: EvalError,
    location: String,
    expr: &Expr,
    expr_error: impl FnOnce(String) -> MapError,
) -> MapError {
    match error {
        EvalError::Payload(e) => MapError::Input {
            message: e.message("the payload"),
        },
        EvalError::TooDeep => MapError::LimitExceeded {
            limit: Limit::Depth,
            location,
            expr: expr.text().to_owned(),
            detail: Limits::default().describe(Limit::Depth),
        },
        EvalError::Expr(message) => expr_error(message),
    }
}
