//! `task-not-found`: the task stream of a job that does not exist.

use harness_model::{Recording, StreamKind};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::{Ctx, RunProbe};
use crate::client::Until;
use crate::error::HarnessError;
use crate::profile::fill;

/// The probe (no parameters).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskNotFound {}

impl RunProbe for TaskNotFound {
    async fn run(&self, cx: &Ctx, _rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError> {
        let task = cx.need(cx.target.profile.task.as_ref(), "task")?;
        let path = fill(&task.path, &[("job", &format!("no-such-job-{}", cx.tag))]);
        let t = cx
            .client(cx.plan("missing#0", StreamKind::Task, path, Until::ServerEnds))
            .await;
        let mut rec = Recording::default();
        rec.expect.task_not_found.push(t.client.clone());
        rec.transcripts.push(t);
        Ok(rec)
    }
}
