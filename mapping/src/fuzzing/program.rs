//! jq programs built from fuzz bytes, grammar-aware: a small syntax tree drawn with
//! [`Unstructured`] and printed as jq text.
//!
//! Every construct a user may write can appear: paths, pipes, commas, literals (huge numbers
//! such as `1e18` included), object and array construction, string interpolation, arithmetic,
//! comparisons, updates, `if`, `reduce`/`foreach`, `def` (non-recursive), `try`/`catch`, `?`,
//! `//`, `as` bindings, `label`/`break` and the builtins listed in [`BUILTINS`]. Names resolve:
//! variables, labels and defined filters are only used where they are in scope, so most
//! programs compile. Two kinds of node must be refused at compile time, and the tree records
//! them ([`Jq::must_be_refused`]): a withdrawn name (`env`, `$ENV`, `input`, ...) and a
//! definition that calls itself. Every compound term is printed in parentheses, so precedence
//! never changes what a tree means.

use std::fmt::{self, Display, Formatter, Write};

use arbitrary::{Result, Unstructured};

/// Deepest tree drawn; deeper terms become leaves.
const MAX_DEPTH: usize = 6;
/// Most compound nodes in one program.
const MAX_NODES: usize = 40;

/// Number literals, including ones that make loops and repetitions enormous.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "10",
    "100",
    "1000",
    "65536",
    "3000000",
    "1e6",
    "1e9",
    "1e12",
    "1e18",
    "1e19",
    "1e308",
    "1e1000",
    "0.5",
    "1.5",
    "0.1",
    "1e-7",
    "9007199254740993",
    "18446744073709551616",
    "123456789012345678901234567890",
];

/// Text for string literals (printed with jq escapes): regexes, date formats, JSON, unicode.
const TEXTS: &[&str] = &[
    "",
    "a",
    "x",
    "abc",
    "a,b",
    " ",
    "é",
    "😀",
    "\n",
    "\"",
    "\u{0}",
    "[a-z]+",
    "(a|b)*c",
    "^.*$",
    "\\d+",
    "(?<n>a)",
    "(",
    "a{100000}",
    "(a*)*b",
    "g",
    "gx",
    "%Y-%m-%dT%H:%M:%SZ",
    "%s %j %e",
    "%",
    "1",
    "12",
    "-1.5",
    "1e1000",
    "true",
    "null",
    "{\"a\":[1,2]}",
    "[[[[[[[[1]]]]]]]]",
    "2015-03-05T23:51:47Z",
    "YQ==",
];

/// Object keys for paths and construction.
const KEYS: &[&str] = &["a", "b", "n", "s", "items", "name", "id", "x y", ""];

