//! Salesforce Outbound Messaging and Zoho CRM.

use hookplane_sources::{Ack, Limits, app, receive};
use http::StatusCode;
use serde_json::json;

use crate::support::{Req, at, config, events, fixture, rejected, run};

// The message shape is the `notifications` element of the outbound messaging WSDL
// (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_wsdl.htm):
// OrganizationId, ActionId, SessionId, EnterpriseUrl, PartnerUrl, Notification (maxOccurs 100)
// of Id + sObject. `salesforce_single.xml` is the captured message in the CPAN module
// WebService::Salesforce::Message's test suite; `salesforce_three.xml` has three notifications.
const ORG: &str = "00De0000000pmu1EAA";

fn salesforce_config() -> hookplane_sources::VerifierConfig {
    let mut cfg = config("unused", |s| s.org_id = Some(ORG.into()));
    cfg.spec.secret_ref = None;
    cfg
}

#[test]
fn salesforce_single_notification() {
    let req = Req::new(fixture("salesforce_single.xml")).xml();
    let events = events(run("salesforce", &req, &salesforce_config(), at(0)));
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(
        event.dedupe_key(),
        "salesforce-notification:04le0000004lnFFAAY"
    );
    assert_eq!(event.topic(), Some("State_Province__c"));
    assert_eq!(
        *event.payload(),
        json!({
            "OrganizationId": ORG,
            "ActionId": "04ke0000000Cb2DAAS",
            "EnterpriseUrl": "https://cs15.salesforce.com/services/Soap/c/29.0/00De0000000pmu1",
            "PartnerUrl": "https://cs15.salesforce.com/services/Soap/u/29.0/00De0000000pmu1",
            "Notification": {
                "Id": "04le0000004lnFFAAY",
                "sObject": {
                    "@type": "sf:State_Province__c",
                    "Id": "a29e0000000K4P0AAK",
                    "Abbrev__c": "AR",
                    "Country__c": "a28e00000002hMtAAI",
                    "Name": "Arkansas"
                }
            }
        })
    );
    assert!(
        event.payload().get("SessionId").is_none(),
        "the session id is a credential"
    );
}

#[test]
fn salesforce_multi_notification_message_is_one_event_each() {
    let req = Req::new(fixture("salesforce_three.xml")).xml();
    let events = events(run("salesforce", &req, &salesforce_config(), at(0)));
    let ids: Vec<&str> = events.iter().map(|e| e.dedupe_key()).collect();
    assert_eq!(
        ids,
        [
            "salesforce-notification:04le0000004lnFFAA1",
            "salesforce-notification:04le0000004lnFFAA2",
            "salesforce-notification:04le0000004lnFFAA3"
        ]
    );
    assert_eq!(
        events[0].payload()["Notification"]["sObject"]["Name"],
        "Acme & Co - 200 widgets"
    );
    assert_eq!(
        events[2].payload()["Notification"]["sObject"]["Amount"],
        json!(null)
    );
    assert!(
        events
            .iter()
            .all(|e| e.payload()["ActionId"] == "04ke0000000Cb2DAAS")
    );

    let limits = Limits {
        max_events: 2,
        ..Limits::default()
    };
    let app = app("salesforce").expect("in catalog");
    let err = receive(app, req.incoming(), &salesforce_config(), &limits, at(0)).unwrap_err();
    assert_eq!(err.code, "TOO_MANY_EVENTS");
}

#[test]
fn salesforce_acknowledges_with_soap_ack() {
    let app = app("salesforce").expect("in catalog");
    let ids = vec!["e1".to_owned()];
    let reply = app.acknowledge(&Ack::Stored { event_ids: &ids });
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.content_type.starts_with("text/xml"));
    let ack = hookplane_sources::from_xml(&reply.body, &Limits::default()).expect("well-formed");
    assert_eq!(
        ack,
        json!({"Envelope": {"Body": {"notificationsResponse": {"Ack": "true"}}}})
    );
}

