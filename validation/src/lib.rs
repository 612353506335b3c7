//! What makes a Touchpoint or Connection spec runnable, decided in one place.
//!
//! [`validate_connection`] and [`validate_touchpoint`] turn raw specs into sealed values
//! ([`ValidatedConnection`], [`ValidatedTouchpoint`]) that only they can make. The portal
//! validates before it publishes and keeps the result in the running snapshot; the data plane
//! loads what it runs through the same call; the operator leaves out of a rendered
//! configuration any touchpoint that fails it. So a touchpoint is either accepted everywhere
//! or refused everywhere with the same reasons, whether it came from the portal or from
//! kubectl. [`check_draft`] is the portal's looser verdict for saving a draft, which may wait
//! for its verification secret.

pub mod template;
mod validate;

pub use validate::{
    DraftTouchpoint, SpecError, ValidatedConnection, ValidatedTouchpoint, check_draft,
    validate_connection, validate_endpoint, validate_touchpoint,
};
