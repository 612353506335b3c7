//! Subscriptions: both buckets, live. Each stream ends when the server shuts down.
//!
//! A subscription reads the store's change feed. Each change carries the row it committed
//! (one shared copy for every subscriber; the row is loaded only when a change has none) and,
//! for a bucket change, the status it set, so a client sees every status an event passed
//! through.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, SimpleObject, Subscription};
use futures::{Stream, StreamExt};
use hookplane_store::{Change, ChangeKind, ChangedRow, Store};
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};

use crate::auth::Role;

use super::{
    ApiContext, authz, context,
    error::{ApiError, ApiResult},
    slots::ConnectionSlots,
    types::{BucketEntry, EventStatus, LogEntry},
};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum BucketChangeKind {
    /// A new entry.
    Created,
    /// An existing entry changed (status, attempts, duplicates).
    Updated,
}

/// A change to a resync bucket.
#[derive(SimpleObject)]
pub struct BucketChange {
    kind: BucketChangeKind,
    /// The status this change set.
    status: EventStatus,
    /// The entry as it is now.
    entry: BucketEntry,
}

pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Every new entry and every change of a touchpoint's resync bucket.
    async fn resync_bucket(
        &self,
        ctx: &Context<'_>,
        touchpoint_id: ID,
    ) -> Result<impl Stream<Item = ApiResult<BucketChange>> + use<>, ApiError> {
        let api = context(ctx)?;
        let changes = changes_of(ctx, api, &touchpoint_id).await?;
        Ok(loaded(changes, api.store.clone(), load_bucket_change))
    }

    /// Every new entry of a touchpoint's log bucket.
    async fn log_bucket(
        &self,
        ctx: &Context<'_>,
        touchpoint_id: ID,
    ) -> Result<impl Stream<Item = ApiResult<LogEntry>> + use<>, ApiError> {
        let api = context(ctx)?;
        let changes = changes_of(ctx, api, &touchpoint_id).await?;
        Ok(loaded(changes, api.store.clone(), load_log))
    }
}

/// Turn changes into the rows they name with `load`, which skips changes of other kinds
/// (`None`); a lag report passes through as an error item.
fn loaded<T, F, Fut>(
    changes: impl Stream<Item = ApiResult<Change>>,
    store: Store,
    load: F,
) -> impl Stream<Item = ApiResult<T>>
where
    F: Fn(Store, Change) -> Fut + Clone,
    Fut: Future<Output = Option<ApiResult<T>>>,
{
    changes.filter_map(move |change| {
        let (store, load) = (store.clone(), load.clone());
        async move {
            match change {
                Ok(change) => load(store, change).await,
                Err(lagged) => Some(Err(lagged)),
            }
        }
    })
}

async fn load_bucket_change(store: Store, change: Change) -> Option<ApiResult<BucketChange>> {
    let kind = match change.kind {
        ChangeKind::EventCreated => BucketChangeKind::Created,
        ChangeKind::EventUpdated => BucketChangeKind::Updated,
        ChangeKind::LogCreated => return None,
    };
    let event = match change.row {
        Some(ChangedRow::Event(event)) => event,
        _ => match store.event(change.id).await {
            Ok(Some(event)) => Arc::new(event),
            Ok(None) => return None,
            Err(error) => return Some(Err(error.into())),
        },
    };
    Some(Ok(BucketChange {
        kind,
        status: change.status.unwrap_or(event.status).into(),
        entry: BucketEntry(event),
    }))
}

async fn load_log(store: Store, change: Change) -> Option<ApiResult<LogEntry>> {
    if change.kind != ChangeKind::LogCreated {
        return None;
    }
    if let Some(ChangedRow::Log(entry)) = change.row {
        return Some(Ok(LogEntry(Arc::unwrap_or_clone(entry))));
    }
    match store.log_entry(change.id).await {
        Ok(Some(entry)) => Some(Ok(LogEntry(entry))),
        Ok(None) => None,
        Err(error) => Some(Err(error.into())),
    }
}

/// The change feed of one touchpoint, ending at shutdown. Subscribes before returning so no
/// change after this call is missed.
async fn changes_of(
    ctx: &Context<'_>,
    api: &ApiContext,
    touchpoint_id: &ID,
) -> Result<impl Stream<Item = ApiResult<Change>> + use<>, ApiError> {
    let receiver = api.store.subscribe();
    let touchpoint_id = authz::touchpoint_id(ctx, touchpoint_id, Role::Viewer).await?;
    // Held by the stream: the slot is given back when the subscription ends.
    let slot = match ctx.data_opt::<Arc<ConnectionSlots>>() {
        Some(connection) => Some(connection.take()?),
        None => None,
    };
    let shutdown = api.shutdown.clone();
    Ok(BroadcastStream::new(receiver)
        .filter_map(move |item| {
            std::future::ready(match item {
                Ok(change) if change.touchpoint_id == touchpoint_id => Some(Ok(change)),
                Ok(_) => None,
                Err(BroadcastStreamRecvError::Lagged(missed)) => Some(Err(lagged(missed))),
            })
        })
        .map(move |item| {
            let _held = &slot;
            item
        })
        .take_until(shutdown.cancelled_owned()))
}

/// What a subscriber that fell `missed` changes behind is told.
pub(super) fn lagged(missed: u64) -> ApiError {
    ApiError::invalid(
        "SUBSCRIPTION_LAGGED",
        format!("{missed} changes were missed; query the bucket to catch up"),
    )
}
