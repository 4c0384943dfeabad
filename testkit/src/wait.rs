//! Waiting for what a test expects: a condition looked at until it holds, synchronous or async,
//! failing the test after a limit with what it waited for and the caller's line.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often an async check is made (it may be a request or a file read: not in a tight loop).
const ASYNC_EVERY: Duration = Duration::from_millis(10);

/// Completes when `cond` holds (looked at every 5 ms); fails the test after `limit`, saying `what`
/// it waited for and the caller's line.
#[track_caller]
pub fn until<C: FnMut() -> bool>(
    what: &str,
    limit: Duration,
    mut cond: C,
) -> impl Future<Output = ()> + use<C> {
    let at = std::panic::Location::caller();
    let what = what.to_string();
    async move {
        let t0 = Instant::now();
        while !cond() {
            assert!(
                t0.elapsed() < limit,
                "timed out after {limit:?} waiting for {what} (at {at})"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// [`until`] with an async check (an HTTP request, a browser's answer…), looked at every 10 ms.
#[track_caller]
pub fn until_async<F, Fut>(
    what: &str,
    limit: Duration,
    mut cond: F,
) -> impl Future<Output = ()> + use<F, Fut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    until_found(what, limit, move || {
        let check = cond();
        async move { check.await.then_some(()) }
    })
}

/// Completes with the first value `find` gives (looked at every 10 ms); fails the test after
/// `limit`, saying `what` it waited for and the caller's line.
#[track_caller]
pub fn until_found<T, F, Fut>(
    what: &str,
    limit: Duration,
    mut find: F,
) -> impl Future<Output = T> + use<T, F, Fut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let at = std::panic::Location::caller();
    let what = what.to_string();
    async move {
        let t0 = Instant::now();
        loop {
            if let Some(v) = find().await {
                return v;
            }
            assert!(
                t0.elapsed() < limit,
                "timed out after {limit:?} waiting for {what} (at {at})"
            );
            tokio::time::sleep(ASYNC_EVERY).await;
        }
    }
}
