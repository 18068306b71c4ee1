//! Draws a [`Curve`] as an SVG line chart in the style of the harness's HTML report
//! (harness-report's percentile charts: the same font, grid, frame and colours):
//! a logarithmic x axis (the work spans decades), a logarithmic y axis for rates and
//! times (so do they), for bytes a linear one from zero when the values lie within one
//! decade (bytes per item) and a binary logarithmic one when they span more (a total
//! that grows with the work: a straight line of slope one is linear growth), one line
//! through each series' medians, a bar from min to max at every point, and a legend.
//! Written by hand because it is a hundred lines of text and the report's charts are
//! too; a plotting crate would bring a rendering stack for one chart type.

use std::fmt::Write as _;

use super::curves::{Curve, count_label};
use super::stats::{Unit, summary};

const W: f64 = 560.0;
const H: f64 = 300.0;
const L: f64 = 72.0;
const R: f64 = 24.0;
const T: f64 = 30.0;
const B: f64 = 42.0;

/// The series colours, in legend order (the report's highlight colours).
const COLOURS: [&str; 4] = ["#dc2626", "#2563eb", "#d97706", "#059669"];

/// A linear axis from zero to a power-of-two multiple of KiB (bytes are counted in
/// KiB, so its ticks are whole KiB).
#[derive(Debug, Clone, Copy)]
struct ByteAxis {
    step: f64,
    top: f64,
}

impl ByteAxis {
    fn covering(max: f64) -> ByteAxis {
        let mut step = 1024.0;
        while max / step > 5.0 {
            step *= 2.0;
        }
        ByteAxis {
            step,
            top: (max / step).ceil().max(1.0) * step,
        }
    }
}

/// The y axis: logarithmic, or linear for bytes within a decade, or logarithmic in
/// powers of two for bytes over more.
#[derive(Debug, Clone, Copy)]
enum YAxis {
    Log(LogAxis),
    Bytes(ByteAxis),
    BinaryLog(BinaryLogAxis),
}

/// A logarithmic axis over whole powers of two covering `[min, max]`, ticked at most
/// seven times (every second, fourth… power when it spans many).
#[derive(Debug, Clone, Copy)]
struct BinaryLogAxis {
    lo: i32,
    hi: i32,
    step: i32,
}

impl BinaryLogAxis {
    fn covering(min: f64, max: f64) -> BinaryLogAxis {
        let lo = min.max(1.0).log2().floor() as i32;
        let hi = (max.max(1.0).log2().ceil() as i32).max(lo + 1);
        let mut step = 1;
        while (hi - lo) / step > 6 {
            step *= 2;
        }
        let lo = lo - lo.rem_euclid(step);
        let hi = hi + (step - (hi - lo).rem_euclid(step)) % step;
        BinaryLogAxis { lo, hi, step }
    }

    fn fraction(self, v: f64) -> f64 {
        if v <= 0.0 || !v.is_finite() {
            return 0.0;
        }
        ((v.log2() - f64::from(self.lo)) / f64::from(self.hi - self.lo)).clamp(0.0, 1.0)
    }

    fn ticks(self) -> Vec<f64> {
        (self.lo..=self.hi)
            .step_by(self.step as usize)
            .map(|e| 2f64.powi(e))
            .collect()
    }
}

impl YAxis {
    fn fraction(self, v: f64) -> f64 {
        match self {
            YAxis::Log(a) => a.fraction(v),
            YAxis::Bytes(a) => (v / a.top).clamp(0.0, 1.0),
            YAxis::BinaryLog(a) => a.fraction(v),
        }
    }

    fn ticks(self) -> Vec<f64> {
        match self {
            YAxis::Log(a) => a.ticks(),
            YAxis::Bytes(a) => (0..=(a.top / a.step) as u32)
                .map(|i| f64::from(i) * a.step)
                .collect(),
            YAxis::BinaryLog(a) => a.ticks(),
        }
    }
}

/// A logarithmic axis over whole decades covering `[min, max]`.
#[derive(Debug, Clone, Copy)]
struct LogAxis {
    lo: i32,
    hi: i32,
}

impl LogAxis {
    fn covering(min: f64, max: f64) -> LogAxis {
        let lo = if min > 0.0 && min.is_finite() {
            min.log10().floor() as i32
        } else {
            0
        };
        let hi = if max > 0.0 && max.is_finite() {
            max.log10().ceil() as i32
        } else {
            lo + 1
        };
        LogAxis {
            lo,
            hi: hi.max(lo + 1),
        }
    }

    /// 0 at the lowest decade, 1 at the highest.
    fn fraction(self, v: f64) -> f64 {
        if v <= 0.0 || !v.is_finite() {
            return 0.0;
        }
        ((v.log10() - f64::from(self.lo)) / f64::from(self.hi - self.lo)).clamp(0.0, 1.0)
    }

