//! The portal and GraphiQL pages, served from files built into the binary (`api/web`): no
//! request of either page leaves its origin. The portal is plain JavaScript modules that use
//! GraphQL as their only backend; GraphiQL and React are vendored from npm at pinned
//! versions (`api/web/vendor/README.md`).
//!
//! Every page answers with a Content-Security-Policy that allows scripts, styles and
//! connections to this origin only, so an injected script or a link to another origin does
//! not load even if one got through. The portal's own files are revalidated on every load
//! (`ETag`); vendored files live under a versioned path and are cached for good.

use std::sync::{Arc, LazyLock};

use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use hookplane_dataplane::{http_error::HttpError, telemetry::Metrics};
use sha2::{Digest, Sha256};

/// The portal's policy: nothing but this origin, no inline script or style, no framing.
pub const PORTAL_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'; report-uri /csp-report";

/// GraphiQL's: as the portal's, except that its editor and dialogs set inline styles.
pub const GRAPHIQL_CSP: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
    report-uri /csp-report";

/// A file built into the binary.
struct Asset {
    /// Its path under `/assets/`.
    path: &'static str,
    bytes: &'static [u8],
    content_type: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            bytes: include_bytes!(concat!("../web/", $file)),
            content_type: $type,
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("portal/app.js", "app.js", JS),
    asset!("portal/graphql.js", "graphql.js", JS),
    asset!("portal/dom.js", "dom.js", JS),
    asset!("portal/pages.js", "pages.js", JS),
    asset!("portal/wizard.js", "wizard.js", JS),
    asset!("portal/buckets.js", "buckets.js", JS),
    asset!("portal/portal.css", "portal.css", CSS),
    asset!("portal/graphiql.js", "graphiql.js", JS),
    asset!("portal/favicon.svg", "favicon.svg", "image/svg+xml"),
    asset!(
        "vendor/graphiql-3.8.3/graphiql.min.js",
        "vendor/graphiql-3.8.3/graphiql.min.js",
        JS
    ),
    asset!(
        "vendor/graphiql-3.8.3/graphiql.min.css",
        "vendor/graphiql-3.8.3/graphiql.min.css",
        CSS
    ),
    asset!(
        "vendor/react-18.3.1/react.production.min.js",
        "vendor/react-18.3.1/react.production.min.js",
        JS
    ),
    asset!(
        "vendor/react-dom-18.3.1/react-dom.production.min.js",
        "vendor/react-dom-18.3.1/react-dom.production.min.js",
        JS
    ),
    asset!(
        "vendor/graphql-ws-5.16.2/graphql-ws.min.js",
        "vendor/graphql-ws-5.16.2/graphql-ws.min.js",
        JS
    ),
];

const PORTAL_PAGE: &[u8] = include_bytes!("../web/index.html");
const GRAPHIQL_PAGE: &[u8] = include_bytes!("../web/graphiql.html");

/// Each asset's entity tag (the start of its SHA-256), computed once; the pages' below.
static ETAGS: LazyLock<Vec<HeaderValue>> =
    LazyLock::new(|| ASSETS.iter().map(|asset| etag(asset.bytes)).collect());
static PORTAL_ETAG: LazyLock<HeaderValue> = LazyLock::new(|| etag(PORTAL_PAGE));
static GRAPHIQL_ETAG: LazyLock<HeaderValue> = LazyLock::new(|| etag(GRAPHIQL_PAGE));

fn etag(bytes: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// Largest CSP violation report read; a browser's is well under 2 KiB.
pub const MAX_REPORT_BYTES: usize = 16 * 1024;

/// `GET /` (the portal), `GET /assets/{*path}`, and `POST /csp-report`, where browsers report
/// what the pages' policy blocked (counted in `hookplane_portal_csp_violations_total`).
pub fn routes<S: Clone + Send + Sync + 'static>(metrics: Arc<Metrics>) -> Router<S> {
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { portal_page(&headers) }))
        .route(
            "/assets/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                asset(&path, &headers)
            }),
        )
        .route(
            "/csp-report",
            post(move |body: axum::body::Body| async move {
                match axum::body::to_bytes(body, MAX_REPORT_BYTES).await {
                    Ok(body) => report(&metrics, &body),
                    Err(_) => HttpError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "REPORT_TOO_LARGE",
                        format!("a CSP report is at most {MAX_REPORT_BYTES} bytes"),
                    )
                    .into_response(),
                }
            }),
        )
}

