//! Pathological expressions and payloads fail with errors instead of crashing the process.
//!
//! Each of these aborted a plain jaq embedding with a stack overflow (or exited it) on a 2 MiB
//! thread, which is what the test harness runs tests on.

use hookplane_crds::{MappingRule, MappingSpec};
use hookplane_mapping::{Filter, Limit, MapError, Mapping};
use serde_json::{Value, json};

fn program(text: &str) -> MappingSpec {
    MappingSpec {
        rules: Vec::new(),
        program: Some(text.to_owned()),
    }
}

fn compile_message(text: &str) -> String {
    let errors = Mapping::compile(&program(text)).expect_err("should not compile");
    errors.errors[0].message.clone()
}

#[test]
fn deeply_nested_text_is_rejected_without_overflowing() {
    for depth in [300, 5_000] {
        // Parentheses leave no trace in the syntax tree, so only parsing them was a danger.
        let parens = "(".repeat(depth) + ".a" + &")".repeat(depth);
        let mapping = Mapping::compile(&program(&parens)).expect("parentheses compile");
        assert_eq!(mapping.apply(&json!({"a": 1})), Ok(json!(1)));
        let negations = "-".repeat(depth) + "1";
        assert!(compile_message(&negations).contains("nested"), "{depth}");
        let pipes = ".a | ".repeat(depth) + ".";
        assert!(compile_message(&pipes).contains("nested"), "{depth}");
    }
}

#[test]
fn the_longest_accepted_text_compiles_on_the_compiler_stack() {
    // The worst case for jaq's parser is one nesting level per byte.
    let negations = "-".repeat(32 * 1024 - 1) + "1";
    assert!(compile_message(&negations).contains("nested"));
    let too_long = "-".repeat(32 * 1024) + "1";
    assert!(compile_message(&too_long).contains("the limit is 32768"));
}

#[test]
fn recursive_definitions_are_rejected() {
    let message = compile_message("def f: f + 1; f");
    assert!(
        message.starts_with("recursive definition (f -> f)"),
        "{message}"
    );
    let errors = Filter::compile("def f: [f]; f | length > 0").expect_err("recursive");
    assert!(
        errors.to_string().contains("recursive definition"),
        "{errors}"
    );
}

#[test]
fn builtin_iteration_still_works() {
    let text = "[[limit(5; repeat(1))], [.[] | until(. > 100; . * 2)], last(range(100000))]";
    let mapping = Mapping::compile(&program(text)).expect("compiles");
    assert_eq!(
        mapping.apply(&json!([3, 7])),
        Ok(json!([[1, 1, 1, 1, 1], [192, 112], 99999]))
    );
}

#[test]
fn process_level_filters_are_not_available() {
    for name in ["env", "$ENV", "halt", "halt_error", "input", "inputs"] {
        let message = compile_message(name);
        assert!(message.starts_with("undefined"), "{name}: {message}");
    }
}

#[test]
fn deeply_nested_json_text_is_refused_by_fromjson() {
    let spec = MappingSpec {
        rules: vec![MappingRule {
            target: "Parsed".into(),
            expr: ".text | fromjson".into(),
        }],
        program: None,
    };
    let mapping = Mapping::compile(&spec).expect("compiles");
    let err = mapping.apply(&json!({"text": "[".repeat(100_000)}));
    assert!(
        err.expect_err("too deep")
            .to_string()
            .contains("recursion limit")
    );
}

#[test]
fn deeply_nested_payloads_and_outputs_are_refused() {
    let mut deep = json!(1);
    for _ in 0..300 {
        deep = json!([deep]);
    }
    let mapping = Mapping::compile(&program(". as $x | [$x]")).expect("compiles");
    let err = mapping.apply(&deep).expect_err("too deep");
    assert!(matches!(err, MapError::Input { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "payload: the payload is nested deeper than 256 levels"
    );

    // A result too deep is the depth limit, named where it was exceeded.
    let builds_deep = program("reduce range(1000) as $i (0; [.])");
    let err = Mapping::compile(&builds_deep)
        .expect("compiles")
        .apply(&Value::Null)
        .expect_err("too deep");
    assert_eq!(err.code(), "MAPPING_LIMIT_EXCEEDED");
    assert_eq!(
        err.to_string(),
        "program (reduce range(1000) as $i (0; [.])) exceeded its depth limit \
         (256 levels of nesting)"
    );
    let in_a_rule = MappingSpec {
        rules: vec![
            MappingRule {
                target: "Id".into(),
                expr: "1".into(),
            },
            MappingRule {
                target: "Deep".into(),
                expr: "reduce range(300) as $i (0; {a: .})".into(),
            },
        ],
        program: None,
    };
    let err = Mapping::compile(&in_a_rule)
        .expect("compiles")
        .apply(&Value::Null)
        .expect_err("too deep");
    assert!(
        matches!(
            &err,
            MapError::LimitExceeded { limit: Limit::Depth, location, .. }
                if location == "rules[1] (Deep)"
        ),
        "{err:?}"
    );
}
