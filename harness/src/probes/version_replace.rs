//! `version-replace`: a second stream for the same request id replaces the first; the
//! old one must end (replaced) before a later notification, the new one gets it.

use harness_model::{Recording, StreamKind};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{Ctx, RunProbe, wait_opened};
use crate::client::{Counted, Until};
use crate::error::HarnessError;
use crate::profile::fill;
use crate::target::encode_segment;

/// The version notified after the replacement.
const AFTER: &str = "2.0.0-after-replace";

/// The probe (no parameters).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionReplace {}

impl RunProbe for VersionReplace {
    async fn run(&self, cx: &Ctx, _rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError> {
        let v = cx.need(cx.target.profile.version.as_ref(), "version")?;
        let rid = format!("replace-{}", cx.tag);
        let path = fill(&v.stream_path, &[("rid", &encode_segment(&rid))]);
        let (otx, mut orx) = mpsc::unbounded_channel();
        let old = cx.plan(
            "version-old#0",
            StreamKind::Version,
            path.clone(),
            Until::ServerEnds,
        );
        let first = cx.spawn(old, Some(otx.clone()));
        wait_opened(&mut orx, 1, cx.deadline).await;
        let until = Until::Frames {
            kind: Counted::Version,
            count: 2,
        };
        let second = cx.spawn(
            cx.plan("version-new#0", StreamKind::Version, path, until),
            Some(otx),
        );
        wait_opened(&mut orx, 1, cx.deadline).await;
        // The old stream must be gone before the notification (it was replaced).
        let old = cx.join(vec![first]).await;
        cx.notify(&rid, AFTER).await?;
        let new = cx.join(vec![second]).await;
        let mut rec = Recording::default();
        for t in &old {
            rec.expect.replaced.push(t.client.clone());
            rec.expect
                .versions
                .insert(t.client.clone(), vec!["*".into()]);
        }
        for t in &new {
            let want = vec!["*".into(), AFTER.into()];
            rec.expect.versions.insert(t.client.clone(), want);
        }
        rec.transcripts.extend(old);
        rec.transcripts.extend(new);
        Ok(rec)
    }
}
