//! Static limits that keep a compiled expression from overflowing the stack when it runs.
//!
//! jaq evaluates on the native stack: every level of a jq term's syntax tree is a level of Rust
//! recursion at run time, and a call to a user-defined filter that is not in tail position
//! recurses without bound (`def f: f + 1; f` aborts the whole process with a stack overflow,
//! which no `Result` or `catch_unwind` can stop). Before an expression is compiled we therefore
//! check its parsed syntax tree:
//!
//! - its nesting (pipes, commas, object fields, path parts, calls, ...) is at most
//!   [`MAX_NESTING`], measured so that running it stays well inside a 2 MiB thread stack even in
//!   a debug build;
//! - no user-defined filter calls itself, directly or through other definitions or closures.
//!   The built-in `recurse`, `until`, `while`, `repeat`, `limit` and `reduce` iterate without
//!   growing the stack and cover what mappings need.
//!
//! Run this on the compiler's large stack: the walk recurses over the tree it checks.

use jaq_core::{
    load::{
        self,
        lex::StrPart,
        parse::{BinaryOp, Pattern, Term},
    },
    path::Part,
};

/// Longest expression accepted, in bytes; bounds the work and stack of the parser.
pub(crate) const MAX_LEN: usize = 32 * 1024;
/// Deepest syntax tree accepted (see the module docs).
pub(crate) const MAX_NESTING: usize = 200;

/// Check what must hold before jaq's parser may even see `code`.
pub(crate) fn check_len(code: &str) -> Result<(), String> {
    if code.len() > MAX_LEN {
        Err(format!(
            "expression is {} bytes long; the limit is {MAX_LEN}",
            code.len()
        ))
    } else {
        Ok(())
    }
}

/// Check a program that jaq has already loaded without errors; return its syntax tree.
pub(crate) fn check(code: &str) -> Result<Term<&str>, String> {
    let Some(term) = load::parse(code, |p| p.term()) else {
        return Err("module directives (`module`, `import`, `include`) are not supported".into());
    };
    let nesting = nesting(&term);
    if nesting > MAX_NESTING {
        return Err(format!(
            "expression is nested {nesting} levels deep; the limit is {MAX_NESTING} \
             (split it into several rules, or build long arrays and objects with map or reduce)"
        ));
    }
    let mut scan = Scan::default();
    scan.term(&term);
    match scan.cycle() {
        Some(cycle) => Err(format!(
            "recursive definition ({cycle}) is not allowed: jaq would run it on the native stack; \
             use recurse, until, while, repeat or reduce instead"
        )),
        None => Ok(term),
    }
}

/// Conservative estimate of how deeply running `term` recurses, in syntax-tree levels.
fn nesting(term: &Term<&str>) -> usize {
    let max = |terms: &mut dyn Iterator<Item = &Term<&str>>| terms.map(nesting).max().unwrap_or(0);
    match term {
        Term::Id | Term::Recurse | Term::Num(_) | Term::Var(_) | Term::Break(_) => 1,
        Term::Str(_, parts) => parts.len() + max(&mut str_terms(parts)),
        Term::Arr(inner) => 1 + inner.as_deref().map_or(0, nesting),
        // jaq builds objects as nested products, one level per field.
        Term::Obj(fields) => {
            let field = |(k, v): &(Term<&str>, Option<Term<&str>>)| {
                nesting(k).max(v.as_ref().map_or(0, nesting))
            };
            fields.len() + fields.iter().map(field).max().unwrap_or(0)
        }
        Term::Neg(inner) | Term::Label(_, inner) => 1 + nesting(inner),
        Term::BinOp(l, op, r) => {
            let pattern = match op {
                BinaryOp::Pipe(Some(p)) => pattern_nesting(p),
                _ => 0,
            };
            1 + nesting(l).max(nesting(r)).max(pattern)
        }
        Term::Fold(_, xs, p, args) => {
            1 + nesting(xs)
                .max(pattern_nesting(p))
                .max(max(&mut args.iter()))
        }
        Term::TryCatch(body, catch) => 1 + nesting(body).max(catch.as_deref().map_or(0, nesting)),
        Term::IfThenElse(branches, otherwise) => {
            let branch = |(c, t): &(Term<&str>, Term<&str>)| nesting(c).max(nesting(t));
            let deepest = branches.iter().map(branch).max().unwrap_or(0);
            branches.len() + deepest.max(otherwise.as_deref().map_or(0, nesting))
        }
        // A call runs the body where it is called; without recursion the chain is bounded by
        // the sum of all bodies.
        Term::Def(defs, rest) => {
            defs.iter().map(|d| nesting(&d.body)).sum::<usize>() + nesting(rest)
        }
        Term::Call(_, args) => 1 + max(&mut args.iter()),
        Term::Path(base, path) => {
            let parts = path.0.iter().flat_map(|(part, _)| part_terms(part));
            nesting(base) + path.0.len() + max(&mut parts.into_iter())
        }
    }
}

