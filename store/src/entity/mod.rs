//! sea-orm entities: one per table, as the migrations create them.
//!
//! These are storage rows, not the public types: specs are JSON text, statuses and levels
//! are plain columns. The modules that own each table convert rows into the public types.

pub(crate) mod api_token;
pub(crate) mod attempt;
pub(crate) mod audit;
pub(crate) mod connection;
pub(crate) mod event;
pub(crate) mod log;
pub(crate) mod organization;
pub(crate) mod schema;
pub(crate) mod secret;
pub(crate) mod touchpoint;
