//! `task-lifecycle`: a job with `steps` steps on its task stream — progress, the
//! terminal event, then the close with its reason; optionally resumed at the terminal
//! event after the job ended (the stream must close at once with the same reason).
//! The job is read back with its receipt, so its events and receipt are judged too.

use harness_model::{CloseReason, FrameKind, Recording, StreamKind};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::{Ctx, RunProbe};
use crate::client::Until;
use crate::error::HarnessError;
use crate::profile::JobSpec;

/// The probe's parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskLifecycle {
    /// Steps of the job.
    pub steps: u32,
    /// Milliseconds between steps.
    pub interval_ms: u64,
    /// Fail at this step (the `task_failed` path).
    pub fail_at_step: Option<u32>,
    /// Also connect after the job has ended (resume at the terminal event).
    #[serde(default)]
    pub after_end: bool,
    /// Artifact bytes for the job.
    pub artifact_bytes: Option<u64>,
}

impl RunProbe for TaskLifecycle {
    async fn run(&self, cx: &Ctx, _rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError> {
        let spec = JobSpec {
            steps: self.steps,
            interval_ms: self.interval_ms,
            fail_at_step: self.fail_at_step,
            artifact_bytes: self.artifact_bytes,
        };
        let (path, job) = cx.job(spec).await?;
        let reason = if self.fail_at_step.is_some() {
            CloseReason::TaskFailed
        } else {
            CloseReason::TaskCompleted
        };
        let mut rec = Recording::default();
        let mut first = cx.plan("task#0", StreamKind::Task, path.clone(), Until::ServerEnds);
        first.channels = vec![job.clone()];
        let t0 = cx.client(first).await;
        rec.expect.task_terminal.insert(t0.client.clone(), reason);
        let events = super::data_of(&t0);
        let read = cx.read_back(&job, spec, Some(t0.client.clone()), events);
        rec.jobs.push(read.await?);
        if self.after_end {
            let last = t0
                .connections
                .iter()
                .flat_map(|c| &c.frames)
                .filter(|f| matches!(f.kind, FrameKind::Data(_)))
                .filter_map(|f| f.id.clone())
                .next_back();
            let mut again = cx.plan("task-resumed#0", StreamKind::Task, path, Until::ServerEnds);
            again.initial_cursor = last;
            again.from_start = false;
            again.channels = vec![job.clone()];
            let t1 = cx.client(again).await;
            rec.expect.task_terminal.insert(t1.client.clone(), reason);
            rec.transcripts.push(t1);
        }
        rec.transcripts.insert(0, t0);
        Ok(rec)
    }
}
