//! Plays a scenario's workload: creates its channels, publishes the backlog, starts the
//! scripted clients with their seeded chaos plans, publishes the live traffic once
//! they are all connected, fires bursts, and collects the recording when every client
//! has caught up (or the deadline passed).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use harness_model::{
    Capability, ClientId, GroupPlan, Recording, ScenarioPlan, StreamKind, Transcript, WorkloadPlan,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::barrier::Phase;
use crate::client::{self, ClientPlan, Cut, Signals, Until};
use crate::error::{HarnessError, HarnessErrorKind};
use crate::ledger::Ledger;
use crate::profile::fill;
use crate::publisher::{PublishPlan, owned_writes, publish};
use crate::scenario::{ClientGroup, ClientKind, From, Scenario, StreamChoice, Traffic};
use crate::shard::Part;
use crate::target::{Target, encode_segment};

/// Runs the workload of `sc` against `target` and returns what was recorded: the whole
/// of it, or, with a shard's `part`, that shard's clients and publish requests, aligned
/// with the other shards at each phase ([`crate::barrier::Phase`]).
pub async fn run(
    target: Arc<Target>,
    sc: &Scenario,
    rng: &mut ChaCha8Rng,
    tag: &str,
    part: &Part,
) -> Result<Recording, HarnessError> {
    let given = set_up(&target, sc, tag, part).await;
    let set = match given {
        Ok(set) => set,
        Err(e) => {
            part.abort(&e.to_string());
            return Err(e);
        }
    };
    let played = play(target, sc, rng, tag, part, set).await;
    if let Err(e) = &played {
        part.abort(&e.to_string());
    }
    played
}

/// What every shard's clients and publishers share, set up by shard 0 (or the whole
/// run) and handed to the others through the `setup` barrier.
#[derive(serde::Serialize, serde::Deserialize)]
struct SetUp {
    /// The scenario's channels, in creation order.
    channels: Vec<String>,
    /// The head before they existed.
    head_before: Option<u64>,
    /// The scenario's clock origin, in µs since the Unix epoch.
    epoch_unix_us: u64,
}

/// Makes the scenario's channels and reads the head before them (shard 0, or the whole
/// run), then passes the `setup` barrier: every shard gets them, and the clock origin.
async fn set_up(
    target: &Target,
    sc: &Scenario,
    tag: &str,
    part: &Part,
) -> Result<(SetUp, Instant), HarnessError> {
    let epoch = target.epoch();
    let until = epoch + Duration::from_secs(sc.deadline_s);
    let mine = if part.spec.is_leader() {
        let head_before = target.head_seq().await?;
        let mut channels = Vec::new();
        for i in 0..sc.traffic.channels {
            channels.push(target.channel(tag, i).await?);
        }
        let ago = epoch.elapsed().as_micros() as u64;
        let epoch_unix_us = crate::shard::unix_us_now().saturating_sub(ago);
        let set = SetUp {
            channels,
            head_before,
            epoch_unix_us,
        };
        serde_json::to_value(&set).unwrap_or_default()
    } else {
        serde_json::Value::Null
    };
    let all = part.align(Phase::Setup, mine, until).await?;
    let leader = all.into_iter().next().unwrap_or_default();
    let set: SetUp = serde_json::from_value(leader).map_err(|e| {
        HarnessError::new(
            HarnessErrorKind::Target,
            format!("shard 0's setup marker: {e}"),
        )
    })?;
    let epoch = if part.spec.is_whole() {
        epoch
    } else {
        crate::shard::instant_at(set.epoch_unix_us)
    };
    Ok((set, epoch))
}

