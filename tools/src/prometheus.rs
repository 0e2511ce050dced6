//! The engine's counters in Prometheus' text exposition format, for a
//! scraper or node_exporter's textfile collector
//! (`ringctl stats --prometheus > /var/lib/node_exporter/ringwire.prom`).
//!
//! Every count of the `stats` answer becomes a counter (`_total`) labelled
//! with the port, worker or consumer it belongs to; a port's interface
//! state, a latency probe's percentiles and `lost` count (which shrinks when
//! a late frame fills a gap), whether a file port failed and whether a
//! filter is quarantined (0 or 1), and the run's age become gauges.

use std::{collections::BTreeMap, fmt::Write as _};

use serde_json::Value;

/// One metric: its type and its samples (labels, value).
#[derive(Default)]
struct Family {
    counter: bool,
    samples: Vec<(String, f64)>,
}

/// The metrics being gathered, by name.
#[derive(Default)]
struct Metrics(BTreeMap<String, Family>);

impl Metrics {
    fn add(&mut self, name: &str, counter: bool, labels: &[(&str, String)], value: f64) {
        let name = if counter { format!("ringwire_{name}_total") } else { format!("ringwire_{name}") };
        let f = self.0.entry(name).or_default();
        f.counter = counter;
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        f.samples.push((labels.join(","), value));
    }

    /// Every number of `obj` (and of the objects in it, by `parent_child`
    /// names) as a counter, except the fields named in `skip`.
    fn counts(&mut self, prefix: &str, obj: &Value, labels: &[(&str, String)], skip: &[&str]) {
        let Some(map) = obj.as_object() else { return };
        for (k, v) in map {
            if skip.contains(&k.as_str()) {
                continue;
            }
            match v {
                Value::Number(n) => self.add(&format!("{prefix}_{k}"), true, labels, n.as_f64().unwrap_or(0.0)),
                Value::Object(_) => self.counts(&format!("{prefix}_{k}"), v, labels, &[]),
                _ => {}
            }
        }
    }