    /// Every decade, with 2× and 5× when the axis spans at most two decades.
    fn ticks(self) -> Vec<f64> {
        let mut out = Vec::new();
        for e in self.lo..=self.hi {
            let d = 10f64.powi(e);
            out.push(d);
            if self.hi - self.lo <= 2 && e < self.hi {
                out.extend([2.0 * d, 5.0 * d]);
            }
        }
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart of `curve`, or `None` when it has no point to draw.
pub fn svg(curve: &Curve) -> Option<String> {
    let pts = curve.series.iter().flat_map(|s| s.points.iter());
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, 0.0f64, f64::MAX, 0.0f64);
    for p in pts {
        let (_, lo, hi) = summary(&p.samples)?;
        xmin = xmin.min(p.x);
        xmax = xmax.max(p.x);
        ymin = ymin.min(lo.max(f64::MIN_POSITIVE));
        ymax = ymax.max(hi);
    }
    if xmax <= 0.0 {
        return None;
    }
    let xa = LogAxis::covering(xmin, xmax);
    let ya = match curve.unit {
        Unit::Bytes if ymax <= 10.0 * ymin => YAxis::Bytes(ByteAxis::covering(ymax)),
        Unit::Bytes => YAxis::BinaryLog(BinaryLogAxis::covering(ymin, ymax)),
        _ => YAxis::Log(LogAxis::covering(ymin, ymax)),
    };
    let (pw, ph) = (W - L - R, H - T - B);
    let x = |v: f64| L + xa.fraction(v) * pw;
    let y = |v: f64| T + ph - ya.fraction(v) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"100%\" \
         role=\"img\" aria-label=\"{}\" font-family=\"system-ui, DejaVu Sans, sans-serif\" \
         font-size=\"11\"><rect width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>",
        esc(curve.title)
    );
    for v in ya.ticks() {
        let yy = y(v);
        let _ = write!(
            s,
            "<line x1=\"{L}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e5e7eb\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#6b7280\">{}</text>",
            L + pw,
            L - 6.0,
            yy + 4.0,
            esc(&curve.unit.format(v))
        );
    }
    for v in xa.ticks() {
        let xx = x(v);
        let _ = write!(
            s,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{T}\" y2=\"{}\" stroke=\"#e5e7eb\"/>\
             <text x=\"{xx:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#6b7280\">{}</text>",
            T + ph,
            T + ph + 15.0,
            count_label(v)
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#374151\">{} (log)</text>\
         <rect x=\"{L}\" y=\"{T}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#d1d5db\"/>",
        L + pw / 2.0,
        H - 6.0,
        esc(curve.x_label)
    );
    for (i, series) in curve.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut line = String::new();
        for p in &series.points {
            let Some((med, lo, hi)) = summary(&p.samples) else {
                continue;
            };
            let xx = x(p.x);
            let _ = write!(line, "{xx:.1},{:.1} ", y(med));
            let _ = write!(
                s,
                "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" \
                 stroke-width=\"1.2\"/><circle cx=\"{xx:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                y(lo),
                y(hi),
                y(med)
            );
        }
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\" \
             stroke-linejoin=\"round\" points=\"{}\"><title>{}</title></polyline>\
             <rect x=\"{}\" y=\"10\" width=\"14\" height=\"4\" fill=\"{colour}\"/>\
             <text x=\"{}\" y=\"16\" fill=\"#374151\">{}</text>",
            line.trim_end(),
            esc(&series.name),
            L + i as f64 * 120.0,
            L + i as f64 * 120.0 + 18.0,
            esc(&series.name)
        );
    }
    s.push_str("</svg>\n");
    Some(s)
}

#[cfg(test)]
mod tests {
    // benches/sse.rs compiles this crate's modules too, as a `harness = false` target
    // whose test build drops the `#[test]` functions below but keeps this import.
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn axis_covers_whole_decades() {
        let a = LogAxis::covering(50.0, 10_000.0);
        assert_eq!((a.lo, a.hi), (1, 4));
        assert_eq!(a.fraction(10.0), 0.0);
        assert_eq!(a.fraction(10_000.0), 1.0);
    }

    #[test]
    fn draws_every_series_and_point() {
        let mut c = Curve::new("t", "T", "subscribers", Unit::PerSec);
        for x in [50.0, 500.0] {
            c.add("reference", x, 1000.0);
            c.add("reference", x, 2000.0);
            c.add("nchan", x, 1500.0);
        }
        let svg = svg(&c).expect("a chart");
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains(">reference</text>") && svg.contains(">nchan</text>"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }

    #[test]
    fn byte_axis_ticks_are_whole_kib_from_zero() {
        let a = YAxis::Bytes(ByteAxis::covering(13.5 * 1024.0));
        let t = a.ticks();
        assert_eq!(t.first(), Some(&0.0));
        assert!(t.iter().all(|v| v % 1024.0 == 0.0) && t.len() <= 7);
        assert!(*t.last().unwrap() >= 13.5 * 1024.0);
    }

    #[test]
    fn bytes_over_many_decades_get_a_binary_log_axis() {
        let a = BinaryLogAxis::covering(27.5 * 1048576.0, 14_263.0 * 1048576.0);
        let t = a.ticks();
        assert!(t.len() <= 7, "{t:?}");
        assert!(t[0] <= 27.5 * 1048576.0 && *t.last().unwrap() >= 14_263.0 * 1048576.0);
        assert!(t.iter().all(|v| v.log2().fract() == 0.0));
        assert_eq!(a.fraction(t[0]), 0.0);
        assert_eq!(a.fraction(*t.last().unwrap()), 1.0);
        let mut c = Curve::new("t", "T", "events", Unit::Bytes);
        for (x, v) in [(1e4, 27.5), (1e5, 157.0), (1e6, 1490.0), (1e7, 14_251.0)] {
            c.add("harness", x, v * 1048576.0);
        }
        let svg = svg(&c).expect("a chart");
        assert!(svg.contains(">16.00 GiB</text>"), "{svg}");
    }

    #[test]
    fn nothing_to_draw() {
        assert!(svg(&Curve::new("t", "T", "x", Unit::PerSec)).is_none());
    }
}