/// Plays the set-up workload: the backlog, the clients, the live writes.
async fn play(
    target: Arc<Target>,
    sc: &Scenario,
    rng: &mut ChaCha8Rng,
    tag: &str,
    part: &Part,
    (set, epoch): (SetUp, Instant),
) -> Result<Recording, HarnessError> {
    let deadline = epoch + Duration::from_secs(sc.deadline_s);
    let ledger = Arc::new(Ledger::default());
    let SetUp {
        channels,
        head_before,
        ..
    } = set;
    let t = &sc.traffic;
    let pad = pad_of(t);
    let plan = |count: u64, tag: String| PublishPlan {
        channels: channels.clone(),
        count,
        publishers: t.publishers,
        rate: t.rate,
        every: (t.interval_ms > 0).then(|| Duration::from_millis(t.interval_ms)),
        event_type: crate::publisher::DEFAULT_EVENT_TYPE.to_owned(),
        batch: t.batch,
        pad: pad.clone(),
        tag,
        shard: part.spec,
    };
    if t.backlog > 0 {
        let mut backlog = plan(t.backlog, format!("{tag}bl"));
        backlog.rate = t.backlog_rate;
        publish(target.clone(), ledger.clone(), backlog, epoch, deadline).await;
    }
    if !part.spec.is_whole() {
        part.align(Phase::Backlog, serde_json::Value::Null, deadline)
            .await?;
    }
    let head_now = target.head_seq().await?;

    let (published_tx, published_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (opened_tx, mut opened_rx) = mpsc::unbounded_channel();
    let placement = Placement {
        channels: &channels,
        head_before,
        head_now,
        traffic: t,
        deadline,
        epoch,
    };
    let sig = Signals {
        published: published_rx.clone(),
        burst: published_rx,
        opened: Some(opened_tx),
        stop: stop_rx,
    };
    let clients = start_clients(&target, &ledger, sc, &placement, rng, &sig, part);
    drop(sig);
    before_live(t, &mut opened_rx, clients.total, deadline).await;
    if t.after_clients_open && !part.spec.is_whole() {
        part.align(Phase::Opened, serde_json::Value::Null, deadline)
            .await?;
    }
    let started = Instant::now();
    if let Some(route) = &target.route {
        route.go_live();
    }
    let mut live_plan = plan(t.events, tag.to_owned());
    if let Some(et) = &t.event_type {
        live_plan.event_type = et.clone();
    }
    let owned = owned_writes(&live_plan, u64::from(t.batch));
    let live = crate::tasks::spawn(publish(
        target.clone(),
        ledger.clone(),
        live_plan,
        epoch,
        deadline,
    ));
    let _timers = burst_timers(clients.bursts, started);
    let _ = live.await;
    let published_us = epoch.elapsed().as_micros() as u64;
    if !part.spec.is_whole() {
        share_acks(part, &ledger, deadline).await?;
    }
    let _ = published_tx.send(true);
    if owned > 0 && ledger.acked() == 0 && !ledger.any_failure() {
        // A pass needs evidence: nothing was published, so nothing could be judged.
        return Err(HarnessError::new(
            HarnessErrorKind::Target,
            "nothing was published before the scenario's deadline (no write was sent)",
        ));
    }
    // The browsers first: they stop by themselves (caught up, given up, stalled or at
    // the deadline), and the wire clients' end tells every client to stop.
    let (from_browsers, browsers_unfinished) =
        join_browsers(clients.browser_task, &clients.browsers, deadline).await;
    let (mut transcripts, mut unfinished) = collect(clients.tasks, deadline, &stop_tx).await;
    transcripts.extend(from_browsers);
    unfinished.extend(browsers_unfinished);
    let (acks, publish_failures) = ledger.take();
    let mut workload = workload_plan(sc, started.duration_since(epoch));
    workload.published_us = published_us;
    Ok(Recording {
        transcripts,
        acks,
        publish_failures,
        indeterminate: ledger.take_indeterminate(),
        published: ledger.published(&target.profile),
        workload: Some(workload),
        unfinished,
        plan: clients.planned,
        expect: browser_expectations(&clients.browsers, &target.profile),
        ..Recording::default()
    })
}

/// Passes the `published` barrier with this shard's acks and takes the other shards'
/// as owed to its clients: a client is caught up once it has every shard's writes.
async fn share_acks(part: &Part, ledger: &Ledger, deadline: Instant) -> Result<(), HarnessError> {
    let mine = serde_json::to_value(ledger.acks()).unwrap_or_default();
    let all = part.align(Phase::Published, mine, deadline).await?;
    for (i, acks) in all.into_iter().enumerate() {
        if i as u32 == part.spec.index() {
            continue;
        }
        let acks: Vec<harness_model::Ack> = serde_json::from_value(acks).map_err(|e| {
            HarnessError::new(
                HarnessErrorKind::Target,
                format!("shard {i}'s published marker: {e}"),
            )
        })?;
        ledger.add_foreign(acks);
    }
    Ok(())
}

/// A workload's clients, started: the wire clients' tasks, the browsers' plans and
/// their one task, the groups' burst switches, and the plan the evidence counts.
struct Clients {
    tasks: Vec<(ClientId, crate::tasks::Scoped<Transcript>)>,
    browsers: Vec<crate::browser::BrowserPlan>,
    browser_task: Option<crate::tasks::Scoped<Vec<Transcript>>>,
    bursts: Vec<(u64, watch::Sender<bool>)>,
    planned: ScenarioPlan,
    total: usize,
}

/// Starts every client of `sc`: each wire client as a task of its own (its group's
/// burst switch in place of `sig.burst`), every browser in one task.
fn start_clients(
    target: &Arc<Target>,
    ledger: &Arc<Ledger>,
    sc: &Scenario,
    placement: &Placement<'_>,
    rng: &mut ChaCha8Rng,
    sig: &Signals,
    part: &Part,
) -> Clients {
    let epoch = placement.epoch;
    let mut c = Clients {
        tasks: Vec::new(),
        browsers: Vec::new(),
        browser_task: None,
        bursts: Vec::new(),
        planned: ScenarioPlan::default(),
        total: 0,
    };
    // Every client is planned (the draws stay in the single-process order); a shard
    // starts its own only (client k of the flat list is shard k mod N's).
    let mut k = 0usize;
    let mut mine = move || {
        k += 1;
        part.spec.owns_client(k - 1)
    };
    for g in &sc.clients {
        if g.kind == ClientKind::Browser {
            for i in 0..g.count {
                let plan = client_plan(target, g, i, placement, rng);
                if !mine() {
                    continue;
                }
                c.planned.clients.push(plan.id.clone());
                c.browsers.push(crate::browser::BrowserPlan::new(
                    plan,
                    g.browser_case,
                    g.same_origin,
                    &target.profile,
                ));
                c.total += 1;
            }
            continue;
        }
        let shared = (g.h2_connection == crate::scenario::H2Connections::Shared)
            .then(|| std::sync::Arc::new(crate::client::SharedH2::default()));
        let (burst_tx, burst_rx) = watch::channel(false);
        if let Some(ms) = g.cuts.burst_at_ms {
            c.bursts.push((ms, burst_tx));
        }
        for i in 0..g.count {
            let mut plan = client_plan(target, g, i, placement, rng);
            if !mine() {
                continue;
            }
            plan.h2_shared = shared.clone();
            let sig = Signals {
                burst: burst_rx.clone(),
                ..sig.clone()
            };
            let id = plan.id.clone();
            c.planned.clients.push(id.clone());
            if !plan.cuts.is_empty() {
                c.planned.cuts.insert(id.clone(), plan.cuts.len() as u64);
            }
            let run = client::run(target.clone(), ledger.clone(), plan, sig, epoch);
            c.tasks.push((id, crate::tasks::spawn(run)));
            c.total += 1;
        }
    }
    c.browser_task = (!c.browsers.is_empty()).then(|| {
        crate::tasks::spawn(crate::browser::run(
            target.clone(),
            ledger.clone(),
            c.browsers.clone(),
            sig.clone(),
            epoch,
        ))
    });
    c
}

/// The browsers' transcripts, waited for until shortly after the deadline, and the
/// browsers left unfinished (all of them when their task did not end in time).
async fn join_browsers(
    task: Option<crate::tasks::Scoped<Vec<Transcript>>>,
    browsers: &[crate::browser::BrowserPlan],
    deadline: Instant,
) -> (Vec<Transcript>, Vec<ClientId>) {
    let Some(task) = task else {
        return Default::default();
    };
    match tokio::time::timeout_at(deadline + Duration::from_secs(15), task).await {
        Ok(Ok(trs)) => (trs, Vec::new()),
        _ => (
            Vec::new(),
            browsers.iter().map(|p| p.client.id.clone()).collect(),
        ),
    }
}

/// What the browsers must show besides delivery: which must stop for good, which must
/// come back and be closed the same way each time.
fn browser_expectations(
    browsers: &[crate::browser::BrowserPlan],
    profile: &crate::profile::Profile,
) -> harness_model::Expectations {
    harness_model::Expectations {
        browser_stops: browsers
            .iter()
            .filter(|b| b.must_stop(profile))
            .map(|b| b.client.id.clone())
            .collect(),
        browser_loops: browsers
            .iter()
            .filter(|b| b.loops)
            .map(|b| b.client.id.clone())
            .collect(),
        ..Default::default()
    }
}

/// Waits until live publishing may start: every client open (when the traffic says
/// so, bounded), then the idle time the traffic asks for.
async fn before_live(
    t: &Traffic,
    opened_rx: &mut mpsc::UnboundedReceiver<ClientId>,
    total: usize,
    deadline: Instant,
) {
    if t.after_clients_open {
        wait_opened(opened_rx, total, deadline).await;
    }
    if t.start_after_ms > 0 {
        // Chaos timing, not synchronisation: the streams stay idle this long on purpose.
        tokio::time::sleep_until(
            (Instant::now() + Duration::from_millis(t.start_after_ms)).min(deadline),
        )
        .await;
    }
}

/// Fires each burst signal at its time after `started`; the timers stop when dropped.
fn burst_timers(
    bursts: Vec<(u64, watch::Sender<bool>)>,
    started: Instant,
) -> Vec<crate::tasks::Scoped<()>> {
    bursts
        .into_iter()
        .map(|(ms, tx)| {
            crate::tasks::spawn(async move {
                tokio::time::sleep_until(started + Duration::from_millis(ms)).await;
                let _ = tx.send(true);
            })
        })
        .collect()
}

/// Each client's transcript, waited for until shortly after the deadline; a client
/// still running then is named in the second list, never dropped silently, and every
/// client is told to stop.
async fn collect(
    tasks: Vec<(ClientId, crate::tasks::Scoped<Transcript>)>,
    deadline: Instant,
    stop_tx: &watch::Sender<bool>,
) -> (Vec<Transcript>, Vec<ClientId>) {
    let mut transcripts = Vec::new();
    let mut unfinished = Vec::new();
    for (id, task) in tasks {
        match tokio::time::timeout_at(deadline + Duration::from_secs(5), task).await {
            Ok(Ok(tr)) => transcripts.push(tr),
            _ => {
                unfinished.push(id);
                let _ = stop_tx.send(true);
            }
        }
    }
    let _ = stop_tx.send(true);
    (transcripts, unfinished)
}

/// Waits (bounded) until `total` clients have their first response head; at most half
/// the time left, so that a target that never gets there is still published to (and
/// judged on what it then fails to deliver).
async fn wait_opened(rx: &mut mpsc::UnboundedReceiver<ClientId>, total: usize, deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    let bound = Instant::now() + Duration::from_secs(15).min(left / 2);
    let mut seen = 0;
    while seen < total {
        match tokio::time::timeout_at(bound, rx.recv()).await {
            Ok(Some(_)) => seen += 1,
            _ => break,
        }
    }
}

/// Where a scenario's clients start: what every client plan shares.
struct Placement<'a> {
    /// The scenario's channels, in creation order.
    channels: &'a [String],
    /// The head before the channels existed, and after the backlog.
    head_before: Option<u64>,
    head_now: Option<u64>,
    traffic: &'a Traffic,
    deadline: Instant,
    /// The scenario's clock origin (transcripts count from it).
    epoch: Instant,
}

