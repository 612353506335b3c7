//! Keeps `PAYLOADS.md` honest: every `xml` or `form` code block followed by a `json` block must
//! decode to exactly that JSON.

use hookplane_sources::{Limits, from_form, from_xml};
use serde_json::Value;

/// The fenced code blocks of a markdown text, as (language, content).
fn code_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(language)) => current = Some((language.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => blocks.extend(current.take()),
            (Some((_, content)), None) => {
                content.push_str(line);
                content.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

#[test]
fn every_example_decodes_as_documented() {
    let markdown = include_str!("../PAYLOADS.md");
    let blocks = code_blocks(markdown);
    let mut checked = 0;
    for pair in blocks.windows(2) {
        let [(language, input), (next, expected)] = pair else {
            continue;
        };
        if next != "json" {
            continue;
        }
        let decoded = match language.as_str() {
            "xml" => from_xml(input.as_bytes(), &Limits::default()),
            "form" => from_form(input.trim_end().as_bytes(), &Limits::default()),
            _ => continue,
        }
        .unwrap_or_else(|e| panic!("example does not decode: {e}\n{input}"));
        let expected: Value = serde_json::from_str(expected).expect("documented JSON parses");
        assert_eq!(decoded, expected, "PAYLOADS.md example:\n{input}");
        checked += 1;
    }
    assert_eq!(
        checked, 3,
        "the XML, SOAP and form examples are all checked"
    );
}
