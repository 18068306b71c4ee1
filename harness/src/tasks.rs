//! Tasks scoped to the scenario that spawned them. `tokio::spawn` detaches: dropping its
//! handle leaves the task running, so a scenario the runner abandons at its wall-clock
//! bound would leak its clients and publishers (still reading a flooding target, still
//! holding memory). A [`Scoped`] handle aborts its task when dropped, so dropping a
//! scenario's future ends everything it started.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::{JoinError, JoinHandle};

/// A task handle that aborts the task when dropped; await it for the task's result.
#[derive(Debug)]
pub struct Scoped<T>(JoinHandle<T>);

/// Spawns `f` on the runtime, scoped to the returned handle.
pub fn spawn<F>(f: F) -> Scoped<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Scoped(tokio::spawn(f))
}

impl<T> Scoped<T> {
    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl<T> Future for Scoped<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for Scoped<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn dropping_the_handle_ends_the_task() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let h = super::spawn(async move {
            let _tx = tx;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        drop(h);
        // The sender is dropped with the aborted task: the receiver sees it go.
        assert!(
            tokio::time::timeout(Duration::from_secs(60), rx)
                .await
                .expect("the task ended")
                .is_err()
        );
    }
}
