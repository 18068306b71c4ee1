//! The results table: one row per measurement, one sample per run, summarised as
//! median / min / max.

use std::fmt::Write as _;

/// The unit a row's samples are in, which also decides how they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Events per second.
    PerSec,
    /// Microseconds.
    Micros,
    /// Bytes.
    Bytes,
    /// A plain ratio.
    Ratio,
    /// Bits per second.
    BitsPerSec,
}

impl Unit {
    /// `v` in this unit, compact (`1.2 M/s`, `13.5 KiB`).
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::PerSec => {
                if v >= 1e6 {
                    format!("{:.2} M/s", v / 1e6)
                } else if v >= 1e3 {
                    format!("{:.1} k/s", v / 1e3)
                } else {
                    format!("{v:.0} /s")
                }
            }
            Unit::Micros => {
                if v >= 10_000.0 {
                    format!("{:.1} ms", v / 1000.0)
                } else {
                    format!("{v:.0} µs")
                }
            }
            Unit::Bytes => {
                if v.abs() >= 1024.0 * 1024.0 * 1024.0 {
                    format!("{:.2} GiB", v / (1024.0 * 1024.0 * 1024.0))
                } else if v.abs() >= 1024.0 * 1024.0 {
                    format!("{:.1} MiB", v / (1024.0 * 1024.0))
                } else if v.abs() >= 1024.0 {
                    format!("{:.1} KiB", v / 1024.0)
                } else {
                    format!("{v:.0} B")
                }
            }
            Unit::Ratio => format!("{v:.2}"),
            Unit::BitsPerSec => format!("{:.2} Gbit/s", v / 1e9),
        }
    }
}

/// One measurement across runs.
#[derive(Debug, Clone)]
pub struct Row {
    /// The table the row belongs to (e.g. `Fan-out`).
    pub section: &'static str,
    /// What is measured, e.g. `reference 64 B events/s`.
    pub name: String,
    /// The unit of the samples.
    pub unit: Unit,
    /// One value per run.
    pub samples: Vec<f64>,
    /// Why there are no samples, or a caveat.
    pub note: Option<String>,
}

/// All rows, in the order they were first reported.
#[derive(Debug, Default)]
pub struct Results {
    rows: Vec<Row>,
}

impl Results {
    fn row(&mut self, section: &'static str, name: &str, unit: Unit) -> &mut Row {
        let i = match self
            .rows
            .iter()
            .position(|r| r.section == section && r.name == name)
        {
            Some(i) => i,
            None => {
                self.rows.push(Row {
                    section,
                    name: name.to_owned(),
                    unit,
                    samples: Vec::new(),
                    note: None,
                });
                self.rows.len() - 1
            }
        };
        &mut self.rows[i]
    }

    /// Creates a measurement's row (without samples) so that rows appear in this
    /// order rather than in the order the runs reported them.
    pub fn declare(&mut self, section: &'static str, name: &str, unit: Unit) {
        self.row(section, name, unit);
    }

    /// Adds one run's value of a measurement.
    pub fn add(&mut self, section: &'static str, name: &str, unit: Unit, value: f64) {
        self.row(section, name, unit).samples.push(value);
    }

    /// Attaches a note to a measurement (shown in the table; replaces an earlier one).
    pub fn note(&mut self, section: &'static str, name: &str, unit: Unit, note: &str) {
        self.row(section, name, unit).note = Some(note.to_owned());
    }

    /// The tables as Markdown, one per section.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let mut sections: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !sections.contains(&r.section) {
                sections.push(r.section);
            }
        }
        for s in sections {
            let _ = writeln!(out, "### {s}\n");
            let _ = writeln!(out, "| measurement | median | min | max | runs | note |");
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
            for r in self.rows.iter().filter(|r| r.section == s) {
                let note = r.note.as_deref().unwrap_or("");
                match summary(&r.samples) {
                    Some((med, min, max)) => {
                        let _ = writeln!(
                            out,
                            "| {} | {} | {} | {} | {} | {note} |",
                            r.name,
                            r.unit.format(med),
                            r.unit.format(min),
                            r.unit.format(max),
                            r.samples.len()
                        );
                    }
                    None => {
                        let _ = writeln!(out, "| {} | – | – | – | 0 | {note} |", r.name);
                    }
                }
            }
            out.push('\n');
        }
        out
    }
}

/// (median, min, max) of the samples; the median of an even count is the mean of
/// the two middle values.
pub fn summary(samples: &[f64]) -> Option<(f64, f64, f64)> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((med, v[0], v[n - 1]))
}
