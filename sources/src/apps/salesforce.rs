//! Salesforce Outbound Messaging: a SOAP 1.1 `notifications` message, unsigned. Verification
//! checks, in constant time, that `OrganizationId` is the configured org (15- or 18-character
//! ids compare by their case-sensitive 15-character form), that `ActionId` is in the optional
//! allowlist, and, when a secret is configured, a token in the endpoint URL (or a header).
//!
//! One message carries 1..=100 `Notification`s; each becomes one event whose payload is the
//! message without `SessionId` (a live API session is a credential, never stored) and with
//! `Notification` narrowed to that one notification:
//! `{"OrganizationId", "ActionId", "EnterpriseUrl", "PartnerUrl", "Notification": {"Id",
//! "sObject": {"@type": "sf:Lead", "Id", …}}}`. De-duplication: `Notification/Id`.
//!
//! Acknowledgement: 200 `text/xml` with `<Ack>true</Ack>`, sent by the receiver only after
//! every event is committed; rejections are SOAP faults with a non-200 status, so Salesforce
//! retries (for up to 24 hours).

use std::time::SystemTime;

use hookplane_crds::VerificationSpec;
use quick_xml::escape::escape;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::{
    app::{Ack, AppInfo, FieldInfo, FieldKind, ParsedEvent, Reply, SourceApp, id_key},
    apps::{fields, token_location},
    body::{Limits, MediaType, ParseError, from_xml},
    config::{ConfigError, VerifierConfig, check_header_name},
    incoming::Incoming,
    receive::{Rejection, Verified},
    verify::{VerifyError, token::verify_token},
};

/// Salesforce.
pub struct Salesforce;

const ACK: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\
<soapenv:Body><notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\">\
<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>";

impl crate::app::sealed::Sealed for Salesforce {}

