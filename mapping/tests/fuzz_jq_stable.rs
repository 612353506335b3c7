//! The `jq_programs` fuzz target's body (`hookplane_mapping::fuzzing`, also run by `cargo fuzz`
//! from `fuzz/`) driven on stable: programs drawn from seeded pseudo-random bytes, each
//! compiled, tried on the shortcut and run in real evaluator processes under small limits.
//! Scale with `HOOKPLANE_FUZZ_JQ_CASES` (default 500); `HOOKPLANE_FUZZ_JQ_SEED` draws another
//! set.

use std::collections::BTreeMap;

use hookplane_mapping::fuzzing::{JqHarness, Outcome};

fn cases() -> usize {
    std::env::var("HOOKPLANE_FUZZ_JQ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

/// SplitMix64: deterministic bytes without a dependency.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn take(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn generated_programs_neither_crash_nor_hang_nor_overrun() {
    let harness = JqHarness::new(env!("CARGO_BIN_EXE_hookplane-evaluator"), 2);
    let seed = std::env::var("HOOKPLANE_FUZZ_JQ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x4a51);
    let mut bytes = Bytes(seed);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..cases() {
        let len = 16 + (bytes.next() % 600) as usize;
        let data = bytes.take(len);
        let outcome = harness.run(&data);
        *outcomes.entry(format!("{outcome:?}")).or_default() += 1;
    }
    println!("{outcomes:#?}");
    // The generator must reach every stage, or the checks above prove little.
    let count = |outcome: Outcome| outcomes.get(&format!("{outcome:?}")).copied().unwrap_or(0);
    let compiled = cases() - count(Outcome::Refused) - count(Outcome::NotDrawn);
    assert!(
        compiled * 2 >= cases(),
        "most programs compile: {outcomes:?}"
    );
    for outcome in [
        Outcome::Refused,
        Outcome::Shortcut,
        Outcome::Value,
        Outcome::Failed,
    ] {
        assert!(
            count(outcome) > 0,
            "{outcome:?} never happened: {outcomes:?}"
        );
    }
    let exceeded: usize = outcomes
        .iter()
        .filter(|(k, _)| k.starts_with("Exceeded"))
        .map(|(_, n)| n)
        .sum();
    assert!(exceeded > 0, "no limit was ever hit: {outcomes:?}");
}
