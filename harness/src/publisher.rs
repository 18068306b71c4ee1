//! Publishers: tasks that write uniquely marked events through the target's publish
//! hook at a set rate, and record each acknowledgement (with the seq, when the ack
//! carries one) in the ledger. Writes are spread round-robin over the channels, so
//! several jobs interleave.

use std::sync::Arc;
use std::time::Duration;

use harness_model::{Ack, PublishFailure, Seq};
use tokio::time::Instant;

use crate::ledger::Ledger;
use crate::profile::fill;
use crate::target::{Target, encode_segment};

/// What to publish.
#[derive(Clone, Debug)]
pub struct PublishPlan {
    /// Channels to write to, round-robin per request.
    pub channels: Vec<String>,
    /// Writes in total.
    pub count: u64,
    /// Concurrent publisher tasks.
    pub publishers: u32,
    /// Writes per second over all publishers (0 = as fast as acks come).
    pub rate: u64,
    /// Writes per request.
    pub batch: u32,
    /// Padding text.
    pub pad: String,
    /// Marker tag: markers are `hm-<tag>-<publisher>-<n>`.
    pub tag: String,
}

/// Publishes the plan and returns when every request is answered or the deadline passed.
pub async fn publish(
    target: Arc<Target>,
    ledger: Arc<Ledger>,
    plan: PublishPlan,
    epoch: Instant,
    deadline: Instant,
) {
    let publishers = plan.publishers.max(1);
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let share = plan.count / u64::from(publishers)
            + u64::from(u64::from(p) < plan.count % u64::from(publishers));
        let (target, ledger, plan) = (target.clone(), ledger.clone(), plan.clone());
        tasks.push(crate::tasks::spawn(async move {
            publisher(target, ledger, plan, p, share, epoch, deadline).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn publisher(
    target: Arc<Target>,
    ledger: Arc<Ledger>,
    plan: PublishPlan,
    p: u32,
    share: u64,
    epoch: Instant,
    deadline: Instant,
) {
    let Some(pubcfg) = target.profile.publish.clone() else {
        return;
    };
    let batching = plan.batch > 1
        && target.profile.has("batch-publish")
        && pubcfg.batch_body.is_some()
        && pubcfg.batch_item.is_some();
    let batch = if batching { u64::from(plan.batch) } else { 1 };
    let interval = (plan.rate > 0).then(|| {
        Duration::from_secs_f64(batch as f64 * f64::from(plan.publishers.max(1)) / plan.rate as f64)
    });
    let start = Instant::now();
    let mut headers: Vec<(String, String)> = pubcfg
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
    {
        headers.push(("Accept".into(), "application/json".into()));
    }
    let mut sent = 0u64;
    let mut request = 0u64;
    while sent < share && Instant::now() < deadline {
        if let Some(iv) = interval {
            tokio::time::sleep_until((start + iv.mul_f64(request as f64)).min(deadline)).await;
        }
        let n = batch.min(share - sent);
        let channel = &plan.channels[((request * u64::from(plan.publishers.max(1)) + u64::from(p))
            % plan.channels.len() as u64) as usize];
        let markers: Vec<String> = (0..n)
            .map(|k| {
                format!(
                    "{}{}-{p}-{}",
                    crate::classify::MARKER_PREFIX,
                    plan.tag,
                    sent + k
                )
            })
            .collect();
        let enc = encode_segment(channel);
        let vars = |m: &str| {
            [
                ("marker", m.to_owned()),
                ("pad", plan.pad.clone()),
                ("channel", channel.clone()),
            ]
        };
        let body = if batching {
            let items: Vec<String> = markers
                .iter()
                .map(|m| {
                    let v = vars(m);
                    fill(
                        pubcfg.batch_item.as_deref().unwrap_or_default(),
                        &v.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
                    )
                })
                .collect();
            fill(
                pubcfg.batch_body.as_deref().unwrap_or_default(),
                &[("items", &items.join(","))],
            )
        } else {
            let v = vars(&markers[0]);
            fill(
                &pubcfg.body,
                &v.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
            )
        };
        let path = fill(&pubcfg.path, &[("channel", &enc)]);
        let sent_us = epoch.elapsed().as_micros() as u64;
        let answer = match tokio::time::timeout_at(
            deadline,
            target.request(&pubcfg.method, &path, Some(body), &headers),
        )
        .await
        {
            Ok(a) => a.and_then(|a| a.whole(&format!("{} {path}", pubcfg.method))),
            Err(_) => Err(crate::error::HarnessError::new(
                crate::error::HarnessErrorKind::Target,
                format!(
                    "{} {path}: no answer before the scenario's deadline",
                    pubcfg.method
                ),
            )),
        };
        let acked_us = epoch.elapsed().as_micros() as u64;
        match answer {
            Ok(a) if pubcfg.ack_status.contains(&a.status) => {
                let seqs: Option<Vec<u64>> = pubcfg.ack_seqs_pointer.as_ref().map(|ptr| {
                    a.json()
                        .pointer(ptr)
                        .and_then(|v| v.as_array().cloned())
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|v| v.as_u64())
                        .collect()
                });
                match seqs {
                    Some(s) if s.len() != markers.len() => ledger.fail(PublishFailure {
                        markers,
                        status: Some(a.status),
                        error: format!("ack carries {} seqs for {} writes: {}", s.len(), n, a.body),
                    }),
                    _ => ledger.push(
                        markers
                            .into_iter()
                            .enumerate()
                            .map(|(i, marker)| Ack {
                                marker,
                                job: channel.clone(),
                                seq: seqs.as_ref().map(|s| Seq(s[i])),
                                publisher: p,
                                sent_us,
                                acked_us,
                            })
                            .collect(),
                    ),
                }
            }
            Ok(a) => ledger.fail(PublishFailure {
                markers,
                status: Some(a.status),
                error: a.body.chars().take(300).collect(),
            }),
            Err(e) => ledger.fail(PublishFailure {
                markers,
                status: None,
                error: e.to_string(),
            }),
        }
        sent += n;
        request += 1;
    }
}
