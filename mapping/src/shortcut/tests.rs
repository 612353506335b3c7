//! The shortcut must agree with jaq wherever it does not decline.

use serde_json::{Value, json};

use crate::{
    jq::{Expr, Prelude},
    value,
};

fn inputs() -> Vec<Value> {
    let strings = [
        "",
        "paid",
        "Ada Lovelace",
        "ÆØÅ æøå",
        "12",
        " -1.5e3 ",
        "12x",
        "a, b",
    ];
    let numbers = [
        json!(0),
        json!(-7),
        json!(1.0),
        json!(0.1),
        json!(1e21),
        json!(-0.0),
    ];
    let mut scalars = vec![json!(null), json!(true), json!(false), json!(u64::MAX)];
    scalars.extend(strings.map(|s| json!(s)));
    scalars.extend(numbers);
    let mut inputs = vec![
        json!([]),
        json!({}),
        json!([1, 2.5, "x", null]),
        json!(["a", "b"]),
        json!([[1], {"x": 2}]),
        json!({"a": [1, 2, 3], "b": {"c": ["x", 1, null, {"d": 2}]}}),
        json!({"a": "Ada", "b": 2, "z": {"k": [true]}}),
    ];
    for scalar in scalars {
        inputs.push(json!({"a": scalar, "b": {"c": [scalar, {"d": scalar}]}}));
        inputs.push(json!({"a": scalar, "b": scalar}));
        inputs.push(json!([scalar, 1]));
        inputs.push(scalar);
    }
    inputs
}

const RECOGNISED: &[&str] = &[
    // paths
    ".",
    ".a",
    ".b.c",
    ".b.c[0]",
    ".b.c[1].d",
    ".b.c[5]",
    ".[0]",
    r#".["a"]"#,
    r#"."b".c"#,
    ".b.c[]",
    ".[]",
    ".b.c[].d",
    ".a[0:2]",
    ".a[1:]",
    ".a[:-1]",
    ".a[-2:]",
    "(.b | .c)[0]",
    // conversions and builtins
    ".a | tostring",
    ".b.c[0] | tonumber",
    ".a | tonumber",
    ".a | ascii_downcase",
    ".a | ascii_upcase",
    ".a | tojson",
    "tojson",
    "tostring",
    ".a | length",
    "length",
    ".a | not",
    ".a | ltrimstr(\"A\")",
    ".a | rtrimstr(\"e\")",
    ".a | startswith(\"A\")",
    ".a | endswith(\"e\")",
    ".a | split(\" \")",
    ".a | split(\", \")",
    ".a | split(\"\")",
    "join(\", \")",
    ".b.c | join(\"-\")",
    "map(. + 1)",
    ".b.c | map(tostring)",
    "map(select(. != null))",
    "add",
    ".b.c | add",
    ".a | add",
    "empty",
    "select(.a)",
    // operators
    ".a // \"none\"",
    ".a // 0",
    ".a // .b",
    ".b.c[] // 1",
    ".a == \"paid\"",
    ".a != null",
    ".a == 1",
    ".a == -7",
    ".a == 1.0",
    ".a < 5",
    ".a >= \"m\"",
    ".a == .b",
    ".a and .b",
    ".a or false",
    ".a + 1",
    ".a + \"x\"",
    ".a - 1",
    ".a * 2",
    ".a / 2",
    ".a % 2",
    "\"C\" + (.a | tostring)",
    ".a + .a",
    ".a, .b",
    "if .a then 1 else 2 end",
    "if .a == 1 then \"one\" elif .b then \"b\" end",
    // constructions and literals
    "[.a, .b]",
    "[]",
    "[.b.c[] | tostring]",
    "[.[] | select(. != null)]",
    "[.a, empty]",
    "{x: .a, y: .b.c}",
    "{a, \"b\"}",
    "{a: 1, a: 2}",
    "\"\\(.a)-\\(.b)\"",
    "\"lit\\n\\u00e6\"",
    "12",
    "-1.5",
    "1e400",
    "1.50",
    "null",
    "true",
];

#[test]
fn the_shortcut_agrees_with_jaq() {
    let prelude = Prelude::new();
    let inputs = inputs();
    let mut taken = 0;
    for text in RECOGNISED {
        let expr = Expr::compile(&prelude, text).expect(text);
        assert!(expr.has_shortcut(), "{text} should have a shortcut");
        for input in &inputs {
            let val = value::to_val(input).expect("shallow");
            let jaq: Vec<Result<Value, String>> = expr
                .run(val)
                .map(|out| out.map(|v| value::into_json(v).expect("json")))
                .collect();
            if let Some(shortcut) = expr.shortcut_all(input) {
                taken += 1;
                let shortcut: Vec<Result<Value, String>> = shortcut.into_iter().map(Ok).collect();
                assert_eq!(shortcut, jaq, "{text} on {input}");
            }
            let mut source = crate::jq::Source::new(input);
            if let Ok(single) = expr.single_json(&mut source) {
                assert_eq!(jaq, [Ok(single)], "{text} on {input}");
            }
        }
    }
    assert!(taken > 3_000, "only {taken} shortcuts taken");
}

#[test]
fn other_shapes_run_in_jaq() {
    let prelude = Prelude::new();
    for text in [
        ".a?",
        ".[-1]",
        ".[.i]",
        ".a[1.5:]",
        "{(.k): 1}",
        ". as $x | $x",
        "reduce .[] as $x (0; . + $x)",
        "try .a catch 0",
        ".a |= 1",
        "@base64 \"x\"",
        "def t: 1; t",
        "keys",
        "split(\"a\"; \"g\")",
        ".a | ltrimstr(.b)",
        "-(.a)",
        "..",
    ] {
        let expr = Expr::compile(&prelude, text).expect(text);
        assert!(!expr.has_shortcut(), "{text}");
    }
}

#[test]
fn splitting_into_many_parts_is_charged_per_part() {
    use crate::{Limits, shortcut::fuel};

    let prelude = Prelude::new();
    let limits = Limits::default();
    let run = |text: &str| {
        let expr = Expr::compile(&prelude, text).expect(text);
        fuel::metered(crate::mapping::in_process_fuel(&limits), || {
            expr.shortcut_one(&json!(null))
        })
    };
    // Four million one-character strings took 500 MiB and a second in the caller's process,
    // for a 64 MiB limit; the string itself is within the budget.
    assert_eq!(run(r#""x" * 4000000 | length"#), Some(json!(4_000_000)));
    assert_eq!(run(r#""x" * 4000000 | split("") | length"#), None);
    assert_eq!(run(r#""a,b" * 1000000 | split(",") | length"#), None);
    assert_eq!(run(r#""x" * 1000 | split("") | length"#), Some(json!(1000)));
}
