//! Reading the runner's histograms: the statistics every report prints, in the unit a
//! person reads (latencies recorded in µs are shown in ms).

use std::collections::BTreeMap;

use harness_model::{Metric, ScenarioResult};
use hdrhistogram::Histogram;
use serde::Serialize;

/// A statistic of a metric's distribution.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Stat {
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P999,
    /// Largest sample.
    Max,
    /// Arithmetic mean.
    Mean,
    /// Smallest sample.
    Min,
}

impl Stat {
    /// The name used in thresholds and reports.
    pub fn name(self) -> &'static str {
        match self {
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P99 => "p99",
            Stat::P999 => "p999",
            Stat::Max => "max",
            Stat::Mean => "mean",
            Stat::Min => "min",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Stat> {
        Some(match s {
            "p50" | "med" | "median" => Stat::P50,
            "p90" => Stat::P90,
            "p99" => Stat::P99,
            "p999" | "p99.9" => Stat::P999,
            "max" => Stat::Max,
            "mean" | "avg" => Stat::Mean,
            "min" => Stat::Min,
            _ => return None,
        })
    }
}

/// How many recorded units make one displayed unit (µs → ms for latencies).
pub(crate) fn display_scale(metric: Metric) -> f64 {
    match metric {
        Metric::ReplayRate => 1.0,
        _ => 1000.0,
    }
}

/// The unit values are shown in: `ms` or `events/s`.
pub(crate) fn display_unit(metric: Metric) -> &'static str {
    match metric {
        Metric::ReplayRate => "events/s",
        _ => "ms",
    }
}

/// A heading for a metric.
pub(crate) fn title(metric: Metric) -> &'static str {
    match metric {
        Metric::ConnectToOpen => "connect → connection_open",
        Metric::ConnectToHead => "connect → head (time to open)",
        Metric::PublishToDeliver => "publish → deliver",
        Metric::AckToDeliver => "ack → decodable (per-event latency)",
        Metric::ReconnectToCaughtUp => "reconnect → caught up",
        Metric::ReplayRate => "replay rate",
    }
}

/// A value in recorded units, formatted with its display unit: `73.2ms`, `120000 events/s`.
pub(crate) fn format_value(metric: Metric, recorded: f64) -> String {
    let v = recorded / display_scale(metric);
    match metric {
        Metric::ReplayRate => format!("{} events/s", trim(v, 0)),
        _ => format!("{}ms", trim(v, 3)),
    }
}

/// `v` with at most `decimals` decimals and no trailing zeros.
pub(crate) fn trim(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// The statistic a chart ranks scenarios by to pick the slowest: the p99 of a latency
/// (the tail a user waits on), the median of a replay rate.
pub(crate) fn slowness_stat(metric: Metric) -> Stat {
    match metric {
        Metric::ReplayRate => Stat::P50,
        _ => Stat::P99,
    }
}

/// How slow a scenario was in `metric`, larger is slower: its [`slowness_stat`],
/// negated for the replay rate, where less is slower.
pub(crate) fn slowness(metric: Metric, h: &Histogram<u64>) -> f64 {
    let v = stat(h, slowness_stat(metric));
    match metric {
        Metric::ReplayRate => -v,
        _ => v,
    }
}

/// One statistic of a histogram, in recorded units.
pub(crate) fn stat(h: &Histogram<u64>, stat: Stat) -> f64 {
    match stat {
        Stat::Min => h.min() as f64,
        Stat::Max => h.max() as f64,
        Stat::Mean => h.mean(),
        Stat::P50 => h.value_at_quantile(0.50) as f64,
        Stat::P90 => h.value_at_quantile(0.90) as f64,
        Stat::P99 => h.value_at_quantile(0.99) as f64,
        Stat::P999 => h.value_at_quantile(0.999) as f64,
    }
}

/// The statistics of one metric's histogram, in the display unit (`ms` or `events/s`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricSummary {
    /// `ms` for latencies, `events/s` for the replay rate.
    pub unit: &'static str,
    /// Samples.
    pub count: u64,
    /// Smallest sample.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl MetricSummary {
    /// Summarizes a histogram of `metric` (recorded in µs or events/s).
    pub fn of(metric: Metric, h: &Histogram<u64>) -> MetricSummary {
        let scale = display_scale(metric);
        let v = |s: Stat| round3(stat(h, s) / scale);
        MetricSummary {
            unit: display_unit(metric),
            count: h.len(),
            min: v(Stat::Min),
            p50: v(Stat::P50),
            p90: v(Stat::P90),
            p99: v(Stat::P99),
            p999: v(Stat::P999),
            max: v(Stat::Max),
            mean: v(Stat::Mean),
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The run's histograms of each metric, merged over every scenario that measured it.
pub(crate) fn merged(results: &[ScenarioResult]) -> BTreeMap<Metric, Histogram<u64>> {
    let mut out: BTreeMap<Metric, Histogram<u64>> = BTreeMap::new();
    for r in results {
        for (m, h) in &r.histograms {
            if h.is_empty() {
                continue;
            }
            match out.get_mut(m) {
                Some(acc) => {
                    // `add` only fails when `acc` cannot auto-resize to hold `h`'s range;
                    // a copy that can always hold it is made on first sight below.
                    if acc.add(h).is_err() {
                        for v in h.iter_recorded() {
                            acc.saturating_record_n(v.value_iterated_to(), v.count_at_value());
                        }
                    }
                }
                None => {
                    let mut acc = Histogram::<u64>::new(h.sigfig()).unwrap_or_else(|_| h.clone());
                    acc.auto(true);
                    if acc.add(h).is_err() {
                        acc = h.clone();
                    }
                    out.insert(*m, acc);
                }
            }
        }
    }
    out
}

/// A duration for people: `850 ms`, `12.3 s`, `4 min 05 s`.
pub(crate) fn human_duration(d: std::time::Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{} ms", ms.round() as u64)
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        let s = d.as_secs();
        format!("{} min {:02} s", s / 60, s % 60)
    }
}
