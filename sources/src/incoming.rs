//! The request as the receiver hands it over: method, headers, raw query string and raw body.
//!
//! Everything here borrows; nothing is decoded until a verifier or parser asks for it. Header
//! lookups are case-insensitive (`http::HeaderMap` stores names lowercased) and return `None`
//! for values that are not visible ASCII rather than failing, so hostile headers cannot panic.

use http::{HeaderMap, Method};

/// One webhook delivery, borrowed from the receiver's request.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The raw query string of the endpoint URL (without `?`), if any.
    pub query: Option<&'a str>,
    /// The raw body, exactly as received. Signatures are computed over these bytes.
    pub body: &'a [u8],
}

impl<'a> Incoming<'a> {
    /// A POST with the given headers and body and no query string.
    pub fn post(headers: &'a HeaderMap, body: &'a [u8]) -> Self {
        Self {
            method: &Method::POST,
            headers,
            query: None,
            body,
        }
    }

    /// The same request with a query string.
    pub fn with_query(self, query: Option<&'a str>) -> Self {
        Self { query, ..self }
    }

    /// The first of `names` present, as text, trimmed. Names are matched case-insensitively.
    pub fn header(&self, names: &[&str]) -> Option<&'a str> {
        names.iter().find_map(|name| {
            self.headers
                .get(*name)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
        })
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// The media type of the body (`Content-Type` without parameters), lowercased.
    pub fn media_type(&self) -> Option<String> {
        let value = self
            .headers
            .get(http::header::CONTENT_TYPE)?
            .to_str()
            .ok()?;
        let essence = value.split(';').next().unwrap_or_default().trim();
        (!essence.is_empty()).then(|| essence.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn headers_are_case_insensitive_and_trimmed() {
        let mut headers = HeaderMap::new();
        headers.insert("X-Shopify-Hmac-SHA256", HeaderValue::from_static(" abc "));
        let req = Incoming::post(&headers, b"");
        assert_eq!(req.header(&["x-shopify-hmac-sha256"]), Some("abc"));
        assert_eq!(
            req.header(&["missing", "X-SHOPIFY-HMAC-SHA256"]),
            Some("abc")
        );
    }

    #[test]
    fn non_ascii_header_values_are_absent_not_errors() {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_bytes(b"\xff\xfe").expect("opaque bytes are a valid value");
        headers.insert("x-token", value);
        assert_eq!(Incoming::post(&headers, b"").header(&["x-token"]), None);
    }

    #[test]
    fn query_parameters_are_decoded() {
        let headers = HeaderMap::new();
        let req = Incoming::post(&headers, b"").with_query(Some("a=1&token=s%2Fx+y"));
        assert_eq!(req.query_param("token").as_deref(), Some("s/x y"));
        assert_eq!(req.query_param("nope"), None);
    }

    #[test]
    fn media_type_drops_parameters() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("Text/XML; charset=UTF-8"),
        );
        assert_eq!(
            Incoming::post(&headers, b"").media_type().as_deref(),
            Some("text/xml")
        );
    }
}
