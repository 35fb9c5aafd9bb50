//! SIGINT, SIGTERM and SIGHUP. During the prefetch, transfers are told to stop rather than
//! dropped, so each flushes what it received into its `.part` file in the staging directory:
//! the next run resumes from there. Then the run ends normally (releasing alpm's lock) with
//! 128 + signal. During the commit the transaction is interrupted between packages, as pacman
//! does (`sync::run`). pacman handles SIGHUP as it handles SIGINT; so does pactor.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// A handle on "has a stopping signal arrived?", cheap to clone into every transfer.
#[derive(Clone)]
pub struct Interrupt {
    received: watch::Receiver<Option<i32>>,
    sender: Arc<watch::Sender<Option<i32>>>,
}

impl Interrupt {
    /// Starts listening to SIGINT and SIGTERM; must be called inside the runtime. (A daemon
    /// keeps SIGHUP for itself: `pactor seed` rescans on it.)
    pub fn listen() -> std::io::Result<Interrupt> {
        Self::listen_to(&[SignalKind::interrupt(), SignalKind::terminate()])
    }

    /// Starts listening to SIGINT, SIGTERM and SIGHUP, the signals pacman stops on.
    pub fn listen_like_pacman() -> std::io::Result<Interrupt> {
        Self::listen_to(&[
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ])
    }

    fn listen_to(kinds: &[SignalKind]) -> std::io::Result<Interrupt> {
        let (tx, rx) = watch::channel(None);
        let mut streams = Vec::new();
        for kind in kinds {
            streams.push((kind.as_raw_value(), signal(*kind)?));
        }
        let sender = Arc::new(tx);
        let interrupt = Interrupt {
            received: rx,
            sender: sender.clone(),
        };
        let trigger = interrupt.clone();
        for (signum, mut stream) in streams {
            let trigger = trigger.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    trigger.trigger(signum);
                }
            });
        }
        Ok(interrupt)
    }

    /// Acts as if `signum` had arrived (the first signal is the one remembered).
    pub fn trigger(&self, signum: i32) {
        self.sender.send_if_modified(|seen| {
            if seen.is_none() {
                *seen = Some(signum);
                true
            } else {
                false
            }
        });
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
