//! `resume-id`: a client resumes from an id the server cannot place — a garbage id, a
//! well-formed id it never issued (`unknown`), an id of another channel (`foreign`),
//! an id that fell out of the channel's history (`evicted`), an id from before a
//! restart (`restart`) — and the checkers judge what it got: no duplicate, no silent
//! gap, and the answer the profile declares in `[resume]`.
//!
//! The exchange, on one fresh channel:
//!
//! 1. `before#0` subscribes and receives [`HAD`] events, then leaves (its last id is
//!    the cursor of `evicted` and `restart`);
//! 2. for `foreign`, `foreign#0` receives one event on a second channel (its id is the
//!    cursor); for `restart`, the target is killed and restarted;
//! 3. [`AWAY`] events are published while the client is away (`evicted`: as many as
//!    the history holds and [`AWAY`] more, so the cursor and the first events after it
//!    fall out of it);
//! 4. `resumed#0` connects with the cursor; once its stream is open, [`LIVE`] events
//!    are published; it reads until it has them, the server ends the stream, or
//!    [`RESUMED_WAIT`] passes.
//!
//! Every write goes through the profile's publish hook (`evicted`: through the
//! `[resume] eviction` path instead), one at a time, so the ack order is the
//! publish order.

use std::time::Duration;

use harness_model::{
    Capability, ClientId, FrameKind, IdCase, Recording, ResumeIdProbe, StreamKind, Transcript,
};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Ctx, RunProbe, wait_opened};
use crate::client::Until;
use crate::error::{HarnessError, HarnessErrorKind};
use crate::profile::{Ids, Profile};
use crate::publisher::{PublishPlan, publish};
use crate::target::Target;

/// Events the client receives before it leaves.
pub const HAD: u64 = 4;
/// Events published while it is away (beyond the history, for `evicted`).
pub const AWAY: u64 = 3;
/// Events published after it resumed.
pub const LIVE: u64 = 3;
/// How long the resumed client waits for the live events at most: a correct server
/// sends them within milliseconds; only a server that sends nothing costs this.
pub const RESUMED_WAIT: Duration = Duration::from_secs(8);
/// How far above the highest seq seen an unknown numeric id is.
pub const AHEAD_BY: u64 = 1_000_000;

/// The probe's parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeId {
    /// Which kind of id the client resumes from.
    pub case: IdCase,
    /// The garbage id (`case = "garbage"` only).
    #[serde(default)]
    pub cursor: Option<String>,
}

impl ResumeId {
    /// Why the probe cannot run on `profile`, if it cannot.
    pub fn unmet(&self, profile: &Profile) -> Option<String> {
        let r = &profile.resume;
        match self.case {
            IdCase::Garbage if self.cursor.is_none() => {
                Some("the garbage case needs a cursor".into())
            }
            IdCase::Unknown if profile.ids != Ids::Numeric && r.future_id.is_none() => {
                Some(format!(
                    "profile {} has opaque ids and no [resume] future_id (a well-formed id it never issued)",
                    profile.name
                ))
            }
            IdCase::Evicted if r.eviction.is_none() => Some(format!(
                "profile {} has no [resume] eviction (a publish path with a small history)",
                profile.name
            )),
            IdCase::Restart if !profile.has(Capability::Durability) => Some(format!(
                "profile {} does not claim durability: an id from before a restart is not owed anything",
                profile.name
            )),
            _ => None,
        }
    }
}

impl RunProbe for ResumeId {
    fn needs_control(&self) -> bool {
        self.case == IdCase::Restart
    }

