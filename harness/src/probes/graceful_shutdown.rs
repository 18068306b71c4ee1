//! `graceful-shutdown`: subscribers of a channel with writes before and after a
//! SIGTERM and restart: every stream must get the shutdown close, then resume with
//! nothing lost. Needs `--server-cmd`.

use std::time::Duration;

use harness_model::Recording;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::{Ctx, RunProbe};
use crate::error::HarnessError;
use crate::publisher::{PublishPlan, publish};

/// The probe's parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GracefulShutdown {
    /// Subscribers.
    pub clients: u32,
    /// Writes before the shutdown (and as many after it).
    pub events: u64,
}

impl RunProbe for GracefulShutdown {
    fn needs_control(&self) -> bool {
        true
    }

    async fn run(&self, cx: &Ctx, _rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError> {
        let control = cx.control("graceful-shutdown")?;
        let target = &cx.target;
        let (ch, tasks) = cx.survivors(self.clients).await?;
        let plan = |t: String| PublishPlan {
            channels: vec![ch.clone()],
            count: self.events,
            publishers: 1,
            rate: 0,
            every: None,
            event_type: crate::publisher::DEFAULT_EVENT_TYPE.to_owned(),
            batch: 10,
            pad: String::new(),
            tag: t,
            shard: crate::shard::ShardSpec::WHOLE,
        };
        let (ledger, epoch) = (cx.ledger.clone(), cx.epoch);
        let before = plan(format!("{}a", cx.tag));
        publish(target.clone(), ledger.clone(), before, epoch, cx.deadline).await;
        let restart = cx.us();
        control.terminate()?;
        control.start()?;
        target.wait_until_up(Duration::from_secs(20)).await?;
        let after = plan(format!("{}b", cx.tag));
        publish(target.clone(), ledger, after, epoch, cx.deadline).await;
        let _ = cx.published_tx.send(true);
        let transcripts = cx.join(tasks).await;
        let mut rec = Recording {
            restarts: vec![restart],
            ..Recording::default()
        };
        rec.expect.shutdown = transcripts.iter().map(|t| t.client.clone()).collect();
        rec.transcripts = transcripts;
        Ok(rec)
    }
}
