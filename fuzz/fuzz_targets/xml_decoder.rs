#![no_main]
//! The XML decoder (and the encoders on its output) never panics.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hookplane_sources::fuzzing::xml(data));
