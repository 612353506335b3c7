//! The authorization matrix: every query, mutation and subscription the schema has (read by
//! introspection) × every kind of caller, through the real server, on both backends.
//!
//! Each root field has a rule below: the least a caller needs, and an operation that
//! exercises it on organization A's objects. A field the schema gains without a rule here
//! fails the test: nothing is open by default.
//!
//! Callers: no token, a viewer, an operator and an admin of A, an admin of B, the instance
//! owner, a revoked token and an expired one. Expected: without valid credentials every
//! request is refused with `UNAUTHENTICATED` before anything runs; the owner and A's roles at
//! or above the rule succeed; A's roles below it get `FORBIDDEN`; B's admin gets what a
//! missing object answers (`null`, an empty list or a `*_NOT_FOUND` code), never A's data.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use crate::{
    flows,
    support::{Backend, Server, graphql::gql_ok},
};

/// The least a caller needs for a root field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    /// Any valid credentials (the answer is scoped to the caller).
    Authenticated,
    Viewer,
    Operator,
    Admin,
    Owner,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Query,
    Mutation,
    Subscription,
}

/// A caller of the matrix.
#[derive(Clone, Debug)]
struct Caller {
    name: &'static str,
    token: String,
    /// `None`: the credentials are not valid (missing, revoked, expired).
    rank: Option<Rank>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rank {
    /// A role in organization A.
    InA(Need),
    /// An admin of organization B.
    OtherOrganization,
    Owner,
}

/// Organization A's objects the operations refer to.
struct Fixture {
    organization: String,
    connection: String,
    touchpoint: String,
    event: String,
    /// A touchpoint each successful `deleteTouchpoint` may delete (one per caller allowed).
    doomed_touchpoints: Vec<String>,
    /// A token each successful `revokeToken` may revoke.
    doomed_tokens: Vec<String>,
    /// A schema each successful `deleteSchema` may delete.
    doomed_schemas: Vec<String>,
}

/// The rule and the operation for every root field.
fn rule(kind: Kind, field: &str) -> Option<(Need, &'static str)> {
    use Need::*;
    let rule = match (kind, field) {
        (Kind::Query, "organization") => (Authenticated, "{ organization(slug: \"acme\") { id } }"),
        (Kind::Query, "organizations") => (Authenticated, "{ organizations { id slug } }"),
        (Kind::Query, "viewer") => (Authenticated, "{ viewer }"),
        (Kind::Query, "apps") => (Authenticated, "{ apps { id } }"),
        (Kind::Query, "tokens") => (
            Admin,
            "query($org: ID) { tokens(organizationId: $org) { id } }",
        ),
        (Kind::Query, "auditLog") => (
            Admin,
            "query($org: ID) { auditLog(organizationId: $org) { edges { node { action } } } }",
        ),
        (Kind::Query, "schemas") => (
            Viewer,
            "query($org: ID) { schemas(organizationId: $org) { name } }",
        ),
        (Kind::Query, "schema") => (
            Viewer,
            "query($org: ID) { schema(organizationId: $org, name: \"Order\") { name } }",
        ),
        (Kind::Query, "connections") => (Viewer, "{ connections { id } }"),
        (Kind::Query, "connection") => (
            Viewer,
            "query($connection: ID!) { connection(id: $connection) { id } }",
        ),
        (Kind::Query, "touchpoint") => (
            Viewer,
            "query($touchpoint: ID!) { touchpoint(id: $touchpoint) { id } }",
        ),
        (Kind::Query, "touchpoints") => (Viewer, "{ touchpoints { id } }"),
        (Kind::Query, "bucketEntry") => (
            Viewer,
            "query($event: ID!) { bucketEntry(id: $event) { id payload } }",
        ),
        (Kind::Query, "resyncBucket") => (
            Viewer,
            "query($touchpoint: ID!) { resyncBucket(touchpointId: $touchpoint) { edges { node { id } } } }",
        ),
        (Kind::Query, "logBucket") => (
            Viewer,
            "query($touchpoint: ID!) { logBucket(touchpointId: $touchpoint) { edges { node { id } } } }",
        ),
        (Kind::Mutation, "registerUrl") => (
            Admin,
            "mutation { registerUrl(input: { organization: \"acme\", url: \"https://hooks.acme.test\" }) { id } }",
        ),
        (Kind::Mutation, "createOrganization") => (
            Owner,
            "mutation($slug: String!) { createOrganization(input: { organization: $slug, url: \"https://x.test\" }) { id } }",
        ),
        (Kind::Mutation, "createConnection") => (
            Admin,
            "mutation($org: ID) { createConnection(input: { organizationId: $org, name: \"C\", sourceApp: \"generic\", destinationApp: \"generic\" }) { id } }",
        ),
        (Kind::Mutation, "importSchema") => (
            Admin,
            "mutation($org: ID) { importSchema(organizationId: $org, name: \"Imported\", document: {type: \"object\"}) { name } }",
        ),
        (Kind::Mutation, "inferSchema") => (
            Admin,
            "mutation($org: ID) { inferSchema(organizationId: $org, name: \"Inferred\", sample: {id: 1}) { name } }",
        ),
        (Kind::Mutation, "deleteSchema") => (
            Admin,
            "mutation($org: ID, $doomedSchema: String!) { deleteSchema(organizationId: $org, name: $doomedSchema) }",
        ),
        (Kind::Mutation, "setConnectionPaused") => (
            Operator,
            "mutation($connection: ID!) { setConnectionPaused(id: $connection, paused: false) { id } }",
        ),
        (Kind::Mutation, "createTouchpoint") => (
            Admin,
            "mutation($connection: ID!, $slug: String!) { createTouchpoint(input: { connectionId: $connection, name: $slug, source: { endpoint: $slug, verification: { scheme: \"none\" } }, destination: { url: \"http://127.0.0.1:9/x\" } }) { id } }",
        ),
        (Kind::Mutation, "updateTouchpoint") => (
            Admin,
            "mutation($touchpoint: ID!) { updateTouchpoint(input: { id: $touchpoint, name: \"renamed\" }) { id } }",
        ),
        (Kind::Mutation, "publishTouchpoint") => (
            Admin,
            "mutation($touchpoint: ID!) { publishTouchpoint(id: $touchpoint) { id } }",
        ),
        (Kind::Mutation, "setAutoSync") => (
            Operator,
            "mutation($touchpoint: ID!) { setAutoSync(id: $touchpoint, enabled: false) { id } }",
        ),
        (Kind::Mutation, "deleteTouchpoint") => (
            Admin,
            "mutation($doomed: ID!) { deleteTouchpoint(id: $doomed) }",
        ),
        (Kind::Mutation, "previewMapping") => (
            Operator,
            "mutation($touchpoint: ID!) { previewMapping(touchpointId: $touchpoint, payload: {id: 1}) { generation } }",
        ),
        (Kind::Mutation, "resyncEvents") => (
            Operator,
            "mutation($event: ID!) { resyncEvents(ids: [$event]) { id } }",
        ),
        (Kind::Mutation, "resyncMatching") => (
            Operator,
            "mutation($touchpoint: ID!) { resyncMatching(touchpointId: $touchpoint, status: FAILED) { count } }",
        ),
        (Kind::Mutation, "createToken") => (
            Admin,
            "mutation($org: ID, $slug: String!) { createToken(input: { organizationId: $org, name: $slug, role: VIEWER }) { secret } }",
        ),
        (Kind::Mutation, "revokeToken") => (
            Admin,
            "mutation($doomed: ID!) { revokeToken(id: $doomed) { id } }",
        ),
        (Kind::Subscription, "resyncBucket") => (
            Viewer,
            "subscription($touchpoint: ID!) { resyncBucket(touchpointId: $touchpoint) { kind } }",
        ),
        (Kind::Subscription, "logBucket") => (
            Viewer,
            "subscription($touchpoint: ID!) { logBucket(touchpointId: $touchpoint) { message } }",
        ),
        _ => return None,
    };
    Some(rule)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_has_a_rule_that_holds_on_sqlite() {
    matrix(&Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_has_a_rule_that_holds_on_postgres() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    matrix(&backend).await;
}

async fn matrix(backend: &Backend) {
    let server = Server::start(backend).await;
    let (callers, mut fixture) = setup(&server).await;

    let fields = root_fields(&server).await;
    let unruled: Vec<String> = fields
        .iter()
        .filter(|(kind, field)| rule(*kind, field).is_none())
        .map(|(kind, field)| format!("{kind:?}.{field}"))
        .collect();
    assert!(
        unruled.is_empty(),
        "fields without an authorization rule (add one to tests/e2e/authz.rs): {unruled:?}"
    );

    let mut failures = Vec::new();
    let mut checked = 0;
    for (kind, field) in &fields {
        let (need, operation) = rule(*kind, field).expect("checked above");
        for (n, caller) in callers.iter().enumerate() {
            let expected = expect(need, caller.rank);
            let variables = json!({
                "org": fixture.organization,
                "connection": fixture.connection,
                "touchpoint": fixture.touchpoint,
                "event": fixture.event,
                "slug": format!("x-{field}-{n}").to_lowercase(),
                "doomed": match field.as_str() {
                    "deleteTouchpoint" => fixture.doomed_touchpoints.last().cloned(),
                    "revokeToken" => fixture.doomed_tokens.last().cloned(),
                    _ => None,
                },
                "doomedSchema": fixture.doomed_schemas.last().cloned().unwrap_or_else(|| "Nothing".to_owned()),
            });
            let outcome = match kind {
                Kind::Subscription => {
                    subscribe(&server, &caller.token, operation, &variables).await
                }
                _ => request(&server, &caller.token, operation, &variables).await,
            };
            checked += 1;
            if let Some(problem) = judge(expected, &outcome, &fixture) {
                failures.push(format!(
                    "{kind:?}.{field} as {}: expected {expected:?}, {problem}",
                    caller.name
                ));
            }
            if expected == Expected::Allowed && outcome.errors().is_none() {
                match field.as_str() {
                    "deleteTouchpoint" => {
                        fixture.doomed_touchpoints.pop();
                    }
                    "revokeToken" => {
                        fixture.doomed_tokens.pop();
                    }
                    "deleteSchema" => {
                        fixture.doomed_schemas.pop();
                    }
                    _ => {}
                }
            }
        }
    }
    eprintln!(
        "authorization matrix: {} fields × {} callers = {checked} checks",
        fields.len(),
        callers.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expected {
    Unauthenticated,
    Forbidden,
    /// As if A's objects did not exist.
    Hidden,
    Allowed,
}

fn expect(need: Need, rank: Option<Rank>) -> Expected {
    match (need, rank) {
        (_, None) => Expected::Unauthenticated,
        (_, Some(Rank::Owner)) | (Need::Authenticated, _) => Expected::Allowed,
        (Need::Owner, _) => Expected::Forbidden,
        (_, Some(Rank::OtherOrganization)) => Expected::Hidden,
        (need, Some(Rank::InA(role))) if role >= need => Expected::Allowed,
        (_, Some(Rank::InA(_))) => Expected::Forbidden,
    }
}

/// What the server answered: the HTTP status (101 for a subscription that started) and body.
struct Outcome {
    status: u16,
    body: Value,
}

impl Outcome {
    fn errors(&self) -> Option<&Vec<Value>> {
        self.body["errors"].as_array().filter(|e| !e.is_empty())
    }

    fn codes(&self) -> Vec<String> {
        self.errors()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn judge(expected: Expected, outcome: &Outcome, fixture: &Fixture) -> Option<String> {
    let codes = outcome.codes();
    // Only what the server answered with counts: error messages may repeat the ids the
    // caller sent.
    let text = outcome.body["data"].to_string();
    let shows_a = [&fixture.connection, &fixture.touchpoint, &fixture.event]
        .iter()
        .any(|id| text.contains(id.as_str()))
        || text.contains("\"acme\"");
    let ok = match expected {
        Expected::Unauthenticated => {
            (outcome.status == 401 || outcome.status == 0)
                && codes.iter().any(|c| c == "UNAUTHENTICATED")
                && outcome.body["data"].is_null()
        }
        Expected::Forbidden => codes.iter().any(|c| c == "FORBIDDEN") && !shows_a,
        Expected::Hidden => {
            !shows_a
                && !codes.iter().any(|c| c == "FORBIDDEN")
                && codes.iter().all(|c| c.ends_with("_NOT_FOUND"))
        }
        Expected::Allowed => outcome.errors().is_none(),
    };
    (!ok).then(|| format!("got HTTP {} {}", outcome.status, outcome.body))
}

async fn request(server: &Server, token: &str, query: &str, variables: &Value) -> Outcome {
    let (status, body) = crate::support::post_as(server, token, query, variables).await;
    Outcome { status, body }
}

/// Subscribe over graphql-transport-ws: an `UNAUTHENTICATED` refusal of the connection
/// (status 0), the first error, or (status 101, no errors) a subscription that started.
async fn subscribe(server: &Server, token: &str, query: &str, variables: &Value) -> Outcome {
    let mut request = server.ws_url().into_client_request().expect("a ws request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let refused = || Outcome {
        status: 0,
        body: json!({ "errors": [{ "extensions": { "code": "UNAUTHENTICATED" } }] }),
    };
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await else {
        return refused();
    };
    let payload = if token.is_empty() {
        json!({})
    } else {
        json!({ "Authorization": format!("Bearer {token}") })
    };
    let init = json!({ "type": "connection_init", "payload": payload });
    if socket.send(Message::text(init.to_string())).await.is_err() {
        return refused();
    }
    let first = tokio::time::timeout(Duration::from_secs(5), socket.next()).await;
    let acked = matches!(
        &first,
        Ok(Some(Ok(Message::Text(text)))) if text.as_str().contains("connection_ack")
    );
    if !acked {
        return refused();
    }
    let subscribe = json!({
        "id": "1",
        "type": "subscribe",
        "payload": { "query": query, "variables": variables },
    });
    socket
        .send(Message::text(subscribe.to_string()))
        .await
        .expect("subscribe");
    // A refused subscription answers at once; one that started stays quiet.
    match tokio::time::timeout(Duration::from_millis(700), socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => {
            let message: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
            match message["type"].as_str() {
                Some("error") => Outcome {
                    status: 101,
                    body: json!({ "errors": message["payload"] }),
                },
                _ => Outcome {
                    status: 101,
                    body: message["payload"].clone(),
                },
            }
        }
        Ok(Some(Ok(Message::Close(_)))) | Ok(None) => refused(),
        _ => Outcome {
            status: 101,
            body: json!({}),
        },
    }
}

/// The root fields, by introspection.
async fn root_fields(server: &Server) -> Vec<(Kind, String)> {
    let data = gql_ok(
        server,
        "{ __schema { queryType { fields { name } } mutationType { fields { name } } \
         subscriptionType { fields { name } } } }",
        json!({}),
    )
    .await;
    let mut fields = Vec::new();
    for (kind, key) in [
        (Kind::Query, "queryType"),
        (Kind::Mutation, "mutationType"),
        (Kind::Subscription, "subscriptionType"),
    ] {
        for field in data["__schema"][key]["fields"].as_array().expect("fields") {
            fields.push((kind, field["name"].as_str().expect("a name").to_owned()));
        }
    }
    fields
}

/// Organizations A (`acme`) and B (`beta`), A's objects, and a token per caller.
async fn setup(server: &Server) -> (Vec<Caller>, Fixture) {
    let owner = server.token.clone();
    assert!(owner.starts_with("hpt_"), "serve printed the owner token");
    let connection = flows::connection(server).await;
    let organization =
        gql_ok(server, "{ organization(slug: \"acme\") { id } }", json!({})).await["organization"]
            ["id"]
            .as_str()
            .expect("acme")
            .to_owned();
    let beta = gql_ok(
        server,
        "mutation { createOrganization(input: { organization: \"beta\", url: \"https://beta.test\" }) { id } }",
        json!({}),
    )
    .await["createOrganization"]["id"]
        .as_str()
        .expect("beta")
        .to_owned();
    let touchpoint = flows::published_touchpoint(
        server,
        &connection,
        "orders",
        json!({ "destination": { "url": "http://127.0.0.1:9/orders" } }),
    )
    .await;
    gql_ok(
        server,
        "mutation($org: ID) { importSchema(organizationId: $org, name: \"Order\", document: {type: \"object\"}) { name } }",
        json!({ "org": organization }),
    )
    .await;
    let (status, _) = flows::post_webhook(
        &reqwest::Client::new(),
        server,
        "orders",
        &json!({ "id": 1 }),
    )
    .await;
    assert!((200..300).contains(&status), "the webhook is accepted");
    let event = flows::bucket(server, &touchpoint, None).await[0]["id"]
        .as_str()
        .expect("an event")
        .to_owned();

    let token = |organization: String, role: &'static str, name: &'static str| {
        let server = &server;
        async move {
            let data = gql_ok(
                server,
                "mutation($org: ID!, $name: String!, $role: TokenRole!, $expires: DateTime) { \
                 createToken(input: { organizationId: $org, name: $name, role: $role, expiresAt: $expires }) \
                 { secret token { id } } }",
                json!({ "org": organization, "name": name, "role": role }),
            )
            .await;
            (
                data["createToken"]["secret"]
                    .as_str()
                    .expect("a secret")
                    .to_owned(),
                data["createToken"]["token"]["id"]
                    .as_str()
                    .expect("an id")
                    .to_owned(),
            )
        }
    };
    let (viewer, _) = token(organization.clone(), "VIEWER", "viewer").await;
    let (operator, _) = token(organization.clone(), "OPERATOR", "operator").await;
    let (admin, _) = token(organization.clone(), "ADMIN", "admin").await;
    let (other, _) = token(beta, "ADMIN", "beta admin").await;
    let (revoked, revoked_id) = token(organization.clone(), "ADMIN", "revoked").await;
    gql_ok(
        server,
        "mutation($id: ID!) { revokeToken(id: $id) { revokedAt } }",
        json!({ "id": revoked_id }),
    )
    .await;
    let expires = chrono::Utc::now() + chrono::TimeDelta::milliseconds(1500);
    let expired = gql_ok(
        server,
        "mutation($org: ID!, $expires: DateTime) { createToken(input: { organizationId: $org, \
         name: \"expired\", role: ADMIN, expiresAt: $expires }) { secret } }",
        json!({ "org": organization, "expires": expires.to_rfc3339() }),
    )
    .await["createToken"]["secret"]
        .as_str()
        .expect("a secret")
        .to_owned();

    let mut doomed_touchpoints = Vec::new();
    let mut doomed_tokens = Vec::new();
    let mut doomed_schemas = Vec::new();
    for n in 0..2 {
        let name = format!("Doomed{n}");
        gql_ok(
            server,
            "mutation($org: ID, $name: String!) { importSchema(organizationId: $org, name: $name, document: {type: \"object\"}) { name } }",
            json!({ "org": organization, "name": name }),
        )
        .await;
        doomed_schemas.push(name);
        doomed_touchpoints.push(
            flows::touchpoint(
                server,
                &connection,
                json!({
                    "name": format!("doomed-{n}"),
                    "source": { "endpoint": format!("doomed-{n}"), "verification": { "scheme": "none" } },
                    "destination": { "url": "http://127.0.0.1:9/doomed" },
                }),
            )
            .await,
        );
        doomed_tokens.push(token(organization.clone(), "VIEWER", "doomed").await.1);
    }
    tokio::time::sleep(
        (expires - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100),
    )
    .await;

    let callers = vec![
        Caller {
            name: "no token",
            token: String::new(),
            rank: None,
        },
        Caller {
            name: "revoked token",
            token: revoked,
            rank: None,
        },
        Caller {
            name: "expired token",
            token: expired,
            rank: None,
        },
        Caller {
            name: "admin of B",
            token: other,
            rank: Some(Rank::OtherOrganization),
        },
        Caller {
            name: "viewer of A",
            token: viewer,
            rank: Some(Rank::InA(Need::Viewer)),
        },
        Caller {
            name: "operator of A",
            token: operator,
            rank: Some(Rank::InA(Need::Operator)),
        },
        Caller {
            name: "admin of A",
            token: admin,
            rank: Some(Rank::InA(Need::Admin)),
        },
        Caller {
            name: "owner",
            token: owner,
            rank: Some(Rank::Owner),
        },
    ];
    (
        callers,
        Fixture {
            organization,
            connection,
            touchpoint,
            event,
            doomed_touchpoints,
            doomed_tokens,
            doomed_schemas,
        },
    )
}

/// A token garbled by one character, or sent with another scheme, is as good as none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_miss_credentials_are_refused() {
    let backend = Backend::sqlite();
    let server = Server::start(&backend).await;
    let mut garbled = server.token.clone();
    garbled.push('x');
    for header in [
        format!("Bearer {garbled}"),
        format!("Basic {}", server.token),
        server.token.clone(),
        "Bearer hpt_".to_owned(),
        "Bearer ".to_owned(),
    ] {
        let response = reqwest::Client::new()
            .post(server.url("/graphql"))
            .header("authorization", &header)
            .json(&json!({ "query": "{ viewer }" }))
            .send()
            .await
            .expect("POST /graphql");
        assert_eq!(response.status(), 401, "{header:?}");
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    }
}

/// Who did something comes from the token: `requestedBy` is no longer an argument (a client
/// that still sends it is told so), and the audit log and the resync's log entry name the
/// token that made the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_names_the_token_not_a_claim() {
    let backend = Backend::sqlite();
    let server = Server::start(&backend).await;
    let connection = flows::connection(&server).await;
    let touchpoint = flows::published_touchpoint(
        &server,
        &connection,
        "orders",
        json!({ "destination": { "url": "http://127.0.0.1:9/orders" } }),
    )
    .await;
    let operator = gql_ok(
        &server,
        "mutation { createToken(input: { name: \"night shift\", role: OPERATOR }) { secret } }",
        json!({}),
    )
    .await["createToken"]["secret"]
        .as_str()
        .expect("a secret")
        .to_owned();
    let forged = request(
        &server,
        &operator,
        "mutation($id: ID!) { resyncMatching(touchpointId: $id, status: FAILED, requestedBy: \"ceo\") { count } }",
        &json!({ "id": touchpoint }),
    )
    .await;
    assert!(
        forged.errors().is_some() && !forged.body.to_string().contains("\"count\""),
        "requestedBy is refused: {}",
        forged.body
    );
    let done = request(
        &server,
        &operator,
        "mutation($id: ID!) { resyncMatching(touchpointId: $id, status: FAILED) { count } }",
        &json!({ "id": touchpoint }),
    )
    .await;
    assert!(done.errors().is_none(), "{}", done.body);

    let audit = gql_ok(
        &server,
        "{ auditLog { edges { node { actor action target } } } }",
        json!({}),
    )
    .await;
    let entries = audit["auditLog"]["edges"].as_array().expect("entries");
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["node"]["action"].as_str().unwrap_or_default(),
                e["node"]["actor"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let resync = actions
        .iter()
        .find(|(action, _)| *action == "resyncMatching")
        .expect("the resync is in the audit log");
    assert!(
        resync.1.starts_with("token:night shift (hpt_"),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|(action, actor)| *action == "publishTouchpoint"
                && actor.starts_with("token:owner")),
        "{actions:?}"
    );
    let logs = flows::logs(&server, &touchpoint).await;
    assert!(
        logs.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("requested by token:night shift"))),
        "the log bucket names the token"
    );
    // Operators do not read the audit log.
    let refused = request(
        &server,
        &operator,
        "{ auditLog { edges { node { id } } } }",
        &json!({}),
    )
    .await;
    assert_eq!(refused.codes(), ["FORBIDDEN"]);
}

/// `hookplane token create|list|revoke` from the shell, against the server's database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_managed_from_the_shell() {
    let backend = Backend::sqlite();
    let server = Server::start(&backend).await;
    flows::connection(&server).await;
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_hookplane"))
            .arg("token")
            .args(["--database-url", &backend.database_url])
            .args(args)
            .env("HOOKPLANE_LOG", "warn")
            .output()
            .expect("hookplane token runs");
        assert!(
            output.status.success(),
            "hookplane token {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let secret = cli(&[
        "create",
        "--organization",
        "acme",
        "--role",
        "operator",
        "--name",
        "ci",
    ])
    .trim()
    .to_owned();
    assert!(secret.starts_with("hpt_") && secret.len() > 40, "{secret}");
    let viewer = request(&server, &secret, "{ viewer }", &json!({})).await;
    assert!(
        viewer.body["data"]["viewer"]
            .as_str()
            .is_some_and(|actor| actor.starts_with("token:ci (hpt_"))
    );

    let list = cli(&["list"]);
    assert!(!list.contains(&secret), "list never shows a secret");
    let line = list
        .lines()
        .find(|line| line.contains("\tci\t"))
        .expect("the token is listed");
    assert!(line.contains("\tacme\toperator\t"), "{line}");
    assert!(line.contains(&secret[..12]), "its prefix is shown: {line}");
    let id = line.split('\t').next().expect("an id");

    cli(&["revoke", id]);
    let refused = request(&server, &secret, "{ viewer }", &json!({})).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.codes(), ["UNAUTHENTICATED"]);
    let owner = cli(&["create", "--owner", "--name", "break-glass"]);
    let organizations = request(
        &server,
        owner.trim(),
        "{ organizations { slug } }",
        &json!({}),
    )
    .await;
    assert_eq!(
        organizations.body["data"]["organizations"],
        json!([{ "slug": "acme" }])
    );
}
