//! hookplane
