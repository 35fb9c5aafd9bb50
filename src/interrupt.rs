//! SIGINT and SIGTERM during the prefetch. Transfers are told to stop rather than dropped, so
//! each flushes what it received into its `.part` file in the staging directory: the next run
//! resumes from there. Then the run ends normally (releasing alpm's lock) with 128 + signal.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// A handle on "has SIGINT or SIGTERM arrived?", cheap to clone into every transfer.
#[derive(Clone)]
pub struct Interrupt {
    received: watch::Receiver<Option<i32>>,
}

impl Interrupt {
    /// Starts listening; must be called inside the runtime.
    pub fn listen() -> std::io::Result<Interrupt> {
        let (tx, rx) = watch::channel(None);
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            let signum = tokio::select! {
                _ = int.recv() => libc::SIGINT,
                _ = term.recv() => libc::SIGTERM,
            };
            let _ = tx.send(Some(signum));
        });
        Ok(Interrupt { received: rx })
    }

    /// The signal received so far, if any.
    pub fn signal(&self) -> Option<i32> {
        *self.received.borrow()
    }

    /// Resolves once a signal has arrived.
    pub async fn wait(&self) {
        let mut rx = self.received.clone();
        let _ = rx.wait_for(Option::is_some).await;
    }
}
