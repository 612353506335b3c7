//! Evaluator processes: where jq that needs jaq runs, under [`Limits`], so that nothing an
//! expression does can crash, hang or starve the server.
//!
//! A [`Sandbox`] keeps up to `processes` evaluators (the same binary, started with the
//! configured arguments, e.g. `hookplane evaluator`), each answering one request at a time
//! ([`protocol`]). A caller waits for a free evaluator without blocking the async runtime's
//! threads. The server watches the evaluator's CPU time (from `/proc/<pid>/stat`) and kills
//! it past the time limit; an evaluator that dies (killed, out of memory, stack overflow) is
//! replaced on the next request, and its death is reported as the limit it hit. For a
//! mapping of several parts, the part that hit a limit is found by running the parts one by
//! one, so the error names the rule.
//!
//! [`Sandbox::map`] and [`Sandbox::filter`] first try the shortcut in the caller's process
//! under a step budget ([`Mapping::try_shortcut`]): most mappings never reach an evaluator.

mod child;
mod process;
mod protocol;

use std::{path::PathBuf, sync::Arc, time::Duration};

pub use child::serve;
use hookplane_crds::{MappingRule, MappingSpec};
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

use self::{
    process::{Evaluator, Exchange},
    protocol::{Job, Response},
};
use crate::{Filter, Limit, Limits, MapError, Mapping};

/// How to start evaluators, how many, and the instance's limits.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The evaluator program (usually the server's own binary).
    pub program: PathBuf,
    /// Its arguments (`["evaluator"]` for `hookplane`).
    pub args: Vec<String>,
    /// Evaluators at most; each runs one evaluation at a time.
    pub processes: usize,
    /// The limits of an expression whose touchpoint sets none.
    pub defaults: Limits,
    /// The most a touchpoint may raise them to.
    pub max: Limits,
}

/// A pool of evaluator processes. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    config: SandboxConfig,
    slots: Semaphore,
    idle: Mutex<Vec<Evaluator>>,
}

