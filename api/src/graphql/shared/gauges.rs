//! The sharing's two gauges, and a unit of one held for as long as what it counts.

use prometheus::IntGauge;

/// `hookplane_shared_subscribers` and `hookplane_shared_subscription_executions`.
#[derive(Clone)]
pub struct Gauges {
    /// Subscriptions reading a shared execution.
    pub open: IntGauge,
    /// Shared executions running.
    pub executions: IntGauge,
}

impl Gauges {
    /// Creates both gauges and registers them in `registry` (a registration error is
    /// logged: the gauges still count, unexported).
    pub fn registered(registry: &prometheus::Registry) -> Self {
        let gauge = |name: &str, help: &str| {
            let gauge = IntGauge::new(name, help).expect("a valid metric definition");
            if let Err(error) = registry.register(Box::new(gauge.clone())) {
                tracing::warn!(%error, name, "registering a subscription metric");
            }
            gauge
        };
        Self {
            open: gauge(
                "shared_subscribers",
                "WebSocket subscriptions reading a shared execution",
            ),
            executions: gauge(
                "shared_subscription_executions",
                "Subscription executions shared by WebSocket subscribers that ask the same thing with the same rights",
            ),
        }
    }
}

/// One unit of a gauge, given back on drop.
pub(super) struct GaugeHeld(IntGauge);

impl GaugeHeld {
    pub(super) fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeHeld {
    fn drop(&mut self) {
        self.0.dec();
    }
}