fn pattern_nesting(pattern: &Pattern<&str>) -> usize {
    match pattern {
        Pattern::Var(_) => 1,
        Pattern::Arr(items) => 1 + items.iter().map(pattern_nesting).max().unwrap_or(0),
        Pattern::Obj(entries) => {
            let entry = |(k, p): &(Term<&str>, Pattern<&str>)| nesting(k).max(pattern_nesting(p));
            entries.len() + entries.iter().map(entry).max().unwrap_or(0)
        }
    }
}

fn str_terms<'a, 's>(
    parts: &'a [StrPart<&'s str, Term<&'s str>>],
) -> impl Iterator<Item = &'a Term<&'s str>> {
    parts.iter().filter_map(|part| match part {
        StrPart::Term(t) => Some(t),
        StrPart::Str(_) | StrPart::Char(_) => None,
    })
}

fn part_terms<'a, 's>(part: &'a Part<Term<&'s str>>) -> Vec<&'a Term<&'s str>> {
    match part {
        Part::Index(i) => vec![i],
        Part::Range(from, upto) => from.iter().chain(upto.iter()).collect(),
    }
}

/// A name in scope: a definition (with its id) or a filter parameter, which shadows.
enum Binding<'s> {
    Def {
        name: &'s str,
        arity: usize,
        id: usize,
    },
    Param(&'s str),
}

/// Call graph of the user's definitions, built by resolving names lexically.
#[derive(Default)]
struct Scan<'s> {
    scope: Vec<Binding<'s>>,
    /// `defs[id]` = name and the ids of the definitions its body calls.
    defs: Vec<(&'s str, Vec<usize>)>,
    /// The definition whose body is being scanned (`None` in the main term).
    current: Option<usize>,
}

impl<'s> Scan<'s> {
    fn term(&mut self, term: &Term<&'s str>) {
        match term {
            Term::Def(defs, rest) => {
                let outer_scope = self.scope.len();
                for def in defs {
                    let id = self.defs.len();
                    self.defs.push((def.name, Vec::new()));
                    let arity = def.args.len();
                    self.scope.push(Binding::Def {
                        name: def.name,
                        arity,
                        id,
                    });
                    let def_scope = self.scope.len();
                    // `$x` parameters are not treated as filters, so a call `x` stays resolved
                    // to an outer definition: a false alarm rather than a missed cycle.
                    let params = def.args.iter().filter(|a| !a.starts_with('$'));
                    self.scope.extend(params.map(|p| Binding::Param(p)));
                    let outer = self.current.replace(id);
                    self.term(&def.body);
                    self.current = outer;
                    self.scope.truncate(def_scope);
                }
                self.term(rest);
                self.scope.truncate(outer_scope);
            }
            Term::Call(name, args) => {
                if let (Some(caller), Some(callee)) = (self.current, self.resolve(name, args.len()))
                {
                    self.defs[caller].1.push(callee);
                }
                args.iter().for_each(|a| self.term(a));
            }
            Term::Id | Term::Recurse | Term::Num(_) | Term::Var(_) | Term::Break(_) => {}
            Term::Str(_, parts) => str_terms(parts).for_each(|t| self.term(t)),
            Term::Arr(inner) => inner.iter().for_each(|t| self.term(t)),
            Term::Obj(fields) => {
                for (k, v) in fields {
                    self.term(k);
                    v.iter().for_each(|v| self.term(v));
                }
            }
            Term::Neg(inner) | Term::Label(_, inner) => self.term(inner),
            Term::BinOp(l, op, r) => {
                self.term(l);
                if let BinaryOp::Pipe(Some(p)) = op {
                    self.pattern(p);
                }
                self.term(r);
            }
            Term::Fold(_, xs, p, args) => {
                self.term(xs);
                self.pattern(p);
                args.iter().for_each(|a| self.term(a));
            }
            Term::TryCatch(body, catch) => {
                self.term(body);
                catch.iter().for_each(|c| self.term(c));
            }
            Term::IfThenElse(branches, otherwise) => {
                for (c, t) in branches {
                    self.term(c);
                    self.term(t);
                }
                otherwise.iter().for_each(|o| self.term(o));
            }
            Term::Path(base, path) => {
                self.term(base);
                for (part, _) in &path.0 {
                    part_terms(part).into_iter().for_each(|t| self.term(t));
                }
            }
        }
    }

