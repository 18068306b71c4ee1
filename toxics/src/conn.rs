//! One relayed connection: per direction a reader and a writer joined by a bounded
//! channel (so latency shifts chunks without serialising them, and a slow side
//! back-pressures the other), plus a controller for the `timeout` stall. Everything runs
//! inside the connection's one task, so ending it ends them all.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use crate::log::{Action, CloseHow, ToxicEvent};
use crate::proxy::{Entry, Shared};
use crate::rng::{decide, stream_rng};
use crate::spec::Stream;
use crate::toxics::{Bandwidth, Slicer, StallMode, Toxic};

/// Bytes read at once.
const READ_CHUNK: usize = 64 * 1024;
/// Most chunks queued per direction between reader and writer.
const QUEUE_CHUNKS: usize = 1024;
/// Most bytes queued per direction (a chunk holds its share until written). Bytes and
/// count are both bounded so that `latency` on a stream of small events shifts them
/// without throttling (a chunk is timestamped when read), while a side that stops
/// reading back-pressures the other after at most this much.
const QUEUE_BYTES: usize = 1024 * 1024;

enum Msg {
    /// A chunk, when it was read, and its share of the byte budget.
    Data(Bytes, Instant, OwnedSemaphorePermit),
    Eof,
}

/// How one direction ended.
enum End {
    /// Its close was passed on.
    Finished,
    /// The connection must end.
    Cut(CloseHow),
}

struct Ctx {
    id: u64,
    shared: Arc<Shared>,
    toxics: watch::Receiver<crate::proxy::ToxicSet>,
    /// The connection's stall, if any, and its mode.
    stalled: watch::Sender<Option<StallMode>>,
    request_bytes: AtomicU64,
    response_received: AtomicU64,
    response_forwarded: AtomicU64,
    /// Request bytes forwarded since the last response byte reached the client.
    unanswered: AtomicU64,
    stall_dropped: AtomicU64,
}

impl Ctx {
    fn log(&self, toxic: Option<&Entry>, action: Action) {
        self.shared.log.push(ToxicEvent {
            at_ms: self.shared.clock.ms_f64(),
            conn: self.id,
            toxic: toxic.map(|e| e.name.clone()),
            stream: toxic.map(|e| e.cfg.stream),
            action,
        });
    }

    fn applies(&self, e: &Entry) -> bool {
        e.enabled
            && self.shared.clock.holds(&e.cfg)
            && decide(self.shared.seed, self.id, e.name_hash, e.cfg.toxicity)
    }

    /// The toxics acting on `stream` right now, for this connection.
    fn live(&self, stream: Stream) -> Vec<Entry> {
        let set = self.toxics.borrow().clone();
        if set.is_empty() {
            return Vec::new();
        }
        set.iter()
            .filter(|e| e.cfg.stream == stream && self.applies(e))
            .cloned()
            .collect()
    }
}

