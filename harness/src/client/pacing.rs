//! Read pacing: how fast a client reads. A slow reader takes at most a twentieth of its
//! byte rate per read and then sleeps for the bytes it took, so the socket — not a
//! buffer in the client — applies backpressure to the server; after `slow_for` it reads
//! at full speed.

use std::time::Duration;

use tokio::time::Instant;

/// One connection's read pacing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pacing {
    /// Bytes per second while slow (0: unthrottled).
    bytes_per_sec: u64,
    /// Read slowly only this long (zero: throughout).
    slow_for: Duration,
    started: Instant,
}

impl Pacing {
    pub(crate) fn new(bytes_per_sec: u64, slow_for: Duration) -> Pacing {
        Pacing {
            bytes_per_sec,
            slow_for,
            started: Instant::now(),
        }
    }

    /// Whether the reader is slow now.
    pub(crate) fn slow(&self) -> bool {
        self.bytes_per_sec > 0
            && (self.slow_for.is_zero() || self.started.elapsed() < self.slow_for)
    }

    /// A reader slower than 1 KiB/s, which may go seconds without a whole frame.
    pub(crate) fn trickle(&self) -> bool {
        self.slow() && self.bytes_per_sec < 1024
    }

    /// The most bytes the next read may take.
    pub(crate) fn read_size(&self, buf_len: usize) -> usize {
        if self.slow() {
            buf_len.min(usize::try_from((self.bytes_per_sec / 20).max(1)).unwrap_or(usize::MAX))
        } else {
            buf_len
        }
    }

    /// How long to sleep after reading `n` bytes (rate control, not synchronisation).
    pub(crate) fn budget(&self, n: usize) -> Option<Duration> {
        self.slow()
            .then(|| Duration::from_secs_f64(n as f64 / self.bytes_per_sec as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_takes_a_twentieth_of_its_rate_and_sleeps_for_it() {
        let p = Pacing::new(1000, Duration::ZERO);
        assert!(p.slow() && p.trickle());
        assert_eq!(p.read_size(16 * 1024), 50);
        assert_eq!(p.budget(50), Some(Duration::from_millis(50)));
        let one = Pacing::new(1, Duration::ZERO);
        assert_eq!(one.read_size(16 * 1024), 1, "at least one byte");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_for_a_while_then_full_speed() {
        let p = Pacing::new(4096, Duration::from_secs(2));
        assert!(p.slow() && !p.trickle());
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(!p.slow());
        assert_eq!(p.read_size(16 * 1024), 16 * 1024);
        assert_eq!(p.budget(100), None);
        assert!(!Pacing::new(0, Duration::ZERO).slow(), "0: unthrottled");
    }
}