fn client_plan(
    target: &Target,
    g: &ClientGroup,
    i: u32,
    at: &Placement<'_>,
    rng: &mut ChaCha8Rng,
) -> ClientPlan {
    let (channels, head_before, head_now) = (at.channels, at.head_before, at.head_now);
    let sub = &target.profile.subscribe;
    // "From the start" is a whole-history replay only where the profile claims one;
    // elsewhere a client without cursor is owed what is published after it subscribed.
    let replays = target.profile.has(Capability::ReplayFromStart);
    let (path, mine, initial_cursor, from_start) = match g.stream {
        StreamChoice::All => {
            let path = sub.all_path.clone().unwrap_or_else(|| sub.path.clone());
            match g.from {
                // "From the start" of this scenario: the head before its channels existed.
                From::Start => (
                    path,
                    channels.to_vec(),
                    head_before.map(|h| h.to_string()),
                    replays,
                ),
                From::Now => (
                    path,
                    channels.to_vec(),
                    head_now.map(|h| h.to_string()),
                    false,
                ),
            }
        }
        StreamChoice::Channel => {
            let ch = channels[g.channel.unwrap_or(i % channels.len() as u32) as usize].clone();
            let path = fill(&sub.path, &[("channel", &encode_segment(&ch))]);
            match g.from {
                From::Start => (path, vec![ch], None, replays),
                From::Now => (path, vec![ch], head_now.map(|h| h.to_string()), false),
            }
        }
    };
    let cuts = plan_cuts(g, owed_floor(at.traffic, g.stream, from_start), rng);
    ClientPlan {
        id: ClientId(format!("{}#{i}", g.name)),
        stream: StreamKind::Events,
        path,
        channels: mine,
        initial_cursor,
        from_start,
        cursor_query: if g.cursor_in_query {
            sub.cursor_query.clone()
        } else {
            None
        },
        correlation: None,
        bytes_per_sec: g.read.bytes_per_sec,
        slow_for: Duration::from_millis(g.read.slow_for_ms),
        rcvbuf: (g.read.rcvbuf > 0).then_some(g.read.rcvbuf),
        pause_after_events: g.read.pause_after_events,
        pause: Duration::from_millis(g.read.pause_ms),
        cuts,
        cut_gap: Duration::from_millis(g.cuts.gap_ms.max(g.cuts.down_ms)),
        reset: g.cuts.reset,
        h2_cut: g.cuts.h2_cut.wire(),
        h2_shared: None,
        until: Until::CaughtUp,
        reconnect: true,
        through_restarts: false,
        reconnect_on_silence: g.read.reconnect_on_silence,
        deadline: at.deadline,
        strict: target.profile.strict,
    }
}

