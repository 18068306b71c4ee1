//! `heartbeat-idle`: an idle stream (events, task or version) read for `heartbeats`
//! heartbeat intervals; the heartbeat family judges the gaps.

use harness_model::{Recording, StreamKind};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::{Ctx, RunProbe};
use crate::client::{Counted, Until};
use crate::error::HarnessError;
use crate::profile::{JobSpec, fill};

/// Which idle stream to read.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdleStream {
    /// A channel nobody publishes to.
    Events,
    /// The task stream of a job that waits an hour before its first step.
    Task,
    /// A version stream nobody notifies.
    Version,
}

/// The probe's parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatIdle {
    /// How many intervals to stay idle.
    pub heartbeats: u32,
    /// Which stream.
    pub stream: IdleStream,
}

impl RunProbe for HeartbeatIdle {
    async fn run(&self, cx: &Ctx, _rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError> {
        let until = Until::Frames {
            kind: Counted::Heartbeat,
            count: u64::from(self.heartbeats),
        };
        let (kind, path) = match self.stream {
            IdleStream::Task => {
                let spec = JobSpec {
                    steps: 1,
                    interval_ms: 3_600_000,
                    ..JobSpec::default()
                };
                (StreamKind::Task, cx.job(spec).await?.0)
            }
            IdleStream::Version => {
                let v = cx.need(cx.target.profile.version.as_ref(), "version")?;
                let rid = format!("idle-{}", cx.tag);
                (StreamKind::Version, fill(&v.stream_path, &[("rid", &rid)]))
            }
            IdleStream::Events => {
                let ch = cx.target.channel(&cx.tag, 0).await?;
                (StreamKind::Events, cx.channel_path(&ch))
            }
        };
        let t = cx.client(cx.plan("idle#0", kind, path, until)).await;
        let mut rec = Recording::default();
        rec.expect.idle.push(t.client.clone());
        rec.transcripts.push(t);
        Ok(rec)
    }
}
