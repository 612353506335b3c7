//! Destination URL templates: `/orders/{.id}?email={.customer.email}` filled from the mapped
//! output.
//!
//! A placeholder is `{` + a dotted path + `}`: `.key.key…`, where a key is letters, digits,
//! `_`, `-`, `@` or `$` and an all-digit key indexes an array. Placeholders may stand in the
//! path and the query, not in the scheme or host. A template is compiled once per published
//! spec ([`UrlTemplate::compile`], which also resolves a relative template against the
//! connection's base URL and checks that the result is an http(s) URL), so a bad template is
//! refused at publish time, never at delivery.
//!
//! Guarantees to `deliver`: every value is percent-encoded (everything but `A-Z a-z 0-9 - . _
//! ~`), so a value can neither leave its path segment (`/`, `?`, `#`) nor its query parameter
//! (`&`, `=`, `+`); a path value cannot be empty or a dot segment (`.`, `..`), which would
//! address another resource. A missing, `null`, array or object value is a [`FillError`]
//! naming the placeholder: the event cannot be delivered as mapped, whatever the retries.

use std::{fmt::Write as _, ops::Range};

use serde_json::Value;
use url::Url;

/// A compiled destination URL template.
#[derive(Clone, Debug)]
pub struct UrlTemplate {
    source: String,
    parts: Vec<Part>,
    /// What relative templates resolve against.
    base: Option<Url>,
    /// The URL itself when the template has no placeholders.
    fixed: Option<Url>,
}

#[derive(Clone, Debug)]
enum Part {
    Literal(String),
    Value(Placeholder),
}

#[derive(Clone, Debug)]
struct Placeholder {
    /// As written, braces included, for error messages.
    text: String,
    keys: Vec<String>,
    in_query: bool,
}

/// Why a template does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("a `{{` at byte {0} has no closing `}}`")]
    Unclosed(usize),
    #[error("a `}}` at byte {0} has no opening `{{`")]
    Unopened(usize),
    #[error(
        "`{0}` is not a placeholder: write a dotted path into the mapped output, such as `{{.id}}` or `{{.customer.email}}`"
    )]
    InvalidPath(String),
    #[error("`{0}` is in the scheme or host; placeholders may only stand in the path and query")]
    OutsidePathOrQuery(String),
    #[error("a relative URL needs the connection's destinationBaseUrl")]
    NoBase,
    #[error("not a valid URL")]
    Invalid,
    #[error("only http and https destinations are supported")]
    Scheme,
}

/// Why a template cannot be filled from a mapped output.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    #[error("the URL placeholder {0} has no value in the mapped output")]
    Missing(String),
    #[error("the URL placeholder {0} is an array or object; it needs a string, number or boolean")]
    NotScalar(String),
    #[error("the URL placeholder {0} is empty, which would change the path")]
    EmptySegment(String),
    #[error("the URL placeholder {0} makes the path segment `{1}`, which would change the path")]
    DotSegment(String, String),
    #[error("the filled URL is not valid: {0}")]
    Invalid(String),
}

