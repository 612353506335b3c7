//! `Mapping` through its public API: every rule of the crate documentation, with plain values.

use hookplane_crds::{MappingRule, MappingSpec};
use hookplane_mapping::{CompileErrors, MapError, Mapping};
use serde_json::{Value, json};

fn rule(target: &str, expr: &str) -> MappingRule {
    MappingRule {
        target: target.to_owned(),
        expr: expr.to_owned(),
    }
}

fn rules(rules: &[(&str, &str)]) -> MappingSpec {
    MappingSpec {
        rules: rules.iter().map(|(t, e)| rule(t, e)).collect(),
        program: None,
    }
}

fn program(program: &str) -> MappingSpec {
    MappingSpec {
        rules: Vec::new(),
        program: Some(program.to_owned()),
    }
}

fn compile(spec: &MappingSpec) -> Mapping {
    Mapping::compile(spec).unwrap_or_else(|e| panic!("{spec:?} should compile: {e}"))
}

fn compile_err(spec: &MappingSpec) -> CompileErrors {
    Mapping::compile(spec).expect_err("spec should not compile")
}

fn apply(spec: &MappingSpec, input: Value) -> Result<Value, MapError> {
    compile(spec).apply(&input)
}

const _: () = {
    const fn send_sync<T: Send + Sync + Clone + 'static>() {}
    send_sync::<Mapping>();
    send_sync::<hookplane_mapping::Filter>();
    send_sync::<MapError>();
    send_sync::<CompileErrors>();
};

#[test]
fn rules_build_an_object_with_nested_targets() {
    let spec = rules(&[
        ("CardCode", ".customer.id | tostring"),
        ("Address.City", ".shipping.city"),
        ("Address.Zip", ".shipping.zip"),
        ("Lines", "[.items[] | {Sku: .sku, Qty: .qty}]"),
    ]);
    let input = json!({
        "customer": {"id": 42},
        "shipping": {"city": "Oslo", "zip": "0150"},
        "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]
    });
    assert_eq!(
        apply(&spec, input),
        Ok(json!({
            "CardCode": "42",
            "Address": {"City": "Oslo", "Zip": "0150"},
            "Lines": [{"Sku": "A", "Qty": 1}, {"Sku": "B", "Qty": 2}]
        }))
    );
}

#[test]
fn a_rule_must_produce_exactly_one_value() {
    let none = apply(&rules(&[("Sku", ".items[].sku")]), json!({"items": []}));
    assert_eq!(
        none.expect_err("no value").to_string(),
        r#"rule "Sku" (.items[].sku): produced no value"#
    );
    let many = apply(
        &rules(&[("Sku", ".items[].sku")]),
        json!({"items": [{}, {}]}),
    );
    let MapError::Rule {
        target, message, ..
    } = many.expect_err("two values")
    else {
        panic!("expected a rule error");
    };
    assert_eq!(target, "Sku");
    assert!(
        message.contains("wrap the expression in [ ... ]"),
        "{message}"
    );
    // A missing field is `null`, which is one value.
    assert_eq!(
        apply(&rules(&[("A", ".missing")]), json!({})),
        Ok(json!({"A": null}))
    );
}