/// Builtins and their arities. Some do not exist in jaq (a compile error, which is fine).
const BUILTINS: &[(&str, usize)] = &[
    ("length", 0),
    ("utf8bytelength", 0),
    ("not", 0),
    ("keys", 0),
    ("keys_unsorted", 0),
    ("to_entries", 0),
    ("from_entries", 0),
    ("add", 0),
    ("any", 0),
    ("all", 0),
    ("flatten", 0),
    ("floor", 0),
    ("ceil", 0),
    ("round", 0),
    ("sqrt", 0),
    ("abs", 0),
    ("tostring", 0),
    ("tojson", 0),
    ("fromjson", 0),
    ("tonumber", 0),
    ("toboolean", 0),
    ("type", 0),
    ("ascii_downcase", 0),
    ("ascii_upcase", 0),
    ("explode", 0),
    ("implode", 0),
    ("reverse", 0),
    ("sort", 0),
    ("unique", 0),
    ("min", 0),
    ("max", 0),
    ("first", 0),
    ("last", 0),
    ("empty", 0),
    ("error", 0),
    ("recurse", 0),
    ("paths", 0),
    ("infinite", 0),
    ("nan", 0),
    ("isinfinite", 0),
    ("isnan", 0),
    ("arrays", 0),
    ("objects", 0),
    ("strings", 0),
    ("numbers", 0),
    ("values", 0),
    ("scalars", 0),
    ("todate", 0),
    ("fromdate", 0),
    ("mktime", 0),
    ("gmtime", 0),
    ("now", 0),
    ("trim", 0),
    ("ltrim", 0),
    ("combinations", 0),
    ("transpose", 0),
    ("significand", 0),
    ("frexp", 0),
    ("exp10", 0),
    ("log", 0),
    ("tobytes", 0),
    ("debug", 0),
    ("stderr", 0),
    ("@base64", 0),
    ("@base64d", 0),
    ("@uri", 0),
    ("@html", 0),
    ("@sh", 0),
    ("@json", 0),
    ("@text", 0),
    ("map", 1),
    ("map_values", 1),
    ("select", 1),
    ("recurse", 1),
    ("range", 1),
    ("repeat", 1),
    ("first", 1),
    ("last", 1),
    ("nth", 1),
    ("isempty", 1),
    ("path", 1),
    ("paths", 1),
    ("del", 1),
    ("with_entries", 1),
    ("group_by", 1),
    ("sort_by", 1),
    ("unique_by", 1),
    ("min_by", 1),
    ("max_by", 1),
    ("any", 1),
    ("all", 1),
    ("has", 1),
    ("in", 1),
    ("inside", 1),
    ("contains", 1),
    ("indices", 1),
    ("index", 1),
    ("startswith", 1),
    ("ltrimstr", 1),
    ("split", 1),
    ("join", 1),
    ("test", 1),
    ("match", 1),
    ("capture", 1),
    ("scan", 1),
    ("splits", 1),
    ("getpath", 1),
    ("delpaths", 1),
    ("error", 1),
    ("walk", 1),
    ("flatten", 1),
    ("strftime", 1),
    ("strptime", 1),
    ("pick", 1),
    ("add", 1),
    ("combinations", 1),
    ("limit", 2),
    ("skip", 2),
    ("until", 2),
    ("while", 2),
    ("range", 2),
    ("recurse", 2),
    ("sub", 2),
    ("gsub", 2),
    ("test", 2),
    ("split", 2),
    ("any", 2),
    ("all", 2),
    ("nth", 2),
    ("setpath", 2),
    ("pow", 2),
    ("ldexp", 2),
    ("range", 3),
    ("sub", 3),
    ("gsub", 3),
];

/// Names withdrawn from mappings: a program using one must not compile.
const WITHDRAWN: &[&str] = &[
    "env",
    "env.HOME",
    "$ENV",
    "$ENV.PATH",
    "input",
    "[inputs]",
    "halt",
    "halt_error",
    "halt_error(1)",
];

/// Binary operators, updates included.
const OPERATORS: &[&str] = &[
    "|", ",", "//", "and", "or", "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "|=",
    "=", "+=", "*=", "//=",
];

