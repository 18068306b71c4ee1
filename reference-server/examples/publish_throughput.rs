//! A measurement, not a test: acknowledged events per second through group commit
//! (fsync on), with several concurrent publishers on one in-process server.
//!
//! `cargo run --release -p reference-server --example publish_throughput -- [publishers] [batch] [seconds]`

use std::time::{Duration, Instant};

use reference_server::{Config, RunningServer};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let publishers = args.next().transpose()?.unwrap_or(16);
    let batch = args.next().transpose()?.unwrap_or(100).clamp(1, 1000);
    let seconds = args.next().transpose()?.unwrap_or(5).clamp(1, 60);
    let dir = tempfile::tempdir()?;
    let server = RunningServer::start(Config::new(dir.path(), "bench")).await?;
    let url = server.url();
    // reqwest is built with `rustls-no-provider` in this workspace: install one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let job: serde_json::Value = http
        .post(format!("{url}/v1/jobs"))
        .bearer_auth("bench")
        .json(&json!({"steps": 1, "interval_ms": 3_600_000}))
        .send()
        .await?
        .json()
        .await?;
    let job = job["job_id"].as_str().unwrap_or_default().to_owned();
    let events: Vec<_> = (0..batch)
        .map(|i| json!({"event_type": "bench", "payload": {"i": i}}))
        .collect();
    let body = serde_json::to_vec(&json!({ "events": events }))?;
    let end = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..publishers {
        let (http, url, job, body) = (http.clone(), url.clone(), job.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = 0u64;
            while Instant::now() < end {
                let r = http
                    .post(format!("{url}/v1/jobs/{job}/events"))
                    .bearer_auth("bench")
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => acked += batch,
                    _ => break,
                }
            }
            acked
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{total} acked events in {secs:.2} s: {:.0} events/s ({publishers} publishers, batch {batch})",
        total as f64 / secs
    );
    server.shutdown().await?;
    Ok(())
}
