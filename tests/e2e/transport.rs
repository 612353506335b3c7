//! The GraphQL endpoint on a public port: each attack a stranger or a cross-site page could
//! try, through the real server, refused with its code and changing nothing.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};

use crate::support::{Backend, Server, gql_ok, post_as};

const CREATE_ORGANIZATION: &str = r#"mutation { createOrganization(slug: "forged") { slug } }"#;

async fn organizations(server: &Server) -> usize {
    gql_ok(server, "{ organizations { slug } }", json!({})).await["organizations"]
        .as_array()
        .expect("a list")
        .len()
}

/// POST `body` with `content_type` and the owner's token; the status and the JSON answer.
async fn post_raw(server: &Server, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url("/graphql"))
        .bearer_auth(&server.token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("POST /graphql");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("(no code)")
}

#[tokio::test]
async fn requests_a_browser_could_send_cross_site_run_nothing() {
    let backend = Backend::sqlite();
    let server = Server::start(&backend).await;
    let before = organizations(&server).await;
    let mutation = serde_json::to_vec(&json!({ "query": CREATE_ORGANIZATION })).unwrap();

    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (status, answer) = post_raw(&server, content_type, mutation.clone()).await;
        assert_eq!(status, 415, "{content_type}: {answer}");
        assert_eq!(code(&answer), "UNSUPPORTED_MEDIA_TYPE", "{content_type}");
    }
    // GET serves GraphiQL and runs nothing, even with a query in the URL.
    let get = reqwest::Client::new()
        .get(server.url("/graphql"))
        .query(&[("query", CREATE_ORGANIZATION)])
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("GET");
    assert_eq!(get.status(), 200);
    assert!(get.text().await.unwrap().contains("<html"), "GraphiQL");
    assert_eq!(organizations(&server).await, before, "nothing was created");

    let put = reqwest::Client::new()
        .put(server.url("/graphql"))
        .json(&json!({ "query": CREATE_ORGANIZATION }))
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), 405);
    let answer: Value = put.json().await.expect("a JSON body");
    assert_eq!(code(&answer), "METHOD_NOT_ALLOWED");

    // A WebSocket from another site's page is refused; the server's own origin is not.
    let upgrade = |origin: String| {
        let mut request = server.ws_url().into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        headers.insert("Origin", HeaderValue::from_str(&origin).unwrap());
        tokio_tungstenite::connect_async(request)
    };
    match upgrade("https://evil.example".into()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or(b"null"))
                .expect("a JSON body");
            assert_eq!(code(&body), "ORIGIN_NOT_ALLOWED");
        }
        other => panic!("a foreign origin was not refused: {:?}", other.map(|_| ())),
    }
    upgrade(format!("http://{}", server.address))
        .await
        .expect("the server's own origin may connect");
    server.stop().await;
}

#[tokio::test]
async fn bodies_that_are_too_large_batched_or_malformed_are_refused_with_codes() {
    let backend = Backend::sqlite();
    let server = Server::start(&backend).await;

    // 2 MiB of query: refused before it is all read.
    let huge = format!(
        r#"{{"query": "{{ viewer }}", "padding": "{}"}}"#,
        "x".repeat(2 << 20)
    );
    let (status, answer) = post_raw(&server, "application/json", huge.into_bytes()).await;
    assert_eq!(
        (status, code(&answer)),
        (413, "REQUEST_TOO_LARGE"),
        "{answer}"
    );

    // A stranger's large body is not read at all: credentials come first, and the server
    // may close the connection while the client is still sending.
    let stranger = reqwest::Client::new()
        .post(server.url("/graphql"))
        .header("content-type", "application/json")
        .body(vec![b' '; 4 << 20])
        .send()
        .await;
    match stranger {
        Ok(response) => assert_eq!(response.status(), 401),
        Err(error) => assert!(error.is_request(), "{error}"),
    }

    let batch =
        serde_json::to_vec(&json!([{ "query": "{ viewer }" }, { "query": "{ viewer }" }])).unwrap();
    let (status, answer) = post_raw(&server, "application/json", batch).await;
    assert_eq!(
        (status, code(&answer)),
        (400, "BATCH_NOT_ALLOWED"),
        "{answer}"
    );

    let (status, answer) = post_raw(
        &server,
        "application/json",
        b"{\"query\": \"{ viewer \xff }\"}".to_vec(),
    )
    .await;
    assert_eq!((status, code(&answer)), (400, "INVALID_JSON"), "{answer}");
    let (status, answer) = post_raw(
        &server,
        "application/json",
        br#"{"query": "{ viewer }" "x"}"#.to_vec(),
    )
    .await;
    assert_eq!((status, code(&answer)), (400, "INVALID_JSON"), "{answer}");

    let healthz = reqwest::get(server.url("/healthz")).await.expect("healthz");
    assert_eq!(healthz.status(), 200, "still healthy");
    server.stop().await;
}

