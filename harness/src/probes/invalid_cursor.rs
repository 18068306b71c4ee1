//! `invalid-cursor`: each malformed cursor (every other one in the query parameter,
//! where the profile has one) must get the profile's cursor error.

use std::time::Duration;

use harness_model::{Recording, StreamKind};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use tokio::time::Instant;

use super::{Ctx, RunProbe};
use crate::client::Until;
use crate::error::HarnessError;

/// The probe's parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidCursor {
    /// The cursors to try.
    pub cursors: Vec<String>,
}

impl RunProbe for InvalidCursor {
    async fn run(&self, cx: &Ctx, _rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError> {
        let ch = cx.target.channel(&cx.tag, 0).await?;
        let mut rec = Recording::default();
        for (i, c) in self.cursors.iter().enumerate() {
            let mut p = cx.plan(
                &format!("bad-cursor#{i}"),
                StreamKind::Events,
                cx.channel_path(&ch),
                Until::ServerEnds,
            );
            p.initial_cursor = Some(c.clone());
            p.from_start = false;
            if i % 2 == 1 {
                p.cursor_query = cx.target.profile.subscribe.cursor_query.clone();
            }
            let left = cx.deadline.saturating_duration_since(Instant::now());
            p.deadline = Instant::now() + Duration::from_secs(10).min(left);
            let t = cx.client(p).await;
            rec.expect.invalid_cursor.push(t.client.clone());
            rec.transcripts.push(t);
        }
        Ok(rec)
    }
}
