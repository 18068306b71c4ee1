//! Publishers: tasks that write uniquely marked events through the target's publish
//! hook at a set rate, and record each acknowledgement (with the seq, when the ack
//! carries one) in the ledger. Writes are spread round-robin over the channels, so
//! several jobs interleave. Each acknowledged write's content (as a subscriber must
//! receive it) is kept by marker, so every client's copy can be compared with it.

use std::sync::Arc;
use std::time::Duration;

use harness_model::{Ack, Capability, Indeterminate, PublishFailure, Seq};
use tokio::time::Instant;

use crate::fate::{self, Fate};
use crate::ledger::Ledger;
use crate::profile::{Publish, fill};
use crate::shard::ShardSpec;
use crate::target::{Answer, Target, encode_segment};

/// What to publish.
#[derive(Clone, Debug)]
pub struct PublishPlan {
    /// Channels to write to, round-robin per request.
    pub channels: Vec<String>,
    /// Writes in total.
    pub count: u64,
    /// Concurrent publisher tasks.
    pub publishers: u32,
    /// Writes per second over all publishers (0 = as fast as acks come).
    pub rate: u64,
    /// When set, each publisher sends one request every this long instead (a trickle).
    pub every: Option<Duration>,
    /// Writes per request.
    pub batch: u32,
    /// Padding text.
    pub pad: String,
    /// Each write's event type, for profiles whose templates have `{event_type}`
    /// ([`DEFAULT_EVENT_TYPE`] unless a scenario chooses one).
    pub event_type: String,
    /// Marker tag: markers are `hm-<tag>-<publisher>-<n>`.
    pub tag: String,
    /// Which requests this process sends ([`ShardSpec::owns_request`]); the others
    /// are other shards' ([`ShardSpec::WHOLE`]: every one).
    pub shard: ShardSpec,
}

/// The event type of the harness's writes, unless a scenario chooses one.
pub const DEFAULT_EVENT_TYPE: &str = "harness.marker";

