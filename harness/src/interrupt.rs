//! Stopping a run early: the first Ctrl-C (SIGINT) or SIGTERM fires an [`Interrupt`]
//! that the engine watches; the scenario in progress is dropped (its scoped tasks
//! abort with it) and reported interrupted, the scenarios after it not run, and the
//! run ends with a partial report and [`harness_model::Outcome::Interrupted`] (exit
//! 130). A second signal calls the caller's hook at once (the binary kills the
//! `--server-cmd` process groups and exits 130).

use harness_model::Interruption;
use tokio::sync::watch;

/// The receiving side: whether, and by which signal, the run was interrupted.
#[derive(Clone, Debug)]
pub struct Interrupt {
    rx: watch::Receiver<Option<Interruption>>,
}

/// The sending side: fires the [`Interrupt`]s cloned from its pair (the first signal wins).
#[derive(Clone, Debug)]
pub struct Trigger {
    tx: watch::Sender<Option<Interruption>>,
}

/// A trigger and the interrupt it fires.
pub fn pair() -> (Trigger, Interrupt) {
    let (tx, rx) = watch::channel(None);
    (Trigger { tx }, Interrupt { rx })
}

impl Trigger {
    /// Fires the interrupt with `signal`, unless it already fired; true when this call
    /// fired it.
    pub fn fire(&self, signal: Interruption) -> bool {
        self.tx.send_if_modified(|v| {
            if v.is_some() {
                return false;
            }
            *v = Some(signal);
            true
        })
    }
}

impl Default for Interrupt {
    /// An interrupt that never fires.
    fn default() -> Interrupt {
        // With its sender gone unfired, `wait` pends for ever.
        let (_, rx) = watch::channel(None);
        Interrupt { rx }
    }
}

impl Interrupt {
    /// The signal, once it fired.
    pub fn fired(&self) -> Option<Interruption> {
        *self.rx.borrow()
    }

    /// Resolves when the interrupt fires (never, when its trigger is gone unfired).
    pub async fn wait(&self) -> Interruption {
        let mut rx = self.rx.clone();
        loop {
            if let Some(s) = *rx.borrow_and_update() {
                return s;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Listens for SIGINT and SIGTERM on the current tokio runtime: the first fires
/// `trigger`, the next calls `on_second` (which should exit the process).
pub fn listen(trigger: Trigger, on_second: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = int.recv() => Interruption::Sigint,
            _ = term.recv() => Interruption::Sigterm,
        };
        trigger.fire(first);
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        on_second();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_signal_wins_and_wakes_every_waiter() {
        let (trigger, interrupt) = pair();
        assert_eq!(interrupt.fired(), None);
        let other = interrupt.clone();
        let waiter = tokio::spawn(async move { other.wait().await });
        assert!(trigger.fire(Interruption::Sigterm));
        assert!(!trigger.fire(Interruption::Sigint));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken before the deadline")
            .unwrap();
        assert_eq!(got, Interruption::Sigterm);
        assert_eq!(interrupt.fired(), Some(Interruption::Sigterm));
    }

    #[tokio::test]
    async fn the_default_never_fires() {
        let i = Interrupt::default();
        assert_eq!(i.fired(), None);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), i.wait()).await;
        assert!(waited.is_err());
    }
}