#[test]
fn salesforce_rejects_other_orgs_and_actions_with_a_soap_fault() {
    let req = Req::new(fixture("salesforce_single.xml")).xml();
    let mut other_org = salesforce_config();
    other_org.spec.org_id = Some("00De0000000pmu2EAA".into());
    let err = rejected(run("salesforce", &req, &other_org, at(0)), &req, "unused");
    assert_eq!(
        (err.status, err.code),
        (StatusCode::UNAUTHORIZED, "ORGANIZATION_MISMATCH")
    );
    let fault = app("salesforce").expect("in catalog").reject(&err);
    assert_eq!(fault.status, StatusCode::UNAUTHORIZED);
    let fault = hookplane_sources::from_xml(&fault.body, &Limits::default()).expect("well-formed");
    assert_eq!(
        fault["Envelope"]["Body"]["Fault"]["faultcode"],
        "soapenv:Client"
    );

    let mut fifteen = salesforce_config();
    fifteen.spec.org_id = Some("00De0000000pmu1".into());
    assert!(run("salesforce", &req, &fifteen, at(0)).is_ok());

    let mut allowlist = salesforce_config();
    allowlist.spec.action_ids = vec!["04ke0000000Cb2E".into()];
    let err = rejected(run("salesforce", &req, &allowlist, at(0)), &req, "unused");
    assert_eq!(err.code, "ACTION_NOT_ALLOWED");
    allowlist.spec.action_ids.push("04ke0000000Cb2DAAS".into());
    assert!(run("salesforce", &req, &allowlist, at(0)).is_ok());
}

#[test]
fn salesforce_optional_url_token_and_config_checks() {
    let req = Req::new(fixture("salesforce_single.xml")).xml();
    let with_token = config("sf-token", |s| s.org_id = Some(ORG.into()));
    let err = rejected(
        run("salesforce", &req, &with_token, at(0)),
        &req,
        "sf-token",
    );
    assert_eq!(err.code, "TOKEN_MISSING");
    assert!(
        run(
            "salesforce",
            &req.clone().query("token=sf-token"),
            &with_token,
            at(0)
        )
        .is_ok()
    );

    let app = app("salesforce").expect("in catalog");
    let mut spec = salesforce_config().spec;
    spec.org_id = None;
    assert_eq!(
        app.validate(&spec).unwrap_err().code(),
        "VERIFICATION_FIELD_REQUIRED"
    );
    spec.org_id = Some("not-an-org".into());
    assert_eq!(
        app.validate(&spec).unwrap_err().code(),
        "INVALID_VERIFICATION_VALUE"
    );
}

#[test]
fn salesforce_wrong_content_type_is_415_and_garbage_is_401() {
    let json_typed = Req::new(fixture("salesforce_single.xml")).json();
    let err = run("salesforce", &json_typed, &salesforce_config(), at(0)).unwrap_err();
    assert_eq!(
        (err.status, err.code),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
    );
    let garbage = Req::new("<notifications/>").xml();
    let err = run("salesforce", &garbage, &salesforce_config(), at(0)).unwrap_err();
    assert_eq!(
        (err.status, err.code),
        (StatusCode::UNAUTHORIZED, "BODY_UNREADABLE")
    );
}

// The Notifications API callback: the fields Zoho documents as sent back to notify_url —
// `channel_id` and `token` from the enable request, `module`, `operation`, `ids`,
// `server_time` (https://www.zoho.com/crm/developer/docs/api/v7/notifications/enable.html,
// example channel and token from Zoho's "Kaizen #14 - Notification API" post).
#[test]
fn zoho_notification_callback_token_in_body() {
    let req = Req::new(fixture("zohocrm_notification.json")).json();
    let cfg = config("contacts_and_deals7828", |_| {});
    let events = events(run("zohocrm", &req, &cfg, at(0)));
    assert_eq!(events[0].topic(), Some("Contacts.insert"));
    assert_eq!(events[0].payload()["ids"], json!(["3652397000003371001"]));
    let err = rejected(
        run("zohocrm", &req, &config("other", |_| {}), at(0)),
        &req,
        "other",
    );
    assert_eq!(err.code, "TOKEN_MISMATCH");
}

#[test]
fn zoho_workflow_webhook_token_in_query_or_header() {
    // A workflow webhook with form parameters and the token as a URL parameter.
    let req =
        Req::new("Lead_Id=3652397000000624046&Lead_Status=Contacted&Owner%5Bemail%5D=a%40b.c")
            .form()
            .query("zapikey=zk-123");
    let cfg = config("zk-123", |s| s.query_parameter = Some("zapikey".into()));
    let events = events(run("zohocrm", &req, &cfg, at(0)));
    assert_eq!(
        *events[0].payload(),
        json!({"Lead_Id": "3652397000000624046", "Lead_Status": "Contacted", "Owner": {"email": "a@b.c"}})
    );
    let header = Req::new(r#"{"id":"1"}"#)
        .json()
        .header("X-Zoho-Token", "zk-123");
    let cfg = config("zk-123", |s| s.header = Some("X-Zoho-Token".into()));
    assert!(run("zohocrm", &header, &cfg, at(0)).is_ok());
    let none = Req::new(r#"{"id":"1"}"#).json();
    assert_eq!(
        rejected(run("zohocrm", &none, &cfg, at(0)), &none, "zk-123").code,
        "TOKEN_MISSING"
    );
}