/// Why an evaluation could not run at all (as opposed to failing or exceeding a limit).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("starting an evaluator process ({program})")]
    Start {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the evaluator pool is closed")]
    Closed,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Self {
        let processes = config.processes.max(1);
        Self {
            inner: Arc::new(Inner {
                config,
                slots: Semaphore::new(processes),
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The default limits, as configured.
    pub fn defaults(&self) -> Limits {
        self.inner.config.defaults
    }

    /// `requested` (a touchpoint's own limits, or the defaults) within the instance maximum.
    pub fn limits(&self, requested: Option<&Limits>) -> Limits {
        requested
            .unwrap_or(&self.inner.config.defaults)
            .capped(&self.inner.config.max)
    }

    /// Apply `mapping` to `input` under `limits`. A limit exceeded is
    /// [`MapError::LimitExceeded`], naming the rule (or program) that exceeded it.
    pub async fn map(
        &self,
        mapping: &Mapping,
        input: &Value,
        limits: &Limits,
    ) -> Result<Result<Value, MapError>, SandboxError> {
        let limits = limits.capped(&self.inner.config.max);
        if let Some(result) = mapping.try_shortcut(input, &limits) {
            return Ok(result);
        }
        let spec = mapping.spec();
        let job = Job::Map(spec.clone());
        let (whole_location, _) = child::whole(&job);
        match self.run(job, input, &limits).await? {
            Ok(Response::Value(value)) => Ok(Ok(value)),
            // The evaluator measured a limit of the whole result (its size): find the part.
            Ok(Response::Failed(MapError::LimitExceeded {
                limit, location, ..
            })) if location == whole_location => {
                Ok(Err(self.locate(spec, input, &limits, limit).await?))
            }
            Ok(Response::Failed(error)) => Ok(Err(error)),
            Ok(Response::Keep(_) | Response::Ready | Response::Compiled) => Ok(Err(unexpected())),
            Err(limit) => Ok(Err(self.locate(spec, input, &limits, limit).await?)),
        }
    }

    /// Whether `filter` keeps an event with payload `input`, under `limits`.
    pub async fn filter(
        &self,
        filter: &Filter,
        input: &Value,
        limits: &Limits,
    ) -> Result<Result<bool, MapError>, SandboxError> {
        let limits = limits.capped(&self.inner.config.max);
        if let Some(keep) = filter.try_shortcut(input, &limits) {
            return Ok(Ok(keep));
        }
        let job = Job::Filter(filter.text().to_owned());
        Ok(match self.run(job.clone(), input, &limits).await? {
            Ok(Response::Keep(keep)) => Ok(keep),
            Ok(Response::Failed(error)) => Err(error),
            Ok(Response::Value(_) | Response::Ready | Response::Compiled) => Err(unexpected()),
            Err(limit) => Err(exceeded(&job, limit, &limits)),
        })
    }

    /// Which part of a mapping exceeded `limit`: the program, else the first rule that
    /// exceeds a limit on its own. A mapping of one part is that part; when no part exceeds
    /// one alone (their results together are too large), the whole mapping.
    async fn locate(
        &self,
        spec: &MappingSpec,
        input: &Value,
        limits: &Limits,
        limit: Limit,
    ) -> Result<MapError, SandboxError> {
        let whole = Job::Map(spec.clone());
        let rule_exceeded =
            |index: usize, rule: &MappingRule, limit: Limit| MapError::LimitExceeded {
                limit,
                location: format!("rules[{index}] ({})", rule.target),
                expr: rule.expr.clone(),
                detail: limits.describe(limit),
            };
        match (&spec.program, spec.rules.as_slice()) {
            (None, [rule]) => return Ok(rule_exceeded(0, rule, limit)),
            (Some(_), []) | (None, []) => return Ok(exceeded(&whole, limit, limits)),
            _ => {}
        }
        if let Some(program) = &spec.program {
            let alone = Job::Map(MappingSpec {
                rules: Vec::new(),
                program: Some(program.clone()),
            });
            if let Some(limit) = self.exceeds(alone.clone(), input, limits).await? {
                return Ok(exceeded(&alone, limit, limits));
            }
        }
        for (index, rule) in spec.rules.iter().enumerate() {
            let alone = Job::Map(MappingSpec {
                rules: vec![rule.clone()],
                program: None,
            });
            if let Some(limit) = self.exceeds(alone, input, limits).await? {
                return Ok(rule_exceeded(index, rule, limit));
            }
        }
        Ok(exceeded(&whole, limit, limits))
    }

    /// The limit `job` exceeds on its own, if any: its evaluator ended, or measured it.
    async fn exceeds(
        &self,
        job: Job,
        input: &Value,
        limits: &Limits,
    ) -> Result<Option<Limit>, SandboxError> {
        Ok(match self.run(job, input, limits).await? {
            Err(limit) | Ok(Response::Failed(MapError::LimitExceeded { limit, .. })) => Some(limit),
            Ok(_) => None,
        })
    }

    /// One request on a free evaluator: its response, or the limit that ended it.
    async fn run(
        &self,
        job: Job,
        input: &Value,
        limits: &Limits,
    ) -> Result<Result<Response, Limit>, SandboxError> {
        let _slot = self
            .inner
            .slots
            .acquire()
            .await
            .map_err(|_| SandboxError::Closed)?;
        let evaluator = self.inner.idle.lock().await.pop();
        let mut evaluator = match evaluator {
            Some(evaluator) => evaluator,
            None => Evaluator::start(&self.inner.config.program, &self.inner.config.args)
                .await
                .map_err(|source| SandboxError::Start {
                    program: self.inner.config.program.display().to_string(),
                    source,
                })?,
        };
        match evaluator
            .exchange(&job, input, limits, wall_cap(limits))
            .await
        {
            Exchange::Answered(response) => {
                self.inner.idle.lock().await.push(evaluator);
                Ok(Ok(response))
            }
            Exchange::Ended(limit) => Ok(Err(limit)),
        }
    }
}

/// The longest an evaluation may take in wall time, however little CPU it got.
fn wall_cap(limits: &Limits) -> Duration {
    (limits.time * 40).max(Duration::from_secs(2))
}

fn exceeded(job: &Job, limit: Limit, limits: &Limits) -> MapError {
    let (location, expr) = child::whole(job);
    MapError::LimitExceeded {
        limit,
        location,
        expr,
        detail: limits.describe(limit),
    }
}

fn unexpected() -> MapError {
    MapError::Internal {
        message: "the evaluator answered a different kind of request".to_owned(),
    }
}
