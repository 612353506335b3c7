//! Prometheus metrics.
//!
//! One registry per process, created at start-up and passed explicitly. Labels carry bounded
//! values only (routes, outcomes, statuses), never object names or ids.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric Hookplane exports.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route, method and status class.
    pub http_request_duration: HistogramVec,
    /// Webhooks by outcome (`accepted`, `duplicate`, `rejected_*`).
    pub webhooks_received: IntCounterVec,
    /// Events processed by resulting status (`SUCCESS`, `FAILED`, `SKIPPED`, `RETRY`).
    pub events_processed: IntCounterVec,
    /// Delivery round-trip time by outcome (`success`, `failure`).
    pub delivery_duration: HistogramVec,
    /// Events currently being processed by this process's worker.
    pub events_in_flight: IntGauge,
    /// Events in the resync buckets by status (all touchpoints; read from the store when
    /// metrics are scraped, so every replica reports the same shared figure).
    pub bucket_events: IntGaugeVec,
    /// Rows removed by retention, by kind (`events`, `logs`, `attempts`).
    pub purged: IntCounterVec,
    /// Failed delivery attempts that were scheduled to be tried again.
    pub delivery_retries: IntCounter,
    /// Times an idle sync worker asked the store when its next event is due (a look at the
    /// backlog). It looks when woken by new work for a touchpoint with Auto-sync on, and at
    /// its idle poll: webhooks for touchpoints with Auto-sync off do not wake it.
    pub worker_due_lookups: IntCounter,
    /// Times a destination slowed deliveries down, by reason: it pushed back
    /// (`destination_429`, `destination_503`), asked to wait (`retry_after_hold`), or a claimed
    /// event was handed back because its destination had no room (`concurrency`, `rate`,
    /// `held`).
    pub delivery_throttled: IntCounterVec,
    /// The store's group-commit writer, by kind: `transactions`, `failed_transactions`,
    /// `careful_batches` (batches its fast path handed to request-by-request), `requests`,
    /// `events`, `logs`, `outcomes`, `claims` and `claimed` (events leased by those claims).
    /// Read from the store when metrics are scraped.
    pub store_writer: IntCounterVec,
    /// Content-Security-Policy violations browsers reported from the portal's pages: a page
    /// tried to load or connect to something outside its origin (an injected script, say).
    /// Anyone can post a report, so this counts reports, not proven attacks.
    pub csp_violations: IntCounter,
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("hookplane".into()), None).expect("a constant, valid prefix");
        let latency_buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ];
        let http_request_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request duration")
                .buckets(latency_buckets.clone()),
            &["route", "method", "status"],
        )
        .expect("valid metric definition");
        let webhooks_received = IntCounterVec::new(
            Opts::new("webhooks_received_total", "Webhooks received, by outcome"),
            &["outcome"],
        )
        .expect("valid metric definition");
        let events_processed = IntCounterVec::new(
            Opts::new(
                "events_processed_total",
                "Events processed, by resulting status",
            ),
            &["status"],
        )
        .expect("valid metric definition");
        let delivery_duration = HistogramVec::new(
            HistogramOpts::new("delivery_duration_seconds", "Destination round-trip time")
                .buckets(latency_buckets),
            &["outcome"],
        )
        .expect("valid metric definition");
        let events_in_flight =
            IntGauge::new("events_in_flight", "Events being processed by the worker")
                .expect("valid metric definition");
        let bucket_events = IntGaugeVec::new(
            Opts::new("bucket_events", "Events in the resync buckets, by status"),
            &["status"],
        )
        .expect("valid metric definition");
        let purged = IntCounterVec::new(
            Opts::new(
                "retention_purged_total",
                "Rows removed by retention, by kind",
            ),
            &["kind"],
        )
        .expect("valid metric definition");
        let delivery_retries = IntCounter::new(
            "delivery_retries_total",
            "Failed delivery attempts scheduled to be tried again",
        )
        .expect("valid metric definition");
        let worker_due_lookups = IntCounter::new(
            "worker_due_lookups_total",
            "Times an idle sync worker asked the store when its next event is due",
        )
        .expect("valid metric definition");
        let delivery_throttled = IntCounterVec::new(
            Opts::new(
                "delivery_throttled_total",
                "Times a destination slowed deliveries down, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric definition");
        let store_writer = IntCounterVec::new(
            Opts::new(
                "store_writer_total",
                "The store's group-commit writer: transactions, requests and rows, by kind",
            ),
            &["kind"],
        )
        .expect("valid metric definition");
        let csp_violations = IntCounter::new(
            "portal_csp_violations_total",
            "Content-Security-Policy violations reported by browsers on the portal's pages",
        )
        .expect("valid metric definition");
        for collector in [
            Box::new(http_request_duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(webhooks_received.clone()),
            Box::new(events_processed.clone()),
            Box::new(delivery_duration.clone()),
            Box::new(events_in_flight.clone()),
            Box::new(bucket_events.clone()),
            Box::new(purged.clone()),
            Box::new(delivery_retries.clone()),
            Box::new(worker_due_lookups.clone()),
            Box::new(delivery_throttled.clone()),
            Box::new(store_writer.clone()),
            Box::new(csp_violations.clone()),
        ] {
            registry
                .register(collector)
                .expect("each metric is registered once");
        }
        Self {
            registry,
            http_request_duration,
            webhooks_received,
            events_processed,
            delivery_duration,
            events_in_flight,
            bucket_events,
            purged,
            delivery_retries,
            worker_due_lookups,
            delivery_throttled,
            store_writer,
            csp_violations,
        }
    }

    /// Brings `store_writer` up to the writer's own counts (which only grow).
    pub fn observe_writer(&self, stats: &hookplane_store::WriterStats) {
        for (kind, value) in [
            ("transactions", stats.transactions),
            ("failed_transactions", stats.failed_transactions),
            ("careful_batches", stats.careful_batches),
            ("requests", stats.requests),
            ("events", stats.events),
            ("logs", stats.logs),
            ("outcomes", stats.outcomes),
            ("claims", stats.claims),
            ("claimed", stats.claimed),
        ] {
            let counter = self.store_writer.with_label_values(&[kind]);
            counter.inc_by(value.saturating_sub(counter.get()));
        }
    }

    /// The one registry, for metrics defined outside the data plane (the API's cluster mirror).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a failure would be a bug in a metric name.
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "encoding metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counter totals the periodic summary compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Totals {
    accepted: u64,
    duplicate: u64,
    rejected: u64,
    delivered: u64,
    failed: u64,
    retried: u64,
    skipped: u64,
}

