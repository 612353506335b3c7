//! The audit log: one entry per change made through the API, with the authenticated actor
//! (never a name the caller typed), newest first.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{Page, Store, StoreError, entity::audit};

/// One change.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: Uuid,
    /// The organization changed; `None` for instance-wide changes.
    pub organization_id: Option<Uuid>,
    pub at: DateTime<Utc>,
    /// Who: `token:<name>` or `oidc:<subject>`.
    pub actor: String,
    /// What: the mutation (`publishTouchpoint`, `revokeToken`, ...).
    pub action: String,
    /// The id of what was changed, when there is one.
    pub target: Option<String>,
    /// Anything else worth keeping (never a secret).
    pub detail: Value,
}

impl From<audit::Model> for AuditEntry {
    fn from(row: audit::Model) -> Self {
        Self {
            id: row.id,
            organization_id: row.organization_id,
            at: row.at,
            actor: row.actor,
            action: row.action,
            target: row.target,
            detail: row.detail,
        }
    }
}

/// A change to record.
#[derive(Clone, Debug)]
pub struct NewAudit<'a> {
    pub organization_id: Option<Uuid>,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<String>,
    pub detail: Value,
}

impl Store {
    /// Records a change.
    pub async fn record_audit(&self, entry: NewAudit<'_>) -> Result<AuditEntry, StoreError> {
        audit::ActiveModel {
            id: Set(Uuid::now_v7()),
            organization_id: Set(entry.organization_id),
            at: Set(self.now()),
            actor: Set(entry.actor.to_owned()),
            action: Set(entry.action.to_owned()),
            target: Set(entry.target),
            detail: Set(entry.detail),
        }
        .insert(self.db())
        .await
        .map(AuditEntry::from)
        .map_err(StoreError::SaveAudit)
    }

    /// An organization's audit log (or the instance-wide entries, for `None`), newest first,
    /// entries older than `before` only when given.
    pub async fn audit_log(
        &self,
        organization_id: Option<Uuid>,
        first: u64,
        before: Option<Uuid>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let mut query = audit::Entity::find();
        query = match organization_id {
            Some(id) => query.filter(audit::Column::OrganizationId.eq(id)),
            None => query.filter(audit::Column::OrganizationId.is_null()),
        };
        if let Some(before) = before {
            query = query.filter(audit::Column::Id.lt(before));
        }
        let rows = query
            .order_by_desc(audit::Column::Id)
            .limit(Page::<AuditEntry>::limit(first))
            .all(self.db())
            .await
            .map_err(StoreError::read("the audit log"))?;
        Ok(Page::from_rows(
            rows.into_iter().map(AuditEntry::from).collect(),
            first,
        ))
    }
}
