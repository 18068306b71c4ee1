//! The like-for-like fan-out comparison: both servers get the same offered load the
//! same way (one event per POST, the same connections, the same rate, the same
//! subscribers), at a ladder of offered rates. At the table's rates the
//! deliveries/s and the publish → deliver percentiles are reported; the ladder's
//! highest rate that was *sustained* (every event delivered to every subscriber and
//! p99 under [`P99_BOUND_US`]) is the server's maximum sustainable rate for the run.
//!
//! The ladder stops at the first rate that is not sustained once every table rate has
//! been measured, so a run costs what the server can carry plus one step.

use std::time::Duration;

use super::fanout::{self, FanoutSpec, Load};
use super::stats::{Results, Unit};
use super::wire::Flavor;

/// The latency bound of a sustained rate: p99 of publish → deliver (from each event's
/// scheduled time) at most this, in µs.
pub const P99_BOUND_US: u64 = 50_000;

/// The table of the like-for-like rows.
pub const SECTION: &str = "Fan-out, like for like (one event per POST)";

/// The sizes of the comparison.
#[derive(Debug, Clone)]
pub struct LadderSizes {
    /// Subscribers on the channel.
    pub subscribers: usize,
    /// Payload size in bytes.
    pub payload: usize,
    /// Keep-alive publishing connections.
    pub connections: usize,
    /// Offered rates tried, ascending, in events/s.
    pub rates: Vec<f64>,
    /// The rates whose percentiles are tabled (each also in `rates`).
    pub table: Vec<f64>,
    /// How long each rate is offered.
    pub step: Duration,
}

/// What one server's climb found in one run.
#[derive(Debug, Default, Clone)]
pub struct Climb {
    /// The highest sustained offered rate × subscribers (0 if none was).
    pub best_deliveries: f64,
    /// p99 in µs at each table rate that completed.
    pub p99_us: Vec<(f64, u64)>,
}

/// One server as the ladder runs it: which kind, and for nchan how many nginx workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contender {
    /// The kind of server.
    pub flavor: Flavor,
    /// nginx worker processes (nchan only; 1 for the reference).
    pub workers: u32,
}

impl Contender {
    /// The reference server.
    pub const REFERENCE: Contender = Contender {
        flavor: Flavor::Spine,
        workers: 1,
    };

    /// The servers of every run: the reference, nchan as our template runs it (one
    /// worker process), and nchan with a worker per core of this machine's two.
    pub const ALL: [Contender; 3] = [
        Contender::REFERENCE,
        Contender {
            flavor: Flavor::Nchan,
            workers: 1,
        },
        Contender {
            flavor: Flavor::Nchan,
            workers: 2,
        },
    ];

    /// Its name in the rows: `reference`, `nchan`, `nchan ×2 workers`.
    pub fn name(self) -> String {
        match (self.flavor, self.workers) {
            (Flavor::Nchan, w) if w > 1 => format!("nchan ×{w} workers"),
            (f, _) => f.name().to_owned(),
        }
    }
}

/// Declares the rows in reading order (each table rate: every server side by side),
/// so that the table does not follow the order the runs happened in.
pub fn declare(sizes: &LadderSizes, res: &mut Results) {
    let others = &Contender::ALL[1..];
    for &rate in &sizes.table {
        for what in ["deliveries/s", "p50", "p99", "p99.9"] {
            for c in Contender::ALL {
                let unit = if what == "deliveries/s" {
                    Unit::PerSec
                } else {
                    Unit::Micros
                };
                res.declare(SECTION, &row_name(c, rate, what), unit);
            }
        }
        for &c in others {
            res.declare(SECTION, &p99_ratio_name(rate, c), Unit::Ratio);
        }
    }
    for c in Contender::ALL {
        res.declare(SECTION, &best_name(c), Unit::PerSec);
    }
    for &c in others {
        res.declare(SECTION, &best_ratio_name(c), Unit::Ratio);
    }
}

/// The row of the reference's p99 over `other`'s at `rate`.
fn p99_ratio_name(rate: f64, other: Contender) -> String {
    format!("p99 at {}: reference / {}", rate_label(rate), other.name())
}

/// The row of the reference's max sustainable deliveries over `other`'s.
fn best_ratio_name(other: Contender) -> String {
    format!("max sustainable deliveries/s: reference / {}", other.name())
}

