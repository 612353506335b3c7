//! The fuzz targets' bodies (`hookplane_sources::fuzzing`, also run by `cargo fuzz` from
//! `fuzz/` on nightly) driven on stable: a corpus of real deliveries plus seeded random
//! mutations of it, so CI exercises the same code deterministically. Scale with
//! `HOOKPLANE_FUZZ_CASES` (cases per target; default 100 000).
//!
//! Also property tests of the payload convention: random values built by the convention
//! survive `to_xml`/`from_xml` and `to_form`/`from_form` unchanged.

use hookplane_sources::{
    Limits, from_form, from_xml,
    fuzzing::{self, fuzz_configs},
    to_form, to_xml,
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Map, Value};

fn cases() -> usize {
    std::env::var("HOOKPLANE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// Seeds: the fixtures and small hand-written inputs aimed at each decoder's corners.
fn corpus() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = [
        "salesforce_single.xml",
        "salesforce_three.xml",
        "woocommerce_order_created.json",
        "bigcommerce_order_created.json",
        "zohocrm_notification.json",
        "shift4shop_new_order.json",
        "prestashop_product_update.json",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect();
    for seed in [
        "<a x=\"1\" y='2'><b>t&amp;&#233;</b><b/><![CDATA[c]]><!-- c --><?pi x?></a>",
        "<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>",
        "<s:E xmlns:s=\"u\"><s:B xsi:nil=\"true\"/></s:E>",
        "webhook_id=12",
        "a[b][]=1&a[b][]=2&c=%5B&d[0][e]=f&g=h+i",
        "{\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\"}",
    ] {
        seeds.push(seed.as_bytes().to_vec());
    }
    seeds
}

const TOKENS: &[&[u8]] = &[
    b"<",
    b">",
    b"</",
    b"/>",
    b"<a>",
    b"</a>",
    b"&amp;",
    b"&#x",
    b"&#",
    b";",
    b"<![CDATA[",
    b"]]>",
    b"<!DOCTYPE",
    b"<?xml version=\"1.0\"?>",
    b"xmlns:a=\"b\"",
    b"=",
    b"&",
    b"%",
    b"%5B",
    b"[",
    b"]",
    b"[]",
    b"{",
    b"}",
    b"\"",
    b":",
    b",",
    b"\n\n",
    b"\n",
    b"\xff",
    b"\xc3\xa9",
    b"webhook-signature: v1,",
    b"webhook-timestamp: 1614265330",
    b"webhook-id: msg_1",
    b"x-signature: sha256=",
    b"x-timestamp: 1614265330",
    b"authorization: Basic ",
    b"content-type: text/xml",
    b"content-type: application/json",
    b"content-type: application/x-www-form-urlencoded",
    b"?token=",
    b"x-shopify-hmac-sha256: ",
];

/// One random mutation of a seed (or a splice of two).
fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds.choose(rng).cloned().unwrap_or_default();
    for _ in 0..rng.random_range(1..=8) {
        let len = data.len();
        match rng.random_range(0..6) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..=len);
                data.insert(i, rng.random());
            }
            2 if len > 0 => {
                let start = rng.random_range(0..len);
                let end = rng.random_range(start..=len.min(start + 16));
                data.drain(start..end);
            }
            3 => {
                let token = TOKENS.choose(rng).copied().unwrap_or_default();
                let i = rng.random_range(0..=len);
                data.splice(i..i, token.iter().copied());
            }
            4 if len > 0 => {
                let start = rng.random_range(0..len);
                let end = rng.random_range(start..=len.min(start + 64));
                let copy = data[start..end].to_vec();
                let i = rng.random_range(0..=len);
                data.splice(i..i, copy);
            }
            _ => {
                let other = seeds.choose(rng).cloned().unwrap_or_default();
                let cut = rng.random_range(0..=data.len());
                let from = rng.random_range(0..=other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

fn run_target(seed: u64, mut target: impl FnMut(&[u8]), prefix: impl Fn(&mut StdRng) -> Vec<u8>) {
    let seeds = corpus();
    for s in &seeds {
        target(s);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..cases() {
        let mut input = prefix(&mut rng);
        input.extend(mutate(&mut rng, &seeds));
        target(&input);
    }
}

#[test]
fn fuzz_xml_decoder() {
    run_target(1, fuzzing::xml, |_| Vec::new());
}

#[test]
fn fuzz_form_decoder() {
    run_target(2, fuzzing::form, |_| Vec::new());
}

#[test]
fn fuzz_json_decoder() {
    run_target(3, fuzzing::json, |_| Vec::new());
}

#[test]
fn fuzz_verifiers() {
    // Every app's configurations, as the per-app `verify_<app>` targets use them, in one list
    // the selector byte indexes.
    let configs = fuzz_configs();
    for app in hookplane_sources::catalog() {
        assert!(
            !fuzzing::fuzz_configs_for(app.id()).is_empty(),
            "{}",
            app.id()
        );
    }
    // A selector byte and a header block in front of the mutated body.
    run_target(
        4,
        |data| fuzzing::verify(data, &configs),
        |rng| {
            let mut head = vec![rng.random()];
            for _ in 0..rng.random_range(0..5) {
                head.extend_from_slice(TOKENS.choose(rng).copied().unwrap_or_default());
                head.extend_from_slice(format!("{}\n", rng.random::<u32>()).as_bytes());
            }
            head.extend_from_slice(b"\n\n");
            head
        },
    );
}

// --- convention round trips -------------------------------------------------------------

const NAME_START: &[u8] = b"abcdefghijkmnopqrstuvwyzABCDEFGHIJKLMNOPQRSTUVWYZ_";
const NAME_REST: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_.-";

fn name(rng: &mut StdRng) -> String {
    let mut s = String::new();
    s.push(char::from(*NAME_START.choose(rng).unwrap_or(&b'a')));
    for _ in 0..rng.random_range(0..6) {
        s.push(char::from(*NAME_REST.choose(rng).unwrap_or(&b'a')));
    }
    s
}

/// Text without CR (normalized to LF by XML readers) and without control characters.
fn text(rng: &mut StdRng, allow_newlines: bool) -> String {
    const PIECES: &[&str] = &[
        "a", "Z", "0", " ", "<", ">", "&", "\"", "'", "é", "中", "😀", "=", "[", "]", "%", "+",
        "\n", "\t", ";", "#", "@",
    ];
    let mut s = String::new();
    for _ in 0..rng.random_range(0..10) {
        let piece = PIECES.choose(rng).copied().unwrap_or("a");
        if allow_newlines || !matches!(piece, "\n" | "\t") {
            s.push_str(piece);
        }
    }
    s
}

/// A non-whitespace-only string, as leaf text must be to survive (blank leaves decode as null).
fn leaf_text(rng: &mut StdRng) -> String {
    format!("{}x{}", text(rng, true), text(rng, true))
}

fn xml_element(rng: &mut StdRng, depth: usize) -> Value {
    match rng.random_range(0..if depth > 3 { 2 } else { 4 }) {
        0 => Value::String(leaf_text(rng)),
        1 => Value::Null,
        _ => {
            let mut fields = Map::new();
            for _ in 0..rng.random_range(0..3) {
                fields.insert(format!("@{}", name(rng)), Value::String(text(rng, false)));
            }
            for _ in 0..rng.random_range(1..4) {
                let value = if rng.random_bool(0.3) {
                    Value::Array(
                        (0..rng.random_range(2..4))
                            .map(|_| xml_element(rng, depth + 1))
                            .collect(),
                    )
                } else {
                    xml_element(rng, depth + 1)
                };
                fields.insert(name(rng), value);
            }
            if rng.random_bool(0.3) {
                fields.insert(
                    "#text".into(),
                    Value::String(format!("x{}y", text(rng, true))),
                );
            }
            Value::Object(fields)
        }
    }
}

#[test]
fn xml_convention_round_trips() {
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..cases() / 10 {
        let root = name(&mut rng);
        let value = xml_element(&mut rng, 0);
        let xml = to_xml(&value, &root).expect("convention values encode");
        let back = from_xml(xml.as_bytes(), &Limits::default()).expect("encoder output decodes");
        assert_eq!(
            back,
            Value::Object(Map::from_iter([(root, value)])),
            "{xml}"
        );
    }
}

fn form_value(rng: &mut StdRng, depth: usize) -> Value {
    match rng.random_range(0..if depth > 3 { 1 } else { 3 }) {
        0 => Value::String(text(rng, true)),
        1 => {
            let mut fields = Map::new();
            for _ in 0..rng.random_range(1..4) {
                fields.insert(name(rng), form_value(rng, depth + 1));
            }
            Value::Object(fields)
        }
        _ => Value::Array(
            (0..rng.random_range(1..4))
                .map(|_| form_value(rng, depth + 1))
                .collect(),
        ),
    }
}

#[test]
fn form_convention_round_trips() {
    let mut rng = StdRng::seed_from_u64(6);
    for _ in 0..cases() / 10 {
        let mut fields = Map::new();
        for _ in 0..rng.random_range(1..5) {
            fields.insert(name(&mut rng), form_value(&mut rng, 0));
        }
        let value = Value::Object(fields);
        let body = to_form(&value).expect("objects encode");
        let back = from_form(body.as_bytes(), &Limits::default()).expect("encoder output decodes");
        assert_eq!(back, value, "{body}");
    }
}
