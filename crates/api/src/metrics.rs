//! The API's Prometheus metrics (prometheus-client): requests by route and status and
//! their latency, and, read from the store at each scrape, the store-and-forward queue
//! and the transactions still waiting for the issuer.

use std::sync::Mutex;

use axum::http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    route: String,
}

/// What the store says at a scrape.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StoreGauges {
    pub saf_pending: i64,
    pub saf_oldest_age_secs: i64,
    pub saf_exceptions: i64,
    pub in_flight: i64,
}

pub(crate) struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    saf_pending: Gauge,
    saf_oldest: Gauge,
    saf_exceptions: Gauge,
    in_flight: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("posguard");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        let saf_pending = Gauge::default();
        let saf_oldest = Gauge::default();
        let saf_exceptions = Gauge::default();
        let in_flight = Gauge::default();
        registry.register(
            "api_requests",
            "API requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "api_request_duration_seconds",
            "API request latency by route",
            latency.clone(),
        );
        registry.register(
            "saf_pending",
            "Store-and-forward advices (reversals, adjustments) waiting for the issuer",
            saf_pending.clone(),
        );
        registry.register(
            "saf_oldest_age_seconds",
            "Age of the oldest waiting store-and-forward advice",
            saf_oldest.clone(),
        );
        registry.register(
            "saf_exceptions",
            "Store-and-forward advices handed to operators",
            saf_exceptions.clone(),
        );
        registry.register(
            "transactions_in_flight",
            "Transactions journaled and still waiting for the issuer's answer",
            in_flight.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
            saf_pending,
            saf_oldest,
            saf_exceptions,
            in_flight,
        }
    }
}

impl Metrics {
    pub(crate) fn request(&self, method: &Method, route: &str, status: u16, secs: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.as_str().into(),
                route: route.into(),
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.into(),
            })
            .observe(secs);
    }

    /// The text exposition, after setting the store's gauges.
    pub(crate) fn render(&self, store: StoreGauges) -> String {
        self.saf_pending.set(store.saf_pending);
        self.saf_oldest.set(store.saf_oldest_age_secs);
        self.saf_exceptions.set(store.saf_exceptions);
        self.in_flight.set(store.in_flight);
        let mut out = String::new();
        match self.registry.lock() {
            Ok(r) => {
                if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &r) {
                    tracing::error!(error = %e, "metrics encoding failed");
                }
            }
            Err(_) => tracing::error!("metrics registry unusable"),
        }
        out
    }
}
