//! `Filter` through its public API.

use hookplane_mapping::{Filter, MapError};
use serde_json::{Value, json};

fn matches(expr: &str, input: Value) -> Result<bool, MapError> {
    Filter::compile(expr)
        .unwrap_or_else(|e| panic!("{expr} should compile: {e}"))
        .matches(&input)
}

#[test]
fn true_and_other_values_deliver() {
    let order = json!({"status": "paid", "total": 10, "tags": []});
    assert_eq!(matches(r#".status == "paid""#, order.clone()), Ok(true));
    // As in jq, only `false` and `null` are false: 0, "" and [] are true.
    for expr in ["true", "0", "\"\"", ".tags", "{}"] {
        assert_eq!(matches(expr, order.clone()), Ok(true), "{expr}");
    }
}

#[test]
fn false_null_and_no_output_skip() {
    let order = json!({"status": "pending"});
    assert_eq!(matches(r#".status == "paid""#, order.clone()), Ok(false));
    assert_eq!(matches(".missing", order.clone()), Ok(false));
    assert_eq!(matches("null", order.clone()), Ok(false));
    assert_eq!(matches("empty", order.clone()), Ok(false));
    assert_eq!(matches(r#"select(.status == "paid")"#, order), Ok(false));
}

#[test]
fn errors_and_several_outputs_fail() {
    let err = matches(r#"error("no")"#, json!({})).expect_err("error");
    assert_eq!(
        err,
        MapError::Filter {
            expr: r#"error("no")"#.into(),
            message: "no".into()
        }
    );
    assert_eq!(err.to_string(), r#"filter (error("no")): no"#);
    let err = matches(".total | tonumber > 5", json!({"total": "lots"})).expect_err("NaN");
    assert!(
        err.to_string()
            .contains("cannot parse \"lots\" as a number"),
        "{err}"
    );
    let err = matches(
        r#".items[].sku == "A""#,
        json!({"items": [{"sku": "A"}, {"sku": "B"}]}),
    );
    let message = err.expect_err("two outputs").to_string();
    assert!(message.contains("any(...) or all(...)"), "{message}");
    assert_eq!(
        matches(
            r#"any(.items[]; .sku == "A")"#,
            json!({"items": [{"sku": "A"}, {"sku": "B"}]})
        ),
        Ok(true)
    );
}

#[test]
fn compile_errors_are_located_at_filter() {
    let errors = Filter::compile(".status ==")
        .expect_err("incomplete")
        .errors;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].location, "filter");
    assert_eq!(errors[0].expr, ".status ==");
    assert_eq!(
        errors[0].message,
        "expected term, found end of input at 1:11"
    );
    let errors = Filter::compile("is_paid").expect_err("unknown").errors;
    assert_eq!(errors[0].message, "undefined filter `is_paid/0` at 1:1");
}
