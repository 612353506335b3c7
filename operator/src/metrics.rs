//! The operator's Prometheus metrics: one registry, labels with bounded values only
//! (controller, error category, object kind), never object names.

use std::time::Instant;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by controller (`connection`, `touchpoint`).
    pub reconciles: IntCounterVec,
    /// Failures by controller and category (`read`, `apply`, `delete`, `status`, `backlog`).
    pub errors: IntCounterVec,
    /// Reconcile duration by controller.
    pub duration: HistogramVec,
    /// Writes to the cluster by kind and action (`apply`, `delete`, `status`).
    pub writes: IntCounterVec,
    /// 1 while this replica holds the leader Lease.
    pub leader: IntGauge,
    /// Wakes from the database's change relay, by reason (`changes`, `reconnected`), and
    /// listener failures (`listen_error`).
    pub wakeups: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("hookplane_operator".into()), None)
            .expect("a constant, valid prefix");
        let reconciles = IntCounterVec::new(
            Opts::new("reconciles_total", "Reconciles, by controller"),
            &["controller"],
        )
        .expect("valid metric definition");
        let errors = IntCounterVec::new(
            Opts::new(
                "reconcile_errors_total",
                "Reconcile failures, by controller and category",
            ),
            &["controller", "category"],
        )
        .expect("valid metric definition");
        let duration = HistogramVec::new(
            HistogramOpts::new("reconcile_duration_seconds", "Reconcile duration").buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["controller"],
        )
        .expect("valid metric definition");
        let writes = IntCounterVec::new(
            Opts::new(
                "writes_total",
                "Writes to the Kubernetes API, by kind and action",
            ),
            &["kind", "action"],
        )
        .expect("valid metric definition");
        let leader = IntGauge::new("leader", "1 while this replica holds the leader Lease")
            .expect("valid metric definition");
        let wakeups = IntCounterVec::new(
            Opts::new(
                "backlog_wakeups_total",
                "Wakes from the database's change relay, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric definition");
        for collector in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(writes.clone()),
            Box::new(leader.clone()),
            Box::new(wakeups.clone()),
        ] {
            registry
                .register(collector)
                .expect("each metric is registered once");
        }
        Self {
            registry,
            reconciles,
            errors,
            duration,
            writes,
            leader,
            wakeups,
        }
    }

    /// Count a reconcile of `controller` that started at `started`, failed with `error`'s
    /// category if any.
    pub fn reconciled(&self, controller: &str, started: Instant, error: Option<&str>) {
        self.reconciles.with_label_values(&[controller]).inc();
        self.duration
            .with_label_values(&[controller])
            .observe(started.elapsed().as_secs_f64());
        if let Some(category) = error {
            self.errors.with_label_values(&[controller, category]).inc();
        }
    }

    /// Count a write.
    pub fn wrote(&self, kind: &str, action: &str) {
        self.writes.with_label_values(&[kind, action]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding metrics into memory cannot fail");
        String::from_utf8(buffer).expect("the text exposition is UTF-8")
    }
}
