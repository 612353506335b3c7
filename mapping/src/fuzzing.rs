//! The body of the `jq_programs` fuzz target, as plain functions, so `cargo fuzz` (in `fuzz/`)
//! and the deterministic stable test `tests/fuzz_jq_stable.rs` run exactly the same code.
//! Built only with the `fuzzing` feature.
//!
//! From fuzz bytes, [`JqCase`] draws a jq program ([`Jq`], grammar-aware), how it is used (a
//! mapping's program, one of its rules, or a filter) and a small JSON payload. [`JqHarness::check`]
//! then holds Hookplane to the issue's promise, "no expression can crash, hang or starve
//! Hookplane":
//!
//! | step | what must hold |
//! | --- | --- |
//! | compile | a compile error is fine; a program using `env`, `$ENV`, `input`, `halt`, … or a recursive definition never compiles |
//! | `try_shortcut` | returns within [`SHORTCUT_TIME`], and under the default limits grows the process's peak memory by at most [`SHORTCUT_MEMORY`]; a value it gives is within the output and depth limits |
//! | the [`Sandbox`] | returns within the time limit plus [`SLACK`] per evaluation; the result is a value or a [`MapError`], but not the `evaluator` limit (a crash nobody named) nor an internal error other than a caught panic in jaq; a value is within the output and depth limits |
//!
//! A panic anywhere in this process is a finding too. A [`SandboxError::Start`] (the machine
//! could not start a process) is tolerated unless it keeps happening.

mod program;

use std::{
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use arbitrary::{Arbitrary, Unstructured};
use hookplane_crds::{MappingRule, MappingSpec};
use serde_json::{Map, Value};

pub use self::program::{Def, Jq, ObjKey, Pattern, StrPart};
use crate::{
    Filter, Limit, Limits, MapError, Mapping, Sandbox, SandboxConfig, SandboxError, shortcut::fuel,
};

/// Longest `try_shortcut` may take: it runs on a fuel budget and must return promptly.
pub const SHORTCUT_TIME: Duration = Duration::from_secs(1);
/// Most the process's peak memory may grow while the shortcut runs under the default limits:
/// its budget is a sixteenth of their memory limit, so twice that limit is far beyond.
pub const SHORTCUT_MEMORY: u64 = 2 * 64 * 1024 * 1024;
/// Wall time allowed per evaluation beyond the time limit (starting an evaluator, scheduling).
pub const SLACK: Duration = Duration::from_secs(3);
/// The message of a panic in jaq, caught by `Mapping::apply` and `Filter::matches`.
const JAQ_PANICKED: &str = "the jq interpreter panicked on this payload";
/// Consecutive evaluator start failures tolerated before they count as a finding.
const START_FAILURES: usize = 3;

/// Limits small enough that generated programs reach them quickly.
pub fn fuzz_limits() -> Limits {
    Limits {
        time: Duration::from_millis(50),
        memory: 32 * 1024 * 1024,
        output: 64 * 1024,
        depth: 32,
    }
}

/// Where a generated program goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// A mapping's program.
    Program,
    /// The second rule of a mapping whose first rule is `.id`: a limit must be located.
    Rule,
    /// A filter.
    Filter,
}

/// One generated input: a program, how it is used, and the payload it runs on.
#[derive(Clone, Debug)]
pub struct JqCase {
    pub program: Jq,
    pub used_as: Use,
    pub payload: Value,
}

impl<'a> Arbitrary<'a> for JqCase {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let used_as = match u.int_in_range(0u8..=7)? {
            0..=4 => Use::Program,
            5 => Use::Rule,
            _ => Use::Filter,
        };
        let program = Jq::generate(u)?;
        let payload = payload(u, 0)?;
        Ok(Self {
            program,
            used_as,
            payload,
        })
    }
}