/// The fewest writes a client of a group is surely owed when the target is correct:
/// the backlog too where it replays from the start, its channel's share where it
/// reads one channel (writes go round-robin).
fn owed_floor(t: &Traffic, stream: StreamChoice, from_start: bool) -> u64 {
    let writes = t.events + if from_start { t.backlog } else { 0 };
    match stream {
        StreamChoice::All => writes,
        StreamChoice::Channel => writes / u64::from(t.channels.max(1)),
    }
}

/// A client's planned cuts, in order, drawn from the seed. Every cut is one the
/// client can make against a correct target: event-counted cuts add up to less than
/// `owed` (the client's last owed event is never spent on a cut, so it does not catch
/// up with a cut still planned), and a cut that no longer fits is not planned. Aimed
/// and rapid cuts (after one data event) spend one event each; byte cuts are left to
/// the scenario's sizes.
fn plan_cuts(g: &ClientGroup, owed: u64, rng: &mut ChaCha8Rng) -> VecDeque<Cut> {
    let mut left = owed.saturating_sub(1);
    let mut cuts = VecDeque::new();
    if g.cuts.burst_at_ms.is_some() {
        cuts.push_back(Cut::Burst);
    }
    for _ in 0..g.cuts.aim_rounds {
        for a in &g.cuts.aims {
            cuts.push_back(Cut::Aim(*a));
            left = left.saturating_sub(1);
        }
    }
    for _ in 0..g.cuts.random_bytes {
        cuts.push_back(Cut::AtByte(rng.random_range(1..=g.cuts.span_bytes.max(1))));
    }
    for _ in 0..g.cuts.random_events {
        let span = g.cuts.span_events.max(1).min(left);
        if span == 0 {
            break;
        }
        let k = rng.random_range(1..=span);
        left -= k;
        cuts.push_back(Cut::AfterEvents(k));
    }
    for _ in 0..g.cuts.rapid_cycles {
        if left == 0 {
            break;
        }
        left -= 1;
        cuts.push_back(Cut::Rapid);
    }
    cuts
}

