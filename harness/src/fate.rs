//! The one rule for what a publish attempt that brought no ack says about its writes
//! (Jepsen's `:ok` / `:fail` / `:info`), and the retry schedule for the ones whose fate
//! is unknown.
//!
//! **Certainly not applied** ([`Fate::Failed`]): no request byte can have reached the
//! target, or the target answered and refused.
//! - reqwest `is_builder()`: the request could not even be built;
//! - reqwest `is_connect()`: connection refused, DNS, the TCP connect or the TLS
//!   handshake failed (also when it timed out: a connect timeout is a connect error);
//!   hyper only writes a request on a connection that is up;
//! - reqwest `is_redirect()`: the target answered with a redirect, not an ack;
//! - an answer whose status is not an ack status (the target refused it).
//!
//! **May have been applied** ([`Fate::Indeterminate`]): the request was handed to a
//! live connection and no answer came back whole.
//! - reqwest `is_timeout()` (not a connect error): no answer within the client's
//!   timeout, or the scenario's deadline came first ([`IndeterminateCause::NoAnswer`]);
//! - any other transport error, `is_request()` (reset or closed after the request went
//!   out, "connection closed before message completed"), `is_body()`, `is_decode()`,
//!   or an error reqwest does not classify ([`IndeterminateCause::ConnectionLost`]);
//! - an ack status whose body (the seqs) broke off ([`IndeterminateCause::AckBodyLost`]).
//!
//! An error that is not reqwest's is a failure: the harness made it before sending.
//! When in doubt the rule says indeterminate: calling a committed write failed would
//! let a duplicate through unjudged, calling an uncommitted write indeterminate costs
//! nothing (an indeterminate write may be absent).

use std::time::Duration;

use harness_model::IndeterminateCause;

use crate::error::HarnessError;
use crate::target::Answer;

/// Attempts of one publish request at most, the first included, when the profile
/// sends an idempotency key (without one a retry could commit a second copy, so a
/// request is sent once).
pub const MAX_ATTEMPTS: u32 = 3;

/// What one attempt's outcome says about the request's writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// An answer with an ack status, whole.
    Answered,
    /// Certainly not applied: the error text, and the status when one came back.
    Failed {
        /// The status, when the target answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
    },
    /// Sent, no usable answer: may or may not have been applied.
    Indeterminate {
        /// Why.
        cause: IndeterminateCause,
        /// What went wrong.
        error: String,
    },
}

/// The fate of an attempt from what `Target::request` returned (before `whole`), with
/// `ack_status` the profile's ack statuses.
pub fn of_attempt(result: &Result<Answer, HarnessError>, ack_status: &[u16]) -> Fate {
    match result {
        Ok(a) if !ack_status.contains(&a.status) => Fate::Failed {
            status: Some(a.status),
            error: a.body.chars().take(300).collect(),
        },
        Ok(a) => match &a.broken {
            None => Fate::Answered,
            Some(e) => Fate::Indeterminate {
                cause: IndeterminateCause::AckBodyLost,
                error: format!(
                    "status {}, then the body broke off after {} bytes: {e}",
                    a.status,
                    a.body.len()
                ),
            },
        },
        Err(e) => of_error(e),
    }
}

/// The fate of a request that returned an error (the rule in the module doc).
pub fn of_error(e: &HarnessError) -> Fate {
    let error = e.to_string();
    let source = e.source.as_deref();
    let Some(r) = source.and_then(|s| s.downcast_ref::<reqwest::Error>()) else {
        return Fate::Failed {
            status: None,
            error,
        };
    };
    if r.is_builder() || r.is_connect() || r.is_redirect() {
        return Fate::Failed {
            status: None,
            error,
        };
    }
    let cause = if r.is_timeout() {
        IndeterminateCause::NoAnswer
    } else {
        IndeterminateCause::ConnectionLost
    };
    Fate::Indeterminate { cause, error }
}

/// The pause before retry number `retry` (1 for the second attempt) of the request
/// with idempotency key `key`: 50 ms doubling per retry, plus 0..50 ms drawn from the
/// key (the key comes from the run's seed and the write's number, so a replay waits
/// alike; publishers that lost their acks together do not retry in lockstep).
pub fn backoff(key: &str, retry: u32) -> Duration {
    // FNV-1a: a fixed, dependency-free hash (std's hasher is randomly seeded).
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Duration::from_millis(50 * (1u64 << retry.saturating_sub(1).min(4)) + h % 50)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::HarnessErrorKind;

    fn answer(status: u16, broken: Option<&str>) -> Answer {
        Answer {
            status,
            body: "{\"seqs\":[1]}".into(),
            truncated: false,
            broken: broken.map(str::to_owned),
            headers: Default::default(),
        }
    }

    #[test]
    fn answers_are_acks_refusals_or_an_ack_whose_seqs_were_lost() {
        assert_eq!(of_attempt(&Ok(answer(201, None)), &[201]), Fate::Answered);
        assert!(matches!(
            of_attempt(&Ok(answer(503, None)), &[201]),
            Fate::Failed {
                status: Some(503),
                ..
            }
        ));
        assert!(matches!(
            of_attempt(&Ok(answer(503, Some("reset"))), &[201]),
            Fate::Failed { .. }
        ));
        assert!(matches!(
            of_attempt(&Ok(answer(201, Some("reset"))), &[201]),
            Fate::Indeterminate {
                cause: IndeterminateCause::AckBodyLost,
                ..
            }
        ));
    }

    #[test]
    fn an_error_the_harness_made_itself_is_a_failure() {
        let e = HarnessError::new(HarnessErrorKind::Target, "no channel");
        assert!(matches!(of_error(&e), Fate::Failed { status: None, .. }));
    }

    /// A reqwest error from a real request to `url`, wrapped as `Target::send` does.
    async fn reqwest_error(client: &reqwest::Client, url: &str) -> HarnessError {
        let e = client.post(url).body("x").send().await.unwrap_err();
        HarnessError::new(HarnessErrorKind::Target, e.to_string()).with_source(e)
    }

    #[tokio::test]
    async fn a_refused_connect_never_applied_but_a_reset_after_the_request_may_have() {
        sse_wire::install_default_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        // A port nobody listens on: refused before any request byte.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let e = reqwest_error(&client, &format!("http://127.0.0.1:{port}/")).await;
        assert!(matches!(of_error(&e), Fate::Failed { .. }), "{e}");
        // A server that reads the request and closes without answering.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            drop(s);
            // A second connection: read, then never answer (the client times out).
            let (mut s, _) = l.accept().await.unwrap();
            let _ = s.read(&mut buf).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let e = reqwest_error(&client, &format!("http://{addr}/")).await;
        assert!(
            matches!(
                of_error(&e),
                Fate::Indeterminate {
                    cause: IndeterminateCause::ConnectionLost,
                    ..
                }
            ),
            "{e}"
        );
        let e = reqwest_error(&client, &format!("http://{addr}/")).await;
        assert!(
            matches!(
                of_error(&e),
                Fate::Indeterminate {
                    cause: IndeterminateCause::NoAnswer,
                    ..
                }
            ),
            "{e}"
        );
        server.abort();
    }

    #[test]
    fn the_backoff_grows_and_comes_from_the_key() {
        assert_eq!(backoff("hm-a-0-1", 1), backoff("hm-a-0-1", 1));
        let (one, two) = (backoff("k", 1), backoff("k", 2));
        assert!(one >= Duration::from_millis(50) && one < Duration::from_millis(100));
        assert!(two >= Duration::from_millis(100) && two < Duration::from_millis(150));
    }
}