    fn pattern(&mut self, pattern: &Pattern<&'s str>) {
        match pattern {
            Pattern::Var(_) => {}
            Pattern::Arr(items) => items.iter().for_each(|p| self.pattern(p)),
            Pattern::Obj(entries) => {
                for (k, p) in entries {
                    self.term(k);
                    self.pattern(p);
                }
            }
        }
    }

    fn resolve(&self, name: &str, arity: usize) -> Option<usize> {
        self.scope.iter().rev().find_map(|binding| match binding {
            Binding::Param(p) if *p == name && arity == 0 => Some(None),
            Binding::Def {
                name: n,
                arity: a,
                id,
            } if *n == name && *a == arity => Some(Some(*id)),
            _ => None,
        })?
    }

    /// A cycle in the call graph, as `f -> g -> f`.
    fn cycle(&self) -> Option<String> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut marks = vec![Mark::New; self.defs.len()];
        for root in 0..self.defs.len() {
            if marks[root] != Mark::New {
                continue;
            }
            // Depth-first search with an explicit stack of (definition, next callee index).
            let mut stack = vec![(root, 0)];
            marks[root] = Mark::Open;
            while let Some(top) = stack.last_mut() {
                let id = top.0;
                if let Some(&callee) = self.defs[id].1.get(top.1) {
                    top.1 += 1;
                    match marks[callee] {
                        Mark::New => {
                            marks[callee] = Mark::Open;
                            stack.push((callee, 0));
                        }
                        Mark::Open => {
                            let start = stack.iter().position(|(d, _)| *d == callee)?;
                            let names = stack[start..].iter().map(|(d, _)| self.defs[*d].0);
                            let mut names: Vec<&str> = names.collect();
                            names.push(self.defs[callee].0);
                            return Some(names.join(" -> "));
                        }
                        Mark::Done => {}
                    }
                } else {
                    marks[id] = Mark::Done;
                    stack.pop();
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(code: &str) -> String {
        check(code).expect_err(code)
    }

    fn accepted(code: &str) -> bool {
        check(code).is_ok()
    }

    #[test]
    fn ordinary_expressions_pass() {
        for code in [
            ".customer.id | tostring",
            "def total: map(.price * .qty) | add; .items | total",
            "def f(g): g | g; f(. + 1)",
            "def f: 1; def g: f + f; g",
            "def f(f): f; f(.)",
            "reduce .[] as {a: $x} (0; . + $x) | [limit(3; repeat(1))]",
            r#"{a: "\(.x)", b: [.y[1:], .z[]?]} | if .a then 1 elif .b then 2 else 3 end"#,
        ] {
            assert!(accepted(code), "{code}");
        }
    }

    #[test]
    fn direct_and_mutual_recursion_are_rejected() {
        assert!(rejected("def f: f + 1; f").contains("(f -> f)"));
        assert!(rejected("def f: def g: f; g; f").contains("f -> g -> f"));
        assert!(rejected("def apply(g): g; def r: apply(r); r").contains("r -> r"));
        assert!(rejected("def f($n): if $n > 0 then f($n - 1) else 0 end; f(3)").contains("f"));
    }

    #[test]
    fn parameters_shadow_definitions() {
        // `f` inside `h` is h's parameter, not the outer `f`.
        assert!(accepted("def f: 1; def h(f): f; def f2: h(f); f2"));
        // Different arity, different filter.
        assert!(accepted("def f: 1; def f(x): f + x; f(2)"));
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let pipes = ".a | ".repeat(MAX_NESTING + 1) + ".";
        assert!(rejected(&pipes).contains("nested"));
        let fields: Vec<String> = (0..=MAX_NESTING).map(|i| format!("f{i}: .a")).collect();
        assert!(rejected(&format!("{{{}}}", fields.join(", "))).contains("nested"));
        let path = ".a".repeat(MAX_NESTING + 1);
        assert!(rejected(&path).contains("nested"));
        let ok: Vec<String> = (0..50).map(|i| format!("f{i}: .a")).collect();
        assert!(accepted(&format!("{{{}}}", ok.join(", "))));
    }

    #[test]
    fn module_directives_are_rejected() {
        assert!(rejected("module {}; .").contains("module"));
    }

    #[test]
    fn long_expressions_are_rejected_before_parsing() {
        assert!(check_len(&" ".repeat(MAX_LEN + 1)).is_err());
        assert_eq!(check_len(".a"), Ok(()));
    }
}