impl Totals {
    fn read(metrics: &Metrics) -> Self {
        use prometheus::core::Collector;

        let mut totals = Self::default();
        let by_label = |vec: &IntCounterVec, each: &mut dyn FnMut(&str, u64)| {
            for family in vec.collect() {
                for metric in family.get_metric() {
                    let label = metric
                        .get_label()
                        .first()
                        .map(|pair| pair.value())
                        .unwrap_or_default();
                    each(label, metric.get_counter().get_value() as u64);
                }
            }
        };
        by_label(&metrics.webhooks_received, &mut |label, n| match label {
            "accepted" => totals.accepted += n,
            "duplicate" => totals.duplicate += n,
            _ => totals.rejected += n,
        });
        by_label(&metrics.events_processed, &mut |label, n| match label {
            "SUCCESS" => totals.delivered += n,
            "FAILED" => totals.failed += n,
            "RETRY" => totals.retried += n,
            "SKIPPED" => totals.skipped += n,
            _ => {}
        });
        totals
    }

    fn since(self, before: Self) -> Self {
        Self {
            accepted: self.accepted - before.accepted,
            duplicate: self.duplicate - before.duplicate,
            rejected: self.rejected - before.rejected,
            delivered: self.delivered - before.delivered,
            failed: self.failed - before.failed,
            retried: self.retried - before.retried,
            skipped: self.skipped - before.skipped,
        }
    }
}

/// While traffic flows, one INFO line every `every`: webhooks received (accepted, duplicate,
/// rejected) and events delivered, failed, retried and skipped in that time. Quiet periods
/// print nothing. `every` of zero turns it off.
pub async fn log_summaries(
    metrics: std::sync::Arc<Metrics>,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    if every.is_zero() {
        return;
    }
    let mut before = Totals::read(&metrics);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let now = Totals::read(&metrics);
        let last = now.since(before);
        before = now;
        if last == Totals::default() {
            continue;
        }
        tracing::info!(
            seconds = every.as_secs(),
            accepted = last.accepted,
            duplicate = last.duplicate,
            rejected = last.rejected,
            delivered = last.delivered,
            failed = last.failed,
            retried = last.retried,
            skipped = last.skipped,
            "summary: {} webhooks received, {} delivered, {} failed in the last {} s",
            last.accepted + last.duplicate + last.rejected,
            last.delivered,
            last.failed,
            every.as_secs()
        );
    }
}
