//! OpenID Connect: JWTs from a configured issuer, verified against keys this test generates
//! and serves as a real JWKS (and discovery document) over HTTP.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::get};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use ring::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use serde_json::{Value, json};

use crate::{
    flows, on_both_backends,
    support::{Backend, Server, Subscription, gql_ok, post_as},
};

on_both_backends!(jwts_from_the_configured_issuer_map_to_roles_and_nothing_else_passes);

const AUDIENCE: &str = "hookplane";

/// A P-256 key: the signing key and its public JWK.
struct Key {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl Key {
    fn generate(kid: &str) -> Self {
        use base64::Engine;
        let random = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random).expect("a key");
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random)
                .expect("a key pair");
        // An uncompressed point: 0x04, x, y.
        let point = pair.public_key().as_ref();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": b64.encode(&point[1..33]), "y": b64.encode(&point[33..65]),
            }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.encoding).expect("a JWT")
    }
}

/// The issuer: a discovery document and the JWKS, whose keys the test swaps.
#[derive(Clone)]
struct Issuer {
    address: SocketAddr,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<Mutex<usize>>,
}

impl Issuer {
    async fn start(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = Self {
            address: listener.local_addr().expect("an address"),
            keys: Arc::new(Mutex::new(keys)),
            fetches: Arc::default(),
        };
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|State(issuer): State<Issuer>| async move {
                    Json(json!({ "issuer": issuer.url(), "jwks_uri": format!("{}/jwks", issuer.url()) }))
                }),
            )
            .route(
                "/jwks",
                get(|State(issuer): State<Issuer>| async move {
                    *issuer.fetches.lock().expect("not poisoned") += 1;
                    let keys = issuer.keys.lock().expect("not poisoned").clone();
                    Json(json!({ "keys": keys }))
                }),
            )
            .with_state(issuer.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        issuer
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn fetches(&self) -> usize {
        *self.fetches.lock().expect("not poisoned")
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn code_of(server: &Server, token: &str, query: &str) -> (u16, String) {
    let (status, body) = post_as(server, token, query, &json!({})).await;
    let code = body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    (status, code)
}

async fn jwts_from_the_configured_issuer_map_to_roles_and_nothing_else_passes(backend: Backend) {
    let key = Key::generate("k1");
    let issuer = Issuer::start(vec![key.jwk.clone()]).await;
    let server = Server::start_with(
        &backend,
        &[
            "--oidc-issuer",
            &issuer.url(),
            "--oidc-audience",
            AUDIENCE,
            "--oidc-jwks-min-refresh-seconds",
            "1",
        ],
    )
    .await;
    let connection = flows::connection(&server).await;
    let claims = |sub: &str, roles: Value, exp: i64| json!({ "iss": issuer.url(), "aud": AUDIENCE, "sub": sub, "iat": now(), "exp": exp, "hookplane_roles": roles });
    let hour = now() + 3600;

    // An admin of acme (object form) sees and changes acme, as itself in the audit log.
    let alice = key.sign(&claims("alice", json!({ "acme": "admin" }), hour));
    let (status, body) =
        post_as(&server, &alice, "{ viewer connections { id } }", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["viewer"], "oidc:alice", "{body}");
    assert_eq!(body["data"]["connections"][0]["id"], json!(connection));
    let (status, body) = post_as(
        &server,
        &alice,
        "mutation { setConnectionPaused(id: \"CONNECTION\", paused: true) { paused } }"
            .replace("CONNECTION", &connection)
            .as_str(),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["setConnectionPaused"]["paused"], true,
        "{body}"
    );
    let audit = gql_ok(
        &server,
        "{ auditLog { edges { node { actor action } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        audit["auditLog"]["edges"][0]["node"],
        json!({ "actor": "oidc:alice", "action": "setConnectionPaused" })
    );

    // A viewer (list form) reads but does not change; another organization's role sees none.
    let victor = key.sign(&claims("victor", json!(["acme:viewer"]), hour));
    let (_, body) = post_as(&server, &victor, "{ connections { id } }", &json!({})).await;
    assert_eq!(body["data"]["connections"][0]["id"], json!(connection));
    let resume = format!(
        "mutation {{ setConnectionPaused(id: \"{connection}\", paused: false) {{ paused }} }}"
    );
    assert_eq!(
        code_of(&server, &victor, &resume).await,
        (200, "FORBIDDEN".to_owned())
    );
    let outsider = key.sign(&claims("olga", json!({ "elsewhere": "admin" }), hour));
    let (_, body) = post_as(&server, &outsider, "{ connections { id } }", &json!({})).await;
    assert_eq!(body["data"]["connections"], json!([]), "{body}");
    assert_eq!(
        code_of(&server, &outsider, &resume).await.1,
        "CONNECTION_NOT_FOUND"
    );

    // Refused with UNAUTHENTICATED: another issuer, another audience, expired, no expiry,
    // signed by a key the issuer does not have (under its kid), HMAC with the public key
    // as the secret (algorithm confusion), `alg: none`, and garbage.
    let stranger = Key::generate("k1");
    let mut wrong_issuer = claims("mallory", json!({ "acme": "admin" }), hour);
    wrong_issuer["iss"] = json!("https://evil.example");
    let mut wrong_audience = claims("mallory", json!({ "acme": "admin" }), hour);
    wrong_audience["aud"] = json!("someone-else");
    let mut no_expiry = claims("mallory", json!({ "acme": "admin" }), hour);
    no_expiry.as_object_mut().expect("an object").remove("exp");
    let hmac = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".to_owned());
        let secret = key.jwk.to_string();
        encode(
            &header,
            &claims("mallory", json!({ "acme": "admin" }), hour),
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("a JWT")
    };
    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(json!({ "alg": "none", "kid": "k1" }).to_string());
        let body = b64.encode(claims("mallory", json!({ "acme": "admin" }), hour).to_string());
        format!("{header}.{body}.")
    };
    let refused = [
        ("another issuer", key.sign(&wrong_issuer)),
        ("another audience", key.sign(&wrong_audience)),
        (
            "expired",
            key.sign(&claims("mallory", json!({ "acme": "admin" }), now() - 120)),
        ),
        ("no expiry", key.sign(&no_expiry)),
        (
            "a stranger's key",
            stranger.sign(&claims("mallory", json!({ "acme": "admin" }), hour)),
        ),
        ("HS256 with the public key", hmac),
        ("alg none", unsigned),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (what, token) in refused {
        assert_eq!(
            code_of(&server, &token, "{ viewer }").await,
            (401, "UNAUTHENTICATED".to_owned()),
            "{what}"
        );
    }

    // Key rotation: a token under a new kid makes the server fetch the keys again.
    let rotated = Key::generate("k2");
    issuer
        .keys
        .lock()
        .expect("not poisoned")
        .push(rotated.jwk.clone());
    let before = issuer.fetches();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let bob = rotated.sign(&claims("bob", json!({ "acme": "viewer" }), hour));
    let (status, body) = post_as(&server, &bob, "{ viewer }", &json!({})).await;
    assert_eq!(
        (status, &body["data"]["viewer"]),
        (200, &json!("oidc:bob")),
        "{body}"
    );
    assert_eq!(issuer.fetches(), before + 1);
    // Made-up kids do not make it fetch again and again.
    for i in 0..20 {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(format!("made-up-{i}"));
        let token =
            encode(&header, &claims("mallory", json!({}), hour), &key.encoding).expect("a JWT");
        assert_eq!(code_of(&server, &token, "{ viewer }").await.0, 401);
    }
    assert!(
        issuer.fetches() <= before + 2,
        "fetched {} times",
        issuer.fetches() - before
    );

    // A subscription over WebSocket with a JWT ends when the JWT expires.
    let touchpoint = flows::published_touchpoint(
        &server,
        &connection,
        "oidc-live",
        json!({
            "destination": { "url": "http://127.0.0.1:9/x" },
        }),
    )
    .await;
    // Nine to ten seconds to live (`exp` is in whole seconds): long enough for the
    // subscription and a webhook's log entry on a loaded CI machine (three, then six seconds
    // were not: under the whole suite beside the browser test, the first entry once took more
    // than five), short enough to watch it end.
    let signed = std::time::Instant::now();
    let short = key.sign(&claims("carol", json!({ "acme": "viewer" }), now() + 10));
    let mut subscription = Subscription::start_as(
        &server,
        &short,
        "graphql-transport-ws",
        "subscription($id: ID!) { logBucket(touchpointId: $id) { message } }",
        json!({ "id": touchpoint }),
    )
    .await;
    // It is live: a webhook's log entry arrives. It listens from when the server first polls
    // it, which the protocol does not announce (a webhook sent at once can be earlier under
    // load), so webhooks go until one's entry arrives.
    let client = reqwest::Client::new();
    let mut sent = 0;
    let first = loop {
        sent += 1;
        let (status, _) =
            flows::post_webhook(&client, &server, "oidc-live", &json!({ "id": sent })).await;
        assert_eq!(status, 200);
        if let Ok(item) =
            tokio::time::timeout(Duration::from_millis(500), subscription.items.recv()).await
        {
            break item;
        }
        assert!(sent < 16, "no entry within {sent} webhooks");
    };
    assert!(first.is_some(), "the subscription is live");
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while subscription.items.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the subscription outlived its JWT");
    assert!(
        signed.elapsed() >= Duration::from_millis(8500),
        "ended after {:?}, before its JWT expired",
        signed.elapsed()
    );
    server.stop().await;
}
