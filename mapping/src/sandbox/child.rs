//! The evaluator process: reads [`Request`]s, evaluates each under its limits, answers.
//!
//! Memory is capped by lowering the process's address-space limit (`RLIMIT_AS`) to what it
//! uses now plus the request's memory limit, only while the evaluation runs: an allocation
//! beyond it fails, Rust aborts the process, and the server reports `memory`. Evaluation runs
//! on a thread with a [`STACK_SIZE`] stack; an overflow aborts likewise and is reported as
//! `stack`. CPU time is watched by the server, which kills an evaluator past its limit. The
//! output's size and depth are measured here.

use std::{
    collections::HashMap,
    io::{self, BufRead, Write},
    process::ExitCode,
    thread,
};

use rlimit::Resource;
use serde_json::Value;

use super::protocol::{Job, Request, Response};
use crate::{Filter, Limit, Limits, MapError, Mapping, shortcut::fuel};

/// Stack of the evaluating thread.
pub(crate) const STACK_SIZE: usize = 64 * 1024 * 1024;

/// How far below its server an evaluator runs: under CPU contention the scheduler gives the
/// server's runtime threads about nine tenths of a core before an evaluator's loop, so intake
/// and the API answer while evaluations run at their limits. CPU-time limits count the
/// evaluator's own CPU time, so a lower priority never makes a limit trip sooner.
pub(crate) const NICENESS: i32 = 10;

/// How often the watchdog checks that the server is still there.
const PARENT_CHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// Most compiled jobs kept; past it the cache starts over.
const CACHE: usize = 256;

enum Compiled {
    Map(Mapping),
    Filter(Filter),
}

/// Serve requests on standard input and output until standard input closes: the body of
/// `hookplane evaluator`. Not for interactive use.
///
/// An evaluator runs at a lower priority than its server ([`NICENESS`]).
///
/// An evaluator never outlives its server: a watchdog thread ends the process as soon as its
/// parent changes (the server died, even by `kill -9`, and the evaluator was handed to init),
/// since an evaluation in an endless loop would otherwise run on for ever.
pub fn serve() -> ExitCode {
    // Before any thread starts: on Linux a thread's priority is its own, inherited by the
    // threads it starts.
    if let Err(error) = rustix::process::nice(NICENESS) {
        eprintln!("hookplane evaluator: cannot lower its priority: {error}");
    }
    let parent = std::os::unix::process::parent_id();
    let watchdog = thread::Builder::new()
        .name("hookplane-evaluator-watchdog".to_owned())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                thread::sleep(PARENT_CHECK);
                if std::os::unix::process::parent_id() != parent {
                    std::process::exit(2);
                }
            }
        });
    if let Err(error) = watchdog {
        eprintln!("hookplane evaluator: cannot start its watchdog: {error}");
        return ExitCode::FAILURE;
    }
    let spawned = thread::Builder::new()
        .name("hookplane-evaluator".to_owned())
        .stack_size(STACK_SIZE)
        .spawn(serve_on_this_thread);
    match spawned.map(thread::JoinHandle::join) {
        Ok(Ok(Ok(()))) => ExitCode::SUCCESS,
        Ok(Ok(Err(error))) => {
            eprintln!("hookplane evaluator: {error}");
            ExitCode::FAILURE
        }
        Ok(Err(_)) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("hookplane evaluator: cannot start its thread: {error}");
            ExitCode::FAILURE
        }
    }
}

fn serve_on_this_thread() -> io::Result<()> {
    let stdin = io::stdin().lock();
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    let mut cache: HashMap<String, Compiled> = HashMap::new();
    send(&mut stdout, &Response::Ready)?;
    for line in stdin.lines() {
        let line = line?;
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(request) => answer(request, &mut cache, &mut stdout)?,
            Err(error) => Response::Failed(MapError::Internal {
                message: format!("the evaluator could not read its request: {error}"),
            }),
        };
        send(&mut stdout, &response)?;
    }
    Ok(())
}

