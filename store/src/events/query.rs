//! Reading a resync bucket: one event, a page (newest first), counts per status.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::{Event, EventQuery, EventStatus, StatusCounts};
use crate::{Page, Store, StoreError, entity::event};

impl Store {
    /// The event with this id.
    pub async fn event(&self, id: Uuid) -> Result<Option<Event>, StoreError> {
        event::Entity::find_by_id(id)
            .one(self.db())
            .await
            .map_err(StoreError::read("an event"))?
            .map(Event::try_from)
            .transpose()
    }

    /// A page of a touchpoint's bucket, newest first.
    pub async fn events(&self, q: EventQuery) -> Result<Page<Event>, StoreError> {
        let mut query = event::Entity::find()
            .filter(event::Column::TouchpointId.eq(q.touchpoint_id))
            .order_by_desc(event::Column::Id)
            .limit(Page::<Event>::limit(q.first));
        if let Some(status) = q.status {
            query = query.filter(event::Column::Status.eq(status.as_str()));
        }
        if let Some(after) = q.after {
            query = query.filter(event::Column::Id.lt(after));
        }
        let rows = query
            .all(self.db())
            .await
            .map_err(StoreError::read("events"))?
            .into_iter()
            .map(Event::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, q.first))
    }

    /// How many of a touchpoint's events are in each status.
    pub async fn count_events(&self, touchpoint_id: Uuid) -> Result<StatusCounts, StoreError> {
        let rows: Vec<(String, i64)> = event::Entity::find()
            .select_only()
            .column(event::Column::Status)
            .column_as(event::Column::Id.count(), "count")
            .filter(event::Column::TouchpointId.eq(touchpoint_id))
            .group_by(event::Column::Status)
            .into_tuple()
            .all(self.db())
            .await
            .map_err(StoreError::read("event counts"))?;
        let mut counts = StatusCounts::default();
        for (status, count) in rows {
            let status: EventStatus = status
                .parse()
                .map_err(|error| StoreError::invalid_row("events", error))?;
            match status {
                EventStatus::Unprocessed => counts.unprocessed = count,
                EventStatus::Success => counts.success = count,
                EventStatus::Failed => counts.failed = count,
                EventStatus::Skipped => counts.skipped = count,
            }
        }
        Ok(counts)
    }
}
