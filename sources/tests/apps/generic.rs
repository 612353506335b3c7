//! Generic sources: Standard Webhooks, configurable HMAC, token, Basic, Bearer, none.

use hookplane_sources::{app, validate_source, verify};
use serde_json::json;

use crate::support::{Req, at, config, events, rejected, run};

// The Standard Webhooks reference vector ("sign function works"):
// standard-webhooks/standard-webhooks libraries/javascript/src/webhook.test.ts.
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SW_TS: u64 = 1_614_265_330;
const SW_BODY: &str = r#"{"test": 2432232314}"#;
const SW_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn standard_delivery(signature: &str) -> Req {
    Req::new(SW_BODY)
        .json()
        .header("webhook-id", SW_ID)
        .header("webhook-timestamp", &SW_TS.to_string())
        .header("webhook-signature", signature)
}

fn standard_config(secret: &str) -> hookplane_sources::VerifierConfig {
    config(secret, |s| s.scheme = Some("standardWebhooks".into()))
}

#[test]
fn standard_webhooks_reference_vector() {
    let events = events(run(
        "generic",
        &standard_delivery(SW_SIGNATURE),
        &standard_config(SW_SECRET),
        at(SW_TS),
    ));
    assert_eq!(events[0].dedupe_key(), format!("webhook-id:{SW_ID}"));
    assert_eq!(*events[0].payload(), json!({"test": 2432232314_u64}));
    // The prefix is optional (library test "verification works with and without signature prefix").
    let unprefixed = standard_config("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert!(
        run(
            "generic",
            &standard_delivery(SW_SIGNATURE),
            &unprefixed,
            at(SW_TS)
        )
        .is_ok()
    );
}

