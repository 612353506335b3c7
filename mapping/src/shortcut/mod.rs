//! A shortcut past jaq for the expressions mappings and filters are mostly made of.
//!
//! Running an expression in jaq costs converting the whole payload to jaq's values (an
//! allocation per string and key, about as much as parsing the payload) plus jaq's own
//! bookkeeping (about 0.5 µs for `.currency`, 10 µs to build a three-line array of objects).
//! A mapping grid mostly holds paths, conversions, concatenations and small constructions, so
//! those are recognised in the syntax tree and evaluated directly on the `serde_json::Value`:
//!
//! - literals, `.`, paths of constant keys, integer indices, `[]` and literal slices
//!   (`.items[0].sku`, `.lines[].qty`, `.date[0:10]`);
//! - `|`, `,`, `//`, `and`, `or`, arithmetic and comparisons, `if ... then ... else ... end`;
//! - `[ ... ]`, objects with constant keys, string interpolation (`"\(.first) \(.last)"`);
//! - `tostring`, `tojson`, `tonumber`, `ascii_downcase`, `ascii_upcase`, `length`, `not`,
//!   `add`, `empty`, `map(f)`, `select(f)`, and with a string literal `ltrimstr`, `rtrimstr`,
//!   `startswith`, `endswith`, `split` and `join`.
//!
//! The shortcut must give exactly what jaq gives, so it decides nothing about values itself
//! where jaq has rules: arithmetic, comparison, `add`, slices, `tostring` of non-strings and
//! `tonumber` convert their (small) operands to jaq values and call jaq's own operations.
//! Whenever jaq would fail, or a case is unusual (several values where one is needed, indexing
//! an object with a number, iterating `null`), the shortcut declines and jaq runs the whole
//! expression, so errors keep jaq's messages. A differential test runs both on many inputs.

mod eval;
pub(crate) mod fuel;
#[cfg(test)]
mod tests;

use jaq_core::{
    load::{
        lex::StrPart,
        parse::{BinaryOp, Term},
    },
    ops::{Cmp, Math},
    path::{Opt, Part},
};
use jaq_json::{Num, Rc};
use serde_json::Value;

use crate::value;

/// An expression the shortcut can evaluate.
#[derive(Debug)]
pub(crate) struct Shortcut(Node);

#[derive(Debug)]
enum Node {
    Literal(Value),
    Id,
    Path(Box<Node>, Box<[Step]>),
    Pipe(Box<Node>, Box<Node>),
    Comma(Box<Node>, Box<Node>),
    Alt(Box<Node>, Box<Node>),
    /// `and` (`stop` = false) or `or` (`stop` = true).
    Logic(Box<Node>, bool, Box<Node>),
    Math(Box<Node>, Math, Box<Node>),
    Cmp(Box<Node>, Cmp, Box<Node>),
    If(Box<[(Node, Node)]>, Box<Node>),
    Array(Option<Box<Node>>),
    Object(Box<[(String, Node)]>),
    /// String interpolation: literal text and interpolated terms.
    Text(Box<[Piece]>),
    Call(Builtin),
}

#[derive(Debug)]
enum Step {
    Key(String),
    Index(usize),
    Iterate,
    Slice(Option<Value>, Option<Value>),
}

#[derive(Debug)]
enum Piece {
    Text(String),
    Term(Node),
}

#[derive(Debug)]
enum Builtin {
    ToString,
    ToJson,
    ToNumber,
    Downcase,
    Upcase,
    Length,
    Not,
    Add,
    Empty,
    Map(Box<Node>),
    Select(Box<Node>),
    LtrimStr(String),
    RtrimStr(String),
    StartsWith(String),
    EndsWith(String),
    Split(String),
    Join(String),
}

impl Shortcut {
    /// The shortcut for `term`, if every part of it is one the shortcut knows.
    pub(crate) fn recognize(term: &Term<&str>) -> Option<Self> {
        node(term).map(Self)
    }

    /// The expression's only value for `input`, or `None` to let jaq run it.
    pub(crate) fn one(&self, input: &Value) -> Option<Value> {
        self.0.one(input)
    }

    /// All of the expression's values for `input`, or `None` to let jaq run it.
    pub(crate) fn all(&self, input: &Value) -> Option<Vec<Value>> {
        let mut out = Vec::new();
        self.0.run(input, &mut out)?;
        Some(out)
    }
}

fn boxed(term: &Term<&str>) -> Option<Box<Node>> {
    node(term).map(Box::new)
}

