//! One jq expression compiled with jaq, and running it.
//!
//! Compiling goes: length limit -> jaq's loader (lex and parse errors, with `line:column`) ->
//! the stack guards of [`crate::guard`] -> jaq's compiler (undefined filters and variables).
//! Every failure becomes a readable message; nothing panics on any text.
//!
//! Running yields jaq's outputs with errors already turned into messages. jaq's own helper for
//! that (`unwrap_valr`) calls `std::process::exit` when a program halts; we never use it, and
//! `halt` is withdrawn anyway (see [`crate::natives`]).

use jaq_core::{
    Compiler, Ctx, Exn, Vars,
    compile::{self, Undefined},
    data::JustLut,
    load::{self, Arena, File, Loader, lex, parse::Def},
};
use jaq_json::Val;
use serde_json::Value;

use crate::{
    error, guard, natives,
    shortcut::Shortcut,
    value::{self, ConvertError},
};

/// jaq's data kind for filters that see nothing but their input.
pub(crate) type Data = JustLut<Val>;

/// Message for an expression that must produce exactly one value but produced several.
pub(crate) const MANY_VALUES: &str =
    "produced more than one value; wrap the expression in [ ... ] to collect them into an array";

/// The standard library's jq definitions, parsed once and shared by the expressions of a spec.
pub(crate) struct Prelude(Vec<Def<&'static str>>);

impl Prelude {
    pub(crate) fn new() -> Self {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let kept = defs.filter(|d| !natives::REPLACED_DEFS.contains(&(d.name, d.args.len())));
        Self(kept.collect())
    }
}

/// A compiled jq expression with its text.
pub(crate) struct Expr {
    text: String,
    filter: jaq_core::Filter<Data>,
    /// A way to evaluate it without jaq, if it has a simple shape.
    shortcut: Option<Shortcut>,
}

impl Expr {
    pub(crate) fn compile(prelude: &Prelude, text: &str) -> Result<Self, String> {
        guard::check_len(text)?;
        let arena = Arena::default();
        let loader = Loader::new(prelude.0.iter().cloned().map(shorten));
        let file = File {
            code: text,
            path: (),
        };
        let modules = loader
            .load(&arena, file)
            .map_err(|errs| load_errors(text, errs))?;
        let shortcut = Shortcut::recognize(&guard::check(text)?);
        let filter = Compiler::default()
            .with_funs(natives::funs())
            .compile(modules)
            .map_err(|errs| compile_errors(text, errs))?;
        Ok(Self {
            text: text.to_owned(),
            filter,
            shortcut,
        })
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    #[cfg(test)]
    pub(crate) fn has_shortcut(&self) -> bool {
        self.shortcut.is_some()
    }

    /// The single value of the expression for `input`, computed without jaq, or `None` if jaq
    /// has to run it (see [`crate::shortcut`]).
    pub(crate) fn shortcut_one(&self, input: &Value) -> Option<Value> {
        self.shortcut.as_ref()?.one(input)
    }

    /// Every value of the expression for `input`, computed without jaq, or `None` if jaq has
    /// to run it (see [`crate::shortcut`]).
    pub(crate) fn shortcut_all(&self, input: &Value) -> Option<Vec<Value>> {
        self.shortcut.as_ref()?.all(input)
    }

    /// The single value of the expression for the payload, through the shortcut when it
    /// applies, else through jaq (converting the payload if no expression has yet).
    pub(crate) fn single_json(&self, source: &mut Source<'_>) -> Result<Value, EvalError> {
        if let Some(value) = self.shortcut.as_ref().and_then(|s| s.one(source.json)) {
            return Ok(value);
        }
        let input = source.val().map_err(EvalError::Payload)?;
        let output = self.single(input).map_err(EvalError::Expr)?;
        value::into_json(output).map_err(|e| match e {
            ConvertError::TooDeep => EvalError::TooDeep,
            e => EvalError::Expr(e.message("the result")),
        })
    }

    /// Every output of the expression for `input`, lazily.
    pub(crate) fn run(&self, input: Val) -> impl Iterator<Item = Result<Val, String>> + '_ {
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        self.filter
            .id
            .run((ctx, input))
            .map(|out| out.map_err(exn_message))
    }

    /// The one output of the expression for `input`; none or several is an error. An error
    /// after the first output counts: `"12" , error("x")` fails.
    pub(crate) fn single(&self, input: Val) -> Result<Val, String> {
        let mut outputs = self.run(input);
        let first = outputs.next().ok_or("produced no value")??;
        match outputs.next() {
            None => Ok(first),
            Some(Err(e)) => Err(e),
            Some(Ok(_)) => Err(MANY_VALUES.to_owned()),
        }
    }
}

/// Why [`Expr::single_json`] failed.
pub(crate) enum EvalError {
    /// The payload cannot be given to jaq.
    Payload(ConvertError),
    /// The expression failed; the message says why.
    Expr(String),
    /// The result is nested deeper than any value may be: the `depth` limit.
    TooDeep,
}

/// A payload, with its jaq value made on first use and shared by the expressions after that.
pub(crate) struct Source<'a> {
    json: &'a Value,
    val: Option<Val>,
}

