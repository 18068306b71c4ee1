//! `cursor-ahead`: a cursor far above the head must get the cursor-ahead error and close.

use harness_model::{Recording, StreamKind};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::{Ctx, RunProbe};
use crate::client::Until;
use crate::error::HarnessError;

/// The probe (no parameters).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorAhead {}

impl RunProbe for CursorAhead {
    async fn run(&self, cx: &Ctx, _rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError> {
        let head = cx.target.head_seq().await?.unwrap_or(0);
        let ch = cx.target.channel(&cx.tag, 0).await?;
        let mut p = cx.plan(
            "ahead#0",
            StreamKind::Events,
            cx.channel_path(&ch),
            Until::ServerEnds,
        );
        p.initial_cursor = Some(head.saturating_add(1_000_000).to_string());
        p.from_start = false;
        let t = cx.client(p).await;
        let mut rec = Recording::default();
        rec.expect.cursor_ahead.push(t.client.clone());
        rec.transcripts.push(t);
        Ok(rec)
    }
}
