//! The HdrHistogram "percentile distribution" text (`.hgrm`), byte for byte the layout of
//! Java's `AbstractHistogram.outputPercentileDistribution` (5 ticks per half distance),
//! so existing plotters (HdrHistogram's plotFiles.html, hdr-plot) read the files.
//!
//! Written here because the `hdrhistogram` crate serializes only the binary V2 formats;
//! its example CLI prints a similar but different table.

use std::io::{self, Write};

use harness_model::Metric;
use hdrhistogram::Histogram;

/// Percentile ticks per half distance to 100%, as the Java default output uses.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Writes `h` as a percentile distribution, dividing values by `scaling_ratio` (1000 to
/// print µs recordings in ms).
pub fn write_percentile_distribution(
    h: &Histogram<u64>,
    scaling_ratio: f64,
    out: &mut dyn Write,
) -> io::Result<()> {
    let p = usize::from(h.sigfig());
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    if !h.is_empty() {
        let mut total: u64 = 0;
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / scaling_ratio;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                writeln!(
                    out,
                    "{value:12.p$} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                )?;
            } else {
                writeln!(out, "{value:12.p$} {q:2.12} {total:10}")?;
            }
        }
    }
    let (mean, stdev) = if h.is_empty() {
        (0.0, 0.0)
    } else {
        (h.mean() / scaling_ratio, h.stdev() / scaling_ratio)
    };
    writeln!(
        out,
        "#[Mean    = {mean:12.p$}, StdDeviation   = {stdev:12.p$}]"
    )?;
    writeln!(
        out,
        "#[Max     = {:12.p$}, Total count    = {:12}]",
        h.max() as f64 / scaling_ratio,
        h.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_bucket_count(h.sigfig())
    )
}

/// The sub-bucket count HdrHistogram derives from the significant digits.
fn sub_bucket_count(sigfig: u8) -> u64 {
    let largest_single_unit = 2 * 10u64.pow(u32::from(sigfig));
    let magnitude = (largest_single_unit as f64).log2().ceil() as u32;
    let half_magnitude = magnitude.max(1) - 1;
    1 << (half_magnitude + 1)
}

/// The scaling ratio for a metric's files: latencies in ms, rates as recorded.
pub(crate) fn scaling_ratio(metric: Metric) -> f64 {
    crate::metrics::display_scale(metric)
}

/// A scenario id as a file name stem: anything but `[A-Za-z0-9._-]` becomes `_`
/// (`CT-10/cut-at-random-bytes` → `CT-10_cut-at-random-bytes`).
pub(crate) fn file_stem(scenario_id: &str) -> String {
    scenario_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_buckets_match_hdrhistogram() {
        assert_eq!(sub_bucket_count(3), 2048);
        assert_eq!(sub_bucket_count(2), 256);
        assert_eq!(sub_bucket_count(1), 32);
    }

    #[test]
    fn table_has_java_layout() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 10).unwrap();
        }
        let mut out = Vec::new();
        write_percentile_distribution(&h, 1000.0, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines.next().unwrap(), "");
        assert_eq!(
            lines.next().unwrap(),
            "       0.010 0.000000000000          1           1.00"
        );
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(' ')).collect();
        let last = rows.last().unwrap();
        assert_eq!(*last, "      10.007 1.000000000000       1000");
        assert!(text.contains("#[Max     =       10.007, Total count    =         1000]"));
        assert!(
            text.ends_with("#[Buckets =            4, SubBuckets     =         2048]\n"),
            "{text}"
        );
        assert_eq!(file_stem("CT-10/cut at"), "CT-10_cut_at");
    }
}