impl<'a> Source<'a> {
    pub(crate) fn new(json: &'a Value) -> Self {
        Self { json, val: None }
    }

    /// The payload as a jaq value (a cheap clone after the first call).
    pub(crate) fn val(&mut self) -> Result<Val, ConvertError> {
        if let Some(val) = &self.val {
            return Ok(val.clone());
        }
        let val = value::to_val(self.json)?;
        self.val = Some(val.clone());
        Ok(val)
    }
}

/// The prelude is parsed from `'static` text, but the loader wants the lifetime of the code.
fn shorten<'s>(def: Def<&'static str>) -> Def<&'s str> {
    def
}

fn exn_message(exn: Exn<'_, Val>) -> String {
    match exn.get_err() {
        Ok(err) => error::message(&match err.into_val() {
            Val::TStr(text) | Val::BStr(text) => String::from_utf8_lossy(&text).into_owned(),
            other => other.to_string(),
        }),
        Err(exn) => match exn.get_halt() {
            Ok(code) => format!("the expression halted with exit code {code}"),
            Err(_) => "jq control flow escaped the expression".to_owned(),
        },
    }
}

fn load_errors(code: &str, errs: load::Errors<&str, ()>) -> String {
    let mut messages = Vec::new();
    for (_file, err) in errs {
        match err {
            load::Error::Io(imports) => messages.extend(imports.into_iter().map(|(path, _)| {
                format!("cannot load module \"{path}\": modules are not supported")
            })),
            load::Error::Lex(errs) => messages.extend(errs.into_iter().map(|(expected, rest)| {
                let found = rest.split_whitespace().next().unwrap_or("");
                let found = found.chars().take(20).collect::<String>();
                let (found, at) = (found_text(&found), at(code, rest));
                match expected {
                    lex::Expect::Token => format!("unexpected {found}{at}"),
                    other => format!("expected {}, found {found}{at}", lex_expected(&other)),
                }
            })),
            load::Error::Parse(errs) => {
                messages.extend(errs.into_iter().map(|(expected, found)| {
                    let token: String = found.chars().take(20).collect();
                    let expected = expected.as_str();
                    format!(
                        "expected {expected}, found {}{}",
                        found_text(&token),
                        at(code, found)
                    )
                }))
            }
        }
    }
    messages.join("; ")
}

fn lex_expected(expected: &lex::Expect<&str>) -> String {
    match expected {
        lex::Expect::Delim(open) if !["(", "[", "{", "\""].contains(open) => {
            format!("something to close `{open}`")
        }
        other => other.as_str().to_owned(),
    }
}

fn found_text(found: &str) -> String {
    if found.is_empty() {
        "end of input".to_owned()
    } else {
        format!("`{found}`")
    }
}

