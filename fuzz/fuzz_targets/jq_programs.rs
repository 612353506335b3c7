#![no_main]
//! Generated jq programs (grammar-aware, from the fuzz bytes) compile or are refused, the
//! shortcut returns promptly, and evaluator processes return within their limits: no
//! expression crashes, hangs or starves Hookplane. See `hookplane_mapping::fuzzing`.
//!
//! Evaluations run in `hookplane-evaluator` processes: build it first (README.md) or point
//! `HOOKPLANE_EVALUATOR` at one.

use std::{path::PathBuf, sync::OnceLock};

use hookplane_mapping::fuzzing::JqHarness;
use libfuzzer_sys::fuzz_target;

/// The release build of the root workspace, relative to this crate.
const DEFAULT_EVALUATOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/release/hookplane-evaluator"
);

static HARNESS: OnceLock<JqHarness> = OnceLock::new();

fn harness() -> &'static JqHarness {
    HARNESS.get_or_init(|| {
        let evaluator = std::env::var_os("HOOKPLANE_EVALUATOR")
            .map_or_else(|| PathBuf::from(DEFAULT_EVALUATOR), PathBuf::from);
        assert!(
            evaluator.is_file(),
            "no evaluator at {}: run `cargo build --release -p hookplane-mapping --bin \
             hookplane-evaluator` from the repository root, or set HOOKPLANE_EVALUATOR",
            evaluator.display()
        );
        JqHarness::new(evaluator, 2)
    })
}

fuzz_target!(|data: &[u8]| {
    harness().run(data);
});
