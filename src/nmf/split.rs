//! Images split by columns over processes: the few collective operations the loop needs.
//!
//! With the images split over P processes (each holds a contiguous run of columns of X and
//! the same rows of H^T) and W replicated, the H half-step needs nothing from the others, and
//! the W half-step needs the sums `X H^T` and `H H^T` over all processes: one sum of m r + r r
//! numbers per iteration (Kannan, Ballard and Park, "A high-performance parallel algorithm for
//! nonnegative matrix factorization", PPoPP 2016). The start, the restarts of dead components
//! and the final error need a few more sums, each once. Every decision the loop makes is taken
//! from summed values, so every process takes it alike and W stays the same bits everywhere.
//!
//! [`Collective`] is what a process group gives; MPI gives it behind the `mpi` feature
//! (`crate::mpi`), and [`Threads`] gives it to threads of one process, against which the
//! split fit is tested in every build.

use std::sync::{Barrier, Mutex};

/// The processes a fit's images are split over, as the loop needs them. Every process calls
/// each operation in the same order (they are collective), and each returns the same bits on
/// every process.
pub trait Collective: Sync + std::fmt::Debug {
    /// This process's place in the group, `0..size`.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// Replaces `values` (the same length everywhere) with their sum over the processes.
    fn sum(&self, values: &mut [f64]);
    /// Every process's `local` (lengths may differ), concatenated in rank order, on every
    /// process.
    fn gather(&self, local: &[f64]) -> Vec<f64>;
    /// Replaces `values` (the same length everywhere) with process `root`'s.
    fn broadcast(&self, values: &mut [f64], root: usize);
}

/// This process's share of the images: columns `first..first + count` of X (count is what
/// its own images hold) out of `total`.
#[derive(Debug, Clone, Copy)]
pub struct Share<'a> {
    /// The group the images are split over.
    pub group: &'a dyn Collective,
    /// The first column of X this process holds.
    pub first: usize,
    /// The number of images over all processes, n.
    pub total: usize,
}

/// Images a process's share is made of, whole: the HALS kernel decides per group of this many
/// rows of H^T how often to repeat its sweep, so a share of whole groups gives the iterates of
/// one process.
pub const SHARE_GROUP: usize = super::hals::ROW_GROUP;

impl Share<'_> {
    /// The contiguous split of `total` images over `size` processes, in whole groups of
    /// [`SHARE_GROUP`] images (the last process takes the remainder): process `rank`'s
    /// columns. Shares differ by at most one group. Empty when there are fewer groups than
    /// processes: see [`Share::most_processes`].
    pub fn even_range(rank: usize, size: usize, total: usize) -> std::ops::Range<usize> {
        let groups = total.div_ceil(SHARE_GROUP);
        let edge = |p: usize| (p * groups / size * SHARE_GROUP).min(total);
        edge(rank)..edge(rank + 1)
    }

    /// The most processes `total` images can be split over: one group of [`SHARE_GROUP`]
    /// images each, at least.
    pub fn most_processes(total: usize) -> usize {
        total.div_ceil(SHARE_GROUP)
    }
}

/// P threads of one process as a process group: what the split fit is checked against
/// without MPI. Sums are taken in rank order, as [`Collective::sum`] promises the same bits
/// everywhere. Every member must be used by its own thread, all of them at once, and each
/// member's fit must run in a rayon pool of its own (`ThreadPool::install`): a member waiting
/// for the others must not hold a worker thread another member's fit needs.
#[derive(Debug)]
pub struct Threads {
    size: usize,
    slots: Mutex<Vec<Vec<f64>>>,
    barrier: Barrier,
}

/// One thread's handle on a [`Threads`] group.
#[derive(Debug, Clone, Copy)]
pub struct ThreadRank<'a> {
    group: &'a Threads,
    rank: usize,
}

impl Threads {
    /// A group of `size` threads.
    pub fn new(size: usize) -> Self {
        Threads {
            size,
            slots: Mutex::new(vec![Vec::new(); size]),
            barrier: Barrier::new(size),
        }
    }

    /// The handle of member `rank`.
    pub fn member(&self, rank: usize) -> ThreadRank<'_> {
        assert!(rank < self.size, "rank {rank} of a group of {}", self.size);
        ThreadRank { group: self, rank }
    }

    /// Every member's `local`, in rank order, once all have given theirs.
    fn exchange(&self, rank: usize, local: &[f64]) -> Vec<Vec<f64>> {
        self.slots.lock().expect("no member panicked")[rank] = local.to_vec();
        self.barrier.wait();
        let all = self.slots.lock().expect("no member panicked").clone();
        // Nobody writes the next exchange's slot before everyone has read this one.
        self.barrier.wait();
        all
    }
}

impl Collective for ThreadRank<'_> {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.group.size
    }

    fn sum(&self, values: &mut [f64]) {
        let all = self.group.exchange(self.rank, values);
        values.fill(0.0);
        for part in &all {
            values.iter_mut().zip(part).for_each(|(v, p)| *v += p);
        }
    }

    fn gather(&self, local: &[f64]) -> Vec<f64> {
        self.group.exchange(self.rank, local).concat()
    }

    fn broadcast(&self, values: &mut [f64], root: usize) {
        let all = self.group.exchange(self.rank, values);
        values.copy_from_slice(&all[root]);
    }
}
