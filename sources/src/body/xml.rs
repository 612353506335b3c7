//! XML bodies to JSON, by the one convention mapping expressions are written against:
//!
//! - The document is an object with one key, the root element's name:
//!   `<order id="7"><total>9.50</total></order>` is
//!   `{"order": {"@id": "7", "total": "9.50"}}`.
//! - An element with only text is that text, as a string, exactly as written (entities
//!   decoded, line ends normalized); an empty element is `null` (also `<x xsi:nil="true"/>`).
//! - Attributes are `"@name"` keys, their values strings.
//! - Child elements are keys by name; a name that repeats becomes an array in document order
//!   (one child is never wrapped in an array: `jq`'s `.x | arrays // [.]` normalizes).
//! - Text next to attributes or children is `"#text"`, trimmed, its pieces joined.
//! - Namespace prefixes are dropped from element and attribute names (`sf:Id` is `Id`,
//!   `xsi:type` is `@type`) and `xmlns` declarations are omitted, so a mapping does not depend
//!   on the prefixes a sender picked.
//! - Values are never converted to numbers or booleans: `tonumber` in a mapping does that.
//! - Comments, processing instructions and the XML declaration are ignored.
//!
//! Hostile input: any `<!DOCTYPE` is rejected as soon as it is read, before any of it is
//! interpreted, so entity-expansion (billion laughs) and external-entity attacks never start;
//! only the five predefined entities and character references are decoded; nesting, element
//! plus attribute count and size are bounded by `Limits`; input must be UTF-8.

use quick_xml::{
    XmlVersion,
    errors::Error as XmlError,
    escape::EscapeError,
    events::{BytesRef, BytesStart, Event},
    reader::Reader,
};
use serde_json::{Map, Value};

use crate::body::{Limits, ParseError, check_size};

/// Decodes an XML body.
pub fn from_xml(body: &[u8], limits: &Limits) -> Result<Value, ParseError> {
    check_size(body, limits)?;
    let text = std::str::from_utf8(body).map_err(|e| ParseError::Xml {
        position: e.valid_up_to() as u64,
        reason: "not UTF-8",
    })?;
    let mut reader = Reader::from_str(text);
    let mut builder = Builder {
        stack: Vec::new(),
        root: None,
        nodes: 0,
        limits,
    };
    loop {
        let event = reader.read_event().map_err(|e| xml_error(&reader, e))?;
        let position = reader.buffer_position();
        match event {
            Event::Start(start) => builder.open(&start, position)?,
            Event::Empty(start) => {
                builder.open(&start, position)?;
                builder.close(position)?;
            }
            Event::End(_) => builder.close(position)?,
            Event::Text(t) => builder.text(&t.xml10_content(), position)?,
            Event::CData(c) => builder.text(&c.xml10_content(), position)?,
            Event::GeneralRef(r) => builder.text(&resolve_reference(&r, position)?, position)?,
            Event::DocType(_) => return Err(ParseError::XmlDoctype),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !builder.stack.is_empty() {
        return Err(malformed(reader.buffer_position(), "unclosed element"));
    }
    builder
        .root
        .ok_or_else(|| malformed(reader.buffer_position(), "no root element"))
}

/// An element being read.
struct Frame {
    name: String,
    fields: Map<String, Value>,
    has_children: bool,
    text: String,
}

struct Builder<'l> {
    stack: Vec<Frame>,
    root: Option<Value>,
    nodes: usize,
    limits: &'l Limits,
}

impl Builder<'_> {
    fn count(&mut self) -> Result<(), ParseError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(ParseError::TooManyNodes {
                limit: self.limits.max_nodes,
            });
        }
        Ok(())
    }

    fn open(&mut self, start: &BytesStart<'_>, position: u64) -> Result<(), ParseError> {
        if self.root.is_some() && self.stack.is_empty() {
            return Err(malformed(position, "more than one root element"));
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err(ParseError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        self.count()?;
        let mut fields = Map::new();
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|_| malformed(position, "invalid attribute"))?;
            let key = attribute.key;
            if key.as_namespace_binding().is_some() {
                continue;
            }
            self.count()?;
            let value = attribute
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| match e {
                    XmlError::Escape(EscapeError::UnrecognizedEntity(..)) => ParseError::XmlEntity,
                    _ => malformed(position, "invalid attribute value"),
                })?;
            let local = key.local_name();
            let name = format!("@{}", local.as_ref());
            insert(&mut fields, name, Value::String(value.into_owned()));
        }
        self.stack.push(Frame {
            name: start.local_name().as_ref().to_owned(),
            fields,
            has_children: false,
            text: String::new(),
        });
        Ok(())
    }

    fn close(&mut self, position: u64) -> Result<(), ParseError> {
        let frame = self
            .stack
            .pop()
            .ok_or_else(|| malformed(position, "end tag without start tag"))?;
        let (name, value) = finish(frame);
        match self.stack.last_mut() {
            Some(parent) => {
                parent.has_children = true;
                insert(&mut parent.fields, name, value);
            }
            None => {
                let mut document = Map::new();
                document.insert(name, value);
                self.root = Some(Value::Object(document));
            }
        }
        Ok(())
    }

    fn text(&mut self, text: &str, position: u64) -> Result<(), ParseError> {
        match self.stack.last_mut() {
            Some(frame) => frame.text.push_str(text),
            None if is_xml_whitespace(text) => {}
            None => return Err(malformed(position, "text outside the root element")),
        }
        Ok(())
    }
}

