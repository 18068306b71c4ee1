//! Publish: acknowledged events per second into the spine's durable log (group commit,
//! fsync on), from P concurrent publishers each posting batches of B and waiting for
//! each ack before the next request. Bounded by time and by a cap on events.

use std::time::{Duration, Instant};

use super::wire::{Spine, now_ns, payload};

/// Payload size of the publish measurement.
const PAYLOAD: usize = 64;
/// Cap on the events one measurement may publish.
const MAX_EVENTS: u64 = 2_000_000;

/// Acked events/s with `publishers` concurrent publishers posting batches of `batch`
/// for `duration` into a fresh job.
pub async fn run(
    spine: &Spine,
    publishers: usize,
    batch: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let job = spine.create_job().await?;
    let per_task = MAX_EVENTS / publishers as u64;
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..publishers {
        let (spine, job) = (spine.clone(), job.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = 0u64;
            while Instant::now() < end && acked < per_task {
                let items: Vec<String> = (0..batch).map(|_| payload(now_ns(), PAYLOAD)).collect();
                acked += spine.publish(&job, &items).await?;
            }
            anyhow::Ok(acked)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}
