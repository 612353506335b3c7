//! Mapping preview: what a touchpoint's filter, ordering key and mapping make of a stored event
//! or a pasted payload, without delivering anything.

use hookplane_dataplane::runtime::limits_of;
use hookplane_mapping::{Limits, MapError, Sandbox, SandboxError};
use serde_json::Value;
use uuid::Uuid;

use super::{Portal, PortalError, PortalResult};

/// The payload a preview runs on.
pub enum PreviewInput {
    /// A stored event of the touchpoint's bucket.
    Event(Uuid),
    /// A payload pasted by the user.
    Payload(Value),
}

/// What a touchpoint's mapping makes of a payload.
#[derive(Debug, Default, PartialEq)]
pub struct Preview {
    /// The generation of the spec used (draft or published).
    pub generation: i64,
    /// True when the filter would mark the event SKIPPED.
    pub skipped: bool,
    /// The mapped destination payload (`None` when skipped or on error).
    pub output: Option<Value>,
    /// The ordering key the event would get, when the touchpoint orders per key.
    pub ordering_key: Option<Value>,
    /// The filter, mapping or ordering error, as the bucket would record it.
    pub error: Option<String>,
    /// Its code: `MAPPING_LIMIT_EXCEEDED` or `MAPPING_FAILED`.
    pub error_code: Option<&'static str>,
    /// Where in the spec it is, named as validation errors name fields: `filter`,
    /// `ordering.key`, `mapping.program`, `mapping.rules[2].expr` or `mapping`.
    pub error_field: Option<String>,
}

/// The part of a mapping an error came from.
#[derive(Debug, PartialEq)]
enum FailedRule {
    Program,
    Index(usize),
    Target(String),
}

/// The part of a mapping `error` came from, when it says.
fn failed_part(error: &MapError) -> Option<FailedRule> {
    match error {
        MapError::Rule { target, .. } => Some(FailedRule::Target(target.clone())),
        MapError::LimitExceeded { location, .. } if location == "program" => {
            Some(FailedRule::Program)
        }
        MapError::LimitExceeded { location, .. } => location
            .strip_prefix("rules[")
            .and_then(|rest| rest.split(']').next())
            .and_then(|index| index.parse().ok())
            .map(FailedRule::Index),
        MapError::Program { .. } | MapError::NotAnObject { .. } => Some(FailedRule::Program),
        _ => None,
    }
}

/// The field a mapping error names: its rule by index (a rule's error names its target; the
/// first rule with that target is the one that ran), or the program.
fn mapping_field(failed: Option<FailedRule>, targets: &[&str]) -> String {
    let index = match failed {
        Some(FailedRule::Program) => return "mapping.program".to_owned(),
        Some(FailedRule::Index(index)) => Some(index),
        Some(FailedRule::Target(target)) => targets.iter().position(|t| *t == target),
        None => None,
    };
    index.map_or_else(
        || "mapping".to_owned(),
        |index| format!("mapping.rules[{index}].expr"),
    )
}

impl Portal {
    /// Preview the draft spec, or the published one when `published`.
    pub async fn preview_mapping(
        &self,
        touchpoint_id: Uuid,
        input: PreviewInput,
        published: bool,
    ) -> PortalResult<Preview> {
        let (touchpoint, connection) = self.touchpoint_and_connection(touchpoint_id).await?;
        let (spec, generation) = if published {
            let published = touchpoint.published.as_ref().ok_or_else(|| {
                PortalError::invalid(
                    "TOUCHPOINT_NOT_PUBLISHED",
                    "the touchpoint is not published",
                )
            })?;
            (published.spec.clone(), published.generation)
        } else {
            (touchpoint.spec.clone(), touchpoint.generation)
        };
        let payload = match input {
            PreviewInput::Event(event_id) => {
                self.store
                    .event(event_id)
                    .await?
                    .filter(|event| event.touchpoint_id == touchpoint_id)
                    .ok_or_else(|| {
                        PortalError::invalid(
                            "EVENT_NOT_FOUND",
                            format!("no event {event_id} in this touchpoint's bucket"),
                        )
                    })?
                    .payload
            }
            PreviewInput::Payload(payload) => payload,
        };
        let connection = hookplane_validation::validate_connection(&connection.spec)?;
        // A draft may still wait for its verification secret; its mapping previews all the same.
        let draft = hookplane_validation::check_draft(&spec, &connection)?;
        let sandbox = self.runtime.sandbox();
        let limits = limits_of(&spec, sandbox);
        let targets: Vec<&str> = spec
            .mapping
            .rules
            .iter()
            .map(|rule| rule.target.as_str())
            .collect();
        preview(&draft, &targets, generation, &payload, sandbox, &limits).await
    }
}