/// What the scenario facts need to know of the plan (see `harness_checks::facts`).
fn workload_plan(sc: &Scenario, live_from: Duration) -> WorkloadPlan {
    WorkloadPlan {
        live_from_us: live_from.as_micros() as u64,
        groups: sc
            .clients
            .iter()
            .map(|g| GroupPlan {
                name: g.name.clone(),
                bytes_per_sec: g.read.bytes_per_sec,
                slow_for_ms: g.read.slow_for_ms,
                rcvbuf: g.read.rcvbuf as u64,
                pause_after_events: g.read.pause_after_events,
                pause_ms: g.read.pause_ms,
            })
            .collect(),
        writes: sc.traffic.backlog + sc.traffic.events,
        published_us: 0,
        deadline_us: sc.deadline_s.saturating_mul(1_000_000),
        stall_ms: client::STALL.as_millis() as u64,
        trickle_ms: sc.traffic.interval_ms,
        event_type: sc.traffic.event_type.clone(),
        publish_cuts: cuts_publish_answers(sc),
    }
}

/// Whether the scenario's toxics can cut a publish's answer after its request went
/// out (`reset_peer`, `timeout`, `limit_data` on the publisher path): then writes of
/// unknown fate are what it sets out to make, not a `delivery.publish-acked` finding.
fn cuts_publish_answers(sc: &Scenario) -> bool {
    use sse_toxics::{ProxyPath, Toxic};
    sc.toxics.iter().any(|t| {
        t.path == ProxyPath::Publisher
            && t.toxic.toxicity > 0.0
            && matches!(
                t.toxic.toxic,
                Toxic::ResetPeer(_) | Toxic::Timeout(_) | Toxic::LimitData(_)
            )
    })
}

