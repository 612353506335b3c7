//! GraphQL errors with a stable `extensions.code`.

use async_graphql::{ErrorExtensions, Value as GqlValue};
use hookplane_dataplane::runtime::ReloadError;
use hookplane_store::StoreError;

use hookplane_spec::SpecError;

/// An error a resolver returns; converted once, into a GraphQL error with `extensions.code`.
///
/// Deliberately not `Display`: async-graphql converts any `Display` error into a GraphQL
/// error without a code, so this type can only leave a resolver through its `From` below.
#[derive(Clone, Debug)]
pub enum ApiError {
    Invalid { code: &'static str, message: String },
    Spec(Vec<SpecError>),
}

fn summary(errors: &[SpecError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
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
}

/// Storage errors that are the client's doing keep their code and message; any other is
/// logged here and reaches the client as `STORAGE_ERROR` without database details.
impl From<StoreError> for ApiError {
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

impl From<ReloadError> for ApiError {
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

impl From<Vec<SpecError>> for ApiError {
    fn from(errors: Vec<SpecError>) -> Self {
        Self::Spec(errors)
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        let code = error.code();
        let message = error.message();
        let details = match &error {
            ApiError::Spec(errors) => Some(GqlValue::List(
                errors
                    .iter()
                    .map(|e| {
                        let mut object = async_graphql::indexmap::IndexMap::new();
                        object.insert(async_graphql::Name::new("code"), GqlValue::from(e.code));
                        object.insert(
                            async_graphql::Name::new("field"),
                            GqlValue::from(e.field.clone()),
                        );
                        object.insert(
                            async_graphql::Name::new("message"),
                            GqlValue::from(e.message.clone()),
                        );
                        GqlValue::Object(object)
                    })
                    .collect(),
            )),
            _ => None,
        };
        async_graphql::Error::new(message).extend_with(|_, extensions| {
            extensions.set("code", code);
            if let Some(details) = &details {
                extensions.set("errors", details.clone());
            }
        })
    }
}

/// Resolver result.
pub type ApiResult<T> = Result<T, ApiError>;

/// Parse a GraphQL `ID` as a UUID.
pub fn parse_id(id: &async_graphql::ID, what: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(id.as_str()).map_err(|_| {
        ApiError::invalid(
            "INVALID_ID",
            format!("{what} id {:?} is not a valid id", id.as_str()),
        )
    })
}