/// One violation report (the `application/csp-report` form of `report-uri`, or the
/// Reporting API's list): counted and logged with what was blocked, cut short; anything else
/// is refused. Reports come from any browser, so nothing in one is trusted or kept.
fn report(metrics: &Metrics, body: &[u8]) -> Response {
    let Ok(report) = serde_json::from_slice::<serde_json::Value>(body) else {
        return HttpError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_REPORT",
            "a CSP report is a JSON document",
        )
        .into_response();
    };
    let reports: Vec<&serde_json::Value> = match &report {
        serde_json::Value::Array(list) => list.iter().filter_map(|r| r.get("body")).collect(),
        single => single.get("csp-report").into_iter().collect(),
    };
    if reports.is_empty() {
        return HttpError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_REPORT",
            "no csp-report in the document",
        )
        .into_response();
    }
    for violation in reports {
        let text = |names: [&str; 2]| -> String {
            names
                .iter()
                .find_map(|name| violation.get(*name).and_then(|v| v.as_str()))
                .unwrap_or("")
                .chars()
                .take(200)
                .collect()
        };
        metrics.csp_violations.inc();
        tracing::info!(
            directive = %text(["effective-directive", "effectiveDirective"]),
            blocked = %text(["blocked-uri", "blockedURL"]),
            page = %text(["document-uri", "documentURL"]),
            "the portal's Content-Security-Policy blocked something"
        );
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The portal's single page.
pub fn portal_page(headers: &HeaderMap) -> Response {
    page(PORTAL_PAGE, &PORTAL_ETAG, PORTAL_CSP, headers)
}

/// GraphiQL (`GET /graphql`).
pub fn graphiql_page(headers: &HeaderMap) -> Response {
    page(GRAPHIQL_PAGE, &GRAPHIQL_ETAG, GRAPHIQL_CSP, headers)
}

fn page(
    bytes: &'static [u8],
    tag: &HeaderValue,
    csp: &'static str,
    headers: &HeaderMap,
) -> Response {
    let mut response = cached(bytes, "text/html; charset=utf-8", tag, false, headers);
    let answer = response.headers_mut();
    answer.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    answer.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    answer.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn asset(path: &str, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|asset| asset.path == path) else {
        return HttpError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such asset").into_response();
    };
    let asset = &ASSETS[index];
    let immutable = asset.path.starts_with("vendor/");
    cached(
        asset.bytes,
        asset.content_type,
        &ETAGS[index],
        immutable,
        headers,
    )
}

/// The file, or `304 Not Modified` when the client holds this version. Vendored files carry
/// their version in their path, so they never change: cached for a year.
fn cached(
    bytes: &'static [u8],
    content_type: &'static str,
    tag: &HeaderValue,
    immutable: bool,
    headers: &HeaderMap,
) -> Response {
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (header::ETAG, tag.clone()),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|held| held.as_bytes() == tag.as_bytes());
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendored files are the ones `api/web/vendor/README.md` records, byte for byte.
    #[test]
    fn vendored_assets_match_their_recorded_hashes() {
        let readme = include_str!("../web/vendor/README.md");
        let vendored: Vec<&Asset> = ASSETS
            .iter()
            .filter(|asset| asset.path.starts_with("vendor/"))
            .collect();
        assert_eq!(vendored.len(), 5);
        for asset in vendored {
            let hex: String = Sha256::digest(asset.bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let (_, file) = asset.path.rsplit_once('/').unwrap_or_default();
            let row = readme
                .lines()
                .find(|line| line.contains(&hex))
                .unwrap_or_else(|| panic!("{} ({hex}) is not in the vendor README", asset.path));
            assert!(row.contains(file), "{row} names {file}");
        }
    }

    #[test]
    fn every_asset_the_pages_load_is_served() {
        let pages = [
            std::str::from_utf8(PORTAL_PAGE).unwrap_or_default(),
            std::str::from_utf8(GRAPHIQL_PAGE).unwrap_or_default(),
        ];
        for page in pages {
            for reference in page.split("\"/assets/").skip(1) {
                let path = reference.split('"').next().unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|asset| asset.path == path),
                    "{path} is referenced but not built in"
                );
            }
        }
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).unwrap_or_default();
            if !asset.path.starts_with("portal/") {
                continue;
            }
            for import in text.split("from \"./").skip(1) {
                let file = import.split('"').next().unwrap_or_default();
                let path = format!("portal/{file}");
                assert!(
                    ASSETS.iter().any(|asset| asset.path == path),
                    "{} imports {path}, which is not built in",
                    asset.path
                );
            }
        }
    }
}
