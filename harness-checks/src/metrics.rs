//! The latency and rate series of one recording, as HDR histograms (3 significant
//! figures, auto-resizing).

use std::collections::{BTreeMap, BTreeSet};

use harness_model::{Ack, FrameKind, IdMode, Metric, Recording, StreamKind, Subscription};
use hdrhistogram::Histogram;

/// Replays shorter than this are not rated: too few events for a meaningful rate.
const MIN_REPLAY: usize = 100;

pub(crate) fn measure(ids: IdMode, rec: &Recording) -> BTreeMap<Metric, Histogram<u64>> {
    let mut samples: BTreeMap<Metric, Vec<u64>> = BTreeMap::new();
    let mut push = |m: Metric, v: u64| samples.entry(m).or_default().push(v);
    let by_marker: BTreeMap<&str, &Ack> = rec.acks.iter().map(|a| (a.marker.as_str(), a)).collect();
    for t in &rec.transcripts {
        // First receive time of each marker, over all connections.
        let mut got: BTreeMap<&str, u64> = BTreeMap::new();
        for conn in &t.connections {
            if let Some(at) = conn.frames.first().map(|f| f.at_us).or(conn.head_us) {
                push(Metric::ConnectToOpen, at.saturating_sub(conn.opened_us));
            }
            if let Some(head) = conn.head_us {
                push(Metric::ConnectToHead, head.saturating_sub(conn.opened_us));
            }
            for f in &conn.frames {
                let FrameKind::Data(d) = &f.kind else {
                    continue;
                };
                let Some(m) = d.marker.as_deref() else {
                    continue;
                };
                if !got.contains_key(m)
                    && let Some(a) = by_marker.get(m)
                {
                    push(Metric::AckToDeliver, f.at_us.saturating_sub(a.acked_us));
                }
                got.entry(m).or_insert(f.at_us);
                if let Some(a) = by_marker.get(m)
                    && f.at_us >= a.sent_us
                {
                    push(Metric::PublishToDeliver, f.at_us - a.sent_us);
                }
            }
        }
        if t.stream == StreamKind::Version {
            continue;
        }
        let sub = Subscription::of(t);
        for conn in t.connections.iter().skip(1) {
            // Reconnect → holding every owed write acked before the reconnect.
            let needed: Vec<&Ack> = rec
                .acks
                .iter()
                .filter(|a| a.acked_us <= conn.opened_us && sub.owes(a, ids))
                .collect();
            let times: Option<Vec<u64>> = needed
                .iter()
                .map(|a| got.get(a.marker.as_str()).copied())
                .collect();
            if let Some(times) = times
                && times.iter().any(|&t| t > conn.opened_us)
                && let Some(&done) = times.iter().max()
            {
                push(Metric::ReconnectToCaughtUp, done - conn.opened_us);
            }
            // Replay rate: writes already acked when the reconnect was sent.
            let Some(head) = conn.head_us else { continue };
            let replayed: BTreeSet<u64> = conn
                .frames
                .iter()
                .filter_map(|f| match &f.kind {
                    FrameKind::Data(d) => d
                        .marker
                        .as_deref()
                        .and_then(|m| by_marker.get(m))
                        .filter(|a| a.acked_us <= conn.opened_us)
                        .map(|_| f.at_us),
                    _ => None,
                })
                .collect();
            let count = conn
                .frames
                .iter()
                .filter(|f| matches!(&f.kind, FrameKind::Data(d) if d.marker.as_deref().and_then(|m| by_marker.get(m)).is_some_and(|a| a.acked_us <= conn.opened_us)))
                .count();
            if count >= MIN_REPLAY
                && let Some(&last) = replayed.last()
                && last > head
            {
                let secs = (last - head) as f64 / 1e6;
                push(Metric::ReplayRate, (count as f64 / secs).round() as u64);
            }
        }
    }
    samples
        .into_iter()
        .map(|(m, vs)| {
            let mut h =
                Histogram::<u64>::new(3).expect("3 significant figures is a valid precision");
            for v in vs {
                // The histogram auto-resizes, so only a value beyond its range fails;
                // `saturating_record` alone would clamp to the initial (tiny) range.
                if h.record(v).is_err() {
                    h.saturating_record(v);
                }
            }
            (m, h)
        })
        .collect()
}