/// A small JSON payload with the keys programs look for, and numbers that make loops long.
pub fn payload(u: &mut Unstructured<'_>, depth: usize) -> arbitrary::Result<Value> {
    const KEYS: &[&str] = &["a", "b", "n", "s", "items", "name", "id"];
    const NUMBERS: &[f64] = &[0.0, 1.0, -1.0, 2.5, 1e6, 1e10, 1e18, 1e300, -0.0];
    const TEXTS: &[&str] = &[
        "",
        "a",
        "abc",
        "A,b",
        "12",
        "1.5",
        "x y",
        "é😀",
        "2015-03-05T23:51:47Z",
    ];
    let deepest = if depth >= 4 || u.is_empty() { 3 } else { 6 };
    Ok(match u.int_in_range(0u8..=deepest)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => match u.int_in_range(0u8..=2)? {
            0 => Value::from(u.arbitrary::<i64>()?),
            1 => Value::from(u.arbitrary::<u64>()?),
            _ => Value::from(*u.choose(NUMBERS)?),
        },
        3 => Value::String(if u.arbitrary()? {
            (*u.choose(TEXTS)?).to_owned()
        } else {
            let len = u.int_in_range(0usize..=16)?;
            String::from_utf8_lossy(u.bytes(len.min(u.len()))?).into_owned()
        }),
        4 | 5 => {
            let len = u.int_in_range(0usize..=4)?;
            Value::Array(
                (0..len)
                    .map(|_| payload(u, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => {
            let mut fields = Map::new();
            for _ in 0..u.int_in_range(0usize..=4)? {
                let key = (*u.choose(KEYS)?).to_owned();
                fields.insert(key, payload(u, depth + 1)?);
            }
            Value::Object(fields)
        }
    })
}

/// What a case came to, for the stable test to check that generation reaches every stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The bytes were too few to draw a case.
    NotDrawn,
    /// The program did not compile.
    Refused,
    /// The shortcut answered in this process.
    Shortcut,
    /// An evaluator answered with a value (or a filter's decision).
    Value,
    /// The expression failed with a jq error.
    Failed,
    /// The expression exceeded a limit.
    Exceeded(Limit),
    /// jaq panicked; the panic was caught and the expression failed (a bug in jaq, not a
    /// crash: see [`crate::Mapping::apply`]).
    JaqPanicked,
    /// No evaluator could be started.
    NotStarted,
}

/// A sandbox with its runtime, under [`fuzz_limits`].
pub struct JqHarness {
    runtime: tokio::runtime::Runtime,
    sandbox: Sandbox,
    limits: Limits,
    start_failures: AtomicUsize,
}

impl JqHarness {
    /// A harness whose sandbox starts `evaluator` (the `hookplane-evaluator` binary), at most
    /// `processes` at a time.
    pub fn new(evaluator: impl Into<PathBuf>, processes: usize) -> Self {
        let limits = fuzz_limits();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime needs no resources that can be missing");
        let sandbox = Sandbox::new(SandboxConfig {
            program: evaluator.into(),
            args: Vec::new(),
            processes,
            defaults: limits,
            max: limits,
        });
        Self {
            runtime,
            sandbox,
            limits,
            start_failures: AtomicUsize::new(0),
        }
    }

    /// Draw a case from `data` and check it: the fuzz target's body.
    pub fn run(&self, data: &[u8]) -> Outcome {
        match JqCase::arbitrary_take_rest(Unstructured::new(data)) {
            Ok(case) => self.check(&case),
            Err(_) => Outcome::NotDrawn,
        }
    }

    /// Check one case; panics on a finding, with the program and payload in the message.
    pub fn check(&self, case: &JqCase) -> Outcome {
        let text = case.program.to_string();
        let context = || format!("{:?} `{text}` on {}", case.used_as, case.payload);
        let refused = case.program.must_be_refused();
        match case.used_as {
            Use::Program | Use::Rule => {
                let spec = mapping_spec(case.used_as, &text);
                match Mapping::compile(&spec) {
                    Ok(mapping) => {
                        assert!(
                            !refused,
                            "compiled although it must be refused: {}",
                            context()
                        );
                        self.check_mapping(&mapping, &case.payload, &context)
                    }
                    Err(_) => Outcome::Refused,
                }
            }
            Use::Filter => match Filter::compile(&text) {
                Ok(filter) => {
                    assert!(
                        !refused,
                        "compiled although it must be refused: {}",
                        context()
                    );
                    self.check_filter(&filter, &case.payload, &context)
                }
                Err(_) => Outcome::Refused,
            },
        }
    }

    fn check_mapping(
        &self,
        mapping: &Mapping,
        payload: &Value,
        context: &dyn Fn() -> String,
    ) -> Outcome {
        let limits = &self.limits;
        let shortcut = shortcut(
            |limits| mapping.try_shortcut(payload, limits),
            limits,
            context,
        );
        if let Some(Ok(value)) = &shortcut {
            self.within_limits(value, "try_shortcut", context);
        }
        // A mapping of several parts that exceeds a limit is run again part by part.
        let parts = mapping.spec().rules.len() + usize::from(mapping.spec().program.is_some());
        let evaluations = if parts > 1 { 1 + parts } else { 1 };
        let allowed = (limits.time + SLACK) * u32::try_from(evaluations).unwrap_or(u32::MAX);
        let result = self.evaluate(self.sandbox.map(mapping, payload, limits), allowed, context);
        let outcome = match result {
            Ok(value) => {
                self.within_limits(&value, "map", context);
                Outcome::Value
            }
            Err(outcome) => outcome,
        };
        // When the shortcut answered, the sandbox handed back its answer.
        if shortcut.is_some() {
            Outcome::Shortcut
        } else {
            outcome
        }
    }

    fn check_filter(
        &self,
        filter: &Filter,
        payload: &Value,
        context: &dyn Fn() -> String,
    ) -> Outcome {
        let limits = &self.limits;
        let shortcut = shortcut(
            |limits| filter.try_shortcut(payload, limits),
            limits,
            context,
        );
        let allowed = limits.time + SLACK;
        match self.evaluate(
            self.sandbox.filter(filter, payload, limits),
            allowed,
            context,
        ) {
            Ok(_) if shortcut.is_some() => Outcome::Shortcut,
            Ok(_) => Outcome::Value,
            Err(outcome) => outcome,
        }
    }

    /// Run an evaluation in the sandbox, which must return within `allowed`.
    fn evaluate<T>(
        &self,
        evaluation: impl Future<Output = Result<Result<T, MapError>, SandboxError>>,
        allowed: Duration,
        context: &dyn Fn() -> String,
    ) -> Result<T, Outcome> {
        let started = Instant::now();
        let result = self.runtime.block_on(evaluation);
        promptly(started, allowed, "the sandbox", context);
        self.evaluated(result, context)
    }

    /// The value of an evaluation, or what it came to instead; panics on what must not happen.
    fn evaluated<T>(
        &self,
        result: Result<Result<T, MapError>, SandboxError>,
        context: &dyn Fn() -> String,
    ) -> Result<T, Outcome> {
        let error = match result {
            Ok(Ok(value)) => {
                self.start_failures.store(0, Ordering::Relaxed);
                return Ok(value);
            }
            Ok(Err(error)) => error,
            Err(SandboxError::Start { .. }) => {
                let failures = self.start_failures.fetch_add(1, Ordering::Relaxed) + 1;
                let error = result.err();
                assert!(
                    failures <= START_FAILURES,
                    "{failures} evaluators in a row did not start ({error:?}): {}",
                    context()
                );
                return Err(Outcome::NotStarted);
            }
            Err(error) => panic!("the sandbox failed ({error}): {}", context()),
        };
        self.start_failures.store(0, Ordering::Relaxed);
        match &error {
            MapError::Internal { message } if message == JAQ_PANICKED => Err(Outcome::JaqPanicked),
            MapError::Internal { .. } => panic!("internal error ({error}): {}", context()),
            MapError::LimitExceeded {
                limit: Limit::Evaluator,
                ..
            } => panic!("the evaluator died unexplained ({error}): {}", context()),
            MapError::LimitExceeded { limit, .. } => Err(Outcome::Exceeded(*limit)),
            _ => Err(Outcome::Failed),
        }
    }

    /// A value handed back must be within the output and depth limits.
    fn within_limits(&self, value: &Value, step: &str, context: &dyn Fn() -> String) {
        // Measured without recursion first: a value too deep could overflow serde_json.
        let depth = fuel::depth(value, usize::MAX);
        assert!(
            depth <= self.limits.depth,
            "{step} returned a value {depth} levels deep: {}",
            context()
        );
        let size = serde_json::to_vec(value).map_or(0, |text| text.len());
        assert!(
            size <= self.limits.output,
            "{step} returned {size} bytes of JSON: {}",
            context()
        );
    }
}

fn mapping_spec(used_as: Use, text: &str) -> MappingSpec {
    match used_as {
        Use::Rule => MappingSpec {
            rules: vec![
                MappingRule {
                    target: "Id".to_owned(),
                    expr: ".id".to_owned(),
                },
                MappingRule {
                    target: "Out".to_owned(),
                    expr: text.to_owned(),
                },
            ],
            program: None,
        },
        Use::Program | Use::Filter => MappingSpec {
            rules: Vec::new(),
            program: Some(text.to_owned()),
        },
    }
}

/// Run a shortcut under `limits`, after running it under the production defaults (where its
/// budget is largest) to check that it is prompt and that this process's peak memory grows by
/// at most [`SHORTCUT_MEMORY`].
fn shortcut<T>(
    run: impl Fn(&Limits) -> Option<T>,
    limits: &Limits,
    context: &dyn Fn() -> String,
) -> Option<T> {
    let started = Instant::now();
    let growth = peak_memory_growth(|| run(&Limits::default()));
    promptly(started, SHORTCUT_TIME, "try_shortcut", context);
    if let Some(growth) = growth {
        assert!(
            growth <= SHORTCUT_MEMORY,
            "try_shortcut grew the process by {} MiB: {}",
            growth >> 20,
            context()
        );
    }
    let started = Instant::now();
    let result = run(limits);
    promptly(started, SHORTCUT_TIME, "try_shortcut", context);
    result
}

/// How much this process's peak resident memory grew while `f` ran, where Linux can tell
/// (resetting the peak through `/proc/self/clear_refs`).
fn peak_memory_growth<T>(f: impl FnOnce() -> T) -> Option<u64> {
    let kib = |field: &str| -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|line| line.starts_with(field))?;
        line[field.len()..].split_whitespace().next()?.parse().ok()
    };
    let before = std::fs::write("/proc/self/clear_refs", "5")
        .ok()
        .and_then(|()| kib("VmRSS:"));
    f();
    Some(kib("VmHWM:")?.saturating_sub(before?) * 1024)
}

fn promptly(started: Instant, allowed: Duration, step: &str, context: &dyn Fn() -> String) {
    let took = started.elapsed();
    assert!(
        took <= allowed,
        "{step} took {took:?} (allowed {allowed:?}): {}",
        context()
    );
}
