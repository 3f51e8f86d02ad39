//! Projection: the coefficients of new images on a fixed basis W, by nonnegative least squares
//! with the fit's penalty on H,
//! `min_{h >= 0} 1/2 ||x - W h||^2 + l1 sum(h) + 1/2 l2 ||h||^2` for every image x.
//!
//! Never a pseudo-inverse (its coefficients go negative and a part would be subtracted). Each
//! image's problem is solved exactly by block principal pivoting (Kim & Park 2011, the ANLS
//! kernel, without its proximal term), then checked against the KKT conditions: the projected
//! gradient, relative to the gradient at h = 0, must be at most the tolerance. An image that
//! misses it (rounding in an ill-conditioned W^T W) is refined by coordinate descent sweeps in
//! f64 until it meets it; the sweeps are counted.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::anls;
use super::linalg::{TallProduct, column_errors};
use super::penalty::Penalty;
use crate::{Error, Float, Result};

/// The default tolerance on the relative projected gradient.
pub const PROJECT_TOL: f64 = 1e-6;
/// Most coordinate descent sweeps of the refinement, per image.
const MAX_SWEEPS: usize = 10_000;

/// The coefficients of images on a fixed basis, and how well they were found.
#[derive(Debug, Clone)]
pub struct Projection<T> {
    /// H, r x n: the coefficients of image j in column j.
    pub h: Array2<T>,
    /// `||x_j - W h_j|| / ||x_j||` for each image (0 for a blank one).
    pub rel_errors: Vec<f64>,
    /// `||X - W H||_F / ||X||_F`.
    pub rel_error: f64,
    /// The largest relative projected gradient over the images (the KKT measure).
    pub kkt: f64,
    /// The tolerance asked for.
    pub tol: f64,
    /// Images refined by coordinate descent after the exact solve.
    pub refined: usize,
    /// Coordinate descent sweeps of the refinement, summed over the images.
    pub sweeps: usize,
}

