//! `version-pending`: versions notified before the stream opens arrive in order.

use harness_model::{Recording, StreamKind};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::{Ctx, RunProbe};
use crate::client::{Counted, Until};
use crate::error::HarnessError;
use crate::profile::fill;
use crate::target::encode_segment;

/// The probe's parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionPending {
    /// Versions to queue.
    pub versions: Vec<String>,
}

impl RunProbe for VersionPending {
    async fn run(&self, cx: &Ctx, _rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError> {
        let v = cx.need(cx.target.profile.version.as_ref(), "version")?;
        let rid = format!("pending-{}", cx.tag);
        for ver in &self.versions {
            cx.notify(&rid, ver).await?;
        }
        let path = fill(&v.stream_path, &[("rid", &encode_segment(&rid))]);
        let until = Until::Frames {
            kind: Counted::Version,
            count: self.versions.len() as u64,
        };
        let mut t = cx
            .client(cx.plan("version#0", StreamKind::Version, path, until))
            .await;
        t.jobs = vec![rid];
        let mut rec = Recording::default();
        rec.expect
            .versions
            .insert(t.client.clone(), self.versions.clone());
        rec.transcripts.push(t);
        Ok(rec)
    }
}
