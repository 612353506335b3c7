//! What makes a Touchpoint or Connection spec runnable, decided in one place.
//!
//! The portal checks a spec with [`validate`] before it saves or publishes it; the data plane
//! compiles what it runs with the same call; the operator leaves out of a rendered
//! configuration any touchpoint that fails it. So a touchpoint is either accepted everywhere
//! or refused everywhere with the same reasons, whether it came from the portal or from
//! kubectl.

pub mod template;
mod validate;

pub use validate::{
    SpecError, ValidatedTouchpoint, validate, validate_connection, validate_endpoint,
};
