//! `crash-restart`: subscribers that resume across restarts, while the target is
//! SIGKILLed mid-burst and restarted `cycles` times; then the integrity report, where
//! the profile says where it is, and every job it made read back whole (its events and
//! its receipt) to recompute the receipts. Needs `--server-cmd`.

use std::time::Duration;

use harness_model::{JobReadBack, Recording, StreamKind, Transcript};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use tokio::time::Instant;

use super::{Ctx, RunProbe};
use crate::client::Until;
use crate::error::HarnessError;
use crate::profile::{JobSpec, Method};
use crate::publisher::{PublishPlan, publish};

/// The probe's parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashRestart {
    /// Kill/restart cycles.
    pub cycles: u32,
    /// Writes per cycle.
    pub events_per_cycle: u64,
    /// Subscribers that resume across restarts.
    pub clients: u32,
}

impl RunProbe for CrashRestart {
    fn needs_control(&self) -> bool {
        true
    }

    async fn run(&self, cx: &Ctx, rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError> {
        let control = cx.control("crash-restart")?;
        let target = &cx.target;
        let (ch, tasks) = cx.survivors(self.clients).await?;
        let mut restarts = Vec::new();
        let mut made = Vec::new();
        let per_cycle = self.events_per_cycle;
        for cycle in 0..self.cycles {
            let plan = PublishPlan {
                channels: vec![ch.clone()],
                count: per_cycle,
                publishers: 2,
                rate: 0,
                every: None,
                event_type: crate::publisher::DEFAULT_EVENT_TYPE.to_owned(),
                batch: 10,
                pad: String::new(),
                tag: format!("{}c{cycle}", cx.tag),
                shard: crate::shard::ShardSpec::WHOLE,
            };
            if target.profile.task.is_some() {
                // A short job with an artifact each cycle, so receipts are written while
                // crashes happen.
                let spec = JobSpec {
                    steps: 2,
                    interval_ms: 5,
                    artifact_bytes: Some(2048),
                    ..JobSpec::default()
                };
                made.push((cx.job(spec).await?, spec));
            }
            let before = cx.ledger.acked();
            let (ledger, epoch) = (cx.ledger.clone(), cx.epoch);
            let burst =
                crate::tasks::spawn(publish(target.clone(), ledger, plan, epoch, cx.deadline));
            // Kill mid-burst: once a random share of the cycle's writes is acknowledged.
            let share = rng.random_range(1..=per_cycle.max(1)) as usize;
            let wait_until = Instant::now() + Duration::from_secs(10);
            while cx.ledger.acked() < before + share
                && Instant::now() < wait_until
                && !burst.is_finished()
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            restarts.push(cx.us());
            control.kill()?;
            let _ = burst.await;
            control.start()?;
            target.wait_until_up(Duration::from_secs(20)).await?;
        }
        let _ = cx.published_tx.send(true);
        let mut transcripts = cx.join(tasks).await;
        if target.profile.task.is_some() {
            // One last job after the last restart (jobs still running have no receipt
            // yet: the integrity report covers the completed ones).
            let spec = JobSpec {
                steps: 1,
                interval_ms: 0,
                artifact_bytes: Some(1024),
                ..JobSpec::default()
            };
            made.push((cx.job(spec).await?, spec));
        }
        let jobs = read_back(cx, made, &mut transcripts).await?;
        let mut rec = Recording {
            transcripts,
            restarts,
            jobs,
            ..Recording::default()
        };
        // Read after every job was read back to its end, so each completed job has its
        // receipt in the report.
        let durability = target.profile.durability.as_ref();
        if let Some(path) = durability.and_then(|d| d.integrity_path.as_ref()) {
            rec.integrity = Some(target.request(Method::Get, path, None, &[]).await?.json());
        }
        Ok(rec)
    }
}

/// Reads every job the probe made from its first event to its end (a job still
/// running carries on after the restarts) and its receipt, so the checkers recompute
/// what the integrity report only compares. The readers' transcripts join the
/// recording (judged like every task stream, never dropped).
async fn read_back(
    cx: &Ctx,
    made: Vec<((String, String), JobSpec)>,
    transcripts: &mut Vec<Transcript>,
) -> Result<Vec<JobReadBack>, HarnessError> {
    let mut out = Vec::new();
    for (i, ((path, job), spec)) in made.into_iter().enumerate() {
        let mut plan = cx.plan(
            &format!("job-reader#{i}"),
            StreamKind::Task,
            path,
            Until::ServerEnds,
        );
        plan.channels = vec![job.clone()];
        let reader = cx.client(plan).await;
        let events = super::data_of(&reader);
        transcripts.push(reader);
        out.push(cx.read_back(&job, spec, None, events).await?);
    }
    Ok(out)
}