/// Publishes the plan and returns when every request is answered or the deadline passed.
pub async fn publish(
    target: Arc<Target>,
    ledger: Arc<Ledger>,
    plan: PublishPlan,
    epoch: Instant,
    deadline: Instant,
) {
    let publishers = plan.publishers.max(1);
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let share = share(plan.count, publishers, p);
        let (target, ledger, plan) = (target.clone(), ledger.clone(), plan.clone());
        tasks.push(crate::tasks::spawn(async move {
            publisher(target, ledger, plan, p, share, epoch, deadline).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Publisher `p`'s share of `count` writes over `publishers`: equal shares, the first
/// `count % publishers` publishers one more, so the shares add up to `count`.
pub fn share(count: u64, publishers: u32, p: u32) -> u64 {
    let n = u64::from(publishers.max(1));
    count / n + u64::from(u64::from(p) < count % n)
}

/// How many of the plan's writes this process sends: the writes of the requests its
/// shard owns (all of them in a whole run), with `batch` writes a request.
pub fn owned_writes(plan: &PublishPlan, batch: u64) -> u64 {
    let publishers = plan.publishers.max(1);
    let batch = batch.max(1);
    (0..publishers)
        .map(|p| {
            let share = share(plan.count, publishers, p);
            (0..share.div_ceil(batch))
                .filter(|r| plan.shard.owns_request(publishers, p, *r))
                .map(|r| batch.min(share - r * batch))
                .sum::<u64>()
        })
        .sum()
}

/// The channel of publisher `p`'s request number `request`: round-robin over the
/// channels across all publishers, so every channel gets writes from the start.
pub fn channel_of(channels: usize, publishers: u32, p: u32, request: u64) -> usize {
    ((request * u64::from(publishers.max(1)) + u64::from(p)) % channels.max(1) as u64) as usize
}

/// The pause between one publisher's requests that makes `publishers` of them together
/// send `rate` writes per second, `batch` writes a request (None: as fast as acks come).
pub fn interval(rate: u64, batch: u64, publishers: u32) -> Option<Duration> {
    (rate > 0)
        .then(|| Duration::from_secs_f64(batch as f64 * f64::from(publishers.max(1)) / rate as f64))
}

/// One publisher task's fixed settings: the profile's publish request and the plan.
struct Publisher {
    cfg: Publish,
    plan: PublishPlan,
    /// Writes per request (1 unless the target claims batch publishing).
    batch: u64,
    headers: Vec<(String, String)>,
    /// This publisher's number.
    p: u32,
    /// Where each write's content is: None, no content is recorded; `Some(None)`, the
    /// whole body (text); `Some(Some(pointer))`, the JSON at the pointer.
    content: Option<Option<String>>,
    /// The pad and the event type as put into a body: in a JSON body, escaped as the
    /// text of a JSON string (so line breaks and quotes stay content); made once.
    pad: String,
    event_type: String,
}

impl Publisher {
    fn new(target: &Target, plan: PublishPlan, p: u32) -> Option<Publisher> {
        let cfg = target.profile.publish.clone()?;
        let batching = plan.batch > 1
            && target.profile.has(Capability::BatchPublish)
            && cfg.batch_body.is_some()
            && cfg.batch_item.is_some();
        let mut headers: Vec<(String, String)> = cfg
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            headers.push(("Accept".into(), "application/json".into()));
        }
        let json_body = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.contains("json"));
        let content = match target.profile.content_pointer() {
            Some(None) if batching => None, // a text batch: no one body per write
            Some(None) => Some(None),
            Some(Some(_)) => cfg.content_pointer.clone().map(Some),
            None => None,
        };
        let text = |raw: &str| {
            if json_body {
                let quoted = serde_json::Value::from(raw).to_string();
                quoted[1..quoted.len() - 1].to_owned()
            } else {
                raw.to_owned()
            }
        };
        Some(Publisher {
            content,
            pad: text(&plan.pad),
            event_type: text(&plan.event_type),
            cfg,
            batch: if batching { u64::from(plan.batch) } else { 1 },
            plan,
            headers,
            p,
        })
    }

    /// The markers of `n` writes starting at this publisher's write number `first`.
    fn markers(&self, first: u64, n: u64) -> Vec<String> {
        let (prefix, tag, p) = (crate::classify::MARKER_PREFIX, &self.plan.tag, self.p);
        (0..n)
            .map(|k| format!("{prefix}{tag}-{p}-{}", first + k))
            .collect()
    }

    /// One write's body (or batch item) from `template`, with the pad and the event
    /// type as `Publisher::new` escaped them.
    fn one(&self, template: &str, marker: &str, channel: &str) -> String {
        fill(
            template,
            &[
                ("marker", marker),
                ("pad", &self.pad),
                ("event_type", &self.event_type),
                ("channel", channel),
            ],
        )
    }

    /// The headers of the request that sends `markers`: the profile's, plus the
    /// idempotency key when the profile asks for one (`[publish] idempotency_header`):
    /// the request's first marker, unique in the run and the same for a retry.
    fn request_headers(&self, markers: &[String]) -> std::borrow::Cow<'_, [(String, String)]> {
        match (&self.cfg.idempotency_header, markers.first()) {
            (Some(name), Some(key)) => {
                let mut h = self.headers.clone();
                h.push((name.clone(), key.clone()));
                std::borrow::Cow::Owned(h)
            }
            _ => std::borrow::Cow::Borrowed(&self.headers),
        }
    }

    /// The template of one write: the batch item when batching, else the body.
    fn template(&self) -> &str {
        match &self.cfg.batch_item {
            Some(item) if self.batch > 1 && self.cfg.batch_body.is_some() => item,
            _ => &self.cfg.body,
        }
    }

    /// The request body for these markers on `channel`: one write, or a batch.
    fn body(&self, markers: &[String], channel: &str) -> String {
        match (&self.cfg.batch_body, &self.cfg.batch_item) {
            (Some(body), Some(item)) if self.batch > 1 => {
                let items: Vec<String> =
                    markers.iter().map(|m| self.one(item, m, channel)).collect();
                fill(body, &[("items", &items.join(","))])
            }
            _ => self.one(&self.cfg.body, &markers[0], channel),
        }
    }

    /// Each write's content as a subscriber must receive it, by marker (empty when the
    /// profile does not say where it is, or a JSON body has nothing at the pointer).
    fn contents(&self, markers: &[String], channel: &str) -> Vec<(String, String)> {
        let Some(pointer) = &self.content else {
            return Vec::new();
        };
        markers
            .iter()
            .filter_map(|m| {
                let one = self.one(self.template(), m, channel);
                let content = match pointer {
                    None => one,
                    Some(p) => {
                        let v: serde_json::Value = serde_json::from_str(&one).ok()?;
                        v.pointer(p)?.to_string()
                    }
                };
                Some((m.clone(), content))
            })
            .collect()
    }

    /// Records an answered request's writes in the ledger: acks (with their seqs when
    /// the profile says where they are), or a failure when the ack is malformed.
    /// Returns whether they were acknowledged.
    fn record_ack(&self, ledger: &Ledger, a: &Answer, sent: &Sent) -> bool {
        let markers = &sent.markers;
        let seqs: Option<Vec<u64>> = self.cfg.ack_seqs_pointer.as_ref().map(|ptr| {
            let v = a.json();
            let items = v.pointer(ptr).and_then(|v| v.as_array()).cloned();
            items
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.as_u64())
                .collect()
        });
        if let Some(s) = seqs.as_ref().filter(|s| s.len() != markers.len()) {
            let error = format!(
                "ack carries {} seqs for {} writes: {}",
                s.len(),
                markers.len(),
                a.body
            );
            ledger.fail(PublishFailure {
                markers: markers.clone(),
                status: Some(a.status),
                error,
            });
            return false;
        }
        let acks = markers.iter().enumerate().map(|(i, marker)| Ack {
            marker: marker.clone(),
            job: sent.channel.clone(),
            seq: seqs.as_ref().map(|s| Seq(s[i])),
            publisher: self.p,
            sent_us: sent.sent_us,
            acked_us: sent.ended_us,
        });
        ledger.push(acks.collect());
        true
    }

    /// Records what the attempts say of these writes (the rule of [`crate::fate`]):
    /// acks, a failure, or writes of unknown fate, resolved by a retry's ack or not.
    fn record(&self, ledger: &Ledger, attempts: Attempts, sent: Sent) {
        let Attempts {
            last,
            answer,
            first_unknown,
            count,
        } = attempts;
        let acked = match (&last, &answer) {
            (Fate::Answered, Some(a)) => self.record_ack(ledger, a, &sent),
            _ => false,
        };
        let Some((cause, error)) = first_unknown else {
            if let Fate::Failed { status, error } = last {
                ledger.fail(PublishFailure {
                    markers: sent.markers,
                    status,
                    error,
                });
            } else if acked {
                ledger.contents(sent.contents);
            }
            return;
        };
        let error = match (&last, acked) {
            (_, true) | (Fate::Answered, _) => error,
            (Fate::Failed { status, error: e }, _) => {
                let st = status.map_or(String::new(), |s| format!("status {s}: "));
                format!("{error}; attempt {count}: {st}{e}")
            }
            (Fate::Indeterminate { error: e, .. }, _) if count > 1 => {
                format!("{error}; attempt {count}: {e}")
            }
            (Fate::Indeterminate { .. }, _) => error,
        };
        // A delivered write of unknown fate must carry its content too.
        ledger.contents(sent.contents);
        ledger.indeterminate(Indeterminate {
            key: self.key(&sent.markers),
            markers: sent.markers,
            job: sent.channel,
            publisher: self.p,
            sent_us: sent.sent_us,
            ended_us: sent.ended_us,
            cause,
            error,
            attempts: count,
            resolved: acked,
        });
    }

    /// The idempotency key of the request that sends `markers`, when the profile
    /// sends one: its first marker.
    fn key(&self, markers: &[String]) -> Option<String> {
        self.cfg
            .idempotency_header
            .as_ref()
            .and(markers.first().cloned())
    }

    /// Sends one request's writes: once, or, when the profile sends an idempotency key,
    /// again with the same key after each attempt of unknown fate, up to
    /// [`fate::MAX_ATTEMPTS`] and never past the deadline; then records the outcome.
    async fn send(&self, target: &Target, ledger: &Ledger, req: Request, clock: Clock) {
        let Request {
            markers,
            channel,
            body,
            path,
            contents,
        } = req;
        let key = self.key(&markers);
        let max = if key.is_some() { fate::MAX_ATTEMPTS } else { 1 };
        let what = format!("{} {path}", self.cfg.method);
        let headers = self.request_headers(&markers);
        let sent_us = clock.us();
        let (mut first_unknown, mut count) = (None, 0u32);
        let (last, answer) = loop {
            count += 1;
            let request_done = target.request(self.cfg.method, &path, Some(body.clone()), &headers);
            let result = match tokio::time::timeout_at(clock.deadline, request_done).await {
                Ok(r) => r,
                Err(_) => {
                    let error = format!("{what}: no answer before the scenario's deadline");
                    break (no_answer(error), None);
                }
            };
            let fate = fate::of_attempt(&result, &self.cfg.ack_status);
            let Fate::Indeterminate { cause, error } = &fate else {
                break (fate, result.ok());
            };
            first_unknown.get_or_insert((*cause, error.clone()));
            let pause = fate::backoff(key.as_deref().unwrap_or_default(), count);
            if count >= max || Instant::now() + pause >= clock.deadline {
                break (fate, None);
            }
            tokio::time::sleep(pause).await;
        };
        // The deadline on the first attempt: its fate is unknown.
        let first_unknown = match (&last, first_unknown) {
            (Fate::Indeterminate { cause, error }, None) => Some((*cause, error.clone())),
            (_, f) => f,
        };
        let attempts = Attempts {
            last,
            answer,
            first_unknown,
            count,
        };
        let ended_us = clock.us();
        let sent = Sent {
            markers,
            channel,
            sent_us,
            ended_us,
            contents,
        };
        self.record(ledger, attempts, sent);
    }
}