#[tokio::test]
async fn page_sizes_count_toward_complexity() {
    let backend = Backend::sqlite();
    let server = Server::start(&backend).await;
    let id = "00000000-0000-0000-0000-000000000000";
    let page = |alias: usize| {
        format!(
            "a{alias}: resyncBucket(touchpointId: \"{id}\", first: 500) {{ edges {{ node {{ id rawBody payload headers status receivedAt }} }} }}"
        )
    };
    // One page of 500 is an ordinary request.
    let (status, answer) = post_as(
        &server,
        &server.token,
        &format!("{{ {} }}", page(0)),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(code(&answer), "QUERY_TOO_COMPLEX", "{answer}");
    // Ten of them in one query (aliases) are refused before anything runs.
    let aliases: Vec<String> = (0..10).map(page).collect();
    let (status, answer) = post_as(
        &server,
        &server.token,
        &format!("{{ {} }}", aliases.join(" ")),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(code(&answer), "QUERY_TOO_COMPLEX", "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_token_over_its_rate_is_told_when_to_retry() {
    let backend = Backend::sqlite();
    let server = Server::start_with(
        &backend,
        &[
            "--graphql-rate-per-second",
            "1",
            "--graphql-rate-burst",
            "3",
        ],
    )
    .await;
    let mut limited = None;
    for _ in 0..10 {
        let response = reqwest::Client::new()
            .post(server.url("/graphql"))
            .bearer_auth(&server.token)
            .json(&json!({ "query": "{ viewer }" }))
            .send()
            .await
            .expect("POST");
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("a 429 within ten quick requests");
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let answer: Value = limited.json().await.expect("JSON");
    assert_eq!(code(&answer), "RATE_LIMITED");
    // Another token has its own allowance... and the same one again after the wait.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (status, _) = post_as(&server, &server.token, "{ viewer }", &json!({})).await;
    assert_eq!(status, 200);
    server.stop().await;
}

/// A WebSocket with the owner's token, acknowledged.
async fn socket(
    server: &Server,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let mut request = server.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {}", server.token) } });
    socket.send(Message::text(init.to_string())).await?;
    let ack = socket.next().await.expect("an answer")?;
    assert!(ack.to_text().unwrap().contains("connection_ack"), "{ack}");
    Ok(socket)
}

#[tokio::test]
async fn websockets_and_subscriptions_are_capped() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let backend = Backend::sqlite();
    let server = Server::start_with(
        &backend,
        &[
            "--max-websockets",
            "2",
            "--max-subscriptions-per-connection",
            "3",
        ],
    )
    .await;
    let connection = crate::flows::connection(&server).await;
    let touchpoint = crate::flows::published_touchpoint(
        &server,
        &connection,
        "orders",
        json!({ "destination": { "url": "http://127.0.0.1:9/orders" } }),
    )
    .await;

    let mut first = socket(&server).await.expect("a first socket");
    for id in 1..=4 {
        let subscribe = json!({
            "id": id.to_string(), "type": "subscribe",
            "payload": {
                "query": "subscription($id: ID!) { resyncBucket(touchpointId: $id) { kind } }",
                "variables": { "id": touchpoint },
            },
        });
        first
            .send(Message::text(subscribe.to_string()))
            .await
            .unwrap();
    }
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let message = first.next().await.expect("open").expect("a message");
            let message: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
            if message["type"] == "error" || message["payload"]["errors"].is_array() {
                return message;
            }
        }
    })
    .await
    .expect("the fourth subscription is refused");
    // Subscriptions on one socket start concurrently: any one of the four is the one over.
    assert!(
        ["1", "2", "3", "4"].contains(&refused["id"].as_str().unwrap_or_default()),
        "{refused}"
    );
    let others = tokio::time::timeout(Duration::from_millis(500), async {
        let mut others = 0;
        while let Some(Ok(message)) = first.next().await {
            others += usize::from(message.to_text().unwrap_or_default().contains("errors"));
        }
        others
    })
    .await
    .unwrap_or(0);
    assert_eq!(others, 0, "only one was refused");
    let errors = if refused["type"] == "error" {
        refused["payload"].clone()
    } else {
        refused["payload"]["errors"].clone()
    };
    assert_eq!(
        errors[0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS",
        "{refused}"
    );

    let _second = socket(&server).await.expect("a second socket");
    match socket(&server).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or(b"null")).unwrap();
            assert_eq!(code(&body), "TOO_MANY_CONNECTIONS");
        }
        other => panic!("a third socket was not refused: {:?}", other.map(|_| ())),
    }
    // Closing one gives its place back.
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    socket(&server).await.expect("a place again");
    server.stop().await;
}

