//! `correlation-id`: two readers of one task stream, one sending `X-Correlation-ID`:
//! only its frames carry the id back.

use harness_model::{CloseReason, Recording, StreamKind};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::{Ctx, RunProbe};
use crate::client::Until;
use crate::error::HarnessError;
use crate::profile::JobSpec;

/// The probe (no parameters).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationId {}

impl RunProbe for CorrelationId {
    async fn run(&self, cx: &Ctx, _rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError> {
        let spec = JobSpec {
            steps: 3,
            interval_ms: 20,
            ..JobSpec::default()
        };
        let (path, _) = cx.job(spec).await?;
        let mut with = cx.plan(
            "correlated#0",
            StreamKind::Task,
            path.clone(),
            Until::ServerEnds,
        );
        with.correlation = Some(format!("corr-{}", cx.tag));
        let a = cx.spawn(with, None);
        let without = cx.plan("uncorrelated#0", StreamKind::Task, path, Until::ServerEnds);
        let b = cx.spawn(without, None);
        let mut rec = Recording {
            transcripts: cx.join(vec![a, b]).await,
            ..Recording::default()
        };
        for t in &rec.transcripts {
            rec.expect
                .task_terminal
                .insert(t.client.clone(), CloseReason::TaskCompleted);
        }
        Ok(rec)
    }
}
