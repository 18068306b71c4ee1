//! Browser clients ([`Agent::Browser`]): what a page can observe is judged, what it
//! cannot is listed as not judged on them, never passed silently.
//!
//! A page sees dispatched events (type, `lastEventId`, data), `open` and `error`. So
//! the contracts of [`JUDGED_ON_BROWSERS`] (gap, duplicate, order, lost acks,
//! cross-client consistency, content, data JSON) judge browser transcripts as they
//! judge the harness's own; every other contract judges only the byte-exact clients
//! (it needs bytes, comments, `retry:`, headers, or how a connection ended: a page
//! cannot tell a server's close from a reset), and [`not_judged`] names them for the
//! scenario's facts. `wire.browser-stream` is the browsers' own: a browser that gave up
//! for good (its `EventSource` closed by the browser) where the profile says the target
//! serves browsers.

use harness_model::{Agent, ClientId, Contracts, Evidence, Finding, KnownContract, Recording, ids};

use crate::CheckConfig;
use crate::view::ms;

/// The contracts judged on browser clients: each needs only the events a page sees.
pub const JUDGED_ON_BROWSERS: &[KnownContract] = &[
    ids::RESUME_NO_GAP,
    ids::RESUME_NO_DUPLICATE,
    ids::RESUME_MONOTONIC,
    ids::DELIVERY_LOST_ACK,
    ids::DELIVERY_CONSISTENT,
    ids::DELIVERY_ONLY_REQUESTED,
    ids::DELIVERY_CONTENT_INTACT,
    ids::FRAMING_JSON_DATA,
    ids::WIRE_BROWSER_STREAM,
    ids::LIFECYCLE_TASK_EVENTS,
    ids::LIFECYCLE_TASK_RECEIPT,
];

/// Whether the recording has browser clients.
pub fn has_browsers(rec: &Recording) -> bool {
    rec.transcripts.iter().any(|t| t.agent == Agent::Browser)
}

/// The contracts of the judged families that browser clients are not judged on (empty
/// without browser clients), by id.
pub fn not_judged(contracts: &Contracts, cfg: &CheckConfig, rec: &Recording) -> Vec<String> {
    if !has_browsers(rec) {
        return Vec::new();
    }
    contracts
        .all()
        .filter(|c| {
            let family = c.id.family();
            cfg.families.is_empty() || cfg.families.iter().any(|f| f.name() == family)
        })
        .filter(|c| !JUDGED_ON_BROWSERS.iter().any(|k| c.id == *k))
        .map(|c| c.id.0.clone())
        .collect()
}

/// Every finding of a recording with browser clients: all contracts on the byte-exact
/// clients alone; on the whole recording, the findings about a browser client of the
/// contracts judged on browsers; and `wire.browser-stream`.
pub(crate) fn check(
    contracts: &Contracts,
    cfg: &CheckConfig,
    rec: &Recording,
    all: fn(&Contracts, &CheckConfig, &Recording) -> Vec<Finding>,
) -> Vec<Finding> {
    let browsers: Vec<&ClientId> = rec
        .transcripts
        .iter()
        .filter(|t| t.agent == Agent::Browser)
        .map(|t| &t.client)
        .collect();
    let wire_only = Recording {
        transcripts: rec
            .transcripts
            .iter()
            .filter(|t| t.agent != Agent::Browser)
            .cloned()
            .collect(),
        ..rec.clone()
    };
    let mut out = all(contracts, cfg, &wire_only);
    out.extend(all(contracts, cfg, rec).into_iter().filter(|f| {
        f.evidence
            .client
            .as_ref()
            .is_some_and(|c| browsers.contains(&c))
            && JUDGED_ON_BROWSERS.iter().any(|k| f.contract == *k)
    }));
    out.extend(gave_up(contracts, cfg, rec));
    out.sort_by(|a, b| {
        (&a.contract, &a.evidence.client, a.evidence.connection).cmp(&(
            &b.contract,
            &b.evidence.client,
            b.evidence.connection,
        ))
    });
    out
}

/// `wire.browser-stream`: each browser that gave up for good unless the scenario
/// arranged that (a wrong token), and each arranged one that did not.
fn gave_up(contracts: &Contracts, cfg: &CheckConfig, rec: &Recording) -> Vec<Finding> {
    let mut out = Vec::new();
    for t in rec.transcripts.iter().filter(|t| t.agent == Agent::Browser) {
        let opened = t.connections.iter().filter(|c| c.status.is_some()).count();
        let stop_expected = rec.expect.browser_stops.contains(&t.client);
        let (expected, seen, at) = match (t.gave_up_us, stop_expected) {
            (Some(at), false) => (
                "the EventSource opens the stream and, when it ends or fails, reconnects by itself".to_owned(),
                format!(
                    "the browser gave up for good (readyState CLOSED) at {:.0} ms after {opened} opened connection(s): no CORS header for the page's origin, a 204, a refusal or a Content-Type other than text/event-stream{}",
                    ms(at),
                    diagnosis(t)
                ),
                at,
            ),
            (None, true) => (
                "the target's answer stops an EventSource for good (a refusal such as a wrong access token, no CORS header for the page's origin, a 204, a Content-Type other than text/event-stream), so the browser gives up".to_owned(),
                format!(
                    "the browser never gave up: {opened} connection(s) opened, {} attempt(s) in all",
                    t.connections.len()
                ),
                t.connections.last().map(|c| c.ended_us).unwrap_or(0),
            ),
            _ => continue,
        };
        let mut f = contracts.finding(
            ids::WIRE_BROWSER_STREAM,
            Evidence {
                client: Some(t.client.clone()),
                connection: t.connections.last().map(|c| c.index),
                at_ms: Some(ms(at)),
                expected,
                seen,
                ..Evidence::default()
            },
        );
        f.level = cfg.wire_level;
        out.push(f);
    }
    out
}

/// What the harness found out about the last attempt of a browser that gave up (see
/// `harness/src/browser`), as "; …", or nothing.
fn diagnosis(t: &harness_model::Transcript) -> String {
    match t.connections.last().map(|c| &c.end) {
        Some(harness_model::ConnEnd::ConnectFailed { error }) => error
            .split_once("; ")
            .map(|(_, note)| format!(" ({note})"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The browsers' reconnections, for the scenario facts: the server's `retry:` as the
/// byte-exact clients saw it, and each browser's wait from a connection's end to its
/// next connection's `open` (what the browser made of that `retry:`), in ms.
pub(crate) fn facts(rec: &Recording) -> Option<(String, serde_json::Value)> {
    if !has_browsers(rec) {
        return None;
    }
    let retry_ms = rec
        .transcripts
        .iter()
        .filter(|t| t.agent == Agent::Wire)
        .flat_map(|t| &t.connections)
        .find_map(|c| c.retries.first().map(|(_, ms)| *ms));
    let waits: Vec<u64> = rec
        .transcripts
        .iter()
        .filter(|t| t.agent == Agent::Browser)
        .flat_map(|t| {
            t.connections
                .windows(2)
                .filter(|w| w[0].status.is_some() && w[1].status.is_some())
                .map(|w| w[1].opened_us.saturating_sub(w[0].ended_us) / 1000)
                .collect::<Vec<_>>()
        })
        .collect();
    Some((
        "browser_reconnects".into(),
        serde_json::json!({
            "retry_ms": retry_ms,
            "waits_ms": waits,
            "min_ms": waits.iter().min(),
            "max_ms": waits.iter().max(),
        }),
    ))
}