impl SourceApp for Salesforce {
    fn id(&self) -> &'static str {
        "salesforce"
    }

    fn info(&self) -> AppInfo {
        const FIELDS: &[FieldInfo] = &[
            FieldInfo::new(
                "orgId",
                "Organization id",
                FieldKind::Text,
                "The Salesforce organization (15 or 18 characters) whose messages are accepted.",
            )
            .required(),
            FieldInfo::new(
                "actionIds",
                "Outbound message ids",
                FieldKind::TextList,
                "Accept only these outbound messages (ActionId); empty accepts all of the org.",
            ),
            FieldInfo {
                label: "Endpoint token",
                help: "Optional: a token Salesforce sends in the endpoint URL's query string.",
                ..fields::SECRET
            },
            fields::TOKEN_QUERY_PARAMETER,
        ];
        AppInfo {
            id: self.id(),
            display_name: "Salesforce (Outbound Messaging)",
            verification: "OrganizationId must be the configured org and ActionId in the \
                 allowlist, optionally plus a token in the endpoint URL.",
            schemes: &[],
            fields: FIELDS,
            headers: &[],
            dedupe: "Notification Id",
        }
    }

    fn validate(&self, spec: &VerificationSpec) -> Result<(), ConfigError> {
        let org = spec.org_id.as_deref().ok_or(ConfigError::FieldRequired {
            field: "orgId",
            when: "for Salesforce outbound messages",
        })?;
        if !is_salesforce_id(org) {
            return Err(ConfigError::InvalidValue {
                field: "orgId",
                allowed: "a 15- or 18-character Salesforce id",
            });
        }
        if !spec.action_ids.iter().all(|id| is_salesforce_id(id)) {
            return Err(ConfigError::InvalidValue {
                field: "actionIds",
                allowed: "15- or 18-character Salesforce ids",
            });
        }
        check_header_name("header", spec.header.as_ref())
    }

    fn verify(
        &self,
        req: &Incoming<'_>,
        cfg: &VerifierConfig,
        _now: SystemTime,
    ) -> Result<(), VerifyError> {
        if cfg.spec.secret_ref.is_some() {
            verify_token(req, token_location(&cfg.spec), &cfg.signing_secrets()?)?;
        }
        let configured = cfg
            .spec
            .org_id
            .as_deref()
            .ok_or(ConfigError::FieldRequired {
                field: "orgId",
                when: "for Salesforce outbound messages",
            })?;
        let document =
            from_xml(req.body, &cfg.limits).map_err(|_| VerifyError::BodyUnreadable {
                reason: "not a readable SOAP message",
            })?;
        let message = notifications(&document).map_err(|_| VerifyError::BodyUnreadable {
            reason: "not a Salesforce notifications message",
        })?;
        let org = text(message, "OrganizationId").ok_or(VerifyError::OrganizationMissing)?;
        if !same_id(configured, org) {
            return Err(VerifyError::OrganizationMismatch);
        }
        if !cfg.spec.action_ids.is_empty() {
            let action = text(message, "ActionId").unwrap_or_default();
            // Check every allowed id so timing does not reveal the allowlist's order.
            let allowed = cfg
                .spec
                .action_ids
                .iter()
                .fold(false, |acc, id| same_id(id, action) | acc);
            if !allowed {
                return Err(VerifyError::ActionNotAllowed);
            }
        }
        Ok(())
    }

    fn parse(&self, req: &Verified<'_>, limits: &Limits) -> Result<Vec<ParsedEvent>, ParseError> {
        let req = req.request();
        if MediaType::of(req)? != MediaType::Xml {
            return Err(ParseError::UnsupportedMediaType {
                found: req.media_type(),
            });
        }
        let document = from_xml(req.body, limits)?;
        let message = notifications(&document)?;
        let items = match message.get("Notification") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => {
                return Err(ParseError::MissingPart {
                    what: "Notification",
                });
            }
        };
        if items.len() > limits.max_events {
            return Err(ParseError::TooManyEvents {
                limit: limits.max_events,
            });
        }
        let mut common = message.clone();
        common.remove("SessionId");
        common.remove("Notification");
        items
            .into_iter()
            .map(|notification| {
                let id = notification
                    .get("Id")
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty())
                    .ok_or(ParseError::MissingPart {
                        what: "Notification/Id",
                    })?;
                let topic = notification
                    .pointer("/sObject/@type")
                    .and_then(Value::as_str)
                    .map(|t| t.rsplit(':').next().unwrap_or(t).to_owned());
                let mut payload = common.clone();
                payload.insert("Notification".to_owned(), notification.clone());
                Ok(ParsedEvent {
                    dedupe_key: id_key("salesforce-notification", id),
                    topic,
                    payload: Value::Object(payload),
                })
            })
            .collect()
    }

    fn acknowledge(&self, _ack: &Ack<'_>) -> Reply {
        Reply {
            status: http::StatusCode::OK,
            content_type: "text/xml; charset=utf-8",
            body: ACK.as_bytes().to_vec(),
        }
    }

    fn reject(&self, rejection: &Rejection) -> Reply {
        let fault_code = if rejection.status.is_server_error() {
            "soapenv:Server"
        } else {
            "soapenv:Client"
        };
        let reason = format!("{}: {}", rejection.code, rejection.message);
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body>\
<soapenv:Fault><faultcode>{fault_code}</faultcode><faultstring>{}</faultstring></soapenv:Fault>\
</soapenv:Body></soapenv:Envelope>",
            escape(reason.as_str())
        );
        Reply {
            status: rejection.status,
            content_type: "text/xml; charset=utf-8",
            body: body.into_bytes(),
        }
    }
}

/// The `notifications` element of a decoded SOAP envelope.
fn notifications(document: &Value) -> Result<&Map<String, Value>, ParseError> {
    document
        .pointer("/Envelope/Body/notifications")
        .and_then(Value::as_object)
        .ok_or(ParseError::MissingPart {
            what: "Envelope/Body/notifications",
        })
}

fn text<'v>(message: &'v Map<String, Value>, name: &str) -> Option<&'v str> {
    message.get(name).and_then(Value::as_str)
}

/// A 15- or 18-character alphanumeric id.
fn is_salesforce_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether two Salesforce ids name the same record: their case-sensitive 15-character forms
/// are equal. Compared in constant time.
fn same_id(configured: &str, given: &str) -> bool {
    let a = configured.as_bytes();
    let b = given.as_bytes();
    if !matches!(b.len(), 15 | 18) {
        return false;
    }
    let (a, b) = (&a[..a.len().min(15)], &b[..15]);
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_by_their_15_character_form() {
        assert!(same_id("00De0000000pmu1", "00De0000000pmu1EAA"));
        assert!(same_id("00De0000000pmu1EAA", "00De0000000pmu1EAA"));
        assert!(!same_id("00De0000000pmu2", "00De0000000pmu1EAA"));
        assert!(!same_id("00de0000000pmu1", "00De0000000pmu1EAA"));
        assert!(!same_id("00De0000000pmu1", "00De"));
        assert!(!same_id("00De0000000pmu1", "ééééééééé"));
    }
}
