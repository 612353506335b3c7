//! What a use case refuses or fails with: a stable code and a message for the user, or every
//! problem of a spec. Storage failures that are not the caller's doing are logged here and
//! leave as `STORAGE_ERROR`, never as database text.

use hookplane_dataplane::runtime::ReloadError;
use hookplane_store::StoreError;
use hookplane_validation::SpecError;

/// Deliberately not `Display`: the API converts it once, keeping its code.
#[derive(Clone, Debug)]
pub enum PortalError {
    Invalid { code: &'static str, message: String },
    Spec(Vec<SpecError>),
}

pub type PortalResult<T> = Result<T, PortalError>;

fn summary(errors: &[SpecError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl PortalError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Invalid { message, .. } => message.clone(),
            Self::Spec(errors) => format!("the spec is invalid: {}", summary(errors)),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. } => code,
            Self::Spec(errors) => errors.first().map_or("INVALID_INPUT", |e| e.code),
        }
    }

    pub(crate) fn touchpoint_not_found(id: uuid::Uuid) -> Self {
        Self::invalid(
            "TOUCHPOINT_NOT_FOUND",
            format!("no touchpoint with id {id}"),
        )
    }

    pub(crate) fn connection_not_found(id: uuid::Uuid) -> Self {
        Self::invalid(
            "CONNECTION_NOT_FOUND",
            format!("no connection with id {id}"),
        )
    }
}

/// Storage errors that are the client's doing keep their code and message; any other is
/// logged here and reaches the client as `STORAGE_ERROR` without database details.
impl From<StoreError> for PortalError {
    fn from(error: StoreError) -> Self {
        let code = error.code();
        let message = if code == "STORAGE_ERROR" {
            tracing::error!(error = %error, source = ?std::error::Error::source(&error), "storage error in the API");
            "a storage error occurred; it has been logged".to_owned()
        } else {
            error.to_string()
        };
        Self::Invalid { code, message }
    }
}

impl From<ReloadError> for PortalError {
    fn from(error: ReloadError) -> Self {
        match error {
            ReloadError::Store(store) => store.into(),
            other => {
                tracing::error!(error = %other, "reloading the running configuration");
                Self::Invalid {
                    code: "RELOAD_FAILED",
                    message: "the running configuration could not be reloaded; it has been logged"
                        .to_owned(),
                }
            }
        }
    }
}

impl From<Vec<SpecError>> for PortalError {
    fn from(errors: Vec<SpecError>) -> Self {
        Self::Spec(errors)
    }
}
