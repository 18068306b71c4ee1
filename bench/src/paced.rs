//! The like-for-like publisher: an open-loop schedule of single-event POSTs at a fixed
//! offered rate, spread over a fixed number of keep-alive connections, the same for
//! every server (the spine's `POST /v1/jobs/<id>/events` with one event, nchan's
//! `POST /pub/<channel>` with one message).
//!
//! Event `i` is due at `start + i / rate`; a connection takes the next due event,
//! waits for its time, stamps the payload with that *scheduled* time and waits for the
//! ack before it takes another. Latency is taken from the schedule, not from the moment
//! a busy connection got round to sending, so a server that falls behind shows it in
//! the tail (no coordinated omission, as in wrk2).
//!
//! The connections are hyper's bare HTTP/1.1 client connections (no pool, no
//! timeouts on the hot path) so that the load generator, which shares the two cores
//! with the server under measurement, costs as little per request as it can.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::procs::TOKEN;
use super::wire::{now_ns, payload};

/// Where the paced events go, and how one is written.
#[derive(Debug, Clone)]
pub enum Sink {
    /// The spine: one event per `POST /v1/jobs/<job>/events`, bearer token, 201.
    Spine {
        /// `http://127.0.0.1:PORT`.
        base: String,
        /// The job the events are appended to.
        job: String,
    },
    /// nchan: one message per `POST /pub/<channel>`, 201 or 202.
    Nchan {
        /// `http://127.0.0.1:PORT`.
        base: String,
        /// The channel published to.
        channel: String,
    },
}

impl Sink {
    fn base(&self) -> &str {
        match self {
            Sink::Spine { base, .. } | Sink::Nchan { base, .. } => base,
        }
    }

    fn request(&self, body: String) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
        let authority = self.base().trim_start_matches("http://");
        let b = hyper::Request::post("/").header("host", authority);
        let req = match self {
            Sink::Spine { job, .. } => b
                .uri(format!("/v1/jobs/{job}/events"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(format!(
                    r#"{{"event_type":"bench","payload":{body}}}"#
                ))))?,
            Sink::Nchan { channel, .. } => b
                .uri(format!("/pub/{channel}"))
                .body(Full::new(Bytes::from(body)))?,
        };
        Ok(req)
    }

    fn accepts(&self, status: u16) -> bool {
        match self {
            Sink::Spine { .. } => status == 201,
            Sink::Nchan { .. } => matches!(status, 201 | 202),
        }
    }
}

/// The offered load of one paced run.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Events per second offered.
    pub rate: f64,
    /// Events in all.
    pub events: u64,
    /// Keep-alive connections the events are spread over.
    pub connections: usize,
    /// Payload size in bytes.
    pub payload: usize,
}

/// What the publishing side saw.
#[derive(Debug, Clone, Copy)]
pub struct PacedOutcome {
    /// Events acknowledged per second, from the first due time to the last ack.
    pub acked_rate: f64,
}

/// One keep-alive HTTP/1.1 connection to `addr` (`host:port`), its driver spawned.
async fn connect(addr: &str) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (send, conn) = http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// Publishes the schedule to `sink`; every event must be acknowledged before
/// `deadline`.
pub async fn publish(sink: &Sink, s: Schedule, deadline: Instant) -> anyhow::Result<PacedOutcome> {
    let addr = sink.base().trim_start_matches("http://").to_owned();
    let next = Arc::new(AtomicU64::new(0));
    let start_ns = now_ns() + 20_000_000; // 20 ms for every connection to be ready
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(s.connections);
    for _ in 0..s.connections {
        let mut send = connect(&addr).await?;
        let (sink, next, addr) = (sink.clone(), next.clone(), addr.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= s.events {
                    return anyhow::Ok(());
                }
                let offset = i as f64 / s.rate;
                tokio::time::sleep_until(start + Duration::from_secs_f64(offset)).await;
                // A server may close a keep-alive connection after some requests
                // (nginx's keepalive_requests): open another, as any client would.
                if send.ready().await.is_err() {
                    send = connect(&addr).await?;
                }
                let due_ns = start_ns + (offset * 1e9) as u64;
                let req = sink.request(payload(due_ns, s.payload))?;
                let resp = tokio::time::timeout_at(deadline, send.send_request(req))
                    .await
                    .context("a publish was not acknowledged before the deadline")??;
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await?.to_bytes();
                if !sink.accepts(status) {
                    bail!("publish: HTTP {status}: {}", String::from_utf8_lossy(&body));
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = (now_ns().saturating_sub(start_ns)) as f64 / 1e9;
    Ok(PacedOutcome {
        acked_rate: s.events as f64 / secs.max(1e-9),
    })
}