#[test]
fn standard_webhooks_library_negative_cases() {
    let cfg = standard_config(SW_SECRET);
    // "multi sig payload is valid": other versions and wrong v1 entries around the valid one.
    let multi = format!(
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {SW_SIGNATURE} v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    );
    assert!(run("generic", &standard_delivery(&multi), &cfg, at(SW_TS)).is_ok());
    // "invalid signature", "partial signature" and an entry of another version only.
    for signature in [
        "v1,dawfeoifkpqwoekfpqoekf",
        &SW_SIGNATURE[..8],
        "v1,",
        "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ] {
        let req = standard_delivery(signature);
        let err = rejected(run("generic", &req, &cfg, at(SW_TS)), &req, SW_SECRET);
        assert!(
            matches!(err.code, "SIGNATURE_MISMATCH" | "SIGNATURE_MALFORMED"),
            "{signature}"
        );
    }
    let req = standard_delivery(SW_SIGNATURE);
    for now in [SW_TS - 301, SW_TS + 301] {
        assert_eq!(
            rejected(run("generic", &req, &cfg, at(now)), &req, SW_SECRET).code,
            "TIMESTAMP_OUT_OF_TOLERANCE"
        );
    }
    let bad_ts = req.clone().header("webhook-timestamp", "hello");
    assert_eq!(
        rejected(run("generic", &bad_ts, &cfg, at(SW_TS)), &bad_ts, SW_SECRET).code,
        "TIMESTAMP_INVALID"
    );
    let tampered = req.clone().body(r#"{"test": 2432232315}"#);
    assert_eq!(
        rejected(
            run("generic", &tampered, &cfg, at(SW_TS)),
            &tampered,
            SW_SECRET
        )
        .code,
        "SIGNATURE_MISMATCH"
    );
    let not_base64 = standard_config("whsec_%%%");
    let err = run("generic", &req, &not_base64, at(SW_TS)).unwrap_err();
    assert_eq!((err.status.as_u16(), err.code), (500, "SECRET_INVALID"));
}

// GitHub's documented test values for signature validation: secret "It's a Secret to
// Everybody", payload "Hello, World!", X-Hub-Signature-256
// sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17
// (https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries).
#[test]
fn generic_hmac_with_prefix_and_hex() {
    let cfg = config("It's a Secret to Everybody", |s| {
        s.scheme = Some("hmac".into());
        s.header = Some("X-Hub-Signature-256".into());
        s.prefix = Some("sha256=".into());
    });
    let req = Req::new("Hello, World!").header(
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    );
    let generic = app("generic").expect("in catalog");
    assert!(verify(generic, req.incoming(), &cfg, at(0)).is_ok());
    let unprefixed = req.clone().header(
        "X-Hub-Signature-256",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    );
    assert_eq!(
        verify(generic, unprefixed.incoming(), &cfg, at(0))
            .unwrap_err()
            .code(),
        "SIGNATURE_MALFORMED"
    );
    let tampered = req.clone().body("Hello, World?");
    assert_eq!(
        verify(generic, tampered.incoming(), &cfg, at(0))
            .unwrap_err()
            .code(),
        "SIGNATURE_MISMATCH"
    );
    // Several signatures in the header (sender-side rotation): one must match.
    let rotated = req.clone().header(
        "X-Hub-Signature-256",
        "sha256=00, sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    );
    assert!(verify(generic, rotated.incoming(), &cfg, at(0)).is_ok());
}

#[test]
fn generic_requires_an_explicit_scheme_and_complete_fields() {
    let generic = app("generic").expect("in catalog");
    let check = |edit: fn(&mut hookplane_crds::VerificationSpec)| {
        let cfg = config("s", edit);
        generic.validate(&cfg.spec).map_err(|e| e.code())
    };
    assert_eq!(check(|s| s.scheme = None), Err("SCHEME_REQUIRED"));
    assert_eq!(
        check(|s| s.scheme = Some("hmac".into())),
        Err("VERIFICATION_FIELD_REQUIRED")
    );
    assert_eq!(
        check(|s| {
            s.scheme = Some("hmac".into());
            s.header = Some("x-sig".into());
            s.signed_content = Some("{timestamp}".into());
        }),
        Err("INVALID_SIGNED_CONTENT")
    );
    assert_eq!(
        check(|s| {
            s.scheme = Some("hmac".into());
            s.header = Some("bad header".into());
        }),
        Err("INVALID_HEADER_NAME")
    );
    assert_eq!(
        check(|s| s.scheme = Some("basic".into())),
        Err("VERIFICATION_FIELD_REQUIRED")
    );
    assert_eq!(
        check(|s| s.scheme = Some("token".into())),
        Err("VERIFICATION_FIELD_REQUIRED")
    );
    assert_eq!(
        check(|s| s.scheme = Some("magic".into())),
        Err("INVALID_VERIFICATION_VALUE")
    );
    assert_eq!(check(|s| s.scheme = Some("none".into())), Ok(()));

    let source = hookplane_crds::SourceSpec {
        app: "generic".into(),
        endpoint: "orders".into(),
        ..Default::default()
    };
    assert_eq!(
        validate_source(&source).unwrap_err().code(),
        "SCHEME_REQUIRED"
    );
    let unknown = hookplane_crds::SourceSpec {
        app: "magento".into(),
        ..source
    };
    assert_eq!(
        validate_source(&unknown).unwrap_err().code(),
        "UNKNOWN_SOURCE_APP"
    );
}

#[test]
fn generic_none_basic_bearer_and_id_header() {
    let none = config("s", |s| {
        s.scheme = Some("none".into());
        s.id_header = Some("X-Delivery".into());
    });
    let req = Req::new(r#"{"a":1}"#).json().header("X-Delivery", "d-1");
    assert_eq!(
        events(run("generic", &req, &none, at(0)))[0].dedupe_key(),
        "id:d-1"
    );

    let basic = config("open sesame", |s| {
        s.scheme = Some("basic".into());
        s.username = Some("Aladdin".into());
    });
    // RFC 7617's example credentials.
    let authed = req
        .clone()
        .header("Authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    assert!(run("generic", &authed, &basic, at(0)).is_ok());
    assert_eq!(
        rejected(run("generic", &req, &basic, at(0)), &req, "open sesame").code,
        "CREDENTIALS_MISSING"
    );

    let bearer = config("tok", |s| s.scheme = Some("bearer".into()));
    assert!(
        run(
            "generic",
            &req.clone().header("Authorization", "Bearer tok"),
            &bearer,
            at(0)
        )
        .is_ok()
    );
    let wrong = req.clone().header("Authorization", "Bearer tok2");
    assert_eq!(
        rejected(run("generic", &wrong, &bearer, at(0)), &wrong, "tok").code,
        "CREDENTIALS_MISMATCH"
    );
}

#[test]
fn apps_info_lists_fields_for_the_portal() {
    for app in hookplane_sources::catalog() {
        let info = app.info();
        assert!(!info.display_name.is_empty());
        let json = serde_json::to_value(&info).expect("serializable");
        assert!(json["fields"].is_array(), "{}", info.id);
    }
    let shopify = app("shopify").expect("in catalog").info();
    assert!(
        shopify
            .fields
            .iter()
            .any(|f| f.name == "secretRef" && f.required)
    );
    let salesforce = app("salesforce").expect("in catalog").info();
    assert!(
        salesforce
            .fields
            .iter()
            .any(|f| f.name == "orgId" && f.required)
    );
}
