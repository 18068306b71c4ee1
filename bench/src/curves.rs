//! Curves: how a cost grows as the work grows (subscribers, log size, idle streams,
//! events per run), one series per server, one sample per run at each point,
//! summarised as median / min / max like the tables, drawn by [`crate::plot`] and
//! tabled in Markdown beside the drawing.

use std::fmt::Write as _;

use super::stats::{Unit, summary};

/// One series' samples at one x.
#[derive(Debug, Clone)]
pub struct Point {
    /// The work (subscribers, events, streams).
    pub x: f64,
    /// One value per run.
    pub samples: Vec<f64>,
}

/// One server's (or the harness's) line.
#[derive(Debug, Clone)]
pub struct Series {
    /// `reference`, `nchan`, `harness`.
    pub name: String,
    /// In ascending x.
    pub points: Vec<Point>,
    /// Why a point is missing, or a caveat, shown under the table.
    pub notes: Vec<String>,
}

/// One chart: a measured quantity against the work.
#[derive(Debug, Clone)]
pub struct Curve {
    /// The file stem of its SVG (`bench/plots/<id>.svg`).
    pub id: &'static str,
    /// The heading.
    pub title: &'static str,
    /// What x counts.
    pub x_label: &'static str,
    /// The unit of y.
    pub unit: Unit,
    /// The lines, in legend order.
    pub series: Vec<Series>,
}

impl Curve {
    /// An empty curve.
    pub fn new(id: &'static str, title: &'static str, x_label: &'static str, unit: Unit) -> Curve {
        Curve {
            id,
            title,
            x_label,
            unit,
            series: Vec::new(),
        }
    }

    fn series_mut(&mut self, name: &str) -> &mut Series {
        let i = match self.series.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.series.push(Series {
                    name: name.to_owned(),
                    points: Vec::new(),
                    notes: Vec::new(),
                });
                self.series.len() - 1
            }
        };
        &mut self.series[i]
    }

    /// Adds one run's value of `series` at `x`.
    pub fn add(&mut self, series: &str, x: f64, v: f64) {
        let s = self.series_mut(series);
        match s.points.iter_mut().find(|p| p.x == x) {
            Some(p) => p.samples.push(v),
            None => {
                s.points.push(Point {
                    x,
                    samples: vec![v],
                });
                s.points.sort_by(|a, b| a.x.total_cmp(&b.x));
            }
        }
    }

    /// Notes why `series` has no value at some point (once per distinct note).
    pub fn note(&mut self, series: &str, note: &str) {
        let s = self.series_mut(series);
        if !s.notes.iter().any(|n| n == note) {
            s.notes.push(note.to_owned());
        }
    }

    /// The Markdown: the heading, the plot's image link and a table of the medians at
    /// every x, each with (min – max; runs).
    pub fn markdown(&self, plot_path: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "#### {}\n", self.title);
        let _ = writeln!(out, "![{}]({plot_path})\n", self.title);
        let mut xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.x))
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        let _ = write!(out, "| {} |", self.x_label);
        for s in &self.series {
            let _ = write!(out, " {} |", s.name);
        }
        let _ = write!(out, "\n|---:|");
        for _ in &self.series {
            out.push_str("---:|");
        }
        out.push('\n');
        for x in xs {
            let _ = write!(out, "| {} |", count_label(x));
            for s in &self.series {
                let cell = s
                    .points
                    .iter()
                    .find(|p| p.x == x)
                    .and_then(|p| summary(&p.samples).map(|m| (m, p.samples.len())));
                match cell {
                    Some(((med, min, max), n)) => {
                        let _ = write!(
                            out,
                            " {} ({} – {}; {n}) |",
                            self.unit.format(med),
                            self.unit.format(min),
                            self.unit.format(max)
                        );
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
        for s in &self.series {
            for n in &s.notes {
                let _ = writeln!(out, "\n{}: {n}", s.name);
            }
        }
        out.push('\n');
        out
    }
}

/// `50`, `10k`, `1M`: a count on an axis or in a table.
pub fn count_label(x: f64) -> String {
    let trim = |v: f64| {
        let s = format!("{v:.1}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    if x >= 1e6 {
        format!("{}M", trim(x / 1e6))
    } else if x >= 1e3 {
        format!("{}k", trim(x / 1e3))
    } else {
        trim(x)
    }
}
