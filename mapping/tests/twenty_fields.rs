//! A realistic mapping: twenty rules over a ~1 KiB Shopify order, the shape the benchmark uses.

use hookplane_crds::MappingSpec;
use hookplane_mapping::Mapping;
use serde_json::{Value, json};

fn shopify_order() -> Value {
    json!({
        "id": 5_829_384_756_012_u64,
        "name": "#1042",
        "email": "Ada.Lovelace@Example.com",
        "created_at": "2024-03-05T10:15:00-05:00",
        "currency": "NOK",
        "financial_status": "paid",
        "total_price": "1249.00",
        "subtotal_price": "1100.00",
        "total_tax": "149.00",
        "total_discounts": "0.00",
        "note": null,
        "tags": "vip, wholesale",
        "customer": {
            "id": 7_391_028_374_u64,
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
            {"id": 1, "sku": "TEA-001", "title": "Green tea", "quantity": 2, "price": "300.00"},
            {"id": 2, "sku": "CUP-010", "title": "Tea cup", "quantity": 1, "price": "500.00"},
            {"id": 3, "sku": "GIFT-99", "title": "Gift wrap", "quantity": 1, "price": "0.00"}
        ],
        "shipping_lines": [{"title": "Posten", "price": "149.00"}]
    })
}

/// The 20-field mapping. The benchmark (`bench/src/workload.rs`) measures the same file, so a
/// change to it changes what the benchmark figures mean.
fn twenty_rules() -> MappingSpec {
    serde_json::from_str(include_str!("fixtures/twenty_fields.json"))
        .expect("the fixture is a mapping spec")
}

#[test]
fn twenty_field_mapping() {
    let order = shopify_order();
    let size = serde_json::to_vec(&order).expect("serializes").len();
    assert!((900..1300).contains(&size), "payload is {size} bytes");

    let mapping = Mapping::compile(&twenty_rules()).expect("compiles");
    let expected = json!({
        "DocNum": "1042",
        "NumAtCard": "5829384756012",
        "CardCode": "C7391028374",
        "CardName": "Ada Lovelace",
        "Email": "ada.lovelace@example.com",
        "Phone": "+47 22 00 00 00",
        "DocDate": "2024-03-05",
        "DocCurrency": "NOK",
        "DocTotal": 1249.0,
        "VatSum": 149.0,
        "Discount": 0.0,
        "Paid": true,
        "Comments": "",
        "Tags": ["vip", "wholesale"],
        "Address": {
            "Street": "Karl Johans gate 1",
            "City": "Oslo",
            "ZipCode": "0154",
            "Country": "NO"
        },
        "DocumentLines": [
            {"ItemCode": "TEA-001", "Quantity": 2, "Price": 300.0},
            {"ItemCode": "CUP-010", "Quantity": 1, "Price": 500.0},
            {"ItemCode": "GIFT-99", "Quantity": 1, "Price": 0.0}
        ],
        "Freight": 149.0
    });
    assert_eq!(mapping.apply(&order), Ok(expected.clone()));
    // Applying again gives the same result: nothing is consumed by a run.
    assert_eq!(mapping.apply(&order), Ok(expected.clone()));

    // Every rule here has a shape the crate evaluates without jaq; a local definition hides
    // the shape, so jaq runs them all, and must agree.
    let mut through_jaq = twenty_rules();
    for rule in &mut through_jaq.rules {
        rule.expr = format!("def id: .; id | ({})", rule.expr);
    }
    let through_jaq = Mapping::compile(&through_jaq).expect("compiles");
    assert_eq!(through_jaq.apply(&order), Ok(expected));
}
