//! The pool's other threads kept awake while a fit runs.
//!
//! An iteration is a dozen parallel regions (products, sweeps, the extrapolation's steps, the
//! error) with short serial stretches between them. A rayon worker that finds no work yields
//! about 33 times, some 50 us here, then sleeps on a futex, and the next region must wake it: on
//! these virtual machines that took as long as the region itself. A CBCL sample's X^T W
//! (608 x 361 x 49) on two threads took 73 us back to back, 112-122 us with 50-200 us of serial
//! work before each (one thread: 115 us); Olivetti's half resolution (400 x 1024 x 49) 141 us
//! back to back, 259 us after 200 us (one thread: 209 us). So while a fit runs, each other thread
//! of the pool runs a job that looks for work without sleeping ([`rayon::yield_now`] executes
//! whatever is queued), and returns when the fit ends. A spinning thread holds a core, which is
//! what the fit wants of it; OpenMP runtimes likewise spin between parallel regions. The
//! iterates are the same bits. Time to E of `facenmf learn` in fresh processes, medians
//! alternating with the build before: CBCL 21.3 -> 18.6 ms, Olivetti 23.6 -> 21.6 ms (21
//! rounds each), ORL 39.1 -> 36.6 ms (11); whole-command wall time unchanged.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A spinning job gives its thread back this often (and queues its successor), so that a job
/// it was started beneath (rayon runs queued jobs while a thread waits) goes on: two fits run at
/// once from two threads could otherwise each wait under a spinner of the other's.
const SLICE: Duration = Duration::from_millis(1);

thread_local! {
    /// This thread is spinning (a spinner found queued beneath it returns at once).
    static SPINNING: Cell<bool> = const { Cell::new(false) };
}

/// While alive, every other thread of the current rayon pool looks for work without sleeping.
#[derive(Debug)]
pub(crate) struct KeepAwake {
    shared: Arc<Shared>,
}

/// What the fit and its spinning jobs share.
#[derive(Debug)]
struct Shared {
    /// The fit's own thread: a spinner there would hold up the fit.
    fit_thread: usize,
    stop: AtomicBool,
    /// Threads spinning now (for the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    spinning: AtomicUsize,
}

impl KeepAwake {
    /// Starts keeping the pool awake, when called on one of its workers (the fit's thread) and
    /// the pool has at least two threads and no more than the cores (more, and a spinning
    /// thread would take a core from one with work).
    pub(crate) fn start() -> Option<Self> {
        let fit_thread = rayon::current_thread_index()?;
        let threads = rayon::current_num_threads();
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        if threads < 2 || threads > cores {
            return None;
        }
        let shared = Arc::new(Shared {
            fit_thread,
            stop: AtomicBool::new(false),
            spinning: AtomicUsize::new(0),
        });
        for _ in 1..threads {
            let shared = Arc::clone(&shared);
            rayon::spawn(move || spin(shared));
        }
        Some(KeepAwake { shared })
    }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// One slice of spinning on this thread, then the next one queued.
fn spin(shared: Arc<Shared>) {
    if shared.stop.load(Ordering::Relaxed) {
        return;
    }
    if rayon::current_thread_index() == Some(shared.fit_thread) {
        // Taken by the fit's thread while it waits inside a parallel region: queued again for
        // another thread to take.
        rayon::spawn(move || spin(shared));
        return;
    }
    if SPINNING.get() {
        // Beneath this thread's own spinner, which goes on when this job's caller is done.
        return;
    }
    SPINNING.set(true);
    shared.spinning.fetch_add(1, Ordering::Relaxed);
    let until = Instant::now() + SLICE;
    while !shared.stop.load(Ordering::Relaxed) && Instant::now() < until {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::hint::spin_loop();
        }
    }
    shared.spinning.fetch_sub(1, Ordering::Relaxed);
    SPINNING.set(false);
    rayon::spawn(move || spin(shared));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `done` for up to ten seconds (a liveness bound, not a timing).
    fn eventually(done: impl Fn() -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        done()
    }

    #[test]
    fn only_a_worker_of_a_pool_of_several_threads_keeps_it_awake() {
        // Not from a thread outside the pool, nor in a pool of one thread.
        assert!(KeepAwake::start().is_none());
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert!(one.install(KeepAwake::start).is_none());
    }

    #[test]
    fn the_other_thread_spins_while_it_lives_and_stops_when_it_is_dropped() {
        if std::thread::available_parallelism().map_or(1, |c| c.get()) < 2 {
            eprintln!("SKIPPED: one core here; a pool of two threads would not be kept awake");
            return;
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let shared = pool.install(|| {
            let awake = KeepAwake::start().expect("a worker of a pool of two threads");
            let shared = Arc::clone(&awake.shared);
            // The fit's thread is busy here, so the other one takes the job.
            assert!(eventually(|| shared.spinning.load(Ordering::Relaxed) == 1));
            // Work queued meanwhile is still done (the spinning thread runs it, or this one).
            assert_eq!(rayon::join(|| 1, || 2), (1, 2));
            drop(awake);
            shared
        });
        assert!(eventually(|| shared.spinning.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn a_fit_kept_awake_makes_the_same_bits_as_one_left_to_sleep() {
        let x = crate::nmf::tests::noisy(64, 300, 7).mapv(|v| v as f32);
        let params = crate::Nmf::params(6).image_shape(8, 8).max_iter(40).seed(3);
        // From this thread, outside the pool, the fit keeps the pool awake; from one of the
        // workers of a pool of as many threads, it does not.
        let awake = params.fit(&x.view()).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(rayon::current_num_threads())
            .build()
            .unwrap();
        let asleep = pool.install(|| params.fit(&x.view())).unwrap();
        assert_eq!(awake.n_iter, asleep.n_iter);
        assert_eq!(awake.rel_error.to_bits(), asleep.rel_error.to_bits());
        assert_eq!(awake.w, asleep.w);
        assert_eq!(awake.h.to_owned(), asleep.h.to_owned());
    }

    #[test]
    fn fits_from_several_threads_at_once_all_end() {
        // Each keeps the shared pool awake; their spinners may be taken by each other's
        // threads while they wait, and must give those threads back.
        let x = crate::nmf::tests::noisy(64, 300, 11).mapv(|v| v as f32);
        let params = crate::Nmf::params(6).image_shape(8, 8).max_iter(40);
        let alone = params.fit(&x.view()).unwrap();
        std::thread::scope(|s| {
            let fits: Vec<_> = (0..4).map(|_| s.spawn(|| params.fit(&x.view()))).collect();
            for fit in fits {
                let fit = fit.join().unwrap().unwrap();
                assert_eq!(fit.rel_error.to_bits(), alone.rel_error.to_bits());
            }
        });
    }
}
