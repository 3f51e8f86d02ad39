//! The iteration loop allocates nothing: every buffer is made once per fit.
//!
//! A counting global allocator (this test binary only) records allocations between the
//! progress callback of iteration 2 and that of the last iteration.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use facenmf::{Nmf, Solver};
use ndarray::Array2;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// faer's matrix product makes a few small bookkeeping allocations per call (about 100 bytes
/// each, independent of the sizes); a per-iteration buffer would be at least one factor.
const SMALL: usize = 16 * 1024;

#[test]
fn iterations_allocate_no_buffers() {
    // Factors of 3000 x 12 and 1500 x 12 f32 (144 and 72 KB): any buffer made per iteration
    // would exceed the allowance many times over.
    let (m, n, r) = (3000, 1500, 12);
    let x = Array2::from_shape_fn((m, n), |(i, j)| {
        ((i * 7 + j * 13) % 29) as f32 / 29.0 + 0.01
    });
    for (label, params) in [
        ("hals", Nmf::params(r)),
        ("hals, no extrapolation", Nmf::params(r).extrapolate(false)),
        ("cd", Nmf::params(r).solver(Solver::Cd)),
        ("mu", Nmf::params(r).solver(Solver::Mu)),
        // Its row solvers use one workspace per thread, made on the first iteration.
        ("anls", Nmf::params(r).solver(Solver::Anls)),
        // Not fpgm: its p x r x r products go through faer, which packs the p x r operand into
        // a buffer it allocates on every call (about one factor's size).
    ] {
        let mut at = [0usize; 2];
        let iters = 12;
        params
            .max_iter(iters)
            .tol(0.0)
            .fit_with(&x.view(), |it| {
                if it.iter == 2 {
                    at[0] = BYTES.load(Ordering::Relaxed);
                } else if it.iter == iters {
                    at[1] = BYTES.load(Ordering::Relaxed);
                }
            })
            .unwrap();
        let per_iteration = (at[1] - at[0]) / (iters - 2);
        assert!(
            per_iteration < SMALL,
            "{label}: {per_iteration} bytes allocated per iteration"
        );
    }
}