/// Filter, ordering key and mapping, in the sandbox under the touchpoint's limits: what the
/// worker would do, stopping where it would. `targets` are the mapping's rule targets, in
/// order, to name the rule an error came from.
async fn preview(
    touchpoint: &hookplane_validation::DraftTouchpoint,
    targets: &[&str],
    generation: i64,
    payload: &Value,
    sandbox: &Sandbox,
    limits: &Limits,
) -> PortalResult<Preview> {
    let mut preview = Preview {
        generation,
        ..Preview::default()
    };
    if let Some(filter) = touchpoint.filter() {
        match sandbox
            .filter(filter, payload, limits)
            .await
            .map_err(unavailable)?
        {
            Ok(true) => {}
            Ok(false) => {
                preview.skipped = true;
                return Ok(preview);
            }
            Err(error) => {
                preview.fail(&error, String::new(), "filter".to_owned());
                return Ok(preview);
            }
        }
    }
    if let Some(key) = touchpoint.ordering_key() {
        match sandbox
            .map(key, payload, limits)
            .await
            .map_err(unavailable)?
        {
            Ok(key) => preview.ordering_key = Some(key),
            Err(error) => preview.fail(
                &error.at("ordering key"),
                "ordering key: ".to_owned(),
                "ordering.key".to_owned(),
            ),
        }
    }
    match sandbox
        .map(touchpoint.mapping(), payload, limits)
        .await
        .map_err(unavailable)?
    {
        Ok(output) => preview.output = Some(output),
        Err(error) => {
            let field = mapping_field(failed_part(&error), targets);
            preview.fail(&error, "mapping failed: ".to_owned(), field);
        }
    }
    Ok(preview)
}

impl Preview {
    fn fail(&mut self, error: &MapError, prefix: String, field: String) {
        self.error_code = Some(error.code());
        self.error_field = Some(field);
        self.error = Some(match error {
            MapError::LimitExceeded { .. } => format!("{}: {error}", error.code()),
            _ => format!("{prefix}{error}"),
        });
    }
}

fn unavailable(error: SandboxError) -> PortalError {
    tracing::error!(%error, "no evaluator could run a mapping preview");
    PortalError::invalid(
        "EVALUATOR_UNAVAILABLE",
        "no evaluator process could run the preview; it has been logged",
    )
}

#[cfg(test)]
mod tests {
    use super::{FailedRule, mapping_field};

    #[test]
    fn a_mapping_error_names_its_rule_or_the_program() {
        let targets = ["CardCode", "Total", "Total"];
        let field = |failed| mapping_field(failed, &targets);
        assert_eq!(field(Some(FailedRule::Program)), "mapping.program");
        assert_eq!(field(Some(FailedRule::Index(2))), "mapping.rules[2].expr");
        assert_eq!(
            field(Some(FailedRule::Target("Total".to_owned()))),
            "mapping.rules[1].expr",
            "the first rule with the target is the one that ran"
        );
        assert_eq!(
            field(Some(FailedRule::Target("Gone".to_owned()))),
            "mapping"
        );
        assert_eq!(field(None), "mapping");
    }
}