#[test]
fn runtime_errors_name_the_rule_and_expression() {
    let spec = rules(&[("Qty", ".qty | tonumber")]);
    let err = apply(&spec, json!({"qty": "abc"})).expect_err("not a number");
    assert_eq!(
        err.to_string(),
        r#"rule "Qty" (.qty | tonumber): cannot parse "abc" as a number"#
    );
    assert_eq!(apply(&spec, json!({"qty": "12"})), Ok(json!({"Qty": 12})));

    let err = apply(&rules(&[("X", r#"error("x")"#)]), json!({})).expect_err("error");
    assert_eq!(
        err,
        MapError::Rule {
            target: "X".into(),
            expr: r#"error("x")"#.into(),
            message: "x".into()
        }
    );
    let err = apply(
        &rules(&[("Id", ".customer.id")]),
        json!({"customer": "c-1"}),
    );
    assert_eq!(
        err.expect_err("string index").to_string(),
        r#"rule "Id" (.customer.id): cannot index "c-1" with "id""#
    );
}

#[test]
fn long_values_in_messages_are_shortened() {
    let input = json!({"blob": "x".repeat(10_000)});
    let err = apply(&rules(&[("N", ".blob | floor")]), input).expect_err("not a number");
    let message = err.to_string();
    assert!(message.len() < 1_000, "{} bytes", message.len());
    assert!(
        message.contains('…') && message.ends_with("as number"),
        "{message}"
    );
}

#[test]
fn a_program_alone_may_produce_any_single_value() {
    assert_eq!(
        apply(&program("[.a, .b]"), json!({"a": 1, "b": 2})),
        Ok(json!([1, 2]))
    );
    assert_eq!(apply(&program(".a + 1"), json!({"a": 1})), Ok(json!(2)));
    assert_eq!(
        apply(
            &program("{id: .a, name: .b | ascii_downcase}"),
            json!({"a": 1, "b": "X"})
        ),
        Ok(json!({"id": 1, "name": "x"}))
    );
    let none = apply(&program("empty"), json!({})).expect_err("no value");
    assert_eq!(none.to_string(), "program (empty): produced no value");
    let many = apply(&program(".[]"), json!([1, 2])).expect_err("two values");
    assert!(matches!(many, MapError::Program { .. }), "{many}");
}

#[test]
fn program_and_rules_set_fields_on_the_programs_object() {
    let spec = MappingSpec {
        program: Some("{Id: .id, Name: .name, Source: \"program\"}".into()),
        rules: vec![
            // Evaluated against the payload: the program's output has no `.email`.
            rule("Contact.Email", ".email"),
            rule("Name", ".name | ascii_upcase"),
        ],
    };
    let input = json!({"id": 7, "name": "ada", "email": "a@example.com"});
    assert_eq!(
        apply(&spec, input),
        Ok(json!({
            "Id": 7, "Name": "ADA", "Source": "program",
            "Contact": {"Email": "a@example.com"}
        }))
    );
}

#[test]
fn rules_need_an_object_from_the_program() {
    let spec = MappingSpec {
        program: Some("[.id]".into()),
        rules: vec![rule("Name", ".name")],
    };
    assert_eq!(
        apply(&spec, json!({"id": 1})),
        Err(MapError::NotAnObject {
            expr: "[.id]".into(),
            found: "an array".into()
        })
    );
    let spec = MappingSpec {
        program: Some("{Address: \"Main St 1\"}".into()),
        rules: vec![rule("Address.City", "\"Oslo\"")],
    };
    let err = apply(&spec, json!({})).expect_err("string on the way");
    assert!(
        err.to_string().contains("\"Address\", which is a string"),
        "{err}"
    );
}

#[test]
fn neither_program_nor_rules_is_identity() {
    let input = json!({"a": [1, 2.5, "x", null, {"b": true}]});
    assert_eq!(
        apply(&MappingSpec::default(), input.clone()),
        Ok(input.clone())
    );
    assert_eq!(apply(&program("  \n"), input.clone()), Ok(input));
}

#[test]
fn compile_reports_every_error_with_its_location() {
    let spec = MappingSpec {
        program: Some(".a |".into()),
        rules: vec![
            rule("Ok", ".ok"),
            rule("Typo", ".a | tostrin"),
            rule("a..b", ".x"),
            rule("", "(.x"),
        ],
    };
    let errors = compile_err(&spec).errors;
    let found: Vec<(&str, &str, &str)> = errors
        .iter()
        .map(|e| (e.location.as_str(), e.expr.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "program",
                ".a |",
                "expected term, found end of input at 1:5"
            ),
            (
                "rules[1].expr",
                ".a | tostrin",
                "undefined filter `tostrin/0` at 1:6"
            ),
            (
                "rules[2].target",
                "a..b",
                "target has an empty segment; use dots only between field names"
            ),
            ("rules[3].target", "", "target is empty"),
            (
                "rules[3].expr",
                "(.x",
                "expected closing parenthesis, found end of input at 1:4"
            ),
        ]
    );
}

#[test]
fn targets_must_not_repeat_or_nest() {
    let errors = compile_err(&rules(&[("A", "1"), ("B", "2"), ("A", "3"), ("B.C", "4")])).errors;
    let found: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.location.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("rules[2].target", "duplicate target (also rules[0])"),
            (
                "rules[3].target",
                "target lies inside target \"B\" of rules[1]"
            ),
        ]
    );
}

#[test]
fn the_standard_library_is_available() {
    let spec = rules(&[
        ("Str", ".n | tostring"),
        ("Num", ".s | tonumber"),
        ("Mapped", ".xs | map(. * 2)"),
        ("Selected", "[.xs[] | select(. > 1)]"),
        ("Lower", ".name | ascii_downcase"),
        ("Parts", ".csv | split(\",\")"),
        ("Joined", ".xs | map(tostring) | join(\"-\")"),
        ("Json", ".obj | tojson"),
        ("Parsed", ".text | fromjson"),
        ("Date", ".ts | todate"),
        ("Epoch", ".iso | fromdate"),
        ("Matches", ".name | test(\"^A\")"),
        ("Replaced", ".name | gsub(\"a\"; \"4\")"),
        ("Base64", ".name | @base64"),
        ("Length", ".xs | length"),
        ("Keys", ".obj | keys"),
        ("Default", ".missing // \"fallback\""),
        ("Floor", "10 / 4 | floor"),
    ]);
    let input = json!({
        "n": 5, "s": "2.5", "xs": [1, 2, 3], "name": "Ada", "csv": "a,b",
        "obj": {"k": 1}, "text": "{\"x\": [1]}", "ts": 1425599507,
        "iso": "2015-03-05T23:51:47Z"
    });
    assert_eq!(
        apply(&spec, input),
        Ok(json!({
            "Str": "5", "Num": 2.5, "Mapped": [2, 4, 6], "Selected": [2, 3],
            "Lower": "ada", "Parts": ["a", "b"], "Joined": "1-2-3", "Json": "{\"k\":1}",
            "Parsed": {"x": [1]}, "Date": "2015-03-05T23:51:47Z", "Epoch": 1425599507,
            "Matches": true, "Replaced": "Ad4", "Base64": "QWRh", "Length": 3,
            "Keys": ["k"], "Default": "fallback", "Floor": 2
        }))
    );
}

#[test]
fn numbers_keep_their_kind() {
    let spec = rules(&[
        ("Int", ".i"),
        ("Sum", ".i + 1"),
        ("Float", ".f"),
        ("WholeFloat", ".w"),
        ("Big", ".big"),
        ("Huge", ".big * 2"),
        ("Half", ".i / 2"),
        ("Whole", "10 / 2"),
        ("NaN", "nan"),
        ("Inf", "infinite"),
        ("Literal", "1.50"),
    ]);
    let input = json!({"i": 3, "f": 0.1, "w": 2.0, "big": u64::MAX});
    let out = apply(&spec, input).expect("numbers");
    assert!(out["Int"].is_i64() && out["Sum"] == json!(4));
    assert_eq!(out["Float"], json!(0.1));
    assert!(out["WholeFloat"].is_f64(), "2.0 stays a float");
    assert_eq!(out["Big"], json!(u64::MAX));
    assert_eq!(
        out["Huge"],
        json!(u64::MAX as f64 * 2.0),
        "beyond u64: nearest float"
    );
    assert_eq!(out["Half"], json!(1.5));
    assert_eq!(out["Whole"], json!(5.0), "division always yields a float");
    assert_eq!(out["NaN"], Value::Null);
    assert_eq!(out["Inf"], json!(f64::MAX));
    assert_eq!(out["Literal"], json!(1.5));
}

#[test]
fn clones_share_the_compiled_mapping_across_threads() {
    let mapping = compile(&rules(&[("Id", ".id")]));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let mapping = mapping.clone();
            std::thread::spawn(move || mapping.apply(&json!({"id": i})))
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.join().expect("thread"), Ok(json!({"Id": i})));
    }
}