/// The pad of every write: the scenario's `pad_text`, or `pad` characters (`ü` when
/// `pad_utf8`, else `x`).
fn pad_of(t: &crate::scenario::Traffic) -> String {
    match &t.pad_text {
        Some(text) => text.clone(),
        None => std::iter::repeat_n(if t.pad_utf8 { 'ü' } else { 'x' }, t.pad as usize).collect(),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    /// Every shipped group's cut plan is one a correct target lets the client finish:
    /// its event-counted cuts add up to less than the writes it is surely owed, for
    /// many seeds, replaying from the start or not.
    #[test]
    fn every_shipped_event_cut_plan_fits_what_the_client_is_owed() {
        for sc in crate::scenario::builtin().expect("scenarios") {
            for g in &sc.clients {
                for replays in [false, true] {
                    let owed = owed_floor(&sc.traffic, g.stream, replays && g.from == From::Start);
                    for seed in 0..200 {
                        let mut rng = ChaCha8Rng::seed_from_u64(seed);
                        let cuts = plan_cuts(g, owed, &mut rng);
                        let spent: u64 = cuts
                            .iter()
                            .map(|c| match c {
                                Cut::AfterEvents(k) => *k,
                                Cut::Aim(_) | Cut::Rapid => 1,
                                _ => 0,
                            })
                            .sum();
                        assert!(
                            spent < owed.max(1),
                            "{}/{} {}: {spent} events of cuts, {owed} owed",
                            sc.group,
                            sc.name,
                            g.name
                        );
                    }
                }
            }
        }
    }

    /// A plan that would not fit is shortened, not left to come back Inconclusive:
    /// four cuts of up to 150 events over 500 owed.
    #[test]
    fn cuts_beyond_what_is_owed_are_not_planned() {
        let sc = crate::scenario::builtin()
            .expect("scenarios")
            .into_iter()
            .find(|s| s.name == "connect-read-disconnect")
            .expect("connect-read-disconnect");
        let g = &sc.clients[0];
        let planned: Vec<u64> = (0..2000)
            .map(|seed| plan_cuts(g, 10, &mut ChaCha8Rng::seed_from_u64(seed)).len() as u64)
            .collect();
        assert!(planned.iter().all(|&n| (1..=4).contains(&n)));
        assert!(planned.iter().any(|&n| n < 4), "some plans are cut short");
    }
}
