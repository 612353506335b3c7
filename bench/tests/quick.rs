//! `hookplane-bench all --quick` runs every scenario against the real binary and each prints
//! its figures. Speed is not asserted: timing belongs in `bench/RESULTS.md`, not in tests.
//!
//! Needs `target/<profile>/hookplane`, which `cargo test --workspace` builds (the `hookplane`
//! package's end-to-end tests use it).

use std::{path::PathBuf, process::Command};

use serde_json::Value;

#[test]
fn every_scenario_produces_figures() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_hookplane-bench"));
    let hookplane = bench.with_file_name("hookplane");
    assert!(
        hookplane.is_file(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p hookplane`) first",
        hookplane.display()
    );
    let mut command = Command::new(&bench);
    command.args(["all", "--quick"]);
    let postgres = std::env::var("HOOKPLANE_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.trim().is_empty());
    if let Some(url) = &postgres {
        command.args(["--postgres-url", url]);
    }
    let output = command.output().expect("hookplane-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "hookplane-bench failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    let line = |name: &str| {
        lines
            .iter()
            .find(|line| line["scenario"] == name)
            .unwrap_or_else(|| panic!("no {name} line in:\n{stdout}"))
    };
    let positive = |line: &Value, pointer: &str| {
        let value = line.pointer(pointer).and_then(Value::as_f64);
        assert!(
            value.is_some_and(|v| v > 0.0),
            "{pointer} of {} is {value:?}",
            line["scenario"]
        );
    };

    for name in ["ingest", "postgres-ingest"] {
        if name.starts_with("postgres") && postgres.is_none() {
            continue;
        }
        let ingest = line(name);
        positive(ingest, "/hookplane/requests_per_s");
        positive(ingest, "/hookplane/latency_ms/p99");
        positive(ingest, "/baseline/requests_per_s");
        positive(ingest, "/ratio_to_baseline/throughput");
    }
    let sync = line("ingest-sync");
    positive(sync, "/hookplane/requests_per_s");
    positive(sync, "/hookplane/delivered_total");
    positive(sync, "/ratio_to_baseline/throughput");
    let backlog = line("backlog");
    positive(backlog, "/delivered");
    positive(backlog, "/deliveries_per_s");
    for name in ["e2e", "postgres-e2e"] {
        if name.starts_with("postgres") && postgres.is_none() {
            continue;
        }
        let e2e = line(name);
        positive(e2e, "/hookplane/delivered");
        positive(e2e, "/hookplane/latency_ms/p99");
        positive(e2e, "/baseline/latency_ms/p99");
        assert!(e2e.pointer("/ramp/max_sustained_per_s").is_some());
    }
    if postgres.is_none() {
        assert!(line("postgres")["skipped"].is_string());
    }

    let mapping = line("mapping");
    positive(mapping, "/hookplane/apply_per_s_per_core");
    positive(mapping, "/baseline/parse_serialize_per_s_per_core");
    positive(mapping, "/ratio_to_baseline/apply");
    positive(mapping, "/program/hookplane/bounded_per_s_per_core");
    positive(mapping, "/program/ratio_to_baseline/bounded");

    let fanout = line("fanout");
    positive(fanout, "/hookplane/changes_received");
    positive(fanout, "/hookplane/latency_ms/p99");
    positive(fanout, "/baseline/changes_received");
    assert!(fanout.pointer("/hookplane/per_subscriber_kib").is_some());
    assert!(
        fanout
            .pointer("/baseline_small_buffers/per_subscriber_kib")
            .is_some()
    );

    let footprint = line("footprint");
    positive(footprint, "/hookplane/idle_rss_mib");
    positive(footprint, "/hookplane/ingest_rss_mib");
    positive(footprint, "/hookplane/start_to_first_accepted_ms/p50");
    positive(footprint, "/baseline/idle_rss_mib");
}
