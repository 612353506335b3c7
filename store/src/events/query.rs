//! Reading resync buckets: one event, a page (newest first, by status and time received),
//! counts per status (per touchpoint or in all), and the backlog of every touchpoint.

use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};
use uuid::Uuid;

use super::{Event, EventQuery, EventStatus, StatusCounts};
use crate::{Page, Store, StoreError, entity::event, time};

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
        if let Some(from) = q.received_from {
            query = query.filter(event::Column::ReceivedAt.gte(time::stored(from)));
        }
        if let Some(to) = q.received_to {
            query = query.filter(event::Column::ReceivedAt.lte(time::stored(to)));
        }
        if let Some(search) = q.search.filter(|search| !search.is_empty()) {
            let mut matches = Condition::any()
                .add(event::Column::DedupeKey.eq(search.as_str()))
                .add(event::Column::OrderingKey.eq(search.as_str()));
            if let Ok(id) = Uuid::parse_str(&search) {
                matches = matches.add(event::Column::Id.eq(id));
            }
            query = query.filter(matches);
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
        self.count_by_status(
            event::Entity::find().filter(event::Column::TouchpointId.eq(touchpoint_id)),
        )
        .await
    }

    /// How many events of all touchpoints are in each status (for metrics).
    pub async fn count_events_by_status_all(&self) -> Result<StatusCounts, StoreError> {
        self.count_by_status(event::Entity::find()).await
    }

    /// The UNPROCESSED events of each touchpoint that has any, by touchpoint id, in one
    /// grouped query (for metrics and the operator). Touchpoints with none are left out.
    pub async fn backlog(&self) -> Result<Vec<(Uuid, i64)>, StoreError> {
        event::Entity::find()
            .select_only()
            .column(event::Column::TouchpointId)
            .column_as(event::Column::Id.count(), "count")
            .filter(event::Column::Status.eq(EventStatus::Unprocessed.as_str()))
            .group_by(event::Column::TouchpointId)
            .order_by_asc(event::Column::TouchpointId)
            .into_tuple()
            .all(self.db())
            .await
            .map_err(StoreError::read("the backlog"))
    }

    async fn count_by_status(
        &self,
        events: Select<event::Entity>,
    ) -> Result<StatusCounts, StoreError> {
        let rows: Vec<(String, i64)> = events
            .select_only()
            .column(event::Column::Status)
            .column_as(event::Column::Id.count(), "count")
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
