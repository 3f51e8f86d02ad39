//! Fast projected gradient with Nesterov momentum (FPGM).
//!
//! N. Gillis, *Nonnegative Matrix Factorization*, SIAM 2020, section 8.3 (after Y. Nesterov,
//! "A method for solving the convex programming problem with convergence rate O(1/k^2)", 1983).
//! The subproblem in factor F (p x r), `min_{F >= 0} 1/2 <F G, F> - <A, F>`, is convex with an
//! L-Lipschitz gradient `F G - A`, L = the largest eigenvalue of G. Each inner step is a
//! projected gradient step from an extrapolated point,
//! `F+ = max(0, Y - (Y G - A) / L)`, `Y = F+ + beta (F+ - F)`, with Nesterov's momentum
//! sequence. A step costs one p x r x r product, which runs at GEMM speed; the number of
//! steps follows the same cost rule as the accelerated HALS sweeps.

use ndarray::{Array2, ArrayBase, ArrayViewMut2, Axis, Data, DataMut, Ix2, Zip};

use super::linalg::{matmul_into, view};
use crate::Float;

/// The momentum sequence starts here (Gillis' choice; any value in (0, 1) converges).
const ALPHA0: f64 = 0.05;

/// Rows of scratch space [`update`] needs for a factor of `rows` rows: Y, Y G and F before the
/// step, stacked, and two rows for the power iteration.
pub(crate) fn scratch_rows(rows: usize) -> usize {
    3 * rows + 2
}

/// Updates `f` in place with `steps` FPGM steps. `a` is p x r, `g` r x r; `scratch` has
/// [`scratch_rows`] rows of r columns.
pub(crate) fn update<T: Float, S: DataMut<Elem = T>>(
    f: &mut ArrayBase<S, Ix2>,
    a: &Array2<T>,
    g: &Array2<T>,
    steps: usize,
    scratch: &mut Array2<T>,
) {
    let p = f.nrows();
    let (mut y, rest) = scratch.view_mut().split_at(Axis(0), p);
    let (mut yg, rest) = rest.split_at(Axis(0), p);
    let (mut previous, mut power) = rest.split_at(Axis(0), p);
    let lipschitz = largest_eigenvalue(g, &mut power);
    if lipschitz <= 0.0 {
        return; // The other factor is zero: every F is optimal.
    }
    let inv_l = T::from_f64(1.0 / lipschitz);
    y.assign(f);
    let mut alpha = ALPHA0;
    for _ in 0..steps {
        matmul_into(&mut yg, view(&y.view()), view(&g.view()));
        previous.assign(f);
        Zip::from(&mut *f)
            .and(&y)
            .and(&yg)
            .and(a)
            .par_for_each(|f, &y, &yg, &a| *f = (y - (yg - a) * inv_l).max_of(T::zero()));
        let next = 0.5 * ((alpha.powi(4) + 4.0 * alpha * alpha).sqrt() - alpha * alpha);
        let beta = T::from_f64(alpha * (1.0 - alpha) / (alpha * alpha + next));
        alpha = next;
        extrapolate(&mut y, f, &previous, beta);
    }
}

fn extrapolate<T: Float, S: Data<Elem = T>>(
    y: &mut ArrayViewMut2<T>,
    f: &ArrayBase<S, Ix2>,
    previous: &ArrayViewMut2<T>,
    beta: T,
) {
    Zip::from(y)
        .and(f)
        .and(previous)
        .par_for_each(|y, &new, &old| *y = new + beta * (new - old));
}

/// Largest eigenvalue of a symmetric positive semidefinite matrix (power iteration on the
/// small r x r matrix, from the all-ones vector, to 1e-6 relative change). `vectors` is 2 x r
/// scratch.
fn largest_eigenvalue<T: Float>(g: &Array2<T>, vectors: &mut ArrayViewMut2<T>) -> f64 {
    let r = g.nrows();
    let (mut v, mut w) = vectors.view_mut().split_at(Axis(0), 1);
    v.fill(T::from_f64(1.0 / (r as f64).sqrt()));
    let mut lambda = 0.0;
    for _ in 0..200 {
        let mut norm = 0.0;
        for (i, wi) in w.iter_mut().enumerate() {
            let value: f64 = (0..r)
                .map(|j| g[[i, j]].to_f64() * v[[0, j]].to_f64())
                .sum();
            norm += value * value;
            *wi = T::from_f64(value);
        }
        let norm = norm.sqrt();
        if norm == 0.0 {
            return 0.0;
        }
        let converged = (norm - lambda).abs() <= 1e-6 * norm;
        lambda = norm;
        let inv = T::from_f64(1.0 / norm);
        Zip::from(&mut v).and(&w).for_each(|v, &w| *v = w * inv);
        if converged {
            break;
        }
    }
    // A slight overestimate keeps the step safely within 1/L.
    lambda * (1.0 + 1e-6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn largest_eigenvalue_of_a_known_matrix() {
        // eigenvalues of [[2, 1], [1, 2]] are 3 and 1
        let mut scratch = Array2::<f64>::zeros((2, 2));
        let l = largest_eigenvalue(&array![[2.0f64, 1.0], [1.0, 2.0]], &mut scratch.view_mut());
        assert!((l - 3.0).abs() < 1e-4, "{l}");
        let mut scratch = Array2::<f64>::zeros((2, 3));
        assert_eq!(
            largest_eigenvalue(&Array2::<f64>::zeros((3, 3)), &mut scratch.view_mut()),
            0.0
        );
    }

    #[test]
    fn fpgm_solves_a_small_nonnegative_least_squares_problem() {
        // min_{f >= 0} 1/2 f G f^T - a f^T with G = diag(2, 1), a = (4, -1): f = (2, 0).
        let mut f = array![[0.5f64, 0.5]];
        let a = array![[4.0, -1.0]];
        let g = array![[2.0, 0.0], [0.0, 1.0]];
        let mut scratch = Array2::zeros((scratch_rows(1), 2));
        update(&mut f, &a, &g, 200, &mut scratch);
        assert!((f[[0, 0]] - 2.0).abs() < 1e-6 && f[[0, 1]] == 0.0, "{f}");
    }
}
