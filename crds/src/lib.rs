//! Touchpoint and Connection specs.
//!
//! One definition, two homes: these are the portal model's definitions (stored as JSON by
//! `hookplane serve`) and, on Kubernetes, the `spec` of the `Touchpoint` and `Connection`
//! custom resources. Field names are `camelCase` on the wire in both homes.
//!
//! [`config`] is the contract between the operator and the data plane on Kubernetes;
//! [`identity`] maps resources to database rows;
//! [`manifest`] renders the CustomResourceDefinitions.

pub mod config;
pub mod identity;
pub mod manifest;
pub mod v1alpha1;

pub use v1alpha1::*;