/// An attempt that got no answer before the deadline.
fn no_answer(error: String) -> Fate {
    Fate::Indeterminate {
        cause: harness_model::IndeterminateCause::NoAnswer,
        error,
    }
}

/// The scenario's clock: its start and its deadline.
#[derive(Clone, Copy)]
struct Clock {
    epoch: Instant,
    deadline: Instant,
}

impl Clock {
    /// Microseconds since the scenario started.
    fn us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// One request to send.
struct Request {
    markers: Vec<String>,
    channel: String,
    body: String,
    path: String,
    /// Each write's content, by marker.
    contents: Vec<(String, String)>,
}

/// What a request's attempts came to.
struct Attempts {
    /// The last attempt's fate.
    last: Fate,
    /// Its answer, when one came.
    answer: Option<Answer>,
    /// The first attempt of unknown fate: why, and its error.
    first_unknown: Option<(harness_model::IndeterminateCause, String)>,
    /// Attempts made.
    count: u32,
}

/// One request's writes, as the ledger records them.
struct Sent {
    markers: Vec<String>,
    channel: String,
    /// When the first attempt was sent.
    sent_us: u64,
    /// When the last attempt ended.
    ended_us: u64,
    /// Each write's content, by marker (kept when acknowledged or of unknown fate).
    contents: Vec<(String, String)>,
}

async fn publisher(
    target: Arc<Target>,
    ledger: Arc<Ledger>,
    plan: PublishPlan,
    p: u32,
    share: u64,
    epoch: Instant,
    deadline: Instant,
) {
    let Some(me) = Publisher::new(&target, plan, p) else {
        return;
    };
    let interval = me
        .plan
        .every
        .or_else(|| interval(me.plan.rate, me.batch, me.plan.publishers));
    let start = Instant::now();
    let clock = Clock { epoch, deadline };
    let (mut sent, mut request) = (0u64, 0u64);
    while sent < share && Instant::now() < deadline {
        let n = me.batch.min(share - sent);
        if !me.plan.shard.owns_request(me.plan.publishers, p, request) {
            // Another shard's request: it keeps its number, markers and time there.
            sent += n;
            request += 1;
            continue;
        }
        if let Some(iv) = interval {
            tokio::time::sleep_until((start + iv.mul_f64(request as f64)).min(deadline)).await;
        }
        let channels = &me.plan.channels;
        let channel = channels[channel_of(channels.len(), me.plan.publishers, p, request)].clone();
        let markers = me.markers(sent, n);
        let req = Request {
            body: me.body(&markers, &channel),
            contents: me.contents(&markers, &channel),
            path: fill(&me.cfg.path, &[("channel", &encode_segment(&channel))]),
            markers,
            channel,
        };
        me.send(&target, &ledger, req, clock).await;
        sent += n;
        request += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_count_and_differ_by_at_most_one() {
        for (count, publishers) in [(0, 1), (10, 3), (7, 8), (1000, 8), (5, 0)] {
            let shares: Vec<u64> = (0..publishers.max(1))
                .map(|p| share(count, publishers, p))
                .collect();
            assert_eq!(
                shares.iter().sum::<u64>(),
                count,
                "{count} over {publishers}"
            );
            let (lo, hi) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(hi - lo <= 1, "{shares:?}");
        }
    }

    #[test]
    fn requests_go_round_robin_over_every_channel() {
        // Two publishers, three channels: requests 0,1 of each cover all channels in turn.
        let order: Vec<usize> = (0..3)
            .flat_map(|r| (0..2).map(move |p| channel_of(3, 2, p, r)))
            .collect();
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
        assert_eq!(channel_of(0, 1, 0, 5), 0, "no channel: no panic");
    }

    /// The plan's (marker, seq) pairs, sorted, and the head after it, published with
    /// `idempotency_header` set or not, twice over with one tag (what a retry of every
    /// request sends).
    #[cfg(feature = "embedded")]
    async fn play_twice(keyed: bool) -> [(Vec<(String, u64)>, u64); 2] {
        let dir = tempfile::tempdir().unwrap();
        let token = "publisher-test-token";
        let cfg = reference_server::Config::new(dir.path(), token);
        let server = reference_server::RunningServer::start(cfg).await.unwrap();
        let mut profile = crate::profile::Profile::load("spine").unwrap();
        let publish_cfg = profile.publish.as_mut().unwrap();
        publish_cfg.idempotency_header = keyed.then(|| "Idempotency-Key".to_owned());
        publish_cfg.ack_status = vec![200, 201];
        let target = Arc::new(Target::new(&server.url(), profile, Some(token.to_owned())).unwrap());
        let job = target.channel("idem", 0).await.unwrap();
        let plan = PublishPlan {
            channels: vec![job],
            count: 20,
            publishers: 2,
            rate: 0,
            every: None,
            batch: 5,
            pad: String::new(),
            event_type: DEFAULT_EVENT_TYPE.to_owned(),
            tag: "same".to_owned(),
            shard: ShardSpec::WHOLE,
        };
        let mut out = Vec::new();
        for _ in 0..2 {
            let ledger = Arc::new(Ledger::default());
            let epoch = Instant::now();
            let deadline = epoch + Duration::from_secs(120);
            publish(
                target.clone(),
                ledger.clone(),
                plan.clone(),
                epoch,
                deadline,
            )
            .await;
            let (acks, failures) = ledger.take();
            assert!(failures.is_empty(), "{failures:?}");
            let mut pairs: Vec<(String, u64)> = acks
                .into_iter()
                .map(|a| (a.marker, a.seq.expect("spine acks carry seqs").0))
                .collect();
            pairs.sort();
            assert_eq!(pairs.len(), 20);
            out.push((pairs, target.head_seq().await.unwrap().unwrap()));
        }
        server.shutdown().await.unwrap();
        [out.remove(0), out.remove(0)]
    }

    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn with_an_idempotency_header_every_request_retried_commits_nothing_more() {
        let [first, again] = play_twice(true).await;
        assert_eq!(
            first, again,
            "the same markers, the same seqs, the same head"
        );
        // Without it, the same requests commit a second copy.
        let [first, again] = play_twice(false).await;
        assert!(again.1 > first.1);
        assert_ne!(first.0, again.0);
    }

    /// What publishing `count` writes (one publisher, batches of 2) through a toxic
    /// proxy that resets about half of the publisher's connections on the first answer
    /// byte (after the request went upstream) records, and how far the target's head
    /// moved: `keyed`, with the idempotency key; `fault`, the server's fault.
    #[cfg(feature = "embedded")]
    async fn through_lost_answers(
        keyed: bool,
        fault: Option<reference_server::faults::Fault>,
    ) -> (Vec<Ack>, Vec<Indeterminate>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let token = "publisher-test-token";
        let mut cfg = reference_server::Config::new(dir.path(), token);
        cfg.faults = reference_server::faults::FaultSet::new(fault);
        let server = reference_server::RunningServer::start(cfg).await.unwrap();
        let upstream = server.url().trim_start_matches("http://").parse().unwrap();
        let toxics = sse_toxics::parse_toml(
            "[[toxics]]\npath = \"publisher\"\nkind = \"reset_peer\"\ntimeout = 0\nstream = \"downstream\"\ntoxicity = 0.75\n",
        )
        .unwrap();
        let toxics = sse_toxics::for_path(&toxics, sse_toxics::ProxyPath::Publisher);
        let proxy = sse_toxics::Proxy::start("127.0.0.1:0".parse().unwrap(), upstream, toxics, 1)
            .await
            .unwrap();
        let mut profile = crate::profile::Profile::load("spine").unwrap();
        let publish_cfg = profile.publish.as_mut().unwrap();
        publish_cfg.idempotency_header = keyed.then(|| "Idempotency-Key".to_owned());
        publish_cfg.ack_status = vec![200, 201];
        // Setup goes straight to the server; publishing through the proxy.
        let direct = Target::new(&server.url(), profile.clone(), Some(token.to_owned())).unwrap();
        let job = direct.channel("lost", 0).await.unwrap();
        let before = direct.head_seq().await.unwrap().unwrap();
        let via = format!("http://{}", proxy.addr());
        let target = Arc::new(Target::new(&via, profile, Some(token.to_owned())).unwrap());
        let plan = PublishPlan {
            channels: vec![job],
            count: 40,
            publishers: 1,
            rate: 0,
            every: None,
            batch: 2,
            pad: String::new(),
            event_type: DEFAULT_EVENT_TYPE.to_owned(),
            tag: "lost".to_owned(),
            shard: ShardSpec::WHOLE,
        };
        let ledger = Arc::new(Ledger::default());
        let epoch = Instant::now();
        publish(
            target,
            ledger.clone(),
            plan,
            epoch,
            epoch + Duration::from_secs(120),
        )
        .await;
        let (acks, failures) = ledger.take();
        assert!(failures.is_empty(), "{failures:?}");
        let head = direct.head_seq().await.unwrap().unwrap();
        let log = proxy.stop().await;
        assert!(!log.indeterminate().is_empty(), "the proxy cut no answer");
        server.shutdown().await.unwrap();
        (acks, ledger.take_indeterminate(), head - before)
    }

    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn a_lost_answer_is_indeterminate_and_a_keyed_retry_resolves_it_without_a_second_copy() {
        // Keyed: every request that lost its answer was retried; whatever the retries
        // resolved is an ack with the original seqs, and nothing was committed twice.
        let (acks, lost, moved) = through_lost_answers(true, None).await;
        assert!(!lost.is_empty());
        assert!(
            lost.iter()
                .all(|w| w.key.as_deref() == Some(w.markers[0].as_str()))
        );
        assert!(
            lost.iter().any(|w| w.resolved && w.attempts > 1),
            "{lost:?}"
        );
        let unresolved: usize = lost
            .iter()
            .filter(|w| !w.resolved)
            .map(|w| w.markers.len())
            .sum();
        assert_eq!(acks.len() + unresolved, 40);
        assert_eq!(moved, 40, "each write committed once: {lost:?}");
        let mut seqs: Vec<u64> = acks.iter().map(|a| a.seq.unwrap().0).collect();
        seqs.sort();
        seqs.dedup();
        assert_eq!(seqs.len(), acks.len());
        // Unkeyed: sent once, the lost ones stay of unknown fate (they were committed).
        let (acks, lost, moved) = through_lost_answers(false, None).await;
        assert!(
            lost.iter()
                .all(|w| !w.resolved && w.attempts == 1 && w.key.is_none())
        );
        assert!(
            lost.iter()
                .all(|w| w.cause == harness_model::IndeterminateCause::ConnectionLost)
        );
        let unresolved: usize = lost.iter().map(|w| w.markers.len()).sum();
        assert_eq!(acks.len() + unresolved, 40);
        assert_eq!(moved, 40);
        // A server that ignores the key commits a retry as a second copy.
        let fault = reference_server::faults::Fault::IdempotencyIgnored;
        let (_, lost, moved) = through_lost_answers(true, Some(fault)).await;
        assert!(lost.iter().any(|w| w.attempts > 1));
        assert!(moved > 40, "the retries committed again");
    }

    #[test]
    fn the_idempotency_header_must_be_a_header_name() {
        let spine = crate::profile::BUILTIN
            .iter()
            .find(|(n, _)| *n == "spine")
            .unwrap()
            .1;
        // The spine profile claims protocol v1.1's key; the same profile without it.
        let spine = &spine.replace("idempotency_header = \"Idempotency-Key\"\n", "");
        let with = |name: &str| {
            spine.replace(
                "ack_seqs_pointer = \"/seqs\"",
                &format!("ack_seqs_pointer = \"/seqs\"\nidempotency_header = \"{name}\""),
            )
        };
        let p = crate::profile::Profile::parse(&with("Idempotency-Key"), "t").unwrap();
        assert_eq!(
            p.publish.unwrap().idempotency_header.as_deref(),
            Some("Idempotency-Key")
        );
        let e = crate::profile::Profile::parse(&with("Idempotency Key"), "t").unwrap_err();
        assert!(e.to_string().contains("not a header name"), "{e}");
        let plain = crate::profile::Profile::parse(spine, "t").unwrap();
        assert_eq!(plain.publish.unwrap().idempotency_header, None);
        let v11 = crate::profile::Profile::load("spine").unwrap();
        assert_eq!(
            v11.publish.unwrap().idempotency_header.as_deref(),
            Some("Idempotency-Key")
        );
    }

    #[test]
    fn the_interval_makes_the_publishers_together_reach_the_rate() {
        assert_eq!(interval(0, 1, 4), None, "rate 0: as fast as acks come");
        // 4 publishers × batches of 10 at 1,000 writes/s: each sends a request every 40 ms.
        assert_eq!(interval(1000, 10, 4), Some(Duration::from_millis(40)));
        assert_eq!(interval(100, 1, 0), Some(Duration::from_millis(10)));
    }
}
