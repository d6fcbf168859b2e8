//! The work queue: keys de-duplicated, one key never worked on twice at once, bounded
//! concurrency (by the number of workers pulling), per-key exponential backoff with
//! jitter after errors.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Smallest backoff after a first error.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Largest backoff.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    /// Keys ready to be taken, in arrival order.
    ready: VecDeque<String>,
    /// The same keys, for de-duplication.
    queued: BTreeSet<String>,
    /// Keys being worked on now.
    active: BTreeSet<String>,
    /// Keys added while active: queued again when released.
    dirty: BTreeSet<String>,
    /// Keys due later (backoff or requeue-after), with when.
    delayed: BTreeMap<String, Instant>,
    /// Consecutive failures per key.
    failures: BTreeMap<String, u32>,
    shutdown: bool,
}

/// A queue of reconcile keys shared by the triggers and the workers.
#[derive(Clone, Default)]
pub struct WorkQueue {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

impl WorkQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section below leaves the state consistent, so a poisoned
        // lock (a panic elsewhere while holding it) is still safe to use.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for `key` to be reconciled as soon as possible (no-op when already queued).
    pub fn add(&self, key: &str) {
        let mut s = self.lock();
        s.delayed.remove(key);
        if s.active.contains(key) {
            s.dirty.insert(key.to_string());
        } else if s.queued.insert(key.to_string()) {
            s.ready.push_back(key.to_string());
        }
        drop(s);
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Asks for `key` to be reconciled after `delay`, unless something asks sooner.
    pub fn add_after(&self, key: &str, delay: Duration) {
        let mut s = self.lock();
        let due = Instant::now() + delay;
        if s.queued.contains(key) {
            return;
        }
        let entry = s.delayed.entry(key.to_string()).or_insert(due);
        if due < *entry {
            *entry = due;
        }
        drop(s);
        self.wake.notify_one();
    }

    /// Records a failure of `key` and schedules a retry with exponential backoff and jitter.
    pub fn retry(&self, key: &str) -> Duration {
        let n = {
            let mut s = self.lock();
            let n = s.failures.entry(key.to_string()).or_default();
            *n = n.saturating_add(1);
            *n
        };
        let exp = BACKOFF_BASE.saturating_mul(1u32 << (n - 1).min(16));
        let capped = exp.min(BACKOFF_MAX);
        // Up to +25% jitter, so keys that failed together do not retry together.
        let jitter = capped.mul_f64(fastrand::f64() * 0.25);
        let delay = capped + jitter;
        self.add_after(key, delay);
        delay
    }

    /// Forgets the failures of `key` (after a success).
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// Consecutive failures of `key`.
    pub fn failures(&self, key: &str) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Keys waiting (ready or delayed), for the queue-depth metric.
    pub fn depth(&self) -> usize {
        let s = self.lock();
        s.ready.len() + s.delayed.len()
    }

    /// Stops handing out keys; workers' `next` returns `None`.
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.wake.notify_waiters();
    }

    /// Waits for the next key; marks it active until [`WorkQueue::done`]. `None` after shutdown.
    ///
    /// Cancel-safe: a key is only taken when this returns it.
    pub async fn next(&self) -> Option<String> {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait_until = {
                let mut s = self.lock();
                if s.shutdown {
                    return None;
                }
                let now = Instant::now();
                let due: Vec<String> = s
                    .delayed
                    .iter()
                    .filter(|(_, t)| **t <= now)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in due {
                    s.delayed.remove(&k);
                    if s.active.contains(&k) {
                        s.dirty.insert(k);
                    } else if s.queued.insert(k.clone()) {
                        s.ready.push_back(k);
                    }
                }
                if let Some(k) = s.ready.pop_front() {
                    s.queued.remove(&k);
                    s.active.insert(k.clone());
                    return Some(k);
                }
                s.delayed.values().min().copied()
            };
            match wait_until {
                Some(t) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(t) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Releases an active key; one added meanwhile is queued again.
    pub fn done(&self, key: &str) {
        let mut s = self.lock();
        s.active.remove(key);
        if s.dirty.remove(key) && s.queued.insert(key.to_string()) {
            s.ready.push_back(key.to_string());
            drop(s);
            self.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn keys_are_deduplicated() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.next().await.as_deref(), Some("a"));
        assert_eq!(q.next().await.as_deref(), Some("b"));
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_active_key_is_not_handed_out_twice() {
        let q = WorkQueue::new();
        q.add("a");
        assert_eq!(q.next().await.as_deref(), Some("a"));
        q.add("a");
        let second = tokio::time::timeout(Duration::from_secs(5), q.next()).await;
        assert!(second.is_err(), "'a' is active: it must wait for done()");
        q.done("a");
        assert_eq!(q.next().await.as_deref(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_and_resets() {
        let q = WorkQueue::new();
        let d1 = q.retry("a");
        let d2 = q.retry("a");
        let d3 = q.retry("a");
        assert!(d1 >= BACKOFF_BASE && d1 <= BACKOFF_BASE.mul_f64(1.25));
        assert!(d2 >= BACKOFF_BASE * 2 && d3 >= BACKOFF_BASE * 4);
        q.forget("a");
        assert_eq!(q.failures("a"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_come_due() {
        let q = WorkQueue::new();
        q.add_after("a", Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(q.next().await.as_deref(), Some("a"));
        assert!(start.elapsed() >= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_releases_waiting_workers() {
        let q = WorkQueue::new();
        let q2 = q.clone();
        let worker = tokio::spawn(async move { q2.next().await });
        tokio::task::yield_now().await;
        q.shutdown();
        assert_eq!(worker.await.ok().flatten(), None);
    }
}
