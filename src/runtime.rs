//! Which workers run what. The download process keeps its many small steps (handovers, small
//! files, the pipe to the root process) on one worker and its bulk transfers (the swarm's
//! peers and pieces, the mirrors' connections for large files) on a runtime of their own; see
//! `fetcher::child`'s `bulk_runtime` for the measurements.

use std::future::Future;

use tokio::runtime::Handle;

/// Polls `future` with `runtime` as the current runtime: the tasks spawned meanwhile (librqbit
/// and hyper spawn on whatever runtime is current), and the sockets and timers created, belong
/// to that runtime's workers. The future itself runs where it is awaited, and dropping it
/// cancels it as usual.
pub fn on<F: Future>(runtime: &Handle, future: F) -> impl Future<Output = F::Output> {
    let runtime = runtime.clone();
    let mut future = Box::pin(future);
    std::future::poll_fn(move |cx| {
        let _current = runtime.enter();
        future.as_mut().poll(cx)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_future_spawns_runs_on_the_given_runtime() {
        let bulk = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bulk")
            .enable_all()
            .build()
            .unwrap();
        let main = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let name = || std::thread::current().name().map(str::to_owned);
        let (spawned_on, awaited_on) = main.block_on(on(bulk.handle(), async move {
            let spawned = tokio::spawn(async move { name() }).await.unwrap();
            // A timer made here is the bulk runtime's, and wakes this future all the same.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            (spawned, name())
        }));
        assert_eq!(spawned_on.as_deref(), Some("bulk"));
        assert_ne!(awaited_on.as_deref(), Some("bulk"));
        // Without it, the task would have run on the awaiting runtime.
        let here = main.block_on(async move { tokio::spawn(async move { name() }).await.unwrap() });
        assert_ne!(here.as_deref(), Some("bulk"));
    }
}