fn best_name(c: Contender) -> String {
    format!("{}: max sustainable deliveries/s", c.name())
}

/// Notes on `c`'s max-sustainable row why it was not measured.
pub fn unavailable(c: Contender, why: &str, res: &mut Results) {
    res.note(SECTION, &best_name(c), Unit::PerSec, why);
}

/// One server's rungs in one run: measures each rate and adds its rows to `res`.
pub async fn climb(c: Contender, base: &str, sizes: &LadderSizes, res: &mut Results) -> Climb {
    let flavor = c.flavor;
    let mut best = 0.0f64;
    let mut p99_us = Vec::new();
    let table_max = sizes.table.iter().copied().fold(0.0, f64::max);
    for &rate in &sizes.rates {
        let events = ((rate * sizes.step.as_secs_f64()) as u64).max(10);
        let spec = FanoutSpec {
            subscribers: sizes.subscribers,
            events,
            payload: sizes.payload,
            limit: sizes.step + Duration::from_secs(30),
            load: Load::Paced {
                rate,
                connections: sizes.connections,
            },
        };
        let sustained = match fanout::run(flavor, base, &spec).await {
            Ok(o) => {
                let p99 = o.latency_us.value_at_quantile(0.99);
                let complete = o.delivered == o.expected;
                eprintln!(
                    "  {} at {rate:.0}/s: {:.0} deliveries/s, acked {:.0}/s, p50 {} µs, p99 {p99} µs ({} of {})",
                    c.name(),
                    o.delivered as f64 / o.secs.max(1e-9),
                    o.acked_rate,
                    o.latency_us.value_at_quantile(0.5),
                    o.delivered,
                    o.expected
                );
                if sizes.table.contains(&rate) {
                    table_rows(c, rate, &o, res);
                    p99_us.push((rate, p99));
                }
                complete && p99 <= P99_BOUND_US
            }
            Err(e) => {
                eprintln!("  {} at {rate:.0}/s: failed: {e:#}", c.name());
                if sizes.table.contains(&rate) {
                    let name = row_name(c, rate, "deliveries/s");
                    res.note(SECTION, &name, Unit::PerSec, &format!("a run failed: {e}"));
                }
                false
            }
        };
        if sustained {
            best = best.max(rate);
        } else if rate >= table_max {
            break;
        }
    }
    let best_deliveries = best * sizes.subscribers as f64;
    res.add(SECTION, &best_name(c), Unit::PerSec, best_deliveries);
    Climb {
        best_deliveries,
        p99_us,
    }
}

/// Adds the run's ratio rows of the reference's climb against `other`'s.
pub fn ratios(reference: &Climb, other: Contender, theirs: &Climb, res: &mut Results) {
    if theirs.best_deliveries > 0.0 {
        let r = reference.best_deliveries / theirs.best_deliveries;
        res.add(SECTION, &best_ratio_name(other), Unit::Ratio, r);
    }
    for &(rate, ours) in &reference.p99_us {
        if let Some(&(_, p99)) = theirs.p99_us.iter().find(|(r, _)| *r == rate) {
            let r = ours as f64 / p99.max(1) as f64;
            res.add(SECTION, &p99_ratio_name(rate, other), Unit::Ratio, r);
        }
    }
}

fn row_name(c: Contender, rate: f64, what: &str) -> String {
    format!("{} at {}: {what}", c.name(), rate_label(rate))
}

/// `1k/s`, `20k/s`, `500/s`.
pub fn rate_label(rate: f64) -> String {
    if rate >= 1000.0 {
        format!("{}k/s", rate / 1000.0)
    } else {
        format!("{rate}/s")
    }
}

fn table_rows(c: Contender, rate: f64, o: &fanout::FanoutOutcome, res: &mut Results) {
    let s = SECTION;
    res.add(
        s,
        &row_name(c, rate, "deliveries/s"),
        Unit::PerSec,
        o.delivered as f64 / o.secs.max(1e-9),
    );
    for (q, label) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")] {
        let v = o.latency_us.value_at_quantile(q) as f64;
        res.add(s, &row_name(c, rate, label), Unit::Micros, v);
    }
    if o.delivered < o.expected {
        res.note(
            s,
            &row_name(c, rate, "deliveries/s"),
            Unit::PerSec,
            &format!(
                "LOST: {} of {} deliveries",
                o.expected - o.delivered,
                o.expected
            ),
        );
    }
}
