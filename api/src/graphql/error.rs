//! GraphQL errors with a stable `extensions.code`.

use async_graphql::{ErrorExtensions, Value as GqlValue};

/// An error a resolver returns: the portal's, converted once (below) into a GraphQL error
/// with `extensions.code`. It is deliberately not `Display`: async-graphql converts any
/// `Display` error into a GraphQL error without a code.
pub use crate::portal::PortalError as ApiError;

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