    async fn run(&self, cx: &Ctx, _rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError> {
        let profile = &cx.target.profile;
        if let Some(why) = self.unmet(profile) {
            return Err(HarnessError::new(HarnessErrorKind::Usage, why));
        }
        // The evicted case writes through the small-history path.
        let target = match &profile.resume.eviction {
            Some(e) if self.case == IdCase::Evicted => {
                let mut t = (*cx.target).clone();
                if let Some(p) = t.profile.publish.as_mut() {
                    p.path = e.path.clone();
                }
                Arc::new(t)
            }
            _ => cx.target.clone(),
        };
        let history = match self.case {
            IdCase::Evicted => profile.resume.eviction.as_ref().map(|e| e.history),
            _ => None,
        };
        let ch = cx.target.channel(&cx.tag, 0).await?;
        let mut rec = Recording::default();

        // 1. A client receives HAD events, then leaves.
        let before = listen(cx, &target, "before#0", &ch, "h", HAD).await;
        let had: Vec<String> = before
            .as_ref()
            .map(|t| received(t, &markers(cx, "h", HAD)))
            .unwrap_or_default();
        let last_id = before.as_ref().and_then(last_data_id);
        let seen = before.as_ref().map_or(0, max_seq);
        rec.transcripts.extend(before);

        // 2. The cursor.
        let cursor = match self.case {
            IdCase::Garbage => self.cursor.clone().unwrap_or_default(),
            IdCase::Unknown => unknown(cx, seen).await?,
            IdCase::Foreign => {
                let other = cx.target.channel(&cx.tag, 1).await?;
                let t = listen(cx, &target, "foreign#0", &other, "f", 1).await;
                let id = t.as_ref().and_then(last_data_id);
                rec.transcripts.extend(t);
                id.ok_or_else(|| no_id(cx, "foreign#0"))?
            }
            IdCase::Evicted | IdCase::Restart => last_id.ok_or_else(|| no_id(cx, "before#0"))?,
        };

        // 3. Events while away (and, for restart, the restart).
        let away_n = AWAY + history.unwrap_or(0);
        let away = publish_n(cx, &target, &ch, "a", away_n).await;
        if self.case == IdCase::Restart {
            let control = cx.control("resume-id (restart)")?;
            rec.restarts.push(cx.us());
            control.kill()?;
            control.start()?;
            cx.target.wait_until_up(Duration::from_secs(20)).await?;
        }

        // 4. The resumed client, then live events once its stream is open.
        let live_m = markers(cx, "l", LIVE);
        let mut p = cx.plan(
            "resumed#0",
            StreamKind::Events,
            cx.channel_path(&ch),
            Until::Markers(live_m.clone()),
        );
        p.channels = vec![ch.clone()];
        p.initial_cursor = Some(cursor.clone());
        p.from_start = false;
        p.deadline = (Instant::now() + RESUMED_WAIT + Duration::from_secs(5)).min(cx.deadline);
        let (otx, mut orx) = mpsc::unbounded_channel();
        let task = cx.spawn(p, Some(otx));
        wait_opened(&mut orx, 1, cx.deadline).await;
        let live = publish_n(cx, &target, &ch, "l", LIVE).await;
        let _ = cx.published_tx.send(true);
        rec.transcripts.extend(cx.join(vec![task]).await);
        rec.expect.resume_ids.push(ResumeIdProbe {
            client: ClientId("resumed#0".into()),
            case: self.case,
            cursor,
            claim: profile.resume.claim(self.case),
            had,
            away,
            live,
            history,
            reset_event: profile.resume.reset_event.clone(),
        });
        Ok(rec)
    }
}

/// A client of `ch` that, once open, has `n` events published (tag `part`) and reads
/// until it has them (None: it was still running well after the deadline).
async fn listen(
    cx: &Ctx,
    target: &Arc<Target>,
    id: &str,
    ch: &str,
    part: &str,
    n: u64,
) -> Option<Transcript> {
    let mut p = cx.plan(
        id,
        StreamKind::Events,
        cx.channel_path(ch),
        Until::Markers(markers(cx, part, n)),
    );
    p.channels = vec![ch.to_owned()];
    p.deadline = (Instant::now() + Duration::from_secs(20)).min(cx.deadline);
    let (otx, mut orx) = mpsc::unbounded_channel();
    let task = cx.spawn(p, Some(otx));
    wait_opened(&mut orx, 1, cx.deadline).await;
    publish_n(cx, target, ch, part, n).await;
    cx.join(vec![task]).await.pop()
}

/// Publishes `n` events tagged `part` to `ch`, one at a time; returns the acknowledged
/// markers in ack order.
async fn publish_n(cx: &Ctx, target: &Arc<Target>, ch: &str, part: &str, n: u64) -> Vec<String> {
    let plan = PublishPlan {
        channels: vec![ch.to_owned()],
        count: n,
        publishers: 1,
        rate: 0,
        every: None,
        batch: 1,
        pad: String::new(),
        event_type: crate::publisher::DEFAULT_EVENT_TYPE.to_owned(),
        tag: format!("{}{part}", cx.tag),
        shard: crate::shard::ShardSpec::WHOLE,
    };
    let from = cx.ledger.acked();
    publish(
        target.clone(),
        cx.ledger.clone(),
        plan,
        cx.epoch,
        cx.deadline,
    )
    .await;
    let acked = cx.ledger.acked_since(from);
    markers(cx, part, n)
        .into_iter()
        .filter(|m| acked.contains(m))
        .collect()
}

/// A well-formed id the target never issued: the profile's, or far above the highest
/// seq known (`seen`, or the head).
async fn unknown(cx: &Ctx, seen: u64) -> Result<String, HarnessError> {
    if let Some(f) = &cx.target.profile.resume.future_id {
        return Ok(f.clone());
    }
    let head = cx.target.head_seq().await?.unwrap_or(0);
    Ok(seen.max(head).saturating_add(AHEAD_BY).to_string())
}

/// The highest numeric id of a data event the client received (0: none).
fn max_seq(t: &Transcript) -> u64 {
    t.connections
        .iter()
        .flat_map(|c| &c.frames)
        .filter_map(|f| f.id.as_deref()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

/// The markers the publisher gives `n` writes tagged `part` (publisher 0).
fn markers(cx: &Ctx, part: &str, n: u64) -> Vec<String> {
    let prefix = crate::classify::MARKER_PREFIX;
    (0..n)
        .map(|k| format!("{prefix}{}{part}-0-{k}", cx.tag))
        .collect()
}

/// Which of `want` the client received, in `want`'s order.
fn received(t: &Transcript, want: &[String]) -> Vec<String> {
    let got: std::collections::BTreeSet<&str> = t
        .connections
        .iter()
        .flat_map(|c| &c.frames)
        .filter_map(|f| match &f.kind {
            FrameKind::Data(d) => d.marker.as_deref(),
            _ => None,
        })
        .collect();
    want.iter()
        .filter(|m| got.contains(m.as_str()))
        .cloned()
        .collect()
}

/// The id of the last data event the client received.
fn last_data_id(t: &Transcript) -> Option<String> {
    t.connections
        .iter()
        .flat_map(|c| &c.frames)
        .filter(|f| matches!(f.kind, FrameKind::Data(_)))
        .filter_map(|f| f.id.clone())
        .next_back()
}

fn no_id(cx: &Ctx, who: &str) -> HarnessError {
    HarnessError::new(
        HarnessErrorKind::Target,
        format!(
            "{who} received no event with an id on target {}: nothing to resume from",
            cx.target.base
        ),
    )
}

#[cfg(test)]
mod tests {
    use harness_model::{IdAnswer, IdCase};

    use super::ResumeId;
    use crate::profile::Profile;

    const GENERIC: &str = include_str!("../../../contracts/profiles/generic.toml");

    #[test]
    fn the_resume_answers_are_typed_keys() {
        let p = Profile::parse(GENERIC, "x.toml").unwrap();
        assert_eq!(
            p.resume.claim(IdCase::Garbage),
            None,
            "generic claims nothing"
        );
        let declared = format!("{GENERIC}\n[resume]\nunknown_id = \"live-only\"\n");
        let p = Profile::parse(&declared, "x.toml").unwrap();
        assert_eq!(p.resume.claim(IdCase::Unknown), Some(IdAnswer::LiveOnly));
        let typo = format!("{GENERIC}\n[resume]\nunknown_id = \"from-start\"\n");
        let err = Profile::parse(&typo, "x.toml").unwrap_err().to_string();
        assert!(
            err.contains(
                "unknown variant `from-start`, expected one of `replay-all`, `replay-after`, `live-only`, `nothing`, `error-status`, `error-event`"
            ),
            "{err}"
        );
        let key = format!("{GENERIC}\n[resume]\nunknown = \"live-only\"\n");
        assert!(Profile::parse(&key, "x.toml").is_err(), "unknown key");
    }

    #[test]
    fn a_probe_the_profile_cannot_feed_is_skipped_with_the_reason() {
        let p = Profile::parse(GENERIC, "x.toml").unwrap();
        let probe = |case| ResumeId {
            case,
            cursor: Some("garbage".into()),
        };
        assert_eq!(probe(IdCase::Garbage).unmet(&p), None);
        assert_eq!(probe(IdCase::Foreign).unmet(&p), None);
        for (case, why) in [
            (IdCase::Unknown, "no [resume] future_id"),
            (IdCase::Evicted, "no [resume] eviction"),
            (IdCase::Restart, "does not claim durability"),
        ] {
            let reason = probe(case).unmet(&p).unwrap_or_default();
            assert!(reason.contains(why), "{case:?}: {reason}");
        }
    }
}