/// Turns a finished element into its JSON value.
fn finish(frame: Frame) -> (String, Value) {
    let Frame {
        name,
        mut fields,
        has_children,
        text,
    } = frame;
    let has_text = !is_xml_whitespace(&text);
    let value = if fields.is_empty() {
        if has_text {
            Value::String(text)
        } else {
            Value::Null
        }
    } else if !has_children && !has_text && is_nil(&fields) {
        Value::Null
    } else {
        if has_text {
            fields.insert(
                "#text".to_owned(),
                Value::String(trim_xml(&text).to_owned()),
            );
        }
        Value::Object(fields)
    };
    (name, value)
}

/// `<x xsi:nil="true"/>`: the only attribute is `nil` with value `true`.
fn is_nil(fields: &Map<String, Value>) -> bool {
    fields.len() == 1 && fields.get("@nil").and_then(Value::as_str) == Some("true")
}

/// Adds a child or attribute; a repeated name turns into an array. Element values are never
/// arrays themselves, so an existing array can only come from repetition.
fn insert(fields: &mut Map<String, Value>, name: String, value: Value) {
    match fields.get_mut(&name) {
        None => {
            fields.insert(name, value);
        }
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
    }
}

fn resolve_reference(reference: &BytesRef<'_>, position: u64) -> Result<String, ParseError> {
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) => Ok(c.to_string()),
            _ => Err(malformed(position, "invalid character reference")),
        };
    }
    let resolved = match &**reference {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        _ => return Err(ParseError::XmlEntity),
    };
    Ok(resolved.to_owned())
}

