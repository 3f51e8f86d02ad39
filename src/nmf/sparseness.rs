//! Hoyer's sparseness constraint: each column of a factor projected onto the vectors of a given
//! sparseness.
//!
//! P. O. Hoyer, "Non-negative matrix factorization with sparseness constraints", JMLR 5, 2004.
//! Sparseness of x in R^d is `(sqrt(d) - ||x||_1 / ||x||_2) / (sqrt(d) - 1)`; the projection
//! keeps a column's L2 norm, sets its L1 norm to the value the target sparseness implies, and
//! finds the nearest nonnegative vector with both norms (Hoyer's algorithm, section 3.2: move to
//! the L1 hyperplane, then along the line from the centre of the current face to the L2 sphere,
//! fixing negative entries at zero until none is left). Used after each update of the factor,
//! as a projected alternating scheme.

use ndarray::{ArrayBase, ArrayViewMut1, Axis, DataMut, Ix2};
use rayon::prelude::*;

use crate::Float;

/// Projects every column of `f` (rows x r) to Hoyer sparseness `target` in [0, 1], keeping each
/// column's L2 norm. Zero columns stay zero.
pub(crate) fn project_columns<T: Float, S: DataMut<Elem = T>>(
    f: &mut ArrayBase<S, Ix2>,
    target: f64,
) {
    f.axis_iter_mut(Axis(1))
        .into_par_iter()
        .for_each(|column| project(column, target));
}

/// Hoyer's projection of one vector, in place, in f64.
fn project<T: Float>(mut x: ArrayViewMut1<T>, target: f64) {
    let d = x.len();
    let l2 = x
        .iter()
        .map(|v| v.to_f64() * v.to_f64())
        .sum::<f64>()
        .sqrt();
    if d < 2 || l2 == 0.0 {
        return;
    }
    let root = (d as f64).sqrt();
    let l1 = l2 * (root - target * (root - 1.0));
    let mut s: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
    let shift = (l1 - s.iter().sum::<f64>()) / d as f64;
    s.iter_mut().for_each(|v| *v += shift);
    let mut zero = vec![false; d];
    for _ in 0..d {
        let free = zero.iter().filter(|z| !**z).count() as f64;
        let centre = |i: usize| if zero[i] { 0.0 } else { l1 / free };
        // s <- m + a (s - m) with a >= 0 such that ||s||_2 = l2.
        let (mut qa, mut qb, mut qc) = (0.0, 0.0, -l2 * l2);
        for (i, &v) in s.iter().enumerate() {
            let (m, diff) = (centre(i), v - centre(i));
            qa += diff * diff;
            qb += 2.0 * m * diff;
            qc += m * m;
        }
        let a = if qa > 0.0 {
            (-qb + (qb * qb - 4.0 * qa * qc).max(0.0).sqrt()) / (2.0 * qa)
        } else {
            0.0
        };
        for (i, v) in s.iter_mut().enumerate() {
            *v = centre(i) + a * (*v - centre(i));
        }
        if s.iter().all(|&v| v >= 0.0) {
            break;
        }
        for (i, v) in s.iter_mut().enumerate() {
            if *v < 0.0 {
                zero[i] = true;
                *v = 0.0;
            }
        }
        let free = zero.iter().filter(|z| !**z).count() as f64;
        let c = (s.iter().sum::<f64>() - l1) / free;
        for (i, v) in s.iter_mut().enumerate() {
            if !zero[i] {
                *v -= c;
            }
        }
    }
    for (out, v) in x.iter_mut().zip(s) {
        *out = T::from_f64(v.max(0.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nmf::hoyer_sparseness;
    use ndarray::Array2;

    #[test]
    fn projection_reaches_the_target_sparseness_and_keeps_the_l2_norm() {
        // Distinct entries: ties among the largest would cap the sparseness a projection can
        // reach without breaking them.
        let mut f = Array2::from_shape_fn((100, 3), |(i, k)| {
            let z = ((i * 3 + k) as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            ((z >> 11) as f64 / (1u64 << 53) as f64) + 0.05
        });
        for target in [0.3, 0.7, 0.9] {
            let mut g = f.clone();
            project_columns(&mut g, target);
            for (before, after) in f.columns().into_iter().zip(g.columns()) {
                let s = hoyer_sparseness(after);
                assert!((s - target).abs() < 1e-6, "target {target}: got {s}");
                let (n0, n1) = (before.dot(&before).sqrt(), after.dot(&after).sqrt());
                assert!((n0 - n1).abs() < 1e-9 * n0);
                assert!(after.iter().all(|&v| v >= 0.0));
            }
        }
        // A vector already at the target is left (nearly) as it is.
        project_columns(&mut f, 0.5);
        let again = {
            let mut g = f.clone();
            project_columns(&mut g, 0.5);
            g
        };
        assert!((&again - &f).iter().all(|d| d.abs() < 1e-9));
    }
}
