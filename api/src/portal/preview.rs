//! Mapping preview: what a touchpoint's filter, ordering key and mapping make of a stored event
//! or a pasted payload, without delivering anything.

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
        Ok(preview(&draft, generation, &payload))
    }
}

fn preview(
    touchpoint: &hookplane_validation::DraftTouchpoint,
    generation: i64,
    payload: &Value,
) -> Preview {
    let mut preview = Preview {
        generation,
        ..Preview::default()
    };
    if let Some(filter) = touchpoint.filter() {
        match filter.matches(payload) {
            Ok(true) => {}
            Ok(false) => {
                preview.skipped = true;
                return preview;
            }
            Err(error) => {
                preview.error = Some(error.to_string());
                return preview;
            }
        }
    }
    if let Some(key) = touchpoint.ordering_key() {
        match key.apply(payload) {
            Ok(key) => preview.ordering_key = Some(key),
            Err(error) => preview.error = Some(format!("ordering key: {error}")),
        }
    }
    match touchpoint.mapping().apply(payload) {
        Ok(output) => preview.output = Some(output),
        Err(error) => preview.error = Some(format!("mapping failed: {error}")),
    }
    preview
}