    fn render(self) -> String {
        let mut out = String::new();
        for (name, f) in self.0 {
            let _ = writeln!(out, "# TYPE {name} {}", if f.counter { "counter" } else { "gauge" });
            for (labels, value) in f.samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        }
        out
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// 1 for a reason given (a string), 0 for none.
fn flag(v: &Value) -> f64 {
    f64::from(u8::from(v.is_string()))
}

/// A label value from the JSON (empty for none).
fn text(v: &Value) -> String {
    crate::value_text(v, "")
}

/// Render the `counters` of a `stats` answer (a `Snapshot` as JSON).
#[must_use]
pub fn render(counters: &Value) -> String {
    let mut m = Metrics::default();
    if let Some(s) = counters["elapsed_s"].as_f64() {
        m.add("elapsed_seconds", false, &[], s);
    }
    // Removed ports and consumers end their series (a new one may take the name).
    let live = |v: &&Value| v["removed"] != Value::Bool(true);
    for p in counters["ports"].as_array().into_iter().flatten().filter(live) {
        let labels = [("port", text(&p["name"]))];
        // An interface port (one with a link) runs no plugin, so it has no
        // `filter_errors` (always 0).
        let plugins = if p["link"].is_string() { "filter_errors" } else { "name" };
        m.counts("port", p, &labels, &["name", "uri", "filter", "rx", "removed", "link", "filtered", plugins]);
        // What the port filtered, as the tables count it: its pcap filter's,
        // its eBPF program's, and its earlier programs'. A kernel filter that
        // does not count its drops leaves it unknown: no series.
        if p["filtered_uncounted"] != Value::Bool(true) {
            let n = |v: &Value| v.as_f64().unwrap_or(0.0);
            m.add(
                "port_filtered",
                true,
                &labels,
                n(&p["filtered"]) + n(&p["past_filtered"]) + n(&p["ebpf"]["filtered"]),
            );
        }
        // A file port: whether its file could not be read to its end
        // (truncated, corrupt) and whether the plugin in its filter is
        // quarantined, as gauges an alert can watch.
        if text(&p["uri"]).starts_with("pcap:") {
            m.add("port_failed", false, &labels, flag(&p["error"]));
            m.add("port_filter_quarantined", false, &labels, flag(&p["filter_quarantined"]));
        }
        if let Some(state) = p["link"].as_str() {
            for s in ["up", "no-carrier", "down", "gone"] {
                let l = [("port", text(&p["name"])), ("state", s.to_owned())];
                m.add("port_link", false, &l, f64::from(u8::from(state == s)));
            }
        }
    }
    for w in counters["workers"].as_array().into_iter().flatten() {
        let labels = [("worker", text(&w["index"])), ("core", text(&w["core"]))];
        m.counts("worker", w, &labels, &["index", "core"]);
    }
    for c in counters["consumers"].as_array().into_iter().flatten().filter(live) {
        let labels = [("consumer", text(&c["name"])), ("kind", text(&c["kind"]))];
        m.counts("consumer", c, &labels, &["name", "kind", "filter", "latency", "removed", "filter_quarantined"]);
        m.add("consumer_filter_quarantined", false, &labels, flag(&c["filter_quarantined"]));
        for (i, n) in c["per_worker"].as_array().into_iter().flatten().enumerate() {
            let l = [labels[0].clone(), labels[1].clone(), ("worker", i.to_string())];
            m.add("consumer_delivered_per_worker", true, &l, n.as_f64().unwrap_or(0.0));
        }
        for stage in ["kernel", "consumer"] {
            let h = &c["latency"][stage];
            // No frame timed: no percentile (NaN, Prometheus' "no data"), not 0 s.
            let timed = h["count"].as_u64().is_none_or(|n| n > 0);
            for (q, key) in [("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"), ("0.999", "p999"), ("0.9999", "p9999")] {
                if let Some(v) = h[key].as_f64() {
                    let l = [labels[0].clone(), ("stage", stage.to_owned()), ("quantile", q.to_owned())];
                    m.add("consumer_latency_seconds", false, &l, if timed { v / 1e9 } else { f64::NAN });
                }
            }
        }
        // `lost` shrinks when a late frame fills a gap: a gauge.
        let counters = &c["latency"]["counters"];
        m.counts("consumer_latency", counters, &labels[..1], &["lost"]);
        if let Some(lost) = counters["lost"].as_f64() {
            m.add("consumer_latency_lost", false, &labels[..1], lost);
        }
    }
    m.render()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_counts_as_labelled_counters_and_states_as_gauges() {
        let stats = json!({
            "elapsed_s": 2.5,
            "ports": [{"name": "p\"1", "uri": "afpacket:x", "received": 10, "tx_unsent": 0, "link": "down",
                       "link_downs": 0, "ebpf": {"seen": 4, "filtered": 3}, "filtered": 0, "past_filtered": 2,
                       "filter_errors": 0},
                      {"name": "expr", "uri": "afpacket:y", "received": 10, "link": "up", "filtered": 0,
                       "filtered_uncounted": true},
                      {"name": "file", "uri": "pcap:/x.pcap", "received": 5, "filter_errors": 2,
                       "error": "truncated record", "filter_quarantined": null},
                      {"name": "good", "uri": "pcap:/y.pcap", "received": 5, "filter_errors": 0,
                       "filter_quarantined": "panicked"},
                      {"name": "old", "removed": true, "received": 3}],
            "workers": [{"index": 0, "core": 1, "received": 10}],
            "consumers": [{"name": "cap", "kind": "pcap", "delivered": 7, "files": 0, "per_worker": [7], "filter": "udp",
                           "latency": {"kernel": {"count": 1, "p99": 1500.0}, "consumer": {"count": 0, "p99": 0},
                                       "counters": {"lost": 2}}, "filter_quarantined": null},
                          {"name": "dns", "kind": "counter", "delivered": 0, "filter_quarantined": "panicked"}]
        });
        let text = render(&stats);
        for line in [
            "# TYPE ringwire_port_received_total counter",
            "ringwire_port_received_total{port=\"p\\\"1\"} 10",
            "ringwire_port_ebpf_seen_total{port=\"p\\\"1\"} 4",
            "ringwire_port_link{port=\"p\\\"1\",state=\"down\"} 1",
            "ringwire_port_link{port=\"p\\\"1\",state=\"up\"} 0",
            "ringwire_port_tx_unsent_total{port=\"p\\\"1\"} 0",
            "ringwire_port_link_downs_total{port=\"p\\\"1\"} 0",
            "ringwire_consumer_files_total{consumer=\"cap\",kind=\"pcap\"} 0",
            "ringwire_worker_received_total{worker=\"0\",core=\"1\"} 10",
            "ringwire_consumer_delivered_total{consumer=\"cap\",kind=\"pcap\"} 7",
            "ringwire_consumer_delivered_per_worker_total{consumer=\"cap\",kind=\"pcap\",worker=\"0\"} 7",
            "ringwire_consumer_latency_seconds{consumer=\"cap\",stage=\"kernel\",quantile=\"0.99\"} 0.0000015",
            "ringwire_consumer_latency_seconds{consumer=\"cap\",stage=\"consumer\",quantile=\"0.99\"} NaN",
            "ringwire_port_filtered_total{port=\"p\\\"1\"} 5",
            "# TYPE ringwire_consumer_latency_lost gauge",
            "ringwire_consumer_latency_lost{consumer=\"cap\"} 2",
            "# TYPE ringwire_elapsed_seconds gauge",
            "ringwire_elapsed_seconds 2.5",
            "# TYPE ringwire_port_failed gauge",
            "ringwire_port_failed{port=\"file\"} 1",
            "ringwire_port_failed{port=\"good\"} 0",
            "ringwire_port_filter_quarantined{port=\"file\"} 0",
            "ringwire_port_filter_quarantined{port=\"good\"} 1",
            "ringwire_consumer_filter_quarantined{consumer=\"cap\",kind=\"pcap\"} 0",
            "ringwire_consumer_filter_quarantined{consumer=\"dns\",kind=\"counter\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        // Text fields (a URI, a filter's expression) are not series.
        assert!(!text.contains("uri") && !text.contains("udp") && !text.contains("\"old\""), "{text}");
        assert!(!text.contains("latency_lost_total"), "lost can shrink: not a counter\n{text}");
        // A plugin's failed calls: for a file port, not for an interface port (it runs none).
        assert!(text.contains("ringwire_port_filter_errors_total{port=\"file\"} 2"), "{text}");
        assert!(!text.contains("ringwire_port_filter_errors_total{port=\"p"), "{text}");
        // Nor a `filtered` series for a port whose kernel filter does not count.
        assert!(!text.contains("ringwire_port_filtered_total{port=\"expr\"}"), "{text}");
        // An interface port has no file to fail on.
        assert!(!text.contains("ringwire_port_failed{port=\"p"), "{text}");
        // Every sample line: a name, labels, a number; every family typed once.
        let mut typed = std::collections::HashSet::new();
        for l in text.lines() {
            if let Some(t) = l.strip_prefix("# TYPE ") {
                assert!(typed.insert(t.split(' ').next().unwrap().to_owned()), "typed twice: {l}");
            } else {
                let (series, value) = l.rsplit_once(' ').unwrap();
                let name = series.split('{').next().unwrap();
                assert!(typed.contains(name), "{l}");
                assert!(!series.contains('{') || series.ends_with('}'), "{l}");
                value.parse::<f64>().unwrap();
            }
        }
    }
}
