//! What every scenario sends: signed ~1 KiB Shopify-style orders, the 20-field mapping that
//! turns them into an ERP document, and the GraphQL calls that set a touchpoint up.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use hookplane_crds::MappingSpec;
use http_body_util::Full;
use hyper::Request;
use serde_json::{Value, json};

use crate::child::Server;
use sha2::Sha256;

use crate::client::RequestFactory;

/// Orders carry `id = ORDER_ID_BASE + seq`; the mapping copies it into `NumAtCard`, which is
/// how the sink tells which webhook a delivery came from.
pub const ORDER_ID_BASE: u64 = 5_829_384_000_000;
/// The Shopify app's webhook signing secret of the benchmark touchpoint.
pub const SECRET: &str = "bench-shopify-client-secret";
pub const ORGANIZATION: &str = "acme";
pub const ENDPOINT: &str = "shop/orders";

/// A Shopify `orders/create` body (about 1 KiB) without its `id`.
fn order_without_id(seq: u64) -> Value {
    json!({
        "name": format!("#{}", 1000 + seq % 9000),
        "email": format!("Ada.Lovelace{}@Example.com", seq % 97),
        "created_at": "2024-03-05T10:15:00-05:00",
        "currency": "NOK",
        "financial_status": if seq.is_multiple_of(5) { "pending" } else { "paid" },
        "total_price": "1249.00",
        "subtotal_price": "1100.00",
        "total_tax": "149.00",
        "total_discounts": "0.00",
        "note": null,
        "tags": "vip, wholesale",
        "customer": {
            "id": 7_391_028_374_u64 + seq % 1000,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "phone": "+47 22 00 00 00",
            "orders_count": 12
        },
        "billing_address": {
            "address1": "Karl Johans gate 1",
            "city": "Oslo",
            "zip": "0154",
            "country_code": "NO"
        },
        "gateway": "shopify_payments",
        "source_name": "web",
        "shipping_address": {
            "address1": "Karl Johans gate 1",
            "address2": "",
            "city": "Oslo",
            "zip": "0154",
            "country_code": "NO"
        },
        "line_items": [
            {"id": 1, "sku": "TEA-001", "title": "Green tea", "quantity": 1 + seq % 3, "price": "300.00"},
            {"id": 2, "sku": "CUP-010", "title": "Tea cup", "quantity": 1, "price": "500.00"},
            {"id": 3, "sku": "GIFT-99", "title": "Gift wrap", "quantity": 1, "price": "0.00"}
        ],
        "shipping_lines": [{"title": "Posten", "price": "149.00"}]
    })
}

/// The body of order `seq`, with `id` first.
pub fn order_body(seq: u64) -> Vec<u8> {
    let rest = serde_json::to_string(&order_without_id(seq)).expect("a JSON value serializes");
    format!("{{\"id\":{},{}", ORDER_ID_BASE + seq, &rest[1..]).into_bytes()
}

/// The sequence number of a mapped order, from its `NumAtCard`.
pub fn seq_of_mapped(mapped: &Value) -> Option<u64> {
    let id: u64 = mapped["NumAtCard"].as_str()?.parse().ok()?;
    id.checked_sub(ORDER_ID_BASE)
}

/// The 20-field mapping from a Shopify order to an ERP sales document: the one
/// `hookplane-mapping` tests (`mapping/tests/twenty_fields.rs`), so both measure the same rules.
pub fn twenty_rules() -> MappingSpec {
    serde_json::from_str(include_str!(
        "../../mapping/tests/fixtures/twenty_fields.json"
    ))
    .expect("the fixture is a mapping spec")
}