impl UrlTemplate {
    /// Compile `template`; a relative one resolves against `base`.
    pub fn compile(template: &str, base: Option<&Url>) -> Result<Self, TemplateError> {
        let parts = parse(template)?;
        let authority_end = authority_end(template);
        let mut offset = 0;
        for part in &parts {
            match part {
                Part::Literal(text) => offset += text.len(),
                Part::Value(placeholder) => {
                    if offset < authority_end {
                        return Err(TemplateError::OutsidePathOrQuery(placeholder.text.clone()));
                    }
                    offset += placeholder.text.len();
                }
            }
        }
        let compiled = Self {
            source: template.to_owned(),
            parts,
            base: base.cloned(),
            fixed: None,
        };
        // A sample fill checks the URL around the placeholders once, here.
        let sample: String = compiled
            .parts
            .iter()
            .map(|part| match part {
                Part::Literal(text) => text.as_str(),
                Part::Value(_) => "x",
            })
            .collect();
        let url = compiled.resolve(&sample)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TemplateError::Scheme);
        }
        let has_placeholders = compiled.parts.iter().any(|p| matches!(p, Part::Value(_)));
        Ok(Self {
            fixed: (!has_placeholders).then_some(url),
            ..compiled
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Fill the placeholders from `output` and resolve the result.
    pub fn fill(&self, output: &Value) -> Result<Url, FillError> {
        if let Some(url) = &self.fixed {
            return Ok(url.clone());
        }
        let mut filled = String::with_capacity(self.source.len() + 32);
        let mut path_values: Vec<(Range<usize>, &str)> = Vec::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => filled.push_str(text),
                Part::Value(placeholder) => {
                    let value = lookup(output, &placeholder.keys)
                        .ok_or_else(|| FillError::Missing(placeholder.text.clone()))?;
                    let text = scalar_text(value)
                        .ok_or_else(|| FillError::NotScalar(placeholder.text.clone()))?;
                    let start = filled.len();
                    encode_into(&mut filled, &text);
                    if !placeholder.in_query {
                        if text.is_empty() {
                            return Err(FillError::EmptySegment(placeholder.text.clone()));
                        }
                        path_values.push((start..filled.len(), &placeholder.text));
                    }
                }
            }
        }
        check_dot_segments(&filled, &path_values)?;
        self.resolve(&filled)
            .map_err(|error| FillError::Invalid(error.to_string()))
    }

    fn resolve(&self, filled: &str) -> Result<Url, TemplateError> {
        match Url::parse(filled) {
            Ok(url) => Ok(url),
            Err(url::ParseError::RelativeUrlWithoutBase) => self
                .base
                .as_ref()
                .ok_or(TemplateError::NoBase)?
                .join(filled)
                .map_err(|_| TemplateError::Invalid),
            Err(_) => Err(TemplateError::Invalid),
        }
    }
}

/// Split a template into literals and placeholders.
fn parse(template: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut in_query = false;
    let mut rest = template.char_indices();
    while let Some((at, c)) = rest.next() {
        match c {
            '{' => {
                let close = template[at..]
                    .find('}')
                    .map(|i| at + i)
                    .ok_or(TemplateError::Unclosed(at))?;
                let text = &template[at..=close];
                let keys = parse_path(text[1..text.len() - 1].trim())
                    .ok_or_else(|| TemplateError::InvalidPath(text.to_owned()))?;
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Value(Placeholder {
                    text: text.to_owned(),
                    keys,
                    in_query,
                }));
                for _ in 0..text.chars().count() - 1 {
                    rest.next();
                }
            }
            '}' => return Err(TemplateError::Unopened(at)),
            _ => {
                in_query |= matches!(c, '?' | '#');
                literal.push(c);
            }
        }
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

/// `.a.b.0` -> `["a", "b", "0"]`.
fn parse_path(path: &str) -> Option<Vec<String>> {
    let keys: Vec<String> = path
        .strip_prefix('.')?
        .split('.')
        .map(str::to_owned)
        .collect();
    let key_ok = |key: &String| {
        !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'@' | b'$'))
    };
    keys.iter().all(key_ok).then_some(keys)
}

/// Byte offset where the scheme and authority of a template end (0 for a path-only one).
fn authority_end(template: &str) -> usize {
    let scheme_len = template
        .find(':')
        .filter(|&colon| {
            let scheme = &template[..colon];
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        })
        .map_or(0, |colon| colon + 1);
    let after_scheme = &template[scheme_len..];
    match after_scheme.strip_prefix("//") {
        Some(authority) => {
            let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
            scheme_len + 2 + end
        }
        None => scheme_len,
    }
}

