//! Resync: put events back to UNPROCESSED (attempts reset) so the worker processes them again,
//! whatever their status. Each resync is written to the log bucket with who asked.

use chrono::{DateTime, Utc};
use hookplane_store::{Event, EventQuery, EventStatus, LogLevel, NewLog};
use serde_json::json;
use uuid::Uuid;

use super::{Portal, PortalError, PortalResult};

/// Most events one `resync_events` call names.
pub const MAX_RESYNC_IDS: usize = 1_000;

/// Events read and resynced per statement by `resync_matching`.
const PAGE: u64 = 500;

impl Portal {
    /// Resync the events `ids`. All must exist, or nothing changes.
    pub async fn resync_events(
        &self,
        ids: &[Uuid],
        requested_by: &str,
    ) -> PortalResult<Vec<Event>> {
        if ids.is_empty() || ids.len() > MAX_RESYNC_IDS {
            return Err(PortalError::invalid(
                "INVALID_INPUT",
                "give between 1 and 1000 ids",
            ));
        }
        for id in ids {
            if self.store.event(*id).await?.is_none() {
                return Err(PortalError::invalid(
                    "EVENT_NOT_FOUND",
                    format!("no event with id {id}"),
                ));
            }
        }
        let events = self.store.resync_events(ids).await?;
        let logs = events
            .iter()
            .map(|event| NewLog {
                touchpoint_id: event.touchpoint_id,
                event_id: Some(event.id),
                level: LogLevel::Info,
                message: format!("resync requested by {requested_by}"),
                fields: json!({ "requestedBy": requested_by }),
            })
            .collect();
        if let Err(error) = self.store.append_logs(logs).await {
            tracing::warn!(%error, "writing resync logs");
        }
        self.wake_worker.notify_one();
        Ok(events)
    }

    /// Resync every event of a touchpoint with `status`, optionally received within a time
    /// range. Returns how many were put back.
    pub async fn resync_matching(
        &self,
        touchpoint_id: Uuid,
        status: EventStatus,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        requested_by: &str,
    ) -> PortalResult<usize> {
        if self.store.touchpoint(touchpoint_id).await?.is_none() {
            return Err(PortalError::touchpoint_not_found(touchpoint_id));
        }
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .events(EventQuery {
                    touchpoint_id,
                    status: Some(status),
                    first: PAGE,
                    after,
                    received_from: from,
                    received_to: to,
                    search: None,
                })
                .await?;
            after = page.items.last().map(|e| e.id);
            ids.extend(page.items.iter().map(|e| e.id));
            if !page.has_next_page {
                break;
            }
        }
        let mut count = 0;
        for chunk in ids.chunks(PAGE as usize) {
            count += self.store.resync_events(chunk).await?.len();
        }
        self.log(
            touchpoint_id,
            format!("resync of {count} {status:?} events requested by {requested_by}"),
        )
        .await;
        self.wake_worker.notify_one();
        Ok(count)
    }
}