/// Relays one client until it ends; logs `opened` … `closed`.
pub(crate) async fn serve(
    mut client: TcpStream,
    id: u64,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let connect = tokio::time::timeout(shared.connect_timeout, TcpStream::connect(shared.upstream));
    let (stalled, _) = watch::channel(None);
    let ctx = Ctx {
        id,
        toxics: shared.toxics.clone(),
        shared,
        stalled,
        request_bytes: AtomicU64::new(0),
        response_received: AtomicU64::new(0),
        response_forwarded: AtomicU64::new(0),
        unanswered: AtomicU64::new(0),
        stall_dropped: AtomicU64::new(0),
    };
    let mut server = tokio::select! {
        _ = cancel.cancelled() => return,
        r = connect => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return ctx.log(None, Action::ConnectFailed { error: e.to_string() }),
            Err(_) => return ctx.log(None, Action::ConnectFailed { error: "connect timed out".into() }),
        },
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    ctx.shared.open.fetch_add(1, Ordering::Relaxed);
    if let Ok(addr) = client.peer_addr() {
        ctx.log(None, Action::Opened { client: addr });
    }
    let how = relay(&mut client, &mut server, &ctx, &cancel).await;
    if how == CloseHow::Reset {
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
    drop(client);
    drop(server);
    ctx.shared.open.fetch_sub(1, Ordering::Relaxed);
    let request_bytes = ctx.request_bytes.load(Ordering::Relaxed);
    let unanswered_request_bytes = ctx.unanswered.load(Ordering::Relaxed);
    ctx.log(
        None,
        Action::Closed {
            how,
            request_bytes,
            response_bytes_received: ctx.response_received.load(Ordering::Relaxed),
            response_bytes_forwarded: ctx.response_forwarded.load(Ordering::Relaxed),
            unanswered_request_bytes,
            indeterminate: how.by_proxy() && unanswered_request_bytes > 0,
        },
    );
}

async fn relay(
    client: &mut TcpStream,
    server: &mut TcpStream,
    ctx: &Ctx,
    cancel: &CancellationToken,
) -> CloseHow {
    let (cr, cw) = client.split();
    let (sr, sw) = server.split();
    let up = direction(cr, sw, Stream::Upstream, ctx);
    let down = direction(sr, cw, Stream::Downstream, ctx);
    let stall = stall_control(ctx);
    tokio::pin!(up, down, stall);
    let (mut up_done, mut down_done) = (false, false);
    loop {
        tokio::select! {
            // Biased: the stall controller's first poll sets a stall that is live from
            // the start before either direction can forward a byte.
            biased;
            _ = cancel.cancelled() => return CloseHow::ProxyStopped,
            how = &mut stall => return how,
            e = &mut up, if !up_done => match e {
                End::Finished => up_done = true,
                End::Cut(how) => return how,
            },
            e = &mut down, if !down_done => match e {
                End::Finished => down_done = true,
                End::Cut(how) => return how,
            },
        }
        if up_done && down_done {
            return CloseHow::Normal;
        }
    }
}

/// One direction: ends when its writer ends (the reader is dropped with it).
async fn direction<R, W>(r: R, w: W, stream: Stream, ctx: &Ctx) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
    let reader = async {
        read_loop(r, tx, stream, ctx).await;
        std::future::pending::<()>().await;
    };
    tokio::select! {
        e = write_loop(w, rx, stream, ctx) => e,
        _ = reader => End::Cut(CloseHow::PeerError),
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut r: R,
    tx: mpsc::Sender<Msg>,
    stream: Stream,
    ctx: &Ctx,
) {
    // Reads land in one growing buffer and leave it as frozen slices, so a chunk is
    // not copied again and small chunks share an allocation.
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let budget = Arc::new(Semaphore::new(QUEUE_BYTES));
    let mut stall = ctx.stalled.subscribe();
    let held = |s: &Option<StallMode>| *s == Some(StallMode::Hold);
    loop {
        // A `hold` stall: read nothing until it ends (the peer's send buffer fills).
        let _ = stall.wait_for(|s| !held(s)).await;
        // Wait for room for a full read before reading (READ_CHUNK ≤ QUEUE_BYTES).
        let Ok(mut room) = budget.clone().acquire_many_owned(READ_CHUNK as u32).await else {
            return;
        };
        buf.reserve(READ_CHUNK);
        // `read_buf` is cancel-safe: a stall that starts mid-wait reads nothing more.
        let read = tokio::select! {
            biased;
            _ = stall.wait_for(held) => continue,
            read = r.read_buf(&mut buf) => read,
        };
        match read {
            Ok(0) => {
                let _ = tx.send(Msg::Eof).await;
                return;
            }
            Ok(n) => {
                if stream == Stream::Downstream {
                    ctx.response_received.fetch_add(n as u64, Ordering::Relaxed);
                }
                let chunk = buf.split().freeze();
                // The chunk keeps its share; the rest of the room goes back.
                let Some(share) = room.split(n) else { return };
                drop(room);
                let msg = Msg::Data(chunk, Instant::now(), share);
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
            // Dropping `tx` tells the writer the side is gone.
            Err(_) => return,
        }
    }
}

/// Per-direction state of the writer.
struct Writer<W> {
    w: W,
    stream: Stream,
    rng: ChaCha8Rng,
    stalled: watch::Receiver<Option<StallMode>>,
    /// When the bandwidth pacing lets the next byte go.
    paced_until: Option<Instant>,
    /// Bytes forwarded in this direction (for `limit_data`).
    forwarded: u64,
}

async fn write_loop<W: AsyncWrite + Unpin>(
    w: W,
    mut rx: mpsc::Receiver<Msg>,
    stream: Stream,
    ctx: &Ctx,
) -> End {
    let mut wr = Writer {
        w,
        stream,
        rng: stream_rng(ctx.shared.seed, ctx.id, stream),
        stalled: ctx.stalled.subscribe(),
        paced_until: None,
        forwarded: 0,
    };
    loop {
        match rx.recv().await {
            None => return End::Cut(CloseHow::PeerError),
            Some(Msg::Eof) => return wr.close(ctx).await,
            Some(Msg::Data(chunk, at, _permit)) => {
                if let Some(end) = wr.chunk(chunk, at, ctx).await {
                    return end;
                }
            }
        }
    }
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    fn is_stalled(&self) -> bool {
        self.stalled.borrow().is_some()
    }

    /// A `hold` stall keeps the chunk (and, through the byte budget, stops the reader)
    /// until it ends; returns at once otherwise.
    async fn wait_out_hold(&mut self) {
        let _ = self.stalled.wait_for(|s| *s != Some(StallMode::Hold)).await;
    }

    /// Passes a close on: after `slow_close`, and never during a stall.
    async fn close(&mut self, ctx: &Ctx) -> End {
        for e in ctx.live(self.stream) {
            if let Toxic::SlowClose(t) = e.cfg.toxic {
                ctx.log(Some(&e), Action::SlowClose { delay_ms: t.delay });
                tokio::time::sleep(Duration::from_millis(t.delay)).await;
            }
        }
        // A stall holds the FIN until it ends (or the connection is cut).
        let _ = self.stalled.wait_for(|s| s.is_none()).await;
        let _ = self.w.shutdown().await;
        End::Finished
    }

    /// Forwards one chunk through the live toxics; `Some` ends the direction.
    async fn chunk(&mut self, chunk: Bytes, at: Instant, ctx: &Ctx) -> Option<End> {
        self.wait_out_hold().await;
        if self.is_stalled() {
            ctx.stall_dropped
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            return None;
        }
        let live = ctx.live(self.stream);
        if live.is_empty() {
            return self.write(&chunk, None, None, ctx).await.err();
        }
        for e in &live {
            if let Toxic::ResetPeer(t) = e.cfg.toxic {
                let action = Action::ResetTriggered {
                    dropped_bytes: chunk.len(),
                    timeout_ms: t.timeout,
                };
                ctx.log(Some(e), action);
                tokio::time::sleep(Duration::from_millis(t.timeout)).await;
                return Some(End::Cut(CloseHow::Reset));
            }
        }
        self.delay(&chunk, at, &live, ctx).await;
        self.wait_out_hold().await;
        if self.is_stalled() {
            ctx.stall_dropped
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            return None;
        }
        let mut data = chunk;
        let mut limit_hit = None;
        for e in &live {
            if let Toxic::LimitData(t) = e.cfg.toxic {
                let remaining = t.bytes.saturating_sub(self.forwarded);
                if data.len() as u64 >= remaining {
                    data.truncate(remaining as usize);
                    limit_hit = Some(e);
                }
            }
        }
        let slicer = live.iter().find_map(|e| match e.cfg.toxic {
            Toxic::Slicer(s) => Some((e, s)),
            _ => None,
        });
        let bw = live.iter().find_map(|e| match e.cfg.toxic {
            Toxic::Bandwidth(b) => Some((e, b)),
            _ => None,
        });
        if let Some(end) = self.write(&data, slicer, bw, ctx).await.err() {
            return Some(end);
        }
        if let Some(e) = limit_hit {
            ctx.log(
                Some(e),
                Action::DataLimitReached {
                    bytes: self.forwarded,
                },
            );
            return Some(End::Cut(CloseHow::DataLimit));
        }
        None
    }

    /// `latency`: holds the chunk until its read time plus every live latency's draw.
    async fn delay(&mut self, chunk: &Bytes, at: Instant, live: &[Entry], ctx: &Ctx) {
        for e in live {
            if let Toxic::Latency(t) = e.cfg.toxic {
                let d = t.draw(&mut self.rng);
                sleep_until((at + d).into()).await;
                let held_ms = at.elapsed().as_secs_f64() * 1000.0;
                let delay_ms = d.as_millis() as u64;
                ctx.log(
                    Some(e),
                    Action::Delayed {
                        bytes: chunk.len(),
                        delay_ms,
                        held_ms,
                    },
                );
            }
        }
    }

    /// Writes `data`, cut by the slicer and paced by the bandwidth toxic if live.
    async fn write(
        &mut self,
        data: &[u8],
        slicer: Option<(&Entry, Slicer)>,
        bw: Option<(&Entry, Bandwidth)>,
        ctx: &Ctx,
    ) -> Result<(), End> {
        let ends = match slicer {
            Some((e, s)) if !data.is_empty() => {
                let ends = s.cut(data.len(), &mut self.rng);
                ctx.log(
                    Some(e),
                    Action::Sliced {
                        bytes: data.len(),
                        pieces: ends.len(),
                    },
                );
                ends
            }
            _ => vec![data.len()],
        };
        let mut waited = Duration::ZERO;
        let mut start = 0;
        for end in ends {
            let mut piece = &data[start..end];
            while !piece.is_empty() {
                let n = bw.map_or(piece.len(), |(_, b)| b.piece().min(piece.len()));
                if let Some((_, b)) = bw {
                    waited += self.pace(b, n).await;
                }
                self.w.write_all(&piece[..n]).await.map_err(cut)?;
                self.count(n as u64, ctx);
                piece = &piece[n..];
            }
            if let Some((_, s)) = slicer
                && s.delay > 0
            {
                tokio::time::sleep(Duration::from_micros(s.delay)).await;
            }
            start = end;
        }
        if let Some((e, _)) = bw
            && !waited.is_zero()
        {
            let waited_ms = waited.as_secs_f64() * 1000.0;
            ctx.log(
                Some(e),
                Action::Throttled {
                    bytes: data.len(),
                    waited_ms,
                },
            );
        }
        Ok(())
    }

    /// Waits until `n` more bytes fit the rate; returns the wait.
    async fn pace(&mut self, b: Bandwidth, n: usize) -> Duration {
        let now = Instant::now();
        let go = self.paced_until.map_or(now, |t| t.max(now));
        self.paced_until = Some(go + b.time_for(n));
        if go > now {
            sleep_until(go.into()).await;
        }
        go - now
    }

    fn count(&mut self, n: u64, ctx: &Ctx) {
        self.forwarded += n;
        match self.stream {
            Stream::Upstream => {
                ctx.request_bytes.fetch_add(n, Ordering::Relaxed);
                ctx.unanswered.fetch_add(n, Ordering::Relaxed);
            }
            Stream::Downstream => {
                ctx.response_forwarded.fetch_add(n, Ordering::Relaxed);
                ctx.unanswered.store(0, Ordering::Relaxed);
            }
        }
    }
}

fn cut(_: io::Error) -> End {
    End::Cut(CloseHow::PeerError)
}

/// The `timeout` toxic: starts and ends the connection's stall as the schedule and
/// run-time changes say; returns only to close the connection after a timeout.
async fn stall_control(ctx: &Ctx) -> CloseHow {
    let mut rx = ctx.toxics.clone();
    let mut changes_open = true;
    let mut live = ctx.shared.clock.live.subscribe();
    // (toxic, its timeout in ms, when the stall began)
    let mut stall: Option<(Entry, u64, Instant)> = None;
    loop {
        let set = rx.borrow_and_update().clone();
        let now = ctx.shared.clock.ms();
        let timeouts = set.iter().filter_map(|e| match e.cfg.toxic {
            Toxic::Timeout(t)
                if e.enabled && decide(ctx.shared.seed, ctx.id, e.name_hash, e.cfg.toxicity) =>
            {
                Some((e, t))
            }
            _ => None,
        });
        let mut active = None;
        let mut next: Option<u64> = None;
        for (e, t) in timeouts {
            if ctx.shared.clock.holds(&e.cfg) {
                active = active.or(Some((e.clone(), t)));
            }
            let edge = ctx.shared.clock.next_edge(&e.cfg, now);
            next = match (next, edge) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        match (active, &stall) {
            (Some((e, t)), None) => {
                ctx.stalled.send_replace(Some(t.mode));
                ctx.log(
                    Some(&e),
                    Action::StallStarted {
                        timeout_ms: t.timeout,
                    },
                );
                stall = Some((e, t.timeout, Instant::now()));
            }
            (None, Some((e, _, _))) => {
                ctx.stalled.send_replace(None);
                let dropped_bytes = ctx.stall_dropped.swap(0, Ordering::Relaxed);
                ctx.log(Some(e), Action::StallEnded { dropped_bytes });
                stall = None;
            }
            _ => {}
        }
        let deadline = stall
            .as_ref()
            .filter(|(_, t, _)| *t > 0)
            .map(|(_, t, since)| *since + Duration::from_millis(*t));
        tokio::select! {
            r = rx.changed(), if changes_open => changes_open = r.is_ok(),
            // The live clock started: a window on it now has edges.
            Ok(()) = live.changed() => {}
            _ = sleep_until(ctx.shared.clock.at(next.unwrap_or(0)).into()), if next.is_some() => {}
            _ = sleep_until(deadline.unwrap_or(Instant::now()).into()), if deadline.is_some() => {
                return CloseHow::TimedOut;
            }
            else => std::future::pending::<()>().await,
        }
    }
}
