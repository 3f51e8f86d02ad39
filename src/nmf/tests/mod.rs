//! The engine's tests, by topic, and the seeded data they share.

mod checkpoints;
mod invariants;
mod online;
mod options;
mod projection;
mod references;
mod split;
mod validation;

use ndarray::Array2;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::nmf::*;

pub(super) fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A nonnegative m x n matrix of exact rank r: W0 with about a third zeros, H0 dense.
pub(super) fn low_rank(m: usize, n: usize, r: usize, seed: u64) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w0 = Array2::from_shape_simple_fn((m, r), || {
        let v = uniform(&mut rng);
        if v < 0.33 { 0.0 } else { v }
    });
    let h0 = Array2::from_shape_simple_fn((r, n), || uniform(&mut rng));
    w0.dot(&h0)
}

pub(super) fn noisy(m: usize, n: usize, seed: u64) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    low_rank(m, n, 8, seed) + Array2::from_shape_simple_fn((m, n), || 0.3 * uniform(&mut rng))
}

/// `b` made the iterates of `a`: as many iterations and restarts, and every iteration's
/// relative error, and the final one, equal to 1e-9.
pub(super) fn assert_same_iterates<T>(a: &Factorization<T>, b: &Factorization<T>, label: &str) {
    assert_eq!(a.n_iter, b.n_iter, "{label}");
    assert_eq!(a.restarts, b.restarts, "{label}");
    for (x, y) in a.history.iter().zip(&b.history) {
        assert!(
            (x.rel_error - y.rel_error).abs() <= 1e-9 * x.rel_error,
            "{label} at iteration {}: {} against {}",
            x.iter,
            x.rel_error,
            y.rel_error
        );
    }
    assert!(
        (a.rel_error - b.rel_error).abs() <= 1e-9 * a.rel_error,
        "{label}"
    );
}

pub(super) const ALL_SOLVERS: [Solver; 5] = [
    Solver::Hals,
    Solver::Cd,
    Solver::Mu,
    Solver::Fpgm,
    Solver::Anls,
];
pub(super) const ALL_INITS: [Init; 5] = [
    Init::Nndsvd,
    Init::Nndsvda,
    Init::Nndsvdar,
    Init::Random,
    Init::Spa,
];

/// The fixed small problem of the elastic-net tests.
pub(super) fn small_problem() -> (Array2<f64>, Array2<f64>, Array2<f64>) {
    let x = Array2::from_shape_fn((6, 5), |(i, j)| ((i * 7 + j * 3) % 11) as f64 / 11.0 + 0.1);
    let w = Array2::from_shape_fn((6, 2), |(i, k)| ((i + 2 * k) % 5) as f64 / 5.0 + 0.2);
    let h = Array2::from_shape_fn((2, 5), |(k, j)| ((3 * k + j) % 4) as f64 / 4.0 + 0.3);
    (x, w, h)
}

/// 60 images of 24 x 24, each a random mix of three smooth blobs, plus a little noise:
/// images a multilevel start can see at half resolution.
pub(super) fn smooth_images(seed: u64) -> Array2<f64> {
    smooth_images_n(seed, 60)
}

/// `n` images of 24 x 24 pixels, each a mix of three smooth blobs with a little noise.
pub(super) fn smooth_images_n(seed: u64, n: usize) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres = [(6.0, 7.0), (12.0, 17.0), (18.0, 9.0)];
    let blob = |p: usize, (cy, cx): (f64, f64)| {
        let (y, x) = ((p / 24) as f64, (p % 24) as f64);
        (-((y - cy) * (y - cy) + (x - cx) * (x - cx)) / 18.0).exp()
    };
    let h0 = Array2::from_shape_simple_fn((3, n), || uniform(&mut rng));
    let w0 = Array2::from_shape_fn((576, 3), |(p, k)| blob(p, centres[k]));
    w0.dot(&h0) + Array2::from_shape_simple_fn((576, n), || 0.01 * uniform(&mut rng))
}
