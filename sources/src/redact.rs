//! Secrets a delivery carries in clear stay write-only. A token scheme's proof is the
//! configured secret itself, and apps put it in a header, a URL parameter, a form field or a
//! JSON body (Zoho CRM's notification `token`); after verification, every configured secret's
//! value is replaced by [`REDACTED`] wherever it appears in what is stored: the raw body
//! (as sent, and percent-encoded as in a form), the payload's strings and the headers.

use std::borrow::Cow;

use memchr::memmem;
use serde_json::Value;

use crate::config::VerifierConfig;

/// What a redacted value reads as.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not searched for: redacting every `abc` in a payload would
/// corrupt ordinary text, and so short a secret protects nothing anyway (the README says so).
pub const MIN_REDACTED_LEN: usize = 6;

/// Finds a touchpoint's secrets in stored data. Built from a [`VerifierConfig`]; cheap when
/// the touchpoint has no secrets.
#[derive(Clone)]
pub struct Redactor {
    needles: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} needles)", self.needles.len())
    }
}

impl Redactor {
    /// The secrets of `config`, as sent and percent-encoded, longest first (so a secret that
    /// contains another is replaced whole).
    pub fn new(config: &VerifierConfig) -> Self {
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for reference in config.spec.secret_refs() {
            let Some(secret) = config.secrets.get(reference) else {
                continue;
            };
            let value = secret.expose();
            if value.len() < MIN_REDACTED_LEN {
                continue;
            }
            let encoded: String = url::form_urlencoded::byte_serialize(value).collect();
            for needle in [value.to_vec(), encoded.into_bytes()] {
                if !needles.contains(&needle) {
                    needles.push(needle);
                }
            }
        }
        needles.sort_by_key(|needle| std::cmp::Reverse(needle.len()));
        Self { needles }
    }

    /// Whether there is nothing to look for.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `input` with every secret replaced; borrowed when none is in it.
    pub fn bytes<'a>(&self, input: &'a [u8]) -> Cow<'a, [u8]> {
        let mut output = Cow::Borrowed(input);
        for needle in &self.needles {
            if memmem::find(&output, needle).is_none() {
                continue;
            }
            let mut replaced = Vec::with_capacity(output.len());
            let mut rest: &[u8] = &output;
            while let Some(at) = memmem::find(rest, needle) {
                replaced.extend_from_slice(&rest[..at]);
                replaced.extend_from_slice(REDACTED.as_bytes());
                rest = &rest[at + needle.len()..];
            }
            replaced.extend_from_slice(rest);
            output = Cow::Owned(replaced);
        }
        output
    }

    /// `input` with every secret replaced.
    pub fn text<'a>(&self, input: &'a str) -> Cow<'a, str> {
        match self.bytes(input.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(input),
            // Replacing whole byte sequences found in valid UTF-8 with ASCII keeps it valid,
            // unless a needle started or ended inside a character: then lossily.
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }

    /// Replaces every secret in the strings (and object keys) of `value`.
    pub fn value(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        // A stack rather than recursion: the payload's depth is the sender's choice.
        let mut pending = vec![value];
        while let Some(value) = pending.pop() {
            match value {
                Value::String(text) => {
                    if let Cow::Owned(replaced) = self.text(text) {
                        *text = replaced;
                    }
                }
                Value::Array(items) => pending.extend(items.iter_mut()),
                Value::Object(object) => {
                    let renamed: Vec<(String, String)> = object
                        .keys()
                        .filter_map(|key| match self.text(key) {
                            Cow::Owned(replaced) => Some((key.clone(), replaced)),
                            Cow::Borrowed(_) => None,
                        })
                        .collect();
                    for (old, new) in renamed {
                        if let Some(moved) = object.remove(&old) {
                            object.insert(new, moved);
                        }
                    }
                    pending.extend(object.values_mut());
                }
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hookplane_crds::{SecretKeyRef, VerificationSpec};
    use serde_json::json;

    use super::*;
    use crate::config::ResolvedSecrets;

    fn redactor(secrets: &[&str]) -> Redactor {
        let mut spec = VerificationSpec::default();
        let mut resolved = ResolvedSecrets::new();
        for (i, secret) in secrets.iter().enumerate() {
            let reference = SecretKeyRef {
                name: "s".to_owned(),
                key: format!("k{i}"),
            };
            if i == 0 {
                spec.secret_ref = Some(reference.clone());
            } else {
                spec.additional_secret_refs.push(reference.clone());
            }
            resolved.insert(reference, secret.as_bytes());
        }
        Redactor::new(&VerifierConfig::new(spec, resolved))
    }

    #[test]
    fn secrets_are_replaced_in_bytes_as_sent_and_percent_encoded() {
        let r = redactor(&["s3cret+token/1"]);
        let raw = b"token=s3cret%2Btoken%2F1&again=s3cret+token/1&id=7";
        assert_eq!(
            &*r.bytes(raw),
            b"token=[redacted]&again=[redacted]&id=7".as_slice()
        );
        assert!(matches!(r.bytes(b"nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn secrets_are_replaced_in_every_string_and_key_of_a_payload() {
        let r = redactor(&["tok-123456", "other-secret"]);
        let mut payload = json!({
            "token": "tok-123456",
            "nested": [{"note": "x tok-123456 y", "n": 1}, "other-secret"],
            "tok-123456": true,
        });
        r.value(&mut payload);
        assert_eq!(
            payload,
            json!({
                "token": "[redacted]",
                "nested": [{"note": "x [redacted] y", "n": 1}, "[redacted]"],
                "[redacted]": true,
            })
        );
    }

    #[test]
    fn short_secrets_and_no_secrets_redact_nothing() {
        assert!(redactor(&["abc"]).is_empty());
        assert!(redactor(&[]).is_empty());
        let mut payload = json!({"a": "abc"});
        redactor(&["abc"]).value(&mut payload);
        assert_eq!(payload, json!({"a": "abc"}));
    }

    #[test]
    fn a_secret_containing_another_is_replaced_whole() {
        let r = redactor(&["secret-1", "secret-1-longer"]);
        assert_eq!(&*r.text("a secret-1-longer b"), "a [redacted] b");
    }
}
