//! The render step: a mapped output becomes the request to send, its body rendered as JSON,
//! XML or form fields and its URL template filled.
//!
//! Pure. Guarantees to the send step: the body and its `Content-Type` agree, the URL has every
//! placeholder filled from the same output (or the step fails with the reason), and XML and form bodies
//! follow the documented payload convention in reverse (`sources/PAYLOADS.md`), so a payload
//! that came in as XML goes out as the same XML shape. A value the format cannot express (a
//! key that is not an XML name, a form body that is not an object) is an error, never a
//! silently altered body.

use hookplane_crds::{DestinationSpec, PayloadFormat};
use hookplane_sources::{EncodeError, to_form, to_xml};
use hookplane_validation::template::UrlTemplate;
use serde_json::Value;
use url::Url;

/// Root element of XML bodies when the destination names none.
pub const DEFAULT_XML_ROOT: &str = "payload";

/// A body ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the mapped output cannot be written as JSON")]
    Json(#[source] serde_json::Error),
    #[error("the mapped output cannot be written as XML")]
    Xml(#[source] EncodeError),
    #[error("the mapped output cannot be written as form fields")]
    Form(#[source] EncodeError),
}

/// A request ready to send: where to, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub url: Url,
    pub body: Rendered,
}

/// The render step: `output` rendered as `destination` asks, sent to `url` filled from it.
/// The error is the reason the event failed, ready to record (a render error with its causes,
/// or the placeholder that has no usable value).
pub fn request(
    destination: &DestinationSpec,
    url: &UrlTemplate,
    output: &Value,
) -> Result<Request, String> {
    let body = render(destination.format, destination.xml_root.as_deref(), output)
        .map_err(|error| error_chain(&error))?;
    let url = url.fill(output).map_err(|error| error.to_string())?;
    Ok(Request { url, body })
}

/// An error and its causes, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Render `output` in `format`; `xml_root` names the XML root element.
pub fn render(
    format: PayloadFormat,
    xml_root: Option<&str>,
    output: &Value,
) -> Result<Rendered, RenderError> {
    match format {
        PayloadFormat::Json => Ok(Rendered {
            body: serde_json::to_vec(output).map_err(RenderError::Json)?,
            content_type: "application/json",
        }),
        PayloadFormat::Xml => {
            let root = xml_root.unwrap_or(DEFAULT_XML_ROOT);
            Ok(Rendered {
                body: to_xml(output, root).map_err(RenderError::Xml)?.into_bytes(),
                content_type: "application/xml; charset=utf-8",
            })
        }
        PayloadFormat::Form => Ok(Rendered {
            body: to_form(output).map_err(RenderError::Form)?.into_bytes(),
            content_type: "application/x-www-form-urlencoded",
        }),
    }
}

#[cfg(test)]
mod tests {
    use hookplane_sources::{Limits, from_form, from_xml};
    use serde_json::json;

    use super::*;

    fn text(rendered: &Rendered) -> &str {
        std::str::from_utf8(&rendered.body).expect("bodies are UTF-8")
    }

    #[test]
    fn json_is_the_output_as_it_is() {
        let output = json!({"CardCode": "7", "DocTotal": 49.9, "Lines": [1, 2]});
        let rendered = render(PayloadFormat::Json, None, &output).expect("renders");
        assert_eq!(rendered.content_type, "application/json");
        assert_eq!(
            serde_json::from_slice::<Value>(&rendered.body).expect("JSON"),
            output
        );
    }

    #[test]
    fn xml_uses_the_root_element_and_the_convention_in_reverse() {
        let output = json!({
            "@id": "1001",
            "customer": {"name": "Ada & Co", "email": null},
            "line": [{"@sku": "A-1", "#text": "2"}, {"@sku": "B-7", "#text": "1"}],
        });
        let rendered = render(PayloadFormat::Xml, Some("order"), &output).expect("renders");
        assert_eq!(rendered.content_type, "application/xml; charset=utf-8");
        let body = text(&rendered);
        assert!(body.starts_with("<?xml"), "{body}");
        assert!(body.contains("<order id=\"1001\">"), "{body}");
        assert!(body.contains("Ada &amp; Co"), "{body}");
        let decoded = from_xml(&rendered.body, &Limits::default()).expect("well-formed XML");
        assert_eq!(decoded, json!({ "order": output }));
    }

    #[test]
    fn xml_root_defaults_to_payload() {
        let rendered = render(PayloadFormat::Xml, None, &json!({"a": "1"})).expect("renders");
        assert!(text(&rendered).contains("<payload><a>1</a></payload>"));
    }

    #[test]
    fn xml_refuses_keys_that_are_not_names() {
        let error = render(PayloadFormat::Xml, None, &json!({"not a name": "1"}))
            .expect_err("a space is not allowed in an XML name");
        assert!(matches!(error, RenderError::Xml(_)));
    }

    #[test]
    fn form_fields_nest_with_brackets() {
        let output = json!({
            "status": "paid",
            "billing": {"email": "ada@example.com"},
            "tags": ["new", "vip"],
        });
        let rendered = render(PayloadFormat::Form, None, &output).expect("renders");
        assert_eq!(rendered.content_type, "application/x-www-form-urlencoded");
        assert!(text(&rendered).contains("billing%5Bemail%5D=ada%40example.com"));
        let decoded = from_form(&rendered.body, &Limits::default()).expect("forms decode");
        assert_eq!(decoded, output);
    }

    #[test]
    fn a_request_fills_its_url_from_the_output_it_sends() {
        let base = Url::parse("https://erp.example.com/api/").expect("a URL");
        let url = UrlTemplate::compile("orders/{.id}", Some(&base)).expect("compiles");
        let destination = DestinationSpec {
            format: PayloadFormat::Form,
            ..DestinationSpec::default()
        };
        let request = request(&destination, &url, &json!({"id": "7", "total": 3})).expect("ok");
        assert_eq!(request.url.as_str(), "https://erp.example.com/api/orders/7");
        assert_eq!(text(&request.body), "id=7&total=3");

        assert_eq!(
            super::request(&destination, &url, &json!({"total": 3})),
            Err("the URL placeholder {.id} has no value in the mapped output".to_owned())
        );
        let error = super::request(&destination, &url, &json!([1])).expect_err("not an object");
        assert!(
            error.starts_with("the mapped output cannot be written as form fields: "),
            "the render error with its cause: {error}"
        );
    }

    #[test]
    fn form_needs_an_object() {
        let error = render(PayloadFormat::Form, None, &json!([1, 2])).expect_err("not an object");
        assert!(matches!(error, RenderError::Form(EncodeError::NotAnObject)));
    }
}
