//! Checking inputs on worker threads, the calling thread among them: a list known in advance
//! ([`run_parallel`]), or inputs handed over while a lister is still finding them
//! ([`run_listed`]). Each input is checked on its own; a bug that panics while checking one
//! becomes an error reported for that input, not a lost file or a dead run.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use super::{Checked, Input, Options, Reader, check_input, unreadable};
use crate::manifest::load::{Listed, list_inputs};

/// Inputs the lister hands over at once (one lock and one wake-up per batch, not per file).
const BATCH: usize = 64;

/// How many threads check (the calling one included).
fn threads(options: &Options) -> usize {
    match options.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
    .max(1)
}

/// Checks one input; a panic (a bug) becomes an error reported for it.
fn check_guarded(
    input: &Input,
    options: &Options,
    reader: Reader,
    buffer: &mut Vec<u8>,
) -> Checked {
    catch_unwind(AssertUnwindSafe(|| {
        check_input(input, options, reader, buffer)
    }))
    .unwrap_or_else(|_| Checked {
        report: unreadable(&input.name(), "internal error while checking it"),
        ..Checked::default()
    })
}

/// Checks every input of a known list; results in input order.
pub(super) fn run_parallel(inputs: &[Input], options: &Options, reader: Reader) -> Vec<Checked> {
    let threads = threads(options).min(inputs.len()).max(1);
    let next = AtomicUsize::new(0);
    let next = &next;
    // Each worker takes the next input until none is left.
    let work = move || {
        let mut done = Vec::new();
        let mut buffer = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(input) = inputs.get(i) else {
                break;
            };
            done.push((i, check_guarded(input, options, reader, &mut buffer)));
        }
        done
    };
    let mut results: Vec<(usize, Checked)> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut all = work();
        for helper in helpers {
            all.extend(helper.join().unwrap_or_default());
        }
        all
    });
    results.sort_by_key(|(i, _)| *i);
    // A worker that died (it cannot: each check is guarded) would lose its files: report
    // them rather than drop them silently.
    let mut out: Vec<Checked> = Vec::with_capacity(inputs.len());
    let mut results = results.into_iter().peekable();
    for (i, input) in inputs.iter().enumerate() {
        match results.next_if(|(j, _)| *j == i) {
            Some((_, checked)) => out.push(checked),
            None => out.push(Checked {
                report: unreadable(
                    &input.name(),
                    "internal error: the worker checking it failed",
                ),
                ..Checked::default()
            }),
        }
    }
    out
}

/// Inputs on their way from the lister to the workers.
struct Feed {
    state: Mutex<FeedState>,
    ready: Condvar,
}

struct FeedState {
    queue: VecDeque<Listed>,
    /// The lister has finished.
    closed: bool,
}

impl Feed {
    /// Hands `batch` over (leaving it empty).
    fn push(&self, batch: &mut Vec<Listed>) {
        if batch.is_empty() {
            return;
        }
        if let Ok(mut state) = self.state.lock() {
            state.queue.extend(batch.drain(..));
        }
        self.ready.notify_all();
    }

    /// No more inputs will come.
    fn close(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.closed = true;
        }
        self.ready.notify_all();
    }

    /// The next input, waiting for the lister if needed; `None` once all are taken.
    fn next(&self) -> Option<Listed> {
        let mut state = self.state.lock().ok()?;
        loop {
            if let Some(item) = state.queue.pop_front() {
                return Some(item);
            }
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).ok()?;
        }
    }
}

/// Lists `paths` on the calling thread while the other workers check what it has found so
/// far, then checks along with them. Results in the order of
/// [`crate::manifest::load::expand_paths`].
pub(super) fn run_listed(
    paths: &[PathBuf],
    recursive: bool,
    options: &Options,
) -> (Vec<Input>, Vec<Checked>) {
    let feed = Feed {
        state: Mutex::new(FeedState {
            queue: VecDeque::new(),
            closed: false,
        }),
        ready: Condvar::new(),
    };
    let feed = &feed;
    let work = move || {
        let mut done = Vec::new();
        let mut buffer = Vec::new();
        while let Some(item) = feed.next() {
            let checked = check_guarded(&item.input, options, Reader::first(options), &mut buffer);
            done.push((item, checked));
        }
        done
    };
    let mut results: Vec<(Listed, Checked)> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads(options)).map(|_| scope.spawn(work)).collect();
        let mut batch = Vec::with_capacity(BATCH);
        list_inputs(paths, recursive, &mut |item| {
            batch.push(item);
            if batch.len() >= BATCH {
                feed.push(&mut batch);
            }
        });
        feed.push(&mut batch);
        feed.close();
        let mut all = work();
        for helper in helpers {
            all.extend(helper.join().unwrap_or_default());
        }
        all
    });
    results.sort_by_cached_key(|(listed, _)| listed.order_key());
    results
        .into_iter()
        .map(|(listed, checked)| (listed.input, checked))
        .unzip()
}