/// A generated jq program's syntax tree.
#[derive(Clone, Debug)]
pub enum Jq {
    Id,
    /// `..`
    Recurse,
    Num(&'static str),
    Str(Vec<StrPart>),
    /// `@base64 "…\(…)…"`
    Format(&'static str, Vec<StrPart>),
    Var(String),
    /// `base.key`, `base.key?`
    Field(Box<Jq>, &'static str, bool),
    /// `base[index]`, `base[index]?`
    Index(Box<Jq>, Box<Jq>, bool),
    /// `base[]`, `base[]?`
    Iterate(Box<Jq>, bool),
    Slice(Box<Jq>, Option<Box<Jq>>, Option<Box<Jq>>),
    Array(Option<Box<Jq>>),
    Object(Vec<(ObjKey, Option<Jq>)>),
    Neg(Box<Jq>),
    Binary(Box<Jq>, &'static str, Box<Jq>),
    If(Vec<(Jq, Jq)>, Option<Box<Jq>>),
    Reduce(Box<Jq>, Pattern, Box<Jq>, Box<Jq>),
    Foreach(Box<Jq>, Pattern, Box<Jq>, Box<Jq>, Option<Box<Jq>>),
    Def(Box<Def>, Box<Jq>),
    Try(Box<Jq>, Option<Box<Jq>>),
    /// `(term)?`
    Optional(Box<Jq>),
    /// `term as pattern | body`
    As(Box<Jq>, Pattern, Box<Jq>),
    Label(String, Box<Jq>),
    Break(String),
    Call(String, Vec<Jq>),
    /// A withdrawn name such as `env`.
    Withdrawn(&'static str),
}

/// A piece of a string literal.
#[derive(Clone, Debug)]
pub enum StrPart {
    Text(&'static str),
    Interpolate(Jq),
}

/// An object constructor's key.
#[derive(Clone, Debug)]
pub enum ObjKey {
    /// `a: v`, or `a` alone for `a: .a`.
    Name(&'static str),
    /// `"\(…)": v`
    Str(Vec<StrPart>),
    /// `(term): v`
    Term(Jq),
    /// `$x` alone, for `x: $x`.
    Var(String),
}

/// A destructuring pattern.
#[derive(Clone, Debug)]
pub enum Pattern {
    Var(String),
    Array(Vec<String>),
    Object(Vec<(&'static str, String)>),
}

/// `def name(params): body;`
#[derive(Clone, Debug)]
pub struct Def {
    pub name: String,
    pub params: Vec<String>,
    pub body: Jq,
    /// The body also calls the definition itself: the compiler must refuse it.
    pub recursive: bool,
}

impl Jq {
    /// Draw a program from `u`.
    pub fn generate(u: &mut Unstructured<'_>) -> Result<Self> {
        let nodes = u.int_in_range(1..=MAX_NODES)?;
        Generator {
            u,
            nodes,
            names: 0,
            vars: Vec::new(),
            filters: Vec::new(),
            labels: Vec::new(),
        }
        .term(0)
    }

    /// Whether the program uses a withdrawn name or a recursive definition anywhere.
    pub fn must_be_refused(&self) -> bool {
        let mut found = false;
        self.visit(&mut |node| {
            found |= match node {
                Self::Withdrawn(_) => true,
                Self::Def(def, _) => def.recursive,
                _ => false,
            }
        });
        found
    }

    /// Call `f` on this node and every node below it.
    fn visit(&self, f: &mut dyn FnMut(&Self)) {
        f(self);
        let parts = |parts: &[StrPart], f: &mut dyn FnMut(&Self)| {
            for part in parts {
                if let StrPart::Interpolate(term) = part {
                    term.visit(f);
                }
            }
        };
        match self {
            Self::Id
            | Self::Recurse
            | Self::Num(_)
            | Self::Var(_)
            | Self::Break(_)
            | Self::Withdrawn(_) => {}
            Self::Str(p) | Self::Format(_, p) => parts(p, f),
            Self::Field(t, _, _)
            | Self::Iterate(t, _)
            | Self::Neg(t)
            | Self::Optional(t)
            | Self::Label(_, t) => t.visit(f),
            Self::Array(t) => t.iter().for_each(|t| t.visit(f)),
            Self::Index(a, b, _) | Self::Binary(a, _, b) | Self::As(a, _, b) => {
                a.visit(f);
                b.visit(f);
            }
            Self::Slice(a, b, c) => {
                a.visit(f);
                b.iter().chain(c).for_each(|t| t.visit(f));
            }
            Self::Object(fields) => {
                for (key, value) in fields {
                    match key {
                        ObjKey::Str(p) => parts(p, f),
                        ObjKey::Term(t) => t.visit(f),
                        ObjKey::Name(_) | ObjKey::Var(_) => {}
                    }
                    value.iter().for_each(|v| v.visit(f));
                }
            }
            Self::If(branches, otherwise) => {
                for (c, t) in branches {
                    c.visit(f);
                    t.visit(f);
                }
                otherwise.iter().for_each(|t| t.visit(f));
            }
            Self::Reduce(a, _, b, c) => [a, b, c].iter().for_each(|t| t.visit(f)),
            Self::Foreach(a, _, b, c, d) => {
                [a, b, c].iter().for_each(|t| t.visit(f));
                d.iter().for_each(|t| t.visit(f));
            }
            Self::Def(def, rest) => {
                def.body.visit(f);
                rest.visit(f);
            }
            Self::Try(body, catch) => {
                body.visit(f);
                catch.iter().for_each(|t| t.visit(f));
            }
            Self::Call(_, args) => args.iter().for_each(|a| a.visit(f)),
        }
    }
}

/// Draws a tree, keeping track of what is in scope.
struct Generator<'u, 'a> {
    u: &'u mut Unstructured<'a>,
    /// Compound nodes left to draw.
    nodes: usize,
    /// Counter for fresh names.
    names: usize,
    vars: Vec<String>,
    /// User-defined filters and filter parameters in scope, with their arities.
    filters: Vec<(String, usize)>,
    labels: Vec<String>,
}

impl Generator<'_, '_> {
    fn fresh(&mut self, prefix: &str) -> String {
        self.names += 1;
        format!("{prefix}{}", self.names)
    }

    fn boxed(&mut self, depth: usize) -> Result<Box<Jq>> {
        self.term(depth).map(Box::new)
    }

    fn maybe(&mut self, depth: usize) -> Result<Option<Box<Jq>>> {
        Ok(if self.u.arbitrary()? {
            Some(self.boxed(depth)?)
        } else {
            None
        })
    }

    fn term(&mut self, depth: usize) -> Result<Jq> {
        if depth >= MAX_DEPTH || self.nodes == 0 || self.u.is_empty() {
            return self.leaf();
        }
        self.nodes -= 1;
        let d = depth + 1;
        // Leaves first: an exhausted input draws 0.
        Ok(match self.u.int_in_range(0u8..=32)? {
            0..=3 => self.leaf()?,
            4 => Jq::Field(self.boxed(d)?, self.u.choose(KEYS)?, self.u.ratio(1, 4)?),
            5 => Jq::Index(self.boxed(d)?, self.boxed(d)?, self.u.ratio(1, 4)?),
            6 => Jq::Iterate(self.boxed(d)?, self.u.ratio(1, 4)?),
            7 => {
                let base = self.boxed(d)?;
                // jaq requires a bound: `.[:]` does not parse.
                let from = self.maybe(d)?;
                let upto = match from {
                    Some(_) => self.maybe(d)?,
                    None => Some(self.boxed(d)?),
                };
                Jq::Slice(base, from, upto)
            }
            8 => Jq::Array(self.maybe(d)?),
            9 => self.object(d)?,
            10 => Jq::Str(self.string(d)?),
            11 => Jq::Neg(self.boxed(d)?),
            12..=15 => Jq::Binary(self.boxed(d)?, self.u.choose(OPERATORS)?, self.boxed(d)?),
            16 => {
                let mut branches = vec![(self.term(d)?, self.term(d)?)];
                if self.u.ratio(1, 4)? {
                    branches.push((self.term(d)?, self.term(d)?));
                }
                Jq::If(branches, self.maybe(d)?)
            }
            17 => {
                let source = self.boxed(d)?;
                let init = self.boxed(d)?;
                let (pattern, bound) = self.pattern()?;
                let update = self.with_vars(bound, |g| g.boxed(d))?;
                Jq::Reduce(source, pattern, init, update)
            }
            18 => {
                let source = self.boxed(d)?;
                let init = self.boxed(d)?;
                let (pattern, bound) = self.pattern()?;
                let (update, extract) =
                    self.with_vars(bound, |g| Ok((g.boxed(d)?, g.maybe(d)?)))?;
                Jq::Foreach(source, pattern, init, update, extract)
            }
            19 => self.def(d)?,
            20 => Jq::Try(self.boxed(d)?, self.maybe(d)?),
            21 => Jq::Optional(self.boxed(d)?),
            22 => {
                let source = self.boxed(d)?;
                let (pattern, bound) = self.pattern()?;
                Jq::As(source, pattern, self.with_vars(bound, |g| g.boxed(d))?)
            }
            23 => {
                let label = self.fresh("l");
                self.labels.push(label.clone());
                let body = self.boxed(d);
                self.labels.pop();
                Jq::Label(label, body?)
            }
            24 => {
                let format = *self
                    .u
                    .choose(&["@base64", "@uri", "@html", "@sh", "@json"])?;
                Jq::Format(format, self.string(d)?)
            }
            25..=28 => {
                let (name, arity) = *self.u.choose(BUILTINS)?;
                let args = (0..arity).map(|_| self.term(d)).collect::<Result<_>>()?;
                Jq::Call(name.to_owned(), args)
            }
            29 => self.user_call(d)?,
            _ => self.heavy(d)?,
        })
    }

    /// A term that loops, repeats or nests with a large count: what the limits are for.
    fn heavy(&mut self, depth: usize) -> Result<Jq> {
        const COUNTS: &[&str] = &["1e3", "65536", "3000000", "1e6", "1e9", "1e12", "1e18"];
        let count = Jq::Num(self.u.choose(COUNTS)?);
        let call = |name: &str, args: Vec<Jq>| Jq::Call(name.to_owned(), args);
        let heavy = match self.u.int_in_range(0u8..=8)? {
            0 => call("range", vec![count]),
            1 => call("repeat", vec![self.term(depth)?]),
            2 => call(
                "limit",
                vec![count, call("repeat", vec![self.term(depth)?])],
            ),
            3 => Jq::Binary(self.boxed(depth)?, "*", Box::new(count)),
            4 => {
                let var = self.fresh("v");
                let nest = Jq::Array(Some(Box::new(Jq::Id)));
                let init = self.boxed(depth)?;
                Jq::Reduce(
                    Box::new(call("range", vec![count])),
                    Pattern::Var(var),
                    init,
                    Box::new(nest),
                )
            }
            5 => call("until", vec![self.term(depth)?, self.term(depth)?]),
            6 => call("while", vec![self.term(depth)?, self.term(depth)?]),
            7 => call("recurse", vec![self.term(depth)?]),
            _ => Jq::Binary(
                Box::new(Jq::Str(vec![StrPart::Text(self.u.choose(TEXTS)?)])),
                "*",
                Box::new(count),
            ),
        };
        Ok(match self.u.int_in_range(0u8..=3)? {
            0 => Jq::Array(Some(Box::new(heavy))),
            1 => call("last", vec![heavy]),
            2 => Jq::Binary(Box::new(heavy), "|", Box::new(self.term(depth)?)),
            _ => heavy,
        })
    }

    fn leaf(&mut self) -> Result<Jq> {
        Ok(match self.u.int_in_range(0u8..=12)? {
            0..=2 => Jq::Id,
            3 => Jq::Field(Box::new(Jq::Id), self.u.choose(KEYS)?, false),
            4 | 5 => Jq::Num(self.u.choose(NUMBERS)?),
            6 | 7 => Jq::Str(vec![StrPart::Text(self.u.choose(TEXTS)?)]),
            8 => Jq::Call(
                (*self.u.choose(&["null", "true", "false"])?).to_owned(),
                Vec::new(),
            ),
            9 => match self.vars.len() {
                0 => Jq::Recurse,
                n => Jq::Var(self.vars[self.u.choose_index(n)?].clone()),
            },
            10 => match self.labels.len() {
                0 => Jq::Iterate(Box::new(Jq::Id), true),
                n => Jq::Break(self.labels[self.u.choose_index(n)?].clone()),
            },
            11 => {
                let zero_arity: Vec<String> = self
                    .filters
                    .iter()
                    .filter(|(_, arity)| *arity == 0)
                    .map(|(name, _)| name.clone())
                    .collect();
                match zero_arity.len() {
                    0 => Jq::Array(None),
                    n => Jq::Call(zero_arity[self.u.choose_index(n)?].clone(), Vec::new()),
                }
            }
            // Rare: most programs should compile.
            _ if self.u.ratio(1, 8)? => Jq::Withdrawn(self.u.choose(WITHDRAWN)?),
            _ => Jq::Object(Vec::new()),
        })
    }

    fn string(&mut self, depth: usize) -> Result<Vec<StrPart>> {
        let mut parts = Vec::new();
        for _ in 0..self.u.int_in_range(1u8..=3)? {
            parts.push(if self.u.arbitrary()? {
                StrPart::Text(self.u.choose(TEXTS)?)
            } else {
                StrPart::Interpolate(self.term(depth)?)
            });
        }
        Ok(parts)
    }

    fn object(&mut self, depth: usize) -> Result<Jq> {
        let mut fields = Vec::new();
        for _ in 0..self.u.int_in_range(0u8..=3)? {
            fields.push(match self.u.int_in_range(0u8..=4)? {
                0 => (ObjKey::Name(self.u.choose(KEYS)?), None),
                1 => (ObjKey::Str(self.string(depth)?), Some(self.term(depth)?)),
                2 => (ObjKey::Term(self.term(depth)?), Some(self.term(depth)?)),
                3 if !self.vars.is_empty() => {
                    let var = self.vars[self.u.choose_index(self.vars.len())?].clone();
                    (ObjKey::Var(var), None)
                }
                _ => (ObjKey::Name(self.u.choose(KEYS)?), Some(self.term(depth)?)),
            });
        }
        Ok(Jq::Object(fields))
    }

    /// A pattern of fresh variables, and the variables it binds.
    fn pattern(&mut self) -> Result<(Pattern, Vec<String>)> {
        Ok(match self.u.int_in_range(0u8..=5)? {
            0..=3 => {
                let var = self.fresh("v");
                (Pattern::Var(var.clone()), vec![var])
            }
            4 => {
                let vars: Vec<String> = (0..self.u.int_in_range(1u8..=3)?)
                    .map(|_| self.fresh("v"))
                    .collect();
                (Pattern::Array(vars.clone()), vars)
            }
            _ => {
                let mut entries = Vec::new();
                for _ in 0..self.u.int_in_range(1u8..=2)? {
                    entries.push((*self.u.choose(KEYS)?, self.fresh("v")));
                }
                let vars = entries.iter().map(|(_, v)| v.clone()).collect();
                (Pattern::Object(entries), vars)
            }
        })
    }

    fn with_vars<T>(&mut self, vars: Vec<String>, f: impl FnOnce(&mut Self) -> T) -> T {
        let outer = self.vars.len();
        self.vars.extend(vars);
        let result = f(self);
        self.vars.truncate(outer);
        result
    }

    /// `def fN(params): body; rest`; the body sees earlier definitions and its parameters,
    /// never itself, unless this definition is drawn to be (refused) recursion.
    fn def(&mut self, depth: usize) -> Result<Jq> {
        let name = self.fresh("f");
        let params: Vec<String> = (0..self.u.int_in_range(0u8..=2)?)
            .map(|_| self.fresh("p"))
            .collect();
        let outer = self.filters.len();
        self.filters.extend(params.iter().map(|p| (p.clone(), 0)));
        let body = self.term(depth);
        self.filters.truncate(outer);
        let recursive = self.u.ratio(1, 32)?;
        let def = Def {
            name: name.clone(),
            params: params.clone(),
            body: body?,
            recursive,
        };
        self.filters.push((name, params.len()));
        let rest = self.boxed(depth);
        self.filters.truncate(outer);
        Ok(Jq::Def(Box::new(def), rest?))
    }

    /// A call of a user-defined filter in scope, or of a builtin when there is none.
    fn user_call(&mut self, depth: usize) -> Result<Jq> {
        if self.filters.is_empty() {
            return Ok(Jq::Call("length".to_owned(), Vec::new()));
        }
        let (name, arity) = self.filters[self.u.choose_index(self.filters.len())?].clone();
        let args = (0..arity)
            .map(|_| self.term(depth))
            .collect::<Result<_>>()?;
        Ok(Jq::Call(name, args))
    }
}

impl Display for Jq {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id => f.write_str("."),
            Self::Recurse => f.write_str(".."),
            Self::Num(n) => f.write_str(n),
            Self::Str(parts) => write_string(f, parts),
            Self::Format(format, parts) => {
                write!(f, "{format} ")?;
                write_string(f, parts)
            }
            Self::Var(v) => write!(f, "${v}"),
            Self::Field(base, key, opt) => {
                // `.a`, not `..a`: the identity's dot is the field's.
                if !matches!(**base, Self::Id) {
                    write!(f, "({base})")?;
                }
                f.write_char('.')?;
                write_key(f, key)?;
                write_opt(f, *opt)
            }
            Self::Index(base, index, opt) => {
                write_base(f, base)?;
                write!(f, "[{index}]")?;
                write_opt(f, *opt)
            }
            Self::Iterate(base, opt) => {
                write_base(f, base)?;
                f.write_str("[]")?;
                write_opt(f, *opt)
            }
            Self::Slice(base, from, upto) => {
                write_base(f, base)?;
                f.write_char('[')?;
                if let Some(from) = from {
                    write!(f, "{from}")?;
                }
                f.write_char(':')?;
                if let Some(upto) = upto {
                    write!(f, "{upto}")?;
                }
                f.write_char(']')
            }
            Self::Array(None) => f.write_str("[]"),
            Self::Array(Some(inner)) => write!(f, "[{inner}]"),
            Self::Object(fields) => {
                f.write_char('{')?;
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match key {
                        ObjKey::Name(name) => write_key(f, name)?,
                        ObjKey::Str(parts) => write_string(f, parts)?,
                        ObjKey::Term(term) => write!(f, "({term})")?,
                        ObjKey::Var(var) => write!(f, "${var}")?,
                    }
                    if let Some(value) = value {
                        write!(f, ": ({value})")?;
                    }
                }
                f.write_char('}')
            }
            Self::Neg(inner) => write!(f, "-({inner})"),
            Self::Binary(l, op, r) => write!(f, "({l}) {op} ({r})"),
            Self::If(branches, otherwise) => {
                for (i, (condition, then)) in branches.iter().enumerate() {
                    let keyword = if i == 0 { "if" } else { " elif" };
                    write!(f, "{keyword} ({condition}) then ({then})")?;
                }
                if let Some(otherwise) = otherwise {
                    write!(f, " else ({otherwise})")?;
                }
                f.write_str(" end")
            }
            Self::Reduce(source, pattern, init, update) => {
                write!(f, "reduce ({source}) as {pattern} ({init}; {update})")
            }
            Self::Foreach(source, pattern, init, update, extract) => {
                write!(f, "foreach ({source}) as {pattern} ({init}; {update}")?;
                if let Some(extract) = extract {
                    write!(f, "; {extract}")?;
                }
                f.write_char(')')
            }
            Self::Def(def, rest) => {
                write!(f, "(def {}", def.name)?;
                if !def.params.is_empty() {
                    write!(f, "({})", def.params.join("; "))?;
                }
                write!(f, ": ({})", def.body)?;
                if def.recursive {
                    let args = vec!["."; def.params.len()];
                    write!(f, " | {}", call_text(&def.name, &args))?;
                }
                write!(f, "; {rest})")
            }
            Self::Try(body, None) => write!(f, "try ({body})"),
            Self::Try(body, Some(catch)) => write!(f, "try ({body}) catch ({catch})"),
            Self::Optional(inner) => write!(f, "({inner})?"),
            Self::As(source, pattern, body) => write!(f, "(({source}) as {pattern} | {body})"),
            Self::Label(label, body) => write!(f, "(label ${label} | {body})"),
            Self::Break(label) => write!(f, "break ${label}"),
            Self::Call(name, args) => {
                let args: Vec<String> = args.iter().map(ToString::to_string).collect();
                f.write_str(&call_text(name, &args))
            }
            Self::Withdrawn(text) => f.write_str(text),
        }
    }
}

impl Display for Pattern {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::Var(v) => write!(f, "${v}"),
            Self::Array(vars) => {
                let vars: Vec<String> = vars.iter().map(|v| format!("${v}")).collect();
                write!(f, "[{}]", vars.join(", "))
            }
            Self::Object(entries) => {
                f.write_char('{')?;
                for (i, (key, var)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_key(f, key)?;
                    write!(f, ": ${var}")?;
                }
                f.write_char('}')
            }
        }
    }
}

fn call_text(name: &str, args: &[impl AsRef<str>]) -> String {
    if args.is_empty() {
        return name.to_owned();
    }
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    format!("{name}({})", args.join("; "))
}

/// `.` stays `.` before a suffix (`.a`, `.[0]`); anything else is parenthesised.
fn write_base(f: &mut Formatter<'_>, base: &Jq) -> fmt::Result {
    match base {
        Jq::Id => f.write_char('.'),
        other => write!(f, "({other})"),
    }
}

fn write_opt(f: &mut Formatter<'_>, opt: bool) -> fmt::Result {
    if opt { f.write_char('?') } else { Ok(()) }
}

/// An identifier as it is, anything else as a string literal.
fn write_key(f: &mut Formatter<'_>, key: &str) -> fmt::Result {
    let identifier = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if identifier {
        f.write_str(key)
    } else {
        f.write_char('"')?;
        write_text(f, key)?;
        f.write_char('"')
    }
}

fn write_string(f: &mut Formatter<'_>, parts: &[StrPart]) -> fmt::Result {
    f.write_char('"')?;
    for part in parts {
        match part {
            StrPart::Text(text) => write_text(f, text)?,
            StrPart::Interpolate(term) => write!(f, "\\({term})")?,
        }
    }
    f.write_char('"')
}

/// Text inside a string literal, escaped.
fn write_text(f: &mut Formatter<'_>, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    Ok(())
}
