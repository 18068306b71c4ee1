//! `task-lifecycle`: a job with `steps` steps on its task stream — progress, the
//! terminal event, then the close with its reason; optionally resumed at the terminal
//! event after the job ended (the stream must close at once with the same reason).
//! The job is read back with its receipt, so its events and receipt are judged too.
//!
//! With `browsers`, that many `EventSource`s in headless Chromium then read the
//! finished task's stream from its start: the job's events (judged against its receipt
//! like the byte-exact reader's), the terminal close, and then their own reconnection
//! with the terminal event's id. A browser does what the answer says: the `200` stream
//! that closes again is reconnected after `retry:`, again and again (it cannot act on
//! `connection_close`); a `204` (spine v1.1 §4.1.2) stops it for good. Which answer the
//! target gives is read from the byte-exact resumed client's first connection.

use harness_model::{CloseReason, FrameKind, Recording, StreamKind};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::{Ctx, RunProbe};
use crate::browser::BrowserPlan;
use crate::client::Until;
use crate::error::HarnessError;
use crate::profile::JobSpec;
use crate::scenario::BrowserCase;

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
    /// Browser clients that read the finished task's stream (needs `after_end`).
    #[serde(default)]
    pub browsers: u32,
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
            let mut again = cx.plan(
                "task-resumed#0",
                StreamKind::Task,
                path.clone(),
                Until::ServerEnds,
            );
            again.initial_cursor = last;
            again.from_start = false;
            again.channels = vec![job.clone()];
            let t1 = cx.client(again).await;
            rec.expect.task_terminal.insert(t1.client.clone(), reason);
            let answered_204 = t1.connections.first().and_then(|c| c.status) == Some(204);
            rec.transcripts.push(t1);
            if self.browsers > 0 {
                self.read_by_browsers(cx, (&path, &job), spec, answered_204, &mut rec)
                    .await?;
            }
        }
        rec.transcripts.insert(0, t0);
        Ok(rec)
    }
}

impl TaskLifecycle {
    /// The browsers read the finished task's stream `path` of `job` (see the module
    /// doc); each is a reader of the job, judged against its receipt, and must stop for
    /// good when the target answers the resume `204`, else keep reconnecting.
    async fn read_by_browsers(
        &self,
        cx: &Ctx,
        (path, job): (&str, &str),
        spec: JobSpec,
        answered_204: bool,
        rec: &mut Recording,
    ) -> Result<(), HarnessError> {
        let plans = (0..self.browsers)
            .map(|i| {
                let id = format!("browser#{i}");
                let mut client = cx.plan(&id, StreamKind::Task, path.to_owned(), Until::ServerEnds);
                client.channels = vec![job.to_owned()];
                BrowserPlan {
                    loops: true,
                    ..BrowserPlan::new(client, BrowserCase::Reads, false, &cx.target.profile)
                }
            })
            .collect();
        for t in cx.browsers(plans).await {
            let events = super::data_of(&t);
            rec.jobs.push(
                cx.read_back(job, spec, Some(t.client.clone()), events)
                    .await?,
            );
            if answered_204 {
                rec.expect.browser_stops.push(t.client.clone());
            } else {
                rec.expect.browser_loops.push(t.client.clone());
            }
            rec.transcripts.push(t);
        }
        Ok(())
    }
}