/// Projects the images X (m x n, one per column) onto the basis W (m x r) with an elastic-net
/// penalty on H (`alpha_h`, `l1_ratio` as in [`crate::Nmf::alpha_h`], scaled by the m pixels)
/// to a relative projected gradient of at most `tol`.
///
/// # Errors
/// Shapes that do not match; negative or non-finite entries in X or W; a W with a zero column
/// or no columns; a negative or NaN `tol`; penalties out of range; and images the refinement
/// could not bring to `tol` within its sweeps.
pub fn project<T: Float>(
    w: &ArrayView2<T>,
    x: &ArrayView2<T>,
    alpha_h: f64,
    l1_ratio: f64,
    tol: f64,
) -> Result<Projection<T>> {
    let (m, r) = w.dim();
    let n = x.ncols();
    if x.nrows() != m {
        return Err(Error::InvalidInput {
            reason: format!(
                "the images have {} pixels, the basis {m}; resize them to the model's size",
                x.nrows()
            ),
        });
    }
    if r == 0 || n == 0 {
        return Err(Error::InvalidInput {
            reason: "nothing to project: no basis images or no images".into(),
        });
    }
    if tol.is_nan() || tol < 0.0 {
        return Err(Error::param("tol", format!("{tol} must be 0 or more")));
    }
    let valid = alpha_h.is_finite() && alpha_h >= 0.0 && (0.0..=1.0).contains(&l1_ratio);
    if !valid {
        return Err(Error::param(
            "alpha_h",
            format!("alpha_h {alpha_h} and l1_ratio {l1_ratio} must be >= 0 and in [0, 1]"),
        ));
    }
    let bad = |a: &ArrayView2<T>| {
        a.axis_iter(Axis(0)).into_par_iter().any(|row| {
            row.iter()
                .any(|v| !(v.to_f64() >= 0.0 && v.to_f64().is_finite()))
        })
    };
    if bad(x) || bad(w) {
        return Err(Error::InvalidInput {
            reason: "the images and the basis must be finite and nonnegative".into(),
        });
    }
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let (x, w) = (x.view(), w.view());
    // G = W^T W + l2 I and A = X^T W - l1 (n x r), the inputs of every image's problem.
    let mut g = Array2::<T>::zeros((r, r));
    TallProduct::new(r, r).compute(&mut g, &w, &w);
    if let Some(k) = (0..r).find(|&k| g[[k, k]] <= T::zero()) {
        return Err(Error::InvalidInput {
            reason: format!(
                "basis image {k} is all zero; a model with an empty part cannot project"
            ),
        });
    }
    let mut a = Array2::<T>::zeros((n, r));
    TallProduct::new(n, r).compute(&mut a, &x, &w);
    let penalty = Penalty::new(0.0, alpha_h, l1_ratio, m, n);
    let (l1, l2) = (penalty.l1_h, penalty.l2_h);
    if l1 > 0.0 {
        let l1 = T::from_f64(l1);
        a.mapv_inplace(|v| v - l1);
    }
    if l2 > 0.0 {
        let l2 = T::from_f64(l2);
        g.diag_mut().mapv_inplace(|v| v + l2);
    }
    let mut ht = Array2::<T>::zeros((n, r));
    anls::update(
        ht.as_slice_mut().expect("standard layout"),
        a.as_slice().expect("standard layout"),
        g.as_slice().expect("standard layout"),
        r,
        0.0,
    );
    // Check each image's KKT conditions in f64; refine those that miss the tolerance.
    let g64 = g.mapv(|v| v.to_f64());
    let outcomes: Vec<(f64, usize)> = ht
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(a.axis_iter(Axis(0)).into_par_iter())
        .map(|(mut h_row, a_row)| {
            let a64: Vec<f64> = a_row.iter().map(|v| v.to_f64()).collect();
            let mut h64: Vec<f64> = h_row.iter().map(|v| v.to_f64()).collect();
            let mut measure = relative_projected_gradient(&g64, &a64, &h64);
            let mut sweeps = 0;
            while measure > tol && sweeps < MAX_SWEEPS {
                coordinate_sweep(&g64, &a64, &mut h64);
                sweeps += 1;
                if sweeps % 8 == 0 || sweeps == MAX_SWEEPS {
                    measure = relative_projected_gradient(&g64, &a64, &h64);
                }
            }
            if sweeps > 0 {
                h_row
                    .iter_mut()
                    .zip(&h64)
                    .for_each(|(h, &v)| *h = T::from_f64(v));
                // Measured again as returned, in T.
                let h_t: Vec<f64> = h_row.iter().map(|v| v.to_f64()).collect();
                measure = relative_projected_gradient(&g64, &a64, &h_t);
            }
            (measure, sweeps)
        })
        .collect();
    let kkt = outcomes.iter().map(|o| o.0).fold(0.0, f64::max);
    if kkt > tol {
        let worst = outcomes.iter().position(|o| o.0 == kkt).unwrap_or_default();
        return Err(Error::InvalidInput {
            reason: format!(
                "image {worst} could not be projected to the tolerance {tol:e} (reached {kkt:e} \
                 after {MAX_SWEEPS} sweeps); a looser tolerance, or f64, would do"
            ),
        });
    }
    let refined = outcomes.iter().filter(|o| o.1 > 0).count();
    let sweeps = outcomes.iter().map(|o| o.1).sum();
    let h = ht.t().as_standard_layout().into_owned();
    let (rel_errors, rel_error) = column_errors(&x, &w, &h.view());
    Ok(Projection {
        h,
        rel_errors,
        rel_error,
        kkt,
        tol,
        refined,
        sweeps,
    })
}

/// `||P(grad)|| / ||grad(0)||` for `1/2 h^T G h - a^T h` over h >= 0: the projected gradient
/// is the gradient where h > 0 and its negative part where h = 0. 0 when the gradient at 0
/// already points out of the orthant (h = 0 is the answer).
fn relative_projected_gradient(g: &Array2<f64>, a: &[f64], h: &[f64]) -> f64 {
    let r = a.len();
    let (mut pg, mut g0) = (0.0, 0.0);
    for k in 0..r {
        let grad: f64 = (0..r).map(|l| g[[k, l]] * h[l]).sum::<f64>() - a[k];
        let projected = if h[k] > 0.0 { grad } else { grad.min(0.0) };
        pg += projected * projected;
        let at_zero = (-a[k]).min(0.0);
        g0 += at_zero * at_zero;
    }
    if g0 == 0.0 { 0.0 } else { (pg / g0).sqrt() }
}

/// One sweep of exact coordinate minimisation (HALS on one image).
fn coordinate_sweep(g: &Array2<f64>, a: &[f64], h: &mut [f64]) {
    let r = a.len();
    for k in 0..r {
        let grad: f64 = (0..r).map(|l| g[[k, l]] * h[l]).sum::<f64>() - a[k];
        h[k] = (h[k] - grad / g[[k, k]]).max(0.0);
    }
}
