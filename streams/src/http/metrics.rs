//! What an operator scrapes at `/metrics`, in the Prometheus text format
//! (written by the Prometheus project's own client, `prometheus-client`).
//! Each server process counts its own requests: with `--workers N` a
//! scrape reaches one of them, and its `process_id` label says which.

use std::path::PathBuf;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The counters of one server process.
pub(crate) struct Metrics {
    registry: Registry,
    /// Appends acknowledged.
    pub(crate) appends: Counter,
    /// Body bytes of the appends acknowledged.
    pub(crate) appended_bytes: Counter,
    /// Seconds from an append's start in the store to its acknowledgement
    /// (the commit, and its wait for the disk).
    pub(crate) append_seconds: Histogram,
    /// Long-polls waiting now.
    pub(crate) long_polls: Gauge,
    /// SSE responses open now.
    pub(crate) sse_clients: Gauge,
    /// Connections open now.
    pub(crate) connections: Gauge,
    /// Connections refused because the limit was reached.
    pub(crate) refused_connections: Counter,
    /// The store's size on disk, read at each scrape.
    store_bytes: Gauge,
    store_dir: PathBuf,
}

impl Metrics {
    pub(crate) fn new(store_dir: PathBuf) -> Metrics {
        let mut registry = Registry::with_prefix_and_labels(
            "skyshelve_streams",
            [("process_id".into(), std::process::id().to_string().into())].into_iter(),
        );
        let metrics = Metrics {
            appends: Counter::default(),
            appended_bytes: Counter::default(),
            append_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            long_polls: Gauge::default(),
            sse_clients: Gauge::default(),
            connections: Gauge::default(),
            refused_connections: Counter::default(),
            store_bytes: Gauge::default(),
            registry: Registry::default(),
            store_dir,
        };
        registry.register("appends", "Appends acknowledged", metrics.appends.clone());
        registry.register("appended_bytes", "Body bytes of the appends acknowledged", metrics.appended_bytes.clone());
        registry.register(
            "append_seconds",
            "Time from an append's start in the store to its acknowledgement",
            metrics.append_seconds.clone(),
        );
        registry.register("long_polls", "Long-polls waiting", metrics.long_polls.clone());
        registry.register("sse_clients", "SSE responses open", metrics.sse_clients.clone());
        registry.register("connections", "Connections open", metrics.connections.clone());
        registry.register(
            "refused_connections",
            "Connections refused at the connection limit",
            metrics.refused_connections.clone(),
        );
        registry.register("store_bytes", "Bytes of the store's files on disk", metrics.store_bytes.clone());
        Metrics { registry, ..metrics }
    }

    /// Everything, as the text a Prometheus scrape expects.
    pub(crate) fn render(&self) -> String {
        self.store_bytes.set(i64::try_from(dir_size(&self.store_dir)).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The bytes of the files directly in `dir` (a store keeps no folders).
fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.filter_map(Result::ok).filter_map(|entry| entry.metadata().ok()).map(|m| m.len()).sum()
}

/// Counts one open long-poll, SSE response or connection while alive.
pub(crate) struct Open(Gauge);

impl Open {
    pub(crate) fn new(gauge: &Gauge) -> Open {
        gauge.inc();
        Open(gauge.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}