/// The same 20 fields as [`twenty_rules`], written as one jq `program` (how a user who knows jq
/// writes a mapping).
pub fn twenty_fields_program() -> MappingSpec {
    MappingSpec {
        rules: Vec::new(),
        program: Some(
            r##"{
  DocNum: (.name | ltrimstr("#")),
  NumAtCard: (.id | tostring),
  CardCode: ("C" + (.customer.id | tostring)),
  CardName: (.customer.first_name + " " + .customer.last_name),
  Email: (.email | ascii_downcase),
  Phone: (.customer.phone // ""),
  DocDate: .created_at[0:10],
  DocCurrency: .currency,
  DocTotal: (.total_price | tonumber),
  VatSum: (.total_tax | tonumber),
  Discount: (.total_discounts | tonumber),
  Paid: (.financial_status == "paid"),
  Comments: (.note // ""),
  Tags: (.tags | split(", ")),
  Address: {
    Street: .shipping_address.address1,
    City: .shipping_address.city,
    ZipCode: .shipping_address.zip,
    Country: .shipping_address.country_code
  },
  DocumentLines: [.line_items[] | {ItemCode: .sku, Quantity: .quantity, Price: (.price | tonumber)}],
  Freight: ([.shipping_lines[].price | tonumber] | add)
}"##
            .to_owned(),
        ),
    }
}

fn sign(body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Signed Shopify webhooks for `path`, a distinct delivery (`X-Shopify-Webhook-Id`) each.
pub fn shopify_webhooks(path: &str) -> RequestFactory {
    let path = path.to_owned();
    Arc::new(move |seq| {
        let body = order_body(seq);
        Request::post(path.as_str())
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .header("x-shopify-hmac-sha256", sign(&body))
            .header("x-shopify-topic", "orders/create")
            .header("x-shopify-webhook-id", format!("bench-{seq}"))
            .body(Full::new(Bytes::from(body)))
            .expect("a static request is valid")
    })
}

/// The webhook path of the benchmark touchpoint on `hookplane serve`.
pub fn hook_path() -> String {
    format!("/hooks/{ORGANIZATION}/{ENDPOINT}")
}

/// GraphQL over HTTP with `server`'s owner token; fails on any GraphQL error.
pub async fn gql(
    client: &reqwest::Client,
    server: &Server,
    query: &str,
    variables: Value,
) -> Result<Value> {
    let token = server
        .token
        .as_deref()
        .context("the server printed no owner token (not a fresh database?)")?;
    let response: Value = client
        .post(server.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .context("POST /graphql")?
        .error_for_status()
        .context("POST /graphql")?
        .json()
        .await
        .context("a JSON GraphQL response")?;
    if let Some(errors) = response.get("errors") {
        bail!("GraphQL errors: {errors}");
    }
    Ok(response["data"].clone())
}

/// Register the organization, create a Shopify connection and a published touchpoint at
/// [`ENDPOINT`] delivering the 20-field mapping to `destination`; returns its id.
pub async fn setup_touchpoint(
    server: &Server,
    destination: &str,
    auto_sync: bool,
) -> Result<String> {
    let client = reqwest::Client::new();
    gql(
        &client,
        server,
        "mutation($org: String!, $url: String!) { registerUrl(input: { organization: $org, url: $url }) { slug } }",
        json!({ "org": ORGANIZATION, "url": "http://127.0.0.1" }),
    )
    .await?;
    let connection = gql(
        &client,
        server,
        r#"mutation { createConnection(input: { name: "Shop to ERP", sourceApp: "shopify", destinationApp: "generic" }) { id } }"#,
        json!({}),
    )
    .await?["createConnection"]["id"]
        .as_str()
        .context("a connection id")?
        .to_owned();
    let touchpoint = gql(
        &client,
        server,
        "mutation($input: CreateTouchpointInput!) { createTouchpoint(input: $input) { id } }",
        json!({ "input": {
            "connectionId": connection,
            "name": "Orders to ERP",
            "autoSync": auto_sync,
            "source": { "app": "shopify", "endpoint": ENDPOINT, "verification": { "secret": SECRET } },
            "destination": { "url": destination },
            "mapping": twenty_rules(),
        }}),
    )
    .await?["createTouchpoint"]["id"]
        .as_str()
        .context("a touchpoint id")?
        .to_owned();
    gql(
        &client,
        server,
        "mutation($id: ID!) { publishTouchpoint(id: $id) { publishedGeneration } }",
        json!({ "id": touchpoint }),
    )
    .await?;
    Ok(touchpoint)
}

#[cfg(test)]
mod tests {
    use hookplane_mapping::Mapping;

    use super::*;

    #[test]
    fn orders_are_about_one_kib_and_map_back_to_their_seq() {
        let body = order_body(42);
        assert!((900..1300).contains(&body.len()), "{} bytes", body.len());
        let order: Value = serde_json::from_slice(&body).expect("valid JSON");
        let mapping = Mapping::compile(&twenty_rules()).expect("compiles");
        let mapped = mapping.apply(&order).expect("maps");
        assert_eq!(mapped.as_object().map(|o| o.len()), Some(17));
        assert_eq!(seq_of_mapped(&mapped), Some(42));
    }
}
