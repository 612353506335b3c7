#![no_main]
//! The shift4shop app's classify, verify and parse never panic on arbitrary headers, query and
//! body. Input: `<selector byte><name: value lines, ?query>\n\n<body>`.

use std::sync::OnceLock;

use hookplane_sources::{SourceApp, VerifierConfig, fuzzing};
use libfuzzer_sys::fuzz_target;

static CONFIGS: OnceLock<Vec<(&'static dyn SourceApp, VerifierConfig)>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let configs = CONFIGS.get_or_init(|| fuzzing::fuzz_configs_for("shift4shop"));
    fuzzing::verify(data, configs);
});
