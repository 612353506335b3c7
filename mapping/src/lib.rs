//! jq mappings and filters for touchpoints, run with [jaq](https://github.com/01mf02/jaq).
//!
//! A [`Mapping`] is compiled once per published [`MappingSpec`](hookplane_crds::MappingSpec)
//! and turns a source payload into the destination payload; a [`Filter`] decides whether an
//! event is delivered at all. Both are cheap to clone and can be shared between threads.
//! Compiling reports every problem at once ([`CompileErrors`], each with its location, such as
//! `rules[2].expr`, and `line:column` for syntax errors); applying fails with a [`MapError`]
//! that names the rule target or `program` and the expression.
//!
//! # Mapping semantics
//!
//! - **Rules only**: the output is an object. Each rule's `target` is a dotted path
//!   (`Address.City` builds nested objects); its `expr` runs against the source payload and
//!   must produce exactly one value. No value is an error ("produced no value"), and so are
//!   several (wrap the expression in `[ ... ]` to get an array). Targets must be distinct, none
//!   may lie inside another (`Address` and `Address.City`), and none may have an empty segment.
//! - **Program only**: the output is the program's single value (any JSON value).
//! - **Both**: the program's value must be an object; each rule, still evaluated against the
//!   source payload (not the program's output), sets its target on it, replacing what the
//!   program put there. A non-object on the way to a target is an error.
//! - **Neither**: the output is the payload, unchanged. A blank program counts as none.
//!
//! A jq error (`error("x")`, `"a" | tonumber`, `.a.b` on a string, ...) fails the whole
//! application; it is never turned into `null`. Use `//`, `?` or `try` in the expression to
//! choose a fallback.
//!
//! # Filter semantics
//!
//! A filter runs against the source payload. No output, `false` or `null` skips the event;
//! any other single value (including `0`, `""` and `[]`, as in jq) delivers it. A jq error or
//! more than one output is a [`MapError::Filter`] (use `any(...)` or `all(...)` over streams).
//!
//! # The jq language available
//!
//! jaq's core, standard and JSON libraries: `map`, `select`, `tostring`, `tonumber`,
//! `ascii_downcase`, `split`, `join`, `test`/`sub`/`gsub`, `tojson`/`fromjson`, `todate`,
//! `fromdate`, `strftime`, `now`, `@base64`, `@uri`, ... jaq differs from jq in details (see
//! its README); notably `/` always yields a float (`10 / 2` is `5.0`, `floor` makes it `5`).
//! Withdrawn for safety: `env`/`$ENV`, `halt`, `halt_error`, `input`, `inputs` and modules;
//! `debug` and `stderr` pass values through without logging (see `natives`).
//!
//! # Performance
//!
//! Compile once per spec (a few milliseconds for twenty rules) and keep the [`Mapping`]. Most
//! rules (paths, conversions, concatenations, `[.items[] | {...}]`, comparisons, ...) are
//! evaluated directly on the `serde_json::Value` by an exact shortcut (see `shortcut`); the
//! payload is converted to jaq's values only when an expression needs jaq, and then once per
//! [`Mapping::apply`]. On a 1 KiB order, twenty such rules take about as long as parsing and
//! serializing the payload with serde_json; the same rules through jaq take about six times
//! as long.
//!
//! Numbers keep their kind: integers stay integers (larger than 64 bits they become the
//! nearest float on output), floats stay floats (`1.0` stays `1.0`); NaN becomes `null` and
//! infinities the largest finite float, as jq prints them.
//!
//! # Limits
//!
//! jaq runs on the native stack, and a stack overflow aborts the process. What we found and
//! what guards against it:
//!
//! - Parsing and compiling recurse per nesting level with large frames (in a debug build, 200
//!   nested parentheses overflow a 2 MiB stack). Compiling therefore runs on its own thread
//!   with a large stack, and expressions are limited to 32 KiB.
//! - Running recurses once per level of the expression's syntax tree (each pipe, comma, object
//!   field, path part, call, ...): expressions nested more than 200 levels are rejected.
//! - A user-defined filter that calls itself (`def f: f + 1; f`) recursed without bound:
//!   recursive definitions are rejected at compile time; the built-in `recurse`, `until`,
//!   `while`, `repeat` and `reduce` iterate without growing the stack.
//! - jaq's `fromjson` recursed per level of the parsed text; ours uses serde_json (128 levels).
//! - Payloads handed to jaq, and values jaq produces, nested more than 256 levels are refused.
//! - jaq's `unwrap_valr` helper exits the process on `halt`; it is not used.
//!
//! What jaq itself cannot bound (a program can loop for ever, `last(range(1e18))`, allocate
//! without bound, `"x" * 1000000000000`, or build a value nested hundreds of thousands of
//! levels deep, `reduce range(1e6) as $i (0; [.])`, which dropping then overflows on) is
//! bounded by running such expressions in evaluator processes under [`Limits`]: see
//! [`limits`](crate::Limits) for each limit, its default and why, and [`sandbox`] for how.
//! [`Mapping::apply`] and [`Filter::matches`] evaluate without limits, in the caller: the
//! server only calls them inside an evaluator, and goes through [`Sandbox::map`] and
//! [`Sandbox::filter`] everywhere else.

mod big_stack;
mod error;
mod filter;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod guard;
mod jq;
mod limits;
mod mapping;
mod natives;
pub mod sandbox;
mod shortcut;
mod target;
mod value;

pub use error::{CompileError, CompileErrors, MapError};
pub use filter::Filter;
pub use limits::{Limit, Limits, nesting};
pub use mapping::Mapping;
pub use sandbox::{Sandbox, SandboxConfig, SandboxError};