fn lookup<'a>(mut value: &'a Value, keys: &[String]) -> Option<&'a Value> {
    for key in keys {
        value = match value {
            Value::Object(fields) => fields.get(key)?,
            Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    (!value.is_null()).then_some(value)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn encode_into(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// Refuse a path segment that a value turned into `.` or `..`: URL resolution would remove
/// it (and the segment before it, for `..`).
fn check_dot_segments(filled: &str, values: &[(Range<usize>, &str)]) -> Result<(), FillError> {
    let path_end = filled.find(['?', '#']).unwrap_or(filled.len());
    let mut start = 0;
    for segment in filled[..path_end].split('/') {
        let range = start..start + segment.len();
        start = range.end + 1;
        if segment != "." && segment != ".." {
            continue;
        }
        let overlaps = |value: &Range<usize>| value.start < range.end && range.start < value.end;
        if let Some((_, placeholder)) = values.iter().find(|(value, _)| overlaps(value)) {
            return Err(FillError::DotSegment(
                (*placeholder).to_owned(),
                segment.to_owned(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> Url {
        Url::parse("https://erp.example/api/").expect("valid")
    }

    fn fill(template: &str, output: Value) -> Result<String, FillError> {
        UrlTemplate::compile(template, Some(&base()))
            .expect("compiles")
            .fill(&output)
            .map(String::from)
    }

    #[test]
    fn fills_path_and_query_values() {
        let output = json!({"id": 1001, "customer": {"email": "ada+co@example.com"}});
        assert_eq!(
            fill("orders/{.id}?email={.customer.email}", output.clone()).unwrap(),
            "https://erp.example/api/orders/1001?email=ada%2Bco%40example.com"
        );
        assert_eq!(
            fill("https://other.example/v1/{ .id }/x", output).unwrap(),
            "https://other.example/v1/1001/x"
        );
    }

    #[test]
    fn values_cannot_leave_their_segment_or_parameter() {
        let output = json!({"id": "a/b?c#d e", "q": "x&admin=1"});
        assert_eq!(
            fill("/orders/{.id}?q={.q}", output).unwrap(),
            "https://erp.example/orders/a%2Fb%3Fc%23d%20e?q=x%26admin%3D1"
        );
    }

    #[test]
    fn array_items_booleans_and_unicode() {
        let output = json!({"lines": [{"sku": "Å-1"}], "ok": true});
        assert_eq!(
            fill("items/{.lines.0.sku}?ok={.ok}", output).unwrap(),
            "https://erp.example/api/items/%C3%85-1?ok=true"
        );
    }

    #[test]
    fn missing_null_and_compound_values_name_the_placeholder() {
        let missing = fill("orders/{.customer.id}", json!({"customer": {}})).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "the URL placeholder {.customer.id} has no value in the mapped output"
        );
        assert_eq!(
            fill("orders/{.id}", json!({"id": null})).unwrap_err(),
            FillError::Missing("{.id}".into())
        );
        assert_eq!(
            fill("orders/{.id}", json!({"id": [1]})).unwrap_err(),
            FillError::NotScalar("{.id}".into())
        );
    }

    #[test]
    fn path_values_cannot_be_empty_or_dot_segments() {
        assert_eq!(
            fill("orders/{.id}/lines", json!({"id": ""})).unwrap_err(),
            FillError::EmptySegment("{.id}".into())
        );
        assert!(matches!(
            fill("orders/{.id}/lines", json!({"id": ".."})).unwrap_err(),
            FillError::DotSegment(..)
        ));
        assert!(matches!(
            fill("orders/{.a}{.b}", json!({"a": ".", "b": "."})).unwrap_err(),
            FillError::DotSegment(..)
        ));
        // Dots inside a longer segment and empty query values are fine.
        assert_eq!(
            fill("orders/{.id}.json?x={.x}", json!({"id": ".", "x": ""})).unwrap(),
            "https://erp.example/api/orders/..json?x="
        );
    }

    #[test]
    fn compile_refuses_bad_templates() {
        let compile = |t: &str| UrlTemplate::compile(t, Some(&base())).map(|_| ());
        assert_eq!(compile("orders/{.id"), Err(TemplateError::Unclosed(7)));
        assert_eq!(compile("orders/.id}"), Err(TemplateError::Unopened(10)));
        for bad in [
            "orders/{id}",
            "orders/{.}",
            "orders/{.a..b}",
            "orders/{.a | b}",
        ] {
            assert!(
                matches!(compile(bad), Err(TemplateError::InvalidPath(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            compile("https://{.tenant}.example/x"),
            Err(TemplateError::OutsidePathOrQuery(_))
        ));
        assert!(matches!(
            compile("//{.host}/x"),
            Err(TemplateError::OutsidePathOrQuery(_))
        ));
        assert_eq!(compile("ftp://x/{.id}"), Err(TemplateError::Scheme));
        assert_eq!(compile("http://[::1/{.id}"), Err(TemplateError::Invalid));
        assert_eq!(
            UrlTemplate::compile("orders/{.id}", None).map(|_| ()),
            Err(TemplateError::NoBase)
        );
    }

    #[test]
    fn a_template_without_placeholders_is_a_fixed_url() {
        let template = UrlTemplate::compile("orders", Some(&base())).expect("compiles");
        assert_eq!(
            template.fill(&json!(null)).unwrap().as_str(),
            "https://erp.example/api/orders"
        );
        assert_eq!(template.as_str(), "orders");
    }
}
