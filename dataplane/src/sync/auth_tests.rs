use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{
    Form, Json, Router,
    extract::State,
    http::{HeaderMap as AxumHeaders, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine as _;
use hookplane_crds::{BasicAuthSpec, CredentialSpec};
use serde_json::json;

use super::*;
use crate::sync::test_server::serve;

fn secret_ref(name: &str, key: &str) -> SecretKeyRef {
    SecretKeyRef {
        name: name.into(),
        key: key.into(),
    }
}

fn connection() -> ConnectionSpec {
    ConnectionSpec {
        name: "erp".into(),
        source_app: "generic".into(),
        destination_app: "generic".into(),
        credentials: vec![
            CredentialSpec {
                name: "api-key".into(),
                header: "X-Api-Key".into(),
                prefix: None,
                secret_key_ref: secret_ref("erp", "api-key"),
            },
            CredentialSpec {
                name: "token".into(),
                header: "Authorization".into(),
                prefix: Some("Bearer ".into()),
                secret_key_ref: secret_ref("erp", "token"),
            },
        ],
        ..ConnectionSpec::default()
    }
}

fn secrets(pairs: &[(&str, &str)]) -> impl Fn(&SecretKeyRef) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |reference| {
        map.get(&format!("{}/{}", reference.name, reference.key))
            .cloned()
    }
}

fn sent_headers(auth: &ConnectionAuth, own: HeaderMap, bearer: Option<&AccessToken>) -> HeaderMap {
    let request = auth.apply(Client::new().post("http://127.0.0.1:9/x"), own, bearer);
    request.build().expect("a valid request").headers().clone()
}

#[test]
fn credential_headers_carry_prefix_and_secret_and_stay_out_of_debug() {
    let auth = ConnectionAuth::resolve(
        &connection(),
        secrets(&[("erp/api-key", "k-123"), ("erp/token", "t-456")]),
    );
    assert!(auth.problems.is_empty(), "{:?}", auth.problems);
    let mut own = HeaderMap::new();
    own.insert("x-api-key", HeaderValue::from_static("from-the-touchpoint"));
    own.insert("x-trace", HeaderValue::from_static("1"));
    let headers = sent_headers(&auth, own, None);
    assert_eq!(
        headers["x-api-key"], "k-123",
        "credentials override touchpoint headers"
    );
    assert_eq!(headers["authorization"], "Bearer t-456");
    assert_eq!(headers["x-trace"], "1");
    assert!(headers["authorization"].is_sensitive());
    let debug = format!("{auth:?}");
    assert!(
        !debug.contains("k-123") && !debug.contains("t-456"),
        "{debug}"
    );
}

#[test]
fn missing_secrets_are_problems_that_name_the_key() {
    let mut spec = connection();
    spec.basic_auth = Some(BasicAuthSpec {
        username: "ada".into(),
        password_ref: secret_ref("erp", "password"),
    });
    let auth = ConnectionAuth::resolve(&spec, secrets(&[("erp/api-key", "k")]));
    assert_eq!(
        auth.problems,
        vec![
            "credential \"token\": the secret key erp/token does not exist".to_owned(),
            "basic auth: the secret key erp/password does not exist".to_owned(),
        ]
    );
    assert_eq!(auth.headers.len(), 1);
    assert_eq!(auth.basic, None);
}

#[test]
fn basic_auth_and_bearer_replace_any_authorization() {
    let spec = ConnectionSpec {
        basic_auth: Some(BasicAuthSpec {
            username: "ada".into(),
            password_ref: secret_ref("erp", "password"),
        }),
        ..ConnectionSpec::default()
    };
    let auth = ConnectionAuth::resolve(&spec, secrets(&[("erp/password", "s3cr:t")]));
    let mut own = HeaderMap::new();
    own.insert(AUTHORIZATION, HeaderValue::from_static("Token nope"));
    let headers = sent_headers(&auth, own.clone(), None);
    let expected = base64::engine::general_purpose::STANDARD.encode("ada:s3cr:t");
    assert_eq!(headers.get_all(AUTHORIZATION).iter().count(), 1);
    assert_eq!(headers[AUTHORIZATION], format!("Basic {expected}").as_str());
    let token = AccessToken("tok".into());
    let headers = sent_headers(&auth, own, Some(&token));
    assert_eq!(headers.get_all(AUTHORIZATION).iter().count(), 1);
    assert_eq!(headers[AUTHORIZATION], "Bearer tok");
}

/// The `Authorization` header and the form of a token request.
type TokenRequest = (Option<String>, HashMap<String, String>);

/// A token endpoint that counts requests and answers what the test set.
#[derive(Clone)]
struct TokenServer {
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<TokenRequest>>>,
    answer: Arc<Mutex<(StatusCode, serde_json::Value)>>,
    delay: Duration,
}

impl TokenServer {
    fn new(delay: Duration) -> Self {
        Self {
            hits: Arc::default(),
            seen: Arc::default(),
            answer: Arc::new(Mutex::new((
                StatusCode::OK,
                json!({"access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600}),
            ))),
            delay,
        }
    }

    fn answer(&self, status: StatusCode, body: serde_json::Value) {
        *self.answer.lock().unwrap() = (status, body);
    }

    async fn start(&self) -> OAuth2Credentials {
        async fn token(
            State(server): State<TokenServer>,
            headers: AxumHeaders,
            Form(form): Form<HashMap<String, String>>,
        ) -> Response {
            server.hits.fetch_add(1, Ordering::SeqCst);
            let authorization = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            server.seen.lock().unwrap().push((authorization, form));
            tokio::time::sleep(server.delay).await;
            let (status, body) = server.answer.lock().unwrap().clone();
            (status, Json(body)).into_response()
        }
        let base = serve(
            Router::new()
                .route("/token", post(token))
                .with_state(self.clone()),
        )
        .await;
        OAuth2Credentials {
            token_url: Url::parse(&format!("{base}/token")).unwrap(),
            client_id: "hook plane".into(),
            client_secret: SecretValue::new("s&cret"),
            scopes: vec!["orders.write".into(), "invoices".into()],
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn fetches_with_client_credentials_and_caches() {
    let server = TokenServer::new(Duration::ZERO);
    let source = TokenSource::new(server.start().await);
    let client = Client::new();
    let token = source.token(&client, TIMEOUT).await.expect("a token");
    assert_eq!(token, AccessToken("tok-1".into()));
    assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
    source.token(&client, TIMEOUT).await.expect("cached");
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    let (authorization, form) = server.seen.lock().unwrap()[0].clone();
    // RFC 6749 §2.3.1: id and secret are form-encoded before they become basic credentials.
    let expected = base64::engine::general_purpose::STANDARD.encode("hook+plane:s%26cret");
    assert_eq!(authorization, Some(format!("Basic {expected}")));
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["scope"], "orders.write invoices");
}

#[tokio::test]
async fn refreshes_before_expiry_and_after_invalidation() {
    let server = TokenServer::new(Duration::ZERO);
    server.answer(
        StatusCode::OK,
        json!({"access_token": "a", "expires_in": "1"}),
    );
    let source = TokenSource::new(server.start().await);
    let client = Client::new();
    let first = source.token(&client, TIMEOUT).await.expect("a token");
    server.answer(
        StatusCode::OK,
        json!({"access_token": "b", "expires_in": 3600}),
    );
    tokio::time::sleep(Duration::from_millis(950)).await;
    let second = source.token(&client, TIMEOUT).await.expect("refreshed");
    assert_eq!(
        second,
        AccessToken("b".into()),
        "refreshed shortly before expiry"
    );

    source.invalidate(&first).await;
    assert_eq!(
        source.token(&client, TIMEOUT).await,
        Ok(second.clone()),
        "an old token does not drop a newer one"
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    server.answer(
        StatusCode::OK,
        json!({"access_token": "c", "expires_in": 3600}),
    );
    source.invalidate(&second).await;
    let renewed = source.token(&client, TIMEOUT).await.expect("a token");
    assert_eq!(renewed, AccessToken("c".into()));
    assert_eq!(server.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn one_fetch_at_a_time_under_concurrency() {
    let server = TokenServer::new(Duration::from_millis(200));
    let source = Arc::new(TokenSource::new(server.start().await));
    let client = Client::new();
    let waiting: Vec<_> = (0..20)
        .map(|_| {
            let source = Arc::clone(&source);
            let client = client.clone();
            tokio::spawn(async move { source.token(&client, TIMEOUT).await })
        })
        .collect();
    for task in waiting {
        assert_eq!(task.await.unwrap(), Ok(AccessToken("tok-1".into())));
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn endpoint_failures_are_clear_and_remembered_briefly() {
    let server = TokenServer::new(Duration::ZERO);
    server.answer(
        StatusCode::UNAUTHORIZED,
        json!({"error": "invalid_client", "error_description": "unknown client"}),
    );
    let credentials = server.start().await;
    let url = credentials.token_url.to_string();
    let source = TokenSource::new(credentials);
    let client = Client::new();
    let error = source.token(&client, TIMEOUT).await.expect_err("refused");
    assert_eq!(
        error.to_string(),
        format!("the OAuth2 token endpoint {url} answered 401: invalid_client (unknown client)")
    );
    assert!(!error.to_string().contains("s&cret"));
    source
        .token(&client, TIMEOUT)
        .await
        .expect_err("remembered");
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    tokio::time::sleep(FAILURE_MEMORY).await;
    server.answer(
        StatusCode::OK,
        json!({"access_token": "x", "token_type": "mac"}),
    );
    let error = source
        .token(&client, TIMEOUT)
        .await
        .expect_err("not bearer");
    assert!(matches!(error, TokenError::Malformed { .. }), "{error}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_request_error() {
    let source = TokenSource::new(OAuth2Credentials {
        token_url: Url::parse("http://127.0.0.1:9/token").unwrap(),
        client_id: "c".into(),
        client_secret: SecretValue::new("s"),
        scopes: Vec::new(),
    });
    let error = source
        .token(&Client::new(), TIMEOUT)
        .await
        .expect_err("nothing listens on port 9");
    assert!(
        error
            .to_string()
            .starts_with("could not reach the OAuth2 token endpoint http://127.0.0.1:9/token: "),
        "{error}"
    );
}
