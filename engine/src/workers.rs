//! The process's worker threads for CPU work that a caller splits into parts and waits for: a secondary's
//! parallel oplog apply folds each batch's documents here.
//!
//! The threads start once, on first use, and live as long as the process, where starting threads per batch
//! (as `std::thread::scope` does) cost a thread start, a stack and a fresh allocator heap per thread per batch.
//! All members of one process (the in-process simulation) share the pool; a part never waits on another part,
//! so sharing cannot deadlock.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// At most this many threads, whatever the machine reports.
const MAX_THREADS: usize = 8;

struct Pool {
    jobs: Sender<Job>,
    threads: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let wanted = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, MAX_THREADS);
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        // The caller runs one part itself, so one thread fewer than there are parts at most.
        let mut threads = 1;
        for i in 1..wanted {
            let queue = queue.clone();
            match std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || work(&queue))
            {
                Ok(_) => threads += 1,
                Err(err) => tracing::warn!(error = %err, "could not start a worker thread; parts run on fewer threads"),
            }
        }
        Pool { jobs, threads }
    })
}

fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let Ok(queue) = queue.lock() else { return };
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        job();
    }
}

/// How many parts [`map_parts`] runs at once: the threads of the pool, the caller's included.
pub fn parallelism() -> usize {
    pool().threads
}

/// Runs `f` on every part, the first on the calling thread and the others on the pool, and returns the
/// results in the parts' order; `None` if any part panicked.
pub fn map_parts<T, R, F>(parts: Vec<T>, f: F) -> Option<Vec<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> R + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let mut parts = parts.into_iter();
    let Some(first) = parts.next() else {
        return Some(Vec::new());
    };
    let (results, done) = channel::<(usize, R)>();
    let mut sent = 0;
    for (i, part) in parts.enumerate() {
        let (f, results) = (f.clone(), results.clone());
        let job: Job = Box::new(move || {
            // A panicking part drops its sender without a result, which the caller sees as a missing part.
            if let Ok(result) = catch_unwind(AssertUnwindSafe(|| f(part))) {
                let _ = results.send((i + 1, result));
            }
        });
        if pool().jobs.send(job).is_err() {
            return None;
        }
        sent += 1;
    }
    drop(results);
    let first = catch_unwind(AssertUnwindSafe(|| f(first)));
    let mut rest: Vec<Option<R>> = std::iter::repeat_with(|| None).take(sent).collect();
    for (i, result) in done.iter() {
        rest[i - 1] = Some(result);
    }
    let mut out = Vec::with_capacity(sent + 1);
    out.push(first.ok()?);
    for result in rest {
        out.push(result?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_the_order_of_the_parts() {
        let parts: Vec<u64> = (0..20).collect();
        let out = map_parts(parts, |n| {
            // Later parts finish first.
            std::thread::sleep(std::time::Duration::from_micros(20 * (20 - n)));
            n * n
        });
        assert_eq!(out, Some((0..20).map(|n| n * n).collect()));
    }

    #[test]
    fn no_parts_give_no_results() {
        assert_eq!(map_parts(Vec::<u8>::new(), |n| n), Some(Vec::new()));
    }

    #[test]
    fn a_panicking_part_fails_the_call_and_the_pool_keeps_working() {
        let out = map_parts(vec![1, 2, 3, 4], |n| {
            assert!(n != 3, "part three fails");
            n
        });
        assert_eq!(out, None);
        let first_fails = map_parts(vec![0, 1], |n| {
            assert!(n != 0, "the caller's own part fails");
            n
        });
        assert_eq!(first_fails, None);
        assert_eq!(map_parts(vec![5, 6, 7], |n| n + 1), Some(vec![6, 7, 8]));
    }

    #[test]
    fn parts_run_beside_each_other_when_the_machine_has_cores_for_them() {
        if parallelism() < 2 {
            return;
        }
        // Two parts that each wait for the other: they finish only if they run at once.
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let out = map_parts(vec![0, 1], move |n| {
            barrier.wait();
            n
        });
        assert_eq!(out, Some(vec![0, 1]));
    }
}