fn compile_errors(code: &str, errs: compile::Errors<&str, ()>) -> String {
    let messages = errs.into_iter().flat_map(|(_file, undefined)| undefined);
    let messages = messages.map(|(name, what)| {
        let what = match what {
            Undefined::Filter(arity) => format!("undefined filter `{name}/{arity}`"),
            other => format!("undefined {} `{name}`", other.as_str()),
        };
        let hint = if natives::NOT_AVAILABLE.contains(&name) {
            " (not available in mappings)"
        } else {
            ""
        };
        format!("{what}{hint}{}", at(code, name))
    });
    messages.collect::<Vec<_>>().join("; ")
}

/// ` at line:column` of `part` within `code`, or nothing if `part` is not a slice of `code`.
fn at(code: &str, part: &str) -> String {
    let (start, base) = (part.as_ptr() as usize, code.as_ptr() as usize);
    let Some(offset) = start.checked_sub(base).filter(|o| *o <= code.len()) else {
        return String::new();
    };
    let before = code.get(..offset).unwrap_or(code);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!(" at {line}:{column}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<Expr, String> {
        Expr::compile(&Prelude::new(), text)
    }

    fn outputs(text: &str, input: Val) -> Vec<Result<String, String>> {
        let expr = compile(text).expect(text);
        expr.run(input).map(|r| r.map(|v| v.to_string())).collect()
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = compile(".a |").err().expect("incomplete pipe");
        assert_eq!(err, "expected term, found end of input at 1:5");
        let err = compile("(.a").err().expect("unclosed parenthesis");
        assert_eq!(
            err,
            "expected closing parenthesis, found end of input at 1:4"
        );
        let err = compile(".a\n| map(.b)) ").err().expect("stray parenthesis");
        assert_eq!(err, "unexpected `)` at 2:10");
    }

    #[test]
    fn undefined_names_are_named() {
        let err = compile(".a | tostrin").err().expect("typo");
        assert_eq!(err, "undefined filter `tostrin/0` at 1:6");
        let err = compile("$x").err().expect("variable");
        assert_eq!(err, "undefined variable `$x` at 1:1");
        let err = compile("env.HOME").err().expect("env");
        assert!(err.contains("`env/0` (not available in mappings)"), "{err}");
        for name in ["halt", "halt_error", "input", "inputs", "$ENV"] {
            assert!(compile(name).is_err(), "{name}");
        }
        let err = compile("include \"x\"; .").err().expect("include");
        assert!(err.contains("modules are not supported"), "{err}");
    }

    #[test]
    fn runtime_errors_become_messages() {
        let input = Val::from("x".to_owned());
        assert_eq!(
            outputs(r#"error("boom")"#, input.clone()),
            [Err("boom".into())]
        );
        assert_eq!(
            outputs(r#"error({a: 1})"#, input.clone()),
            [Err(r#"{"a":1}"#.into())]
        );
        assert_eq!(
            outputs(".a", input.clone()),
            [Err(r#"cannot index "x" with "a""#.into())]
        );
        assert_eq!(outputs("debug | stderr", input), [Ok(r#""x""#.into())]);
    }

    #[test]
    fn single_wants_exactly_one_value() {
        let run = |text: &str| compile(text).expect(text).single(Val::Null);
        assert_eq!(run("1").map(|v| v.to_string()), Ok("1".into()));
        assert_eq!(run("empty").err().as_deref(), Some("produced no value"));
        assert_eq!(run("1, 2").err().as_deref(), Some(MANY_VALUES));
        assert_eq!(run(r#"1, error("late")"#).err().as_deref(), Some("late"));
    }

    #[test]
    fn position_of_foreign_slices_is_omitted() {
        let elsewhere = String::from("elsewhere");
        assert_eq!(at("abc", &elsewhere), "");
        let code = "ab\ncd";
        assert_eq!(at(code, &code[4..]), " at 2:2");
        assert_eq!(at(code, &code[5..]), " at 2:3");
    }
}