fn node(term: &Term<&str>) -> Option<Node> {
    if let Some(literal) = literal(term) {
        return Some(Node::Literal(literal));
    }
    Some(match term {
        Term::Id => Node::Id,
        Term::Path(base, path) => {
            let steps = path.0.iter().map(|(part, opt)| step(part, opt));
            Node::Path(boxed(base)?, steps.collect::<Option<_>>()?)
        }
        Term::BinOp(l, op, r) => {
            let (l, r) = (boxed(l)?, boxed(r)?);
            match op {
                BinaryOp::Pipe(None) => Node::Pipe(l, r),
                BinaryOp::Comma => Node::Comma(l, r),
                BinaryOp::Alt => Node::Alt(l, r),
                BinaryOp::And => Node::Logic(l, false, r),
                BinaryOp::Or => Node::Logic(l, true, r),
                BinaryOp::Math(op) => Node::Math(l, *op, r),
                BinaryOp::Cmp(op) => Node::Cmp(l, *op, r),
                _ => return None,
            }
        }
        Term::IfThenElse(branches, otherwise) => {
            let branch = |(c, t): &(Term<&str>, Term<&str>)| Some((node(c)?, node(t)?));
            let branches = branches.iter().map(branch).collect::<Option<_>>()?;
            let otherwise = otherwise.as_deref().map_or(Some(Node::Id), node)?;
            Node::If(branches, Box::new(otherwise))
        }
        Term::Arr(inner) => Node::Array(match inner {
            Some(inner) => Some(boxed(inner)?),
            None => None,
        }),
        Term::Obj(fields) => {
            let field = |(k, v): &(Term<&str>, Option<Term<&str>>)| {
                let Term::Str(None, parts) = k else {
                    return None;
                };
                let key = constant(parts)?;
                let value = match v {
                    Some(v) => node(v)?,
                    // `{a}` is `{a: .a}`.
                    None => Node::Path(Box::new(Node::Id), [Step::Key(key.clone())].into()),
                };
                Some((key, value))
            };
            Node::Object(fields.iter().map(field).collect::<Option<_>>()?)
        }
        Term::Str(None, parts) => {
            let piece = |part: &StrPart<&str, Term<&str>>| match part {
                StrPart::Str(s) => Some(Piece::Text((*s).to_owned())),
                StrPart::Char(c) => Some(Piece::Text(c.to_string())),
                StrPart::Term(t) => node(t).map(Piece::Term),
            };
            Node::Text(parts.iter().map(piece).collect::<Option<_>>()?)
        }
        Term::Call(name, args) => Node::Call(builtin(name, args)?),
        _ => return None,
    })
}

fn step(part: &Part<Term<&str>>, opt: &Opt) -> Option<Step> {
    if matches!(opt, Opt::Optional) {
        return None;
    }
    let bound = |bound: &Option<Term<&str>>| match bound {
        None => Some(None),
        Some(term) => literal(term).filter(Value::is_i64).map(Some),
    };
    match part {
        Part::Index(Term::Str(None, parts)) => constant(parts).map(Step::Key),
        Part::Index(Term::Num(n)) => n.parse().ok().map(Step::Index),
        Part::Range(None, None) => Some(Step::Iterate),
        Part::Range(from, upto) => Some(Step::Slice(bound(from)?, bound(upto)?)),
        Part::Index(_) => None,
    }
}

fn builtin(name: &str, args: &[Term<&str>]) -> Option<Builtin> {
    let string_arg = || match args {
        [Term::Str(None, parts)] => constant(parts),
        _ => None,
    };
    Some(match (name, args) {
        ("tostring", []) => Builtin::ToString,
        ("tojson", []) => Builtin::ToJson,
        ("tonumber", []) => Builtin::ToNumber,
        ("ascii_downcase", []) => Builtin::Downcase,
        ("ascii_upcase", []) => Builtin::Upcase,
        ("length", []) => Builtin::Length,
        ("not", []) => Builtin::Not,
        ("add", []) => Builtin::Add,
        ("empty", []) => Builtin::Empty,
        ("map", [f]) => Builtin::Map(boxed(f)?),
        ("select", [f]) => Builtin::Select(boxed(f)?),
        ("ltrimstr", [_]) => Builtin::LtrimStr(string_arg()?),
        ("rtrimstr", [_]) => Builtin::RtrimStr(string_arg()?),
        ("startswith", [_]) => Builtin::StartsWith(string_arg()?),
        ("endswith", [_]) => Builtin::EndsWith(string_arg()?),
        ("split", [_]) => Builtin::Split(string_arg()?),
        ("join", [_]) => Builtin::Join(string_arg()?),
        _ => return None,
    })
}

fn literal(term: &Term<&str>) -> Option<Value> {
    match term {
        Term::Str(None, parts) => constant(parts).map(Value::String),
        Term::Num(n) => Some(value::num_to_json(&number(n))),
        Term::Neg(inner) => match &**inner {
            Term::Num(n) => Some(value::num_to_json(&-number(n))),
            _ => None,
        },
        Term::Call(name, args) if args.is_empty() => match *name {
            "null" => Some(Value::Null),
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        _ => None,
    }
}

/// A number literal as jaq reads it (`jaq_json::Num::from_str`, which is private).
fn number(text: &str) -> Num {
    Num::from_str_radix(text, 10).unwrap_or_else(|| Num::Dec(Rc::new(text.to_owned())))
}

/// The text of a string literal without interpolation.
fn constant(parts: &[StrPart<&str, Term<&str>>]) -> Option<String> {
    let mut text = String::new();
    for part in parts {
        match part {
            StrPart::Str(s) => text.push_str(s),
            StrPart::Char(c) => text.push(*c),
            StrPart::Term(_) => return None,
        }
    }
    Some(text)
}
