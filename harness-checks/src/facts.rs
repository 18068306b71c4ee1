//! The scenario facts: what a workload established beyond pass/fail, computed from its
//! recording alone (the acks, the transcripts and the [`WorkloadPlan`] the workload
//! recorded), for reports:
//!
//! - `publish_rate_per_s`: live writes acknowledged per second (the backlog, sent
//!   before [`WorkloadPlan::live_from_us`], is left out);
//! - `<group>.publish_to_deliver_p99_ms`: the 99th percentile of publish → delivery
//!   per client group, when the scenario has more than one group (so the fast readers
//!   beside a slow one can be compared), from an HDR histogram;
//! - `<client>.lag_bytes`: for clients of a slow-reading group, how many bytes of
//!   acknowledged writes the target held for the client beyond what it had read when
//!   its slow phase ended (acked writes × their mean frame size − bytes read);
//! - `writes_of_unknown_fate`, `writes_resolved_by_retry`: writes whose publish lost its
//!   answer and stayed so, or was answered by a retry with the same key (present only
//!   when some publish lost its answer), and `publish_attempts_max`.
//!
//! The recording knows nothing of the target's socket buffers, so whether that lag is
//! beyond what the kernel could have buffered (backpressure really reaching the server)
//! is not claimed here.

use std::collections::BTreeMap;

use harness_model::{Ack, FrameKind, Recording, Transcript, WorkloadPlan};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// The facts of a workload's recording, by name; empty when it recorded no
/// [`WorkloadPlan`] (probes).
pub(crate) fn facts(rec: &Recording) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Some(t) = crate::network::timeline(rec)
        && let Ok(v) = serde_json::to_value(t)
    {
        out.insert("network".into(), v);
    }
    let Some(plan) = &rec.workload else {
        return out;
    };
    if let Some(rate) = publish_rate(plan, &rec.acks) {
        out.insert("publish_rate_per_s".into(), json!(rate.round()));
    }
    if !rec.indeterminate.is_empty() {
        let writes = |resolved: bool| -> usize {
            let of = rec.indeterminate.iter().filter(|w| w.resolved == resolved);
            of.map(|w| w.markers.len()).sum()
        };
        out.insert("writes_of_unknown_fate".into(), json!(writes(false)));
        out.insert("writes_resolved_by_retry".into(), json!(writes(true)));
        let most = rec.indeterminate.iter().map(|w| w.attempts).max();
        out.insert("publish_attempts_max".into(), json!(most));
    }
    let by_marker: BTreeMap<&str, &Ack> = rec.acks.iter().map(|a| (a.marker.as_str(), a)).collect();
    for g in &plan.groups {
        let mine = members(rec, &g.name);
        if plan.groups.len() > 1
            && let Some(p99) = delivery_p99_us(&mine, &by_marker)
        {
            out.insert(
                format!("{}.publish_to_deliver_p99_ms", g.name),
                json!((p99 as f64 / 100.0).round() / 10.0),
            );
        }
        if g.bytes_per_sec == 0 || g.slow_for_ms == 0 {
            continue;
        }
        for t in &mine {
            if let Some(lag) = lag_bytes(t, g.slow_for_ms, &rec.acks) {
                out.insert(format!("{}.lag_bytes", t.client), json!(lag));
            }
        }
    }
    out
}

/// The transcripts of group `name`'s clients (client ids are `<group>#<i>`).
pub(crate) fn members<'a>(rec: &'a Recording, name: &str) -> Vec<&'a Transcript> {
    rec.transcripts
        .iter()
        .filter(|t| t.client.0.rsplit_once('#').is_some_and(|(n, _)| n == name))
        .collect()
}

/// Live writes acknowledged per second, from the first live send to the last ack.
fn publish_rate(plan: &WorkloadPlan, acks: &[Ack]) -> Option<f64> {
    let live: Vec<&Ack> = acks
        .iter()
        .filter(|a| a.sent_us >= plan.live_from_us)
        .collect();
    let first = live.iter().map(|a| a.sent_us).min()?;
    let last = live.iter().map(|a| a.acked_us).max()?;
    (last > first && live.len() > 1).then(|| live.len() as f64 / ((last - first) as f64 / 1e6))
}

/// The 99th percentile (µs) of publish → delivery over these clients' deliveries of
/// acknowledged writes.
fn delivery_p99_us(clients: &[&Transcript], by_marker: &BTreeMap<&str, &Ack>) -> Option<u64> {
    let mut h = Histogram::<u64>::new(3).expect("3 significant figures is a valid precision");
    let frames = clients
        .iter()
        .flat_map(|t| &t.connections)
        .flat_map(|c| &c.frames);
    for (_, v) in crate::view::delivery_latencies(frames, by_marker) {
        // Auto-resizing: only a value beyond the histogram's range fails.
        if h.record(v).is_err() {
            h.saturating_record(v);
        }
    }
    (!h.is_empty()).then(|| h.value_at_quantile(0.99))
}

/// How far the acknowledged writes ran ahead of a slow reader's first connection
/// when its slow phase ended, in bytes.
pub(crate) fn lag_bytes(t: &Transcript, slow_for_ms: u64, acks: &[Ack]) -> Option<u64> {
    let c = t.connections.first()?;
    let until = c.head_us?.saturating_add(slow_for_ms.saturating_mul(1000));
    let read = c
        .frames
        .iter()
        .filter(|f| f.at_us <= until)
        .map(|f| f.end)
        .max()
        .unwrap_or(0);
    let sizes: Vec<u64> = c
        .frames
        .iter()
        .filter(|f| matches!(f.kind, FrameKind::Data(_)))
        .map(|f| f.end.saturating_sub(f.start))
        .collect();
    let mean = match sizes.len() as u64 {
        0 => 0,
        n => sizes.iter().sum::<u64>() / n,
    };
    let acked = acks.iter().filter(|a| a.acked_us <= until).count() as u64;
    Some(acked.saturating_mul(mean).saturating_sub(read))
}
