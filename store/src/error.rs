//! The store's one error type.
//!
//! Variants are either a domain answer the caller can act on (`EndpointTaken`,
//! `ConnectionNotFound`, ...) or the storage action that failed, with the database error kept
//! as `#[source]` and never repeated in the message: the message is safe to show to a client,
//! the source chain is for logs. [`StoreError::code`] gives the stable code an API puts in
//! `extensions.code` or an HTTP error body.
//!
//! `Clone`, because the group-commit writer answers every caller of a failed batch with the
//! same error.

use sea_orm::{DbErr, SqlErr};

/// Why a store operation failed.
#[derive(thiserror::Error, Debug, Clone)]
#[non_exhaustive]
pub enum StoreError {
    /// The connection a touchpoint refers to does not exist (or the reference is not an id).
    #[error("the connection does not exist")]
    ConnectionNotFound,
    /// The touchpoint does not exist.
    #[error("the touchpoint does not exist")]
    TouchpointNotFound,
    /// The event does not exist.
    #[error("the event does not exist")]
    EventNotFound,
    /// The event no longer carries the caller's lease: it was claimed again after the lease
    /// expired, or resynced. Nothing was changed.
    #[error("the event's lease was lost to a newer claim or a resync")]
    LeaseLost,
    /// Another touchpoint already uses this endpoint (in its draft or its published spec).
    #[error("the endpoint {endpoint:?} is already used by another touchpoint")]
    EndpointTaken {
        /// The endpoint path that is taken.
        endpoint: String,
    },
    /// Another organization already has this slug.
    #[error("the organization {slug:?} already exists")]
    OrganizationTaken {
        /// The slug that is taken.
        slug: String,
    },
    /// The organization does not exist.
    #[error("the organization does not exist")]
    OrganizationNotFound,
    /// The API token does not exist.
    #[error("the token does not exist")]
    TokenNotFound,
    /// An update tried to move a touchpoint to another connection.
    #[error("a touchpoint cannot move to another connection")]
    ConnectionImmutable,
    /// The database is reachable but its schema is not (fully) migrated.
    #[error("the database schema is not migrated; run the migrations first")]
    NotMigrated,
    /// The database URL names a database this store does not support.
    #[error("unsupported database URL {url:?}: use sqlite://<file>, a file path or postgres://...")]
    Unsupported {
        /// The URL, without its password.
        url: String,
    },
    /// A stored row could not be read back into its type.
    #[error("a stored {table} row is invalid: {detail}")]
    InvalidRow {
        /// The table the row is in.
        table: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The store has been closed.
    #[error("the store is closed")]
    WriterClosed,
    /// Opening the database failed.
    #[error("could not open the database")]
    OpenDatabase(#[source] DbErr),
    /// The database cannot be reached or opened: one line saying where, why and what to do.
    #[error("cannot open {target}: {cause} ({hint})")]
    Unreachable {
        target: String,
        cause: String,
        hint: String,
    },
    /// Running the migrations failed.
    #[error("could not migrate the database")]
    Migrate(#[source] DbErr),
    /// The readiness check could not reach the database.
    #[error("the database is not reachable")]
    CheckReady(#[source] DbErr),
    /// A read failed.
    #[error("could not read {what}")]
    Read {
        /// What was being read.
        what: &'static str,
        /// The database error.
        #[source]
        source: DbErr,
    },
    /// Saving the organization failed.
    #[error("could not save the organization")]
    SaveOrganization(#[source] DbErr),
    /// Saving an API token failed.
    #[error("could not save the token")]
    SaveToken(#[source] DbErr),
    /// Recording an audit entry failed.
    #[error("could not record the audit entry")]
    SaveAudit(#[source] DbErr),
    /// Saving a connection failed.
    #[error("could not save the connection")]
    SaveConnection(#[source] DbErr),
    /// Saving a touchpoint failed.
    #[error("could not save the touchpoint")]
    SaveTouchpoint(#[source] DbErr),
    /// Deleting a touchpoint failed.
    #[error("could not delete the touchpoint")]
    DeleteTouchpoint(#[source] DbErr),
    /// Saving a secret failed.
    #[error("could not save the secret")]
    SaveSecret(#[source] DbErr),
    /// A secret could not be encrypted or decrypted with the configured key.
    #[error("secret encryption: {0}")]
    SecretKey(#[from] crate::SecretKeyError),
    /// Saving a JSON Schema failed.
    #[error("could not save the schema")]
    SaveSchema(#[source] DbErr),
    /// Deleting a JSON Schema failed.
    #[error("could not delete the schema")]
    DeleteSchema(#[source] DbErr),
    /// Appending events to the resync bucket failed; none of them is stored.
    #[error("could not append events")]
    AppendEvents(#[source] DbErr),
    /// Appending log entries failed; none of them is stored.
    #[error("could not append log entries")]
    AppendLogs(#[source] DbErr),
    /// Leasing due events failed.
    #[error("could not claim due events")]
    ClaimEvents(#[source] DbErr),
    /// Recording the outcome of processing an event failed.
    #[error("could not record the outcome of an event")]
    RecordOutcome(#[source] DbErr),
    /// Handing a lease back failed.
    #[error("could not release the lease")]
    ReleaseLease(#[source] DbErr),
    /// Purging old events and log entries failed; what was purged before stays purged.
    #[error("could not purge old entries")]
    Purge(#[source] DbErr),
    /// Putting events back to UNPROCESSED failed.
    #[error("could not resync events")]
    ResyncEvents(#[source] DbErr),
}

impl StoreError {
    /// A stable code for clients (`extensions.code`, HTTP error bodies). Every storage
    /// failure is `STORAGE_ERROR`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ConnectionNotFound => "CONNECTION_NOT_FOUND",
            Self::TouchpointNotFound => "TOUCHPOINT_NOT_FOUND",
            Self::EventNotFound => "EVENT_NOT_FOUND",
            Self::LeaseLost => "LEASE_LOST",
            Self::EndpointTaken { .. } => "ENDPOINT_TAKEN",
            Self::ConnectionImmutable => "CONNECTION_IMMUTABLE",
            Self::OrganizationTaken { .. } => "ORGANIZATION_TAKEN",
            Self::OrganizationNotFound => "ORGANIZATION_NOT_FOUND",
            Self::TokenNotFound => "TOKEN_NOT_FOUND",
            Self::NotMigrated => "NOT_MIGRATED",
            Self::Unsupported { .. } => "UNSUPPORTED_DATABASE",
            Self::WriterClosed => "STORE_CLOSED",
            Self::InvalidRow { .. }
            | Self::OpenDatabase(_)
            | Self::Unreachable { .. }
            | Self::Migrate(_)
            | Self::CheckReady(_)
            | Self::Read { .. }
            | Self::SaveOrganization(_)
            | Self::SaveToken(_)
            | Self::SaveAudit(_)
            | Self::SaveConnection(_)
            | Self::SaveTouchpoint(_)
            | Self::DeleteTouchpoint(_)
            | Self::SaveSecret(_)
            | Self::SecretKey(_)
            | Self::SaveSchema(_)
            | Self::DeleteSchema(_)
            | Self::AppendEvents(_)
            | Self::AppendLogs(_)
            | Self::ClaimEvents(_)
            | Self::RecordOutcome(_)
            | Self::ReleaseLease(_)
            | Self::Purge(_)
            | Self::ResyncEvents(_) => "STORAGE_ERROR",
        }
    }

    /// A `Read` error for `what`; for `map_err`.
    pub(crate) fn read(what: &'static str) -> impl FnOnce(DbErr) -> Self {
        move |source| Self::Read { what, source }
    }

    pub(crate) fn invalid_row(table: &'static str, detail: impl ToString) -> Self {
        Self::InvalidRow {
            table,
            detail: detail.to_string(),
        }
    }
}

/// Whether a database error is a foreign-key violation (a row referring to a missing parent).
pub(crate) fn is_foreign_key_violation(error: &DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(SqlErr::ForeignKeyConstraintViolation(_))
    )
}

/// Whether a database error is a unique-constraint violation.
pub(crate) fn is_unique_violation(error: &DbErr) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(
            StoreError::ConnectionNotFound.code(),
            "CONNECTION_NOT_FOUND"
        );
        assert_eq!(
            StoreError::EndpointTaken {
                endpoint: "orders".into()
            }
            .code(),
            "ENDPOINT_TAKEN"
        );
        assert_eq!(StoreError::LeaseLost.code(), "LEASE_LOST");
        assert_eq!(
            StoreError::AppendEvents(DbErr::Custom("disk full".into())).code(),
            "STORAGE_ERROR"
        );
    }

    #[test]
    fn messages_do_not_repeat_the_database_error() {
        let error = StoreError::AppendEvents(DbErr::Custom("secret detail".into()));
        assert!(!error.to_string().contains("secret detail"));
    }
}
