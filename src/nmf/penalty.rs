//! Elastic-net penalties on W and H, with scikit-learn's definitions and size scaling.
//!
//! The objective is
//! `1/2 ||X - WH||^2 + l1_w sum(W) + l1_h sum(H) + 1/2 l2_w ||W||^2 + 1/2 l2_h ||H||^2` with
//! `l1_w = n alpha_w l1_ratio`, `l2_w = n alpha_w (1 - l1_ratio)` (n = images) and
//! `l1_h = m alpha_h l1_ratio`, `l2_h = m alpha_h (1 - l1_ratio)` (m = pixels). This is
//! scikit-learn's objective (its `NMF` docs) for the transposed problem: scikit-learn's `alpha_H`
//! penalises its `components_`, which is our W, scaled by its `n_samples`, our n; its `alpha_W`
//! penalises our H, scaled by its `n_features`, our m. So `alpha_w` here is scikit-learn's
//! `alpha_H` and `alpha_h` its `alpha_W`.
//!
//! In a factor update the penalties only change the inputs: the L1 term lowers A by `l1`, the L2
//! term raises G's diagonal by `l2` (multiplicative updates add `l1` to the denominator
//! instead, as scikit-learn does).

use ndarray::{Array2, ArrayView2, Zip};

use crate::Float;

/// Scaled penalty weights of one fit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Penalty {
    pub(crate) l1_w: f64,
    pub(crate) l2_w: f64,
    pub(crate) l1_h: f64,
    pub(crate) l2_h: f64,
}

impl Penalty {
    /// Weights for X of m x n.
    pub(crate) fn new(alpha_w: f64, alpha_h: f64, l1_ratio: f64, m: usize, n: usize) -> Self {
        let (m, n) = (m as f64, n as f64);
        Penalty {
            l1_w: n * alpha_w * l1_ratio,
            l2_w: n * alpha_w * (1.0 - l1_ratio),
            l1_h: m * alpha_h * l1_ratio,
            l2_h: m * alpha_h * (1.0 - l1_ratio),
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        *self != Penalty::default()
    }

    /// The penalty terms for W (m x r) and H^T (n x r).
    pub(crate) fn value<T: Float>(&self, w: &ArrayView2<T>, ht: &ArrayView2<T>) -> f64 {
        let sum = |a: &ArrayView2<T>| a.iter().map(|v| v.to_f64()).sum::<f64>();
        let sq = |a: &ArrayView2<T>| a.iter().map(|v| v.to_f64() * v.to_f64()).sum::<f64>();
        let mut total = 0.0;
        if self.l1_w > 0.0 {
            total += self.l1_w * sum(w);
        }
        if self.l1_h > 0.0 {
            total += self.l1_h * sum(ht);
        }
        if self.l2_w > 0.0 {
            total += 0.5 * self.l2_w * sq(w);
        }
        if self.l2_h > 0.0 {
            total += 0.5 * self.l2_h * sq(ht);
        }
        total
    }
}

/// `a_out = a - l1` (unless `keep_a`) and `g_out = g + l2 I`.
pub(crate) fn penalize<T: Float>(
    a: &Array2<T>,
    g: &Array2<T>,
    l1: f64,
    l2: f64,
    keep_a: bool,
    a_out: &mut Array2<T>,
    g_out: &mut Array2<T>,
) {
    if keep_a {
        a_out.assign(a);
    } else {
        let l1 = T::from_f64(l1);
        Zip::from(a_out).and(a).par_for_each(|o, &v| *o = v - l1);
    }
    g_out.assign(g);
    let l2 = T::from_f64(l2);
    g_out.diag_mut().mapv_inplace(|v| v + l2);
}
