//! Shopify, WooCommerce, BigCommerce, Shift4Shop and PrestaShop.

use hookplane_sources::{Ack, Received, app, verify};
use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Req, at, config, events, fixture, rejected, run, spec_with_secrets};

// Shopify's own library test: body `{"foo": "bar"}`, secret `test_secret_key` (testConfig's
// apiSecretKey), expected HMAC `B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=`, headers from
// its `headers()` helper. Shopify/shopify-app-js:
// packages/apps/shopify-api/lib/webhooks/__tests__/validate.test.ts, __tests__/utils.ts,
// lib/__tests__/test-config.ts.
const SHOPIFY_BODY: &str = r#"{"foo": "bar"}"#;
const SHOPIFY_SECRET: &str = "test_secret_key";
const SHOPIFY_HMAC: &str = "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=";

fn shopify_delivery() -> Req {
    Req::new(SHOPIFY_BODY)
        .json()
        .header("X-Shopify-Hmac-Sha256", SHOPIFY_HMAC)
        .header("X-Shopify-Topic", "products/create")
        .header("X-Shopify-API-Version", "2023-01")
        .header("X-Shopify-Shop-Domain", "shop1.myshopify.io")
        .header("X-Shopify-Webhook-Id", "123456789")
}

#[test]
fn shopify_accepts_its_library_vector() {
    let cfg = config(SHOPIFY_SECRET, |_| {});
    let events = events(run("shopify", &shopify_delivery(), &cfg, at(0)));
    assert_eq!(events.len(), 1);
    assert_eq!(*events[0].payload(), json!({"foo": "bar"}));
    assert_eq!(events[0].dedupe_key(), "shopify-webhook:123456789");
    assert_eq!(events[0].topic(), Some("products/create"));
}

#[test]
fn shopify_accepts_lowercase_and_event_header_names() {
    // The `shopify-*` names of Shopify's event deliveries (header-names.ts, WebhookType.Events).
    let req = Req::new(SHOPIFY_BODY)
        .json()
        .header("shopify-hmac-sha256", SHOPIFY_HMAC)
        .header("shopify-topic", "products/create")
        .header("shopify-event-id", "evt-1");
    let events = events(run("shopify", &req, &config(SHOPIFY_SECRET, |_| {}), at(0)));
    assert_eq!(
        events[0].dedupe_key(),
        "shopify-event:products/create:evt-1"
    );
}

#[test]
fn shopify_accepts_the_previous_secret_during_rotation() {
    // HMAC of the same body with the old secret, computed with
    // `openssl dgst -sha256 -hmac old_secret_key -binary | base64`.
    let req = shopify_delivery().header(
        "X-Shopify-Hmac-Sha256",
        "uMQ9IwY+rkVOYSphRfwahvy6zgeYMk8r9uGiv9kFpP0=",
    );
    let (spec, secrets) = spec_with_secrets("new_secret_key", Some("old_secret_key"));
    let cfg = hookplane_sources::VerifierConfig::new(spec, secrets);
    assert_eq!(events(run("shopify", &req, &cfg, at(0))).len(), 1);
    let (spec, secrets) = spec_with_secrets("new_secret_key", None);
    let without_previous = hookplane_sources::VerifierConfig::new(spec, secrets);
    let err = rejected(
        run("shopify", &req, &without_previous, at(0)),
        &req,
        "new_secret_key",
    );
    assert_eq!(err.code, "SIGNATURE_MISMATCH");
}