/// Connections that never finish their headers (slowloris) or sit idle are closed after the
/// header timeout, so a full house of them holds up `/healthz` no longer than that.
#[tokio::test]
async fn slow_and_idle_connections_are_closed_and_cannot_starve_the_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let backend = Backend::sqlite();
    let server = Server::start_with(
        &backend,
        &["--max-connections", "8", "--header-timeout-seconds", "1"],
    )
    .await;
    // Partial headers, then nothing: closed after about a second.
    let mut slow = tokio::net::TcpStream::connect(server.address)
        .await
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buffer = [0_u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match slow.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // an error answer (408) may come before the close
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a slowloris connection is closed");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );

    // Every slot taken by idle connections: /healthz still answers once they time out.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(
            tokio::net::TcpStream::connect(server.address)
                .await
                .unwrap(),
        );
    }
    let started = std::time::Instant::now();
    let healthz = tokio::time::timeout(
        Duration::from_secs(10),
        reqwest::get(server.url("/healthz")),
    )
    .await
    .expect("healthz answers while idle connections hold every slot")
    .expect("healthz");
    assert_eq!(healthz.status(), 200);
    println!(
        "healthz answered after {:?} behind 20 idle connections",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
    server.stop().await;
}

/// The batch, alias, page-size, body-size and subscription attacks at once, for a few
/// seconds: `/healthz` keeps answering, memory stays small and comes back down after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_attacks_together_leave_the_server_healthy() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    use crate::support::rss_kib;

    // Alone among the CPU-bound tests: it saturates the cores on purpose.
    let _alone = crate::support::CPU_HEAVY.lock().await;
    let backend = Backend::sqlite();
    let server = Arc::new(Server::start(&backend).await);
    let connection = crate::flows::connection(&server).await;
    let touchpoint = crate::flows::published_touchpoint(
        &server,
        &connection,
        "orders",
        json!({ "destination": { "url": "http://127.0.0.1:9/orders" }, "autoSync": false }),
    )
    .await;
    // Entries worth reading: 200 webhooks of about 20 KiB.
    let client = reqwest::Client::new();
    for id in 0..200 {
        let body = json!({ "id": id, "note": "n".repeat(20 * 1024) });
        let (status, _) = crate::flows::post_webhook(&client, &server, "orders", &body).await;
        assert_eq!(status, 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = server.pid();
    let rss_before = rss_kib(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let mut attacks = Vec::new();
    let page = |alias: usize| {
        format!(
            "a{alias}: resyncBucket(touchpointId: \"{touchpoint}\", first: 500) {{ edges {{ node {{ rawBody payload headers }} }} }}"
        )
    };
    let bodies: Vec<Vec<u8>> = vec![
        // A batch of fifty.
        serde_json::to_vec(&vec![json!({ "query": format!("{{ {} }}", page(0)) }); 50]).unwrap(),
        // Ten aliases of the largest page.
        serde_json::to_vec(&json!({ "query": format!("{{ {} }}", (0..10).map(page).collect::<Vec<_>>().join(" ")) }))
            .unwrap(),
        // One largest page (allowed: about 4 MiB of answer).
        serde_json::to_vec(&json!({ "query": format!("{{ {} }}", page(0)) })).unwrap(),
        // 3 MiB of body.
        format!(r#"{{"query": "{{ viewer }}", "x": "{}"}}"#, "x".repeat(3 << 20)).into_bytes(),
    ];
    for body in bodies {
        for _ in 0..2 {
            let (server, stop, body) = (Arc::clone(&server), Arc::clone(&stop), body.clone());
            attacks.push(tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .expect("a client");
                while !stop.load(Ordering::Relaxed) {
                    let _ = client
                        .post(server.url("/graphql"))
                        .bearer_auth(&server.token)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .map(|response| response.bytes());
                }
            }));
        }
    }
    // Subscriptions: sockets filled until refused.
    let mut sockets = Vec::new();
    for _ in 0..5 {
        let mut socket = tokio::time::timeout(Duration::from_secs(20), socket(&server))
            .await
            .expect("a socket within 20 s")
            .expect("a socket");
        for id in 0..150 {
            let subscribe = json!({
                "id": id.to_string(), "type": "subscribe",
                "payload": {
                    "query": "subscription($id: ID!) { resyncBucket(touchpointId: $id) { kind } }",
                    "variables": { "id": touchpoint },
                },
            });
            tokio::time::timeout(
                Duration::from_secs(20),
                socket.send(Message::text(subscribe.to_string())),
            )
            .await
            .expect("a subscribe sent within 20 s")
            .unwrap();
        }
        sockets.push(socket);
    }

    let mut healthz = Vec::new();
    let mut rss_peak = rss_before;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        let asked = std::time::Instant::now();
        let answer = client
            .get(server.url("/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("healthz within 5 s");
        assert_eq!(answer.status(), 200);
        healthz.push(asked.elapsed());
        rss_peak = rss_peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for attack in attacks {
        tokio::time::timeout(Duration::from_secs(30), attack)
            .await
            .expect("an attack stops within 30 s")
            .expect("an attack ran");
    }
    drop(sockets);
    // Memory comes back: allocations freed, and the allocator returns them in time.
    let mut rss_after = rss_kib(pid);
    for _ in 0..75 {
        if rss_after <= rss_before * 12 / 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        rss_after = rss_kib(pid);
    }
    healthz.sort();
    let max = *healthz.last().expect("samples");
    let over = healthz
        .iter()
        .filter(|d| **d > Duration::from_millis(100))
        .count();
    println!(
        "combined API attacks: /healthz max {max:?}, {over} of {} samples over 100 ms; RSS {} MiB before, peak {} MiB, {} MiB after",
        healthz.len(),
        rss_before / 1024,
        rss_peak / 1024,
        rss_after / 1024
    );
    // A debug build on two shared cores: a sample or two may be slow, none very slow.
    assert!(over * 100 <= healthz.len() * 2, "{over} slow samples");
    assert!(max < Duration::from_millis(500), "{max:?}");
    // Measured 140 to 167 MiB at the peak and back to 76 to 85 MiB from 65 (debug build):
    // jemalloc (malloc for SQLite too) gives freed pages back within a second, readers keep
    // small page caches.
    assert!(rss_peak < 200 * 1024, "peak RSS {} MiB", rss_peak / 1024);
    assert!(
        rss_after <= rss_before * 12 / 10,
        "RSS {} MiB after, from {} MiB",
        rss_after / 1024,
        rss_before / 1024
    );
    Arc::try_unwrap(server)
        .ok()
        .expect("one owner")
        .stop()
        .await;
}