fn send(stdout: &mut impl Write, response: &Response) -> io::Result<()> {
    serde_json::to_writer(&mut *stdout, response)?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

fn answer(
    request: Request,
    cache: &mut HashMap<String, Compiled>,
    stdout: &mut impl Write,
) -> io::Result<Response> {
    let Request {
        job,
        payload,
        limits,
    } = request;
    let key = serde_json::to_string(&job).unwrap_or_default();
    if cache.len() >= CACHE && !cache.contains_key(&key) {
        cache.clear();
    }
    if !cache.contains_key(&key) {
        let compiled = match &job {
            Job::Map(spec) => Mapping::compile(spec).map(Compiled::Map),
            Job::Filter(expr) => Filter::compile(expr).map(Compiled::Filter),
        };
        match compiled {
            Ok(compiled) => {
                cache.insert(key.clone(), compiled);
                send(stdout, &Response::Compiled)?;
            }
            Err(errors) => {
                return Ok(Response::Failed(MapError::Internal {
                    message: format!("the evaluator could not compile: {errors}"),
                }));
            }
        }
    }
    let Some(compiled) = cache.get(&key) else {
        return Ok(Response::Failed(MapError::Internal {
            message: "the evaluator lost a compiled job".to_owned(),
        }));
    };
    let capped = cap_memory(limits.memory);
    let outcome = match compiled {
        Compiled::Map(mapping) => mapping.apply(&payload).map(Response::Value),
        Compiled::Filter(filter) => filter.matches(&payload).map(Response::Keep),
    };
    if capped {
        uncap_memory();
    }
    Ok(match outcome {
        Ok(Response::Value(value)) => check_output(value, &job, &limits),
        Ok(other) => other,
        Err(error) => Response::Failed(error),
    })
}

/// Refuse a value larger or deeper than the limits allow.
fn check_output(value: Value, job: &Job, limits: &Limits) -> Response {
    let exceeded = if fuel::depth(&value, limits.depth.saturating_add(1)) > limits.depth {
        Some(Limit::Depth)
    } else if exceeds_output(&value, limits.output) {
        Some(Limit::Output)
    } else {
        None
    };
    match exceeded {
        None => Response::Value(value),
        Some(limit) => {
            let (location, expr) = whole(job);
            Response::Failed(MapError::LimitExceeded {
                limit,
                location,
                expr,
                detail: limits.describe(limit),
            })
        }
    }
}

/// Whether `value` as JSON text is longer than `output` bytes: by its approximate size when
/// that is far from the limit either way (escapes make text at most six times longer than
/// the approximation), else by serializing it.
fn exceeds_output(value: &Value, output: usize) -> bool {
    let limit = output as u64;
    let approximate = fuel::weight(value, limit.saturating_mul(2).saturating_add(1));
    if approximate > limit.saturating_mul(2) {
        return true;
    }
    approximate > limit / 8 && serde_json::to_vec(value).map_or(true, |text| text.len() > output)
}

/// Where a limit of the whole job is reported.
pub(crate) fn whole(job: &Job) -> (String, String) {
    match job {
        Job::Map(spec) => match spec.program.as_deref() {
            Some(program) if spec.rules.is_empty() => ("program".to_owned(), program.to_owned()),
            _ => ("mapping".to_owned(), String::new()),
        },
        Job::Filter(expr) => ("filter".to_owned(), expr.clone()),
    }
}

/// Lower the address-space limit to what the process maps now plus `memory`; false when the
/// limit cannot be read or set (the evaluation then runs without it).
fn cap_memory(memory: u64) -> bool {
    let Some(mapped) = mapped_bytes() else {
        return false;
    };
    let Ok((_, hard)) = Resource::AS.get() else {
        return false;
    };
    let soft = mapped.saturating_add(memory).min(hard);
    Resource::AS.set(soft, hard).is_ok()
}

fn uncap_memory() {
    if let Ok((_, hard)) = Resource::AS.get() {
        // Raising the soft limit back to the hard one is always allowed.
        let _ = Resource::AS.set(hard, hard);
    }
}

/// The process's virtual size, from `/proc/self/statm` (in pages of 4 KiB).
fn mapped_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().next()?.parse().ok()?;
    Some(pages * 4096)
}
