//! `liveness`: clients that vanish together (FIN or RST) must be noticed: the target's
//! active-streams gauge rises while they are connected and falls back to its baseline
//! within the heartbeat allowance after they are gone.

use std::time::Duration;

use harness_model::{LivenessProbe, Recording, StreamKind};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Ctx, RunProbe, wait_opened};
use crate::client::{Cut, Until};
use crate::error::{HarnessError, HarnessErrorKind};

/// The probe's parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Liveness {
    /// How many clients.
    pub clients: u32,
    /// Reset instead of close.
    #[serde(default)]
    pub reset: bool,
}

impl RunProbe for Liveness {
    async fn run(&self, cx: &Ctx, _rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError> {
        let target = &cx.target;
        let m = cx.need(target.profile.metrics.as_ref(), "metrics")?;
        let gauge = m.active_streams.clone();
        let baseline = target.gauge(&gauge).await?.ok_or_else(|| {
            HarnessError::new(
                HarnessErrorKind::Target,
                format!("the target's metrics have no gauge {gauge}"),
            )
        })?;
        let ch = target.channel(&cx.tag, 0).await?;
        let (otx, mut orx) = mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for i in 0..self.clients {
            let mut p = cx.plan(
                &format!("vanishing#{i}"),
                StreamKind::Events,
                cx.channel_path(&ch),
                Until::ServerEnds,
            );
            p.cuts.push_back(Cut::Burst);
            p.reset = self.reset;
            tasks.push(cx.spawn(p, Some(otx.clone())));
        }
        wait_opened(&mut orx, self.clients as usize, cx.deadline).await;
        let mut samples = vec![(cx.us(), target.gauge(&gauge).await?.unwrap_or(f64::NAN))];
        // Cut every client at once, then watch the gauge.
        let _ = cx.burst_tx.send(true);
        let mut rec = Recording {
            transcripts: cx.join(tasks).await,
            ..Recording::default()
        };
        let disconnected_us = cx.us();
        let heartbeat_ms = super::first_open_fields(&rec)
            .and_then(harness_model::heartbeat::interval_ms)
            .or(target.profile.heartbeat.interval_ms)
            .unwrap_or(15_000);
        let until = Instant::now() + Duration::from_millis(heartbeat_ms.saturating_mul(3) + 1000);
        loop {
            let v = target.gauge(&gauge).await?.unwrap_or(f64::NAN);
            samples.push((cx.us(), v));
            if v <= baseline || Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis((heartbeat_ms / 10).clamp(10, 200))).await;
        }
        rec.gauges.insert(gauge.clone(), samples);
        rec.expect.liveness = Some(LivenessProbe {
            gauge,
            baseline,
            disconnected_us,
            heartbeat_ms,
            clients: self.clients,
        });
        Ok(rec)
    }
}
