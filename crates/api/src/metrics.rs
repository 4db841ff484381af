//! The API's Prometheus metrics (`metrics` with `metrics-exporter-prometheus`, which
//! writes the classic text format that Prometheus scrapes and `promtool check metrics`
//! reads): requests by route and status and their latency, and, read from the store
//! at each scrape, the store-and-forward queue and the transactions still waiting for
//! the issuer. The recorder is this API's own (not the process-global one).

use axum::http::Method;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// The switching node's metrics, when the API runs inside a node: the process-wide
/// recorder the gateway and the journal record into, and whether the node can serve
/// (an issuer link up).
#[derive(Clone)]
pub struct NodeHooks {
    /// The process recorder's handle.
    pub handle: PrometheusHandle,
    /// `Ok` when the node can serve; `Err(why)` when not.
    pub ready: std::sync::Arc<dyn Fn() -> Result<(), String> + Send + Sync>,
}

/// Installs the process-wide Prometheus recorder (once; later calls get the same
/// handle): histograms named in `buckets` get theirs, every other one `latency`.
pub fn install_node_recorder(
    latency: &[f64],
    buckets: &[(&str, &[f64])],
) -> Result<PrometheusHandle, String> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let mut builder = PrometheusBuilder::new()
        .set_buckets(latency)
        .map_err(|e| e.to_string())?;
    for (name, b) in buckets {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_owned()), b)
            .map_err(|e| e.to_string())?;
    }
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// What the store says at a scrape.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StoreGauges {
    pub saf_pending: i64,
    pub saf_oldest_age_secs: i64,
    pub saf_exceptions: i64,
    pub in_flight: i64,
    pub recon_open: i64,
    pub reviews_overdue: i64,
    pub rereviews_due: i64,
    pub complaints_open: i64,
    pub complaints_breached: i64,
}

const REQUESTS: &str = "posguard_api_requests_total";
const LATENCY: &str = "posguard_api_request_duration_seconds";
const SAF_PENDING: &str = "posguard_saf_pending";
const SAF_OLDEST: &str = "posguard_saf_oldest_age_seconds";
const SAF_EXCEPTIONS: &str = "posguard_saf_exceptions";
const IN_FLIGHT: &str = "posguard_transactions_in_flight";
const RECON_OPEN: &str = "posguard_recon_exceptions_open";
const REVIEWS_OVERDUE: &str = "posguard_applications_overdue";
const REREVIEWS_DUE: &str = "posguard_rereviews_due";
const COMPLAINTS_OPEN: &str = "posguard_complaints_open";
const COMPLAINTS_BREACHED: &str = "posguard_complaints_breached";

/// Latency buckets, seconds: 0.5 ms to 4 s.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048,
    4.096,
];

pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets_for_metric(Matcher::Full(LATENCY.into()), &BUCKETS)
        {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "latency buckets refused; summaries instead");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!(REQUESTS, "API requests by method, route and status");
            metrics::describe_histogram!(
                LATENCY,
                metrics::Unit::Seconds,
                "API request latency by route"
            );
            metrics::describe_gauge!(
                SAF_PENDING,
                "Store-and-forward advices (reversals, adjustments) waiting for the issuer"
            );
            metrics::describe_gauge!(
                SAF_OLDEST,
                metrics::Unit::Seconds,
                "Age of the oldest waiting store-and-forward advice"
            );
            metrics::describe_gauge!(
                SAF_EXCEPTIONS,
                "Store-and-forward advices handed to operators"
            );
            metrics::describe_gauge!(COMPLAINTS_OPEN, "Complaints not yet resolved or rejected");
            metrics::describe_gauge!(
                COMPLAINTS_BREACHED,
                "Open complaints past their deadline (to acknowledge, or to resolve)"
            );
            metrics::describe_gauge!(
                REREVIEWS_DUE,
                "Merchants whose periodic re-review is due or overdue"
            );
            metrics::describe_gauge!(
                REVIEWS_OVERDUE,
                "Merchant applications whose review is past its SLA"
            );
            metrics::describe_gauge!(
                RECON_OPEN,
                "Reconciliation exceptions open (waiting for a person)"
            );
            metrics::describe_gauge!(
                IN_FLIGHT,
                "Transactions journaled and still waiting for the issuer's answer"
            );
        });
        Metrics { recorder, handle }
    }
}

impl Metrics {
    pub(crate) fn request(&self, method: &Method, route: &str, status: u16, secs: f64) {
        metrics::with_local_recorder(&self.recorder, || {
            metrics::counter!(
                REQUESTS,
                "method" => method.as_str().to_owned(),
                "route" => route.to_owned(),
                "status" => status.to_string(),
            )
            .increment(1);
            metrics::histogram!(LATENCY, "route" => route.to_owned()).record(secs);
        });
    }

    /// The text exposition, after setting the store's gauges.
    pub(crate) fn render(&self, store: StoreGauges) -> String {
        metrics::with_local_recorder(&self.recorder, || {
            metrics::gauge!(SAF_PENDING).set(store.saf_pending as f64);
            metrics::gauge!(SAF_OLDEST).set(store.saf_oldest_age_secs as f64);
            metrics::gauge!(SAF_EXCEPTIONS).set(store.saf_exceptions as f64);
            metrics::gauge!(IN_FLIGHT).set(store.in_flight as f64);
            metrics::gauge!(RECON_OPEN).set(store.recon_open as f64);
            metrics::gauge!(REVIEWS_OVERDUE).set(store.reviews_overdue as f64);
            metrics::gauge!(REREVIEWS_DUE).set(store.rereviews_due as f64);
            metrics::gauge!(COMPLAINTS_OPEN).set(store.complaints_open as f64);
            metrics::gauge!(COMPLAINTS_BREACHED).set(store.complaints_breached as f64);
        });
        self.handle.render()
    }
}