#[test]
fn shopify_rejects_wrong_secret_tampered_body_and_missing_header() {
    let req = shopify_delivery();
    let err = rejected(
        run("shopify", &req, &config("other", |_| {}), at(0)),
        &req,
        "other",
    );
    assert_eq!(
        (err.status, err.code),
        (StatusCode::UNAUTHORIZED, "SIGNATURE_MISMATCH")
    );

    let tampered = shopify_delivery().body(r#"{"foo": "baz"}"#);
    let cfg = config(SHOPIFY_SECRET, |_| {});
    let err = rejected(
        run("shopify", &tampered, &cfg, at(0)),
        &tampered,
        SHOPIFY_SECRET,
    );
    assert_eq!(err.code, "SIGNATURE_MISMATCH");

    let unsigned = shopify_delivery().without("x-shopify-hmac-sha256");
    let err = rejected(
        run("shopify", &unsigned, &cfg, at(0)),
        &unsigned,
        SHOPIFY_SECRET,
    );
    assert_eq!(err.code, "SIGNATURE_MISSING");
    let reply = app("shopify").expect("in catalog").reject(&err);
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_slice(&reply.body).expect("JSON error body");
    assert_eq!(body["code"], "SIGNATURE_MISSING");
}

#[test]
fn shopify_without_a_secret_cannot_publish_or_verify() {
    let spec = hookplane_crds::VerificationSpec::default();
    let err = app("shopify")
        .expect("in catalog")
        .validate(&spec)
        .unwrap_err();
    assert_eq!(err.code(), "SECRET_REQUIRED");
    let cfg = hookplane_sources::VerifierConfig::new(spec, Default::default());
    let err = run("shopify", &shopify_delivery(), &cfg, at(0)).unwrap_err();
    assert_eq!(
        (err.status, err.code),
        (StatusCode::INTERNAL_SERVER_ERROR, "SECRET_REQUIRED")
    );
}

// The body is a WooCommerce REST v3 order as `WC_Webhook::deliver` sends it: `wp_json_encode`
// output, which escapes `/`. The signature is `WC_Webhook::generate_signature`:
// base64(hash_hmac('sha256', body, secret, true)), woocommerce/woocommerce
// plugins/woocommerce/includes/class-wc-webhook.php; computed here with
// `openssl dgst -sha256 -hmac wc_secret_d6c3 -binary | base64`.
const WC_SECRET: &str = "wc_secret_d6c3";
const WC_SIGNATURE: &str = "lsHixY6YkBFwcw/Yuqde7cvRfM44jHeB+E7d2E4kN/M=";

fn woocommerce_delivery() -> Req {
    Req::new(fixture("woocommerce_order_created.json"))
        .json()
        .header("X-WC-Webhook-Source", "https://example.com/")
        .header("X-WC-Webhook-Topic", "order.created")
        .header("X-WC-Webhook-Resource", "order")
        .header("X-WC-Webhook-Event", "created")
        .header("X-WC-Webhook-Signature", WC_SIGNATURE)
        .header("X-WC-Webhook-ID", "12")
        .header("X-WC-Webhook-Delivery-ID", "a5b1c7f3d0e2")
}

#[test]
fn woocommerce_accepts_raw_bytes_with_escaped_slashes() {
    let cfg = config(WC_SECRET, |_| {});
    let events = events(run("woocommerce", &woocommerce_delivery(), &cfg, at(0)));
    assert_eq!(events[0].dedupe_key(), "wc-delivery:a5b1c7f3d0e2");
    assert_eq!(events[0].topic(), Some("order.created"));
    assert_eq!(
        events[0].payload()["_links"]["self"][0]["href"],
        "https://example.com/wp-json/wc/v3/orders/727"
    );
}

#[test]
fn woocommerce_rejects_a_reserialized_body() {
    // The same JSON without `\/` escapes is a different byte string: it must not verify.
    let original: Value = serde_json::from_slice(&fixture("woocommerce_order_created.json"))
        .expect("fixture is JSON");
    let req = woocommerce_delivery().body(original.to_string());
    let cfg = config(WC_SECRET, |_| {});
    let err = rejected(run("woocommerce", &req, &cfg, at(0)), &req, WC_SECRET);
    assert_eq!(err.code, "SIGNATURE_MISMATCH");
}

#[test]
fn woocommerce_ping_gets_200_and_no_event() {
    // `WC_Webhook::deliver_ping`: body `webhook_id=<id>`, no X-WC-Webhook-* headers.
    let ping = Req::new("webhook_id=12").form();
    let cfg = config(WC_SECRET, |_| {});
    assert_eq!(run("woocommerce", &ping, &cfg, at(0)), Ok(Received::Ping));
    let reply = app("woocommerce")
        .expect("in catalog")
        .acknowledge(&Ack::Ping);
    assert_eq!(reply.status, StatusCode::OK);

    // A ping-shaped body with a (wrong) signature is a delivery and is verified.
    let signed = ping.clone().header("X-WC-Webhook-Signature", WC_SIGNATURE);
    let err = rejected(run("woocommerce", &signed, &cfg, at(0)), &signed, WC_SECRET);
    assert_eq!(err.code, "SIGNATURE_MISMATCH");
    // Anything else unsigned fails.
    let unsigned = woocommerce_delivery().without("x-wc-webhook-signature");
    let err = rejected(
        run("woocommerce", &unsigned, &cfg, at(0)),
        &unsigned,
        WC_SECRET,
    );
    assert_eq!(err.code, "SIGNATURE_MISSING");
}

// BigCommerce's documented callback for `store/order/created`
// (https://developer.bigcommerce.com/docs/integrations/webhooks/events, "Callback payloads"),
// signed the Standard Webhooks way with the client secret as key:
// `printf 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W.1614265330.<body>' |
//  openssl dgst -sha256 -hmac bc-client-secret-4f8a -binary | base64`.
const BC_SECRET: &str = "bc-client-secret-4f8a";
const BC_ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
const BC_TS: u64 = 1_614_265_330;
const BC_SIGNATURE: &str = "v1,Cc2P7kSrmF2tqBIIDMu//ukQU9YhXsi2GjEoD3XshlA=";

fn bigcommerce_delivery(prefix: &str) -> Req {
    Req::new(fixture("bigcommerce_order_created.json"))
        .json()
        .header(&format!("{prefix}-id"), BC_ID)
        .header(&format!("{prefix}-timestamp"), &BC_TS.to_string())
        .header(&format!("{prefix}-signature"), BC_SIGNATURE)
}

#[test]
fn bigcommerce_accepts_standard_webhooks_signature_with_client_secret() {
    let cfg = config(BC_SECRET, |_| {});
    let events = events(run(
        "bigcommerce",
        &bigcommerce_delivery("webhook"),
        &cfg,
        at(BC_TS),
    ));
    assert_eq!(events[0].dedupe_key(), format!("webhook-id:{BC_ID}"));
    assert_eq!(events[0].topic(), Some("store/order/created"));
    assert_eq!(
        events[0].payload()["data"],
        json!({"type": "order", "id": 250})
    );
    // svix-* names and the whsec_ form of the same key.
    let whsec = format!("whsec_{}", base64_of(BC_SECRET));
    let cfg = config(&whsec, |_| {});
    assert!(
        run(
            "bigcommerce",
            &bigcommerce_delivery("svix"),
            &cfg,
            at(BC_TS + 60)
        )
        .is_ok()
    );
}

#[test]
fn bigcommerce_rejects_stale_timestamps_unless_tolerance_allows() {
    let req = bigcommerce_delivery("webhook");
    let cfg = config(BC_SECRET, |_| {});
    let err = rejected(
        run("bigcommerce", &req, &cfg, at(BC_TS + 301)),
        &req,
        BC_SECRET,
    );
    assert_eq!(err.code, "TIMESTAMP_OUT_OF_TOLERANCE");
    let err = rejected(
        run("bigcommerce", &req, &cfg, at(BC_TS - 301)),
        &req,
        BC_SECRET,
    );
    assert_eq!(err.code, "TIMESTAMP_OUT_OF_TOLERANCE");
    let lenient = config(BC_SECRET, |s| s.tolerance_seconds = Some(600));
    assert!(run("bigcommerce", &req, &lenient, at(BC_TS + 301)).is_ok());
}

#[test]
fn bigcommerce_rejects_wrong_secret_and_missing_headers() {
    let req = bigcommerce_delivery("webhook");
    let err = rejected(
        run("bigcommerce", &req, &config("x", |_| {}), at(BC_TS)),
        &req,
        "x",
    );
    assert_eq!(err.code, "SIGNATURE_MISMATCH");
    let cfg = config(BC_SECRET, |_| {});
    for (header, code) in [
        ("webhook-id", "SIGNATURE_MISSING"),
        ("webhook-timestamp", "TIMESTAMP_MISSING"),
        ("webhook-signature", "SIGNATURE_MISSING"),
    ] {
        let req = bigcommerce_delivery("webhook").without(header);
        assert_eq!(
            rejected(run("bigcommerce", &req, &cfg, at(BC_TS)), &req, BC_SECRET).code,
            code
        );
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

// Shift4Shop posts the order records unsigned; the shape follows the Orders object of its REST
// API (https://apirest.3dcart.com/v1/orders/index.html). The token travels in the URL.
#[test]
fn shift4shop_token_in_url_or_header() {
    let req = Req::new(fixture("shift4shop_new_order.json"))
        .json()
        .query("token=s4-secret");
    let cfg = config("s4-secret", |_| {});
    let events = events(run("shift4shop", &req, &cfg, at(0)));
    assert_eq!(events[0].payload()[0]["OrderID"], 1);
    assert!(events[0].dedupe_key().starts_with("sha256:"));

    let wrong = req.clone().query("token=guess");
    assert_eq!(
        rejected(run("shift4shop", &wrong, &cfg, at(0)), &wrong, "s4-secret").code,
        "TOKEN_MISMATCH"
    );
    let missing = req.clone().query("other=1");
    assert_eq!(
        rejected(
            run("shift4shop", &missing, &cfg, at(0)),
            &missing,
            "s4-secret"
        )
        .code,
        "TOKEN_MISSING"
    );

    let in_header = Req::new(fixture("shift4shop_new_order.json"))
        .json()
        .header("X-Hook-Token", "s4-secret");
    let cfg = config("s4-secret", |s| s.header = Some("X-Hook-Token".into()));
    assert!(run("shift4shop", &in_header, &cfg, at(0)).is_ok());
    // With a header configured the URL token is not consulted.
    assert!(run("shift4shop", &req, &cfg, at(0)).is_err());
}

#[test]
fn shift4shop_hmac_option() {
    // `openssl dgst -sha256 -hmac s4-secret < shift4shop_new_order.json`
    let req = Req::new(fixture("shift4shop_new_order.json"))
        .json()
        .header(
            "X-Signature",
            "5f594b6de4da7d6d7e225e2984d1012b9e7545604806077f55d0847997d62cc3",
        );
    let cfg = config("s4-secret", |s| {
        s.scheme = Some("hmac".into());
        s.header = Some("X-Signature".into());
    });
    assert!(run("shift4shop", &req, &cfg, at(0)).is_ok());
    let tampered = req.clone().body(b"[]".to_vec());
    assert_eq!(
        rejected(
            run("shift4shop", &tampered, &cfg, at(0)),
            &tampered,
            "s4-secret"
        )
        .code,
        "SIGNATURE_MISMATCH"
    );
}

// `ps_webhooks` posts json_encode(['action' => …, 'entity' => …, 'data' => get_object_vars($object)])
// (prestaalba/ps_webhooks, ps_webhooks.php, executeUrl).
#[test]
fn prestashop_token_and_topic() {
    let req = Req::new(fixture("prestashop_product_update.json"))
        .json()
        .query("token=ps-secret");
    let events = events(run("prestashop", &req, &config("ps-secret", |_| {}), at(0)));
    assert_eq!(events[0].topic(), Some("Product.update"));
    assert_eq!(events[0].payload()["data"]["reference"], "demo_19");
}

#[test]
fn prestashop_hmac_with_timestamp_template() {
    // `printf '1614265330.<body>' | openssl dgst -sha1 -hmac ps-secret -binary | base64`
    let req = Req::new(fixture("prestashop_product_update.json"))
        .json()
        .header("X-PS-Signature", "sha1=CU++bMmOt8kwDtdmX8/dHz7zSYI=")
        .header("X-PS-Timestamp", "1614265330");
    let cfg = config("ps-secret", |s| {
        s.scheme = Some("hmac".into());
        s.header = Some("X-PS-Signature".into());
        s.algorithm = Some("sha1".into());
        s.encoding = Some("base64".into());
        s.prefix = Some("sha1=".into());
        s.signed_content = Some("{timestamp}.{body}".into());
        s.timestamp_header = Some("X-PS-Timestamp".into());
    });
    let app = app("prestashop").expect("in catalog");
    assert!(verify(app, req.incoming(), &cfg, at(1_614_265_330)).is_ok());
    let stale = verify(app, req.incoming(), &cfg, at(1_614_265_330 + 3600)).unwrap_err();
    assert_eq!(stale.code(), "TIMESTAMP_OUT_OF_TOLERANCE");
    let no_ts = req.clone().without("x-ps-timestamp");
    assert_eq!(
        verify(app, no_ts.incoming(), &cfg, at(1_614_265_330))
            .unwrap_err()
            .code(),
        "TIMESTAMP_MISSING"
    );
}