fn is_xml_whitespace(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn trim_xml(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\r', '\n'])
}

fn malformed(position: u64, reason: &'static str) -> ParseError {
    ParseError::Xml { position, reason }
}

fn xml_error(reader: &Reader<&[u8]>, error: XmlError) -> ParseError {
    let reason = match error {
        XmlError::Escape(EscapeError::UnrecognizedEntity(..)) => return ParseError::XmlEntity,
        XmlError::Syntax(_) => "syntax error",
        XmlError::IllFormed(_) => "not well-formed",
        XmlError::InvalidAttr(_) => "invalid attribute",
        XmlError::Encoding(_) => "invalid encoding",
        XmlError::Escape(_) => "invalid escape",
        XmlError::Namespace(_) => "invalid namespace",
        XmlError::Io(_) => "unreadable",
    };
    malformed(reader.error_position(), reason)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::json;

    use super::*;

    fn parse(xml: &str) -> Result<Value, ParseError> {
        from_xml(xml.as_bytes(), &Limits::default())
    }

    #[test]
    fn convention_examples() {
        let v = parse(r#"<order id="7"><total>9.50</total><note/></order>"#).expect("valid");
        assert_eq!(
            v,
            json!({"order": {"@id": "7", "total": "9.50", "note": null}})
        );
        let v = parse("<a><i>1</i><i>2</i><j>x</j></a>").expect("valid");
        assert_eq!(v, json!({"a": {"i": ["1", "2"], "j": "x"}}));
        let v = parse(r#"<a><b c="d">text</b></a>"#).expect("valid");
        assert_eq!(v, json!({"a": {"b": {"@c": "d", "#text": "text"}}}));
        let v = parse("<p>Hello <b>you</b> there</p>").expect("valid");
        assert_eq!(v, json!({"p": {"b": "you", "#text": "Hello  there"}}));
    }

    #[test]
    fn namespaces_prefixes_are_dropped() {
        let xml = r#"<s:E xmlns:s="urn:s" xmlns:sf="urn:sf" xmlns:xsi="urn:xsi">
            <sf:Obj xsi:type="sf:Lead"><sf:Id>1</sf:Id><sf:Note xsi:nil="true"/></sf:Obj></s:E>"#;
        let v = parse(xml).expect("valid");
        assert_eq!(
            v,
            json!({"E": {"Obj": {"@type": "sf:Lead", "Id": "1", "Note": null}}})
        );
    }

    #[test]
    fn entities_cdata_and_leaf_whitespace() {
        let v =
            parse("<a><b>&lt;x&gt; &amp; &#233;&#x41;</b><c><![CDATA[<raw>]]></c><d> s </d></a>")
                .expect("valid");
        assert_eq!(v, json!({"a": {"b": "<x> & éA", "c": "<raw>", "d": " s "}}));
        assert_eq!(
            parse("<a>&nbsp;</a>").unwrap_err().code(),
            "XML_ENTITY_FORBIDDEN"
        );
        assert_eq!(
            parse(r#"<a b="&x;"/>"#).unwrap_err().code(),
            "XML_ENTITY_FORBIDDEN"
        );
    }

    #[test]
    fn malformed_documents_are_400() {
        for bad in [
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "text",
            "x<a/>",
            "<a b='1' b='2'/>",
            "</a>",
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{bad}: {err}");
        }
        assert_eq!(
            from_xml(b"<a>\xff</a>", &Limits::default())
                .unwrap_err()
                .code(),
            "MALFORMED_XML"
        );
    }

    #[test]
    fn billion_laughs_is_rejected_fast() {
        let mut xml =
            String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
        for i in 1..10 {
            let refs = format!("&lol{};", i - 1).replace("lol0", "lol").repeat(10);
            xml.push_str(&format!("<!ENTITY lol{i} \"{refs}\">\n"));
        }
        xml.push_str("]>\n<lolz>&lol9;</lolz>");
        let started = Instant::now();
        assert_eq!(parse(&xml).unwrap_err().code(), "XML_DOCTYPE_FORBIDDEN");
        assert!(started.elapsed() < Duration::from_millis(100));
        // Without the DTD the reference is just an unknown entity.
        assert_eq!(
            parse("<lolz>&lol9;</lolz>").unwrap_err().code(),
            "XML_ENTITY_FORBIDDEN"
        );
    }

    #[test]
    fn external_entities_are_rejected() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
        assert_eq!(parse(xxe).unwrap_err().code(), "XML_DOCTYPE_FORBIDDEN");
    }

    #[test]
    fn depth_and_node_limits() {
        let deep = format!("{}{}", "<a>".repeat(65), "</a>".repeat(65));
        assert_eq!(parse(&deep).unwrap_err().code(), "PAYLOAD_TOO_DEEP");
        let ok = format!("{}{}", "<a>".repeat(64), "</a>".repeat(64));
        assert!(parse(&ok).is_ok());
        let limits = Limits {
            max_nodes: 10,
            ..Limits::default()
        };
        let wide = format!("<r>{}</r>", "<i/>".repeat(10));
        assert_eq!(
            from_xml(wide.as_bytes(), &limits).unwrap_err().code(),
            "PAYLOAD_TOO_COMPLEX"
        );
    }
}
