//! Dead components and their restart.
//!
//! A component whose basis image or coefficient row is zero (or contributes less than rounding
//! to W H) is a saddle the updates cannot leave: the gradient of each of its two factors is a
//! multiple of the other, zero. HALS and ANLS set entries to exact zeros, and in f32 a shrinking
//! component reaches them where f64 keeps a denormal from which the next update recovers; an
//! NNDSVD start beyond the numerical rank of X (the swimmer's 13 at rank 17) begins with such
//! components.
//!
//! Here a dead component k restarts as the positive part of the residual of the image worst
//! explained, `W[:, k] = max(0, x_j - W h_j)`, and each image's coefficient on it is its
//! least-squares value given the others, `max(0, r_i^T w_k) / ||w_k||^2`: the error can only
//! fall, every image whose residual points the same way takes a share, and a multiplicative
//! update (which cannot leave a zero) starts from nonzero coefficients. Flooring the component
//! at a tiny constant, as Gillis' codes do, was tried first and fails on sparse data: where
//! W H overshoots the background, every image's residual sums to less than zero and the
//! component died again at once (34 restarts in 34 iterations on the swimmer). One component
//! per iteration, each seeing the residual the previous one left. A budget bounds the
//! restarts, so that a component the data has no use for (an over-complete rank) does not
//! restart for ever; finding the worst image costs one product W H, about one iteration, so
//! the budget also bounds the cost.
//!
//! A local minimum where nothing is dead is the other trap. Two components may converge to one
//! basis image while a third mixes two parts (multiplicative updates at the swimmer's exact
//! rank, f32); or several components may each hold a little of one part, and two of them mix
//! two parts each, with no pair alike (the same in f64: least cosine 0.553, relative error
//! 0.167). So when the fit stalls, before it stops, an escape is tried: a pair of basis
//! images at cosine >= [`DUPLICATE`] is merged into the one with the larger share; with no
//! such pair, the component with the least share of W H is cleared (a mix holds less than
//! the parts it mixes: on that f64 minimum the two least shares were the two mixes). The
//! freed component restarts as a dead one does, and the change is kept only if the fit's loss
//! falls; a refused escape stops the fit where it stalled. On the f64 minimum the first
//! escape took the squared error from 440.6 to 413.9 at once and to 346.9 at the next stall,
//! the second to 198.2, with every part found (0.969); the third raised it and was refused.

use ndarray::{Array1, Array2, ArrayBase, ArrayView2, Axis, DataMut, Ix2, Zip};
use rayon::prelude::*;

use super::blocks::Images;
use super::linalg::column_norms_sq;
use super::spill::RowsFile;
use crate::{Error, Float, Result};

/// How many restarts a fit may make, per component of its rank.
const RESTARTS_PER_COMPONENT: usize = 2;

/// The restarts of one fit.
#[derive(Debug)]
pub(crate) struct Revival {
    budget: usize,
    /// An escape from a stall was tried and did not lower the error: none is tried again.
    escape_refused: bool,
    /// Restarts made so far.
    pub(crate) count: usize,
}

impl Revival {
    /// The budget for a fit of rank `rank`.
    pub(crate) fn new(rank: usize) -> Self {
        Revival {
            budget: RESTARTS_PER_COMPONENT * rank,
            escape_refused: false,
            count: 0,
        }
    }

    /// What a checkpoint keeps: the restarts made and whether an escape was refused.
    pub(crate) fn state(&self) -> (usize, bool) {
        (self.count, self.escape_refused)
    }

    /// The bookkeeping [`Revival::state`] saved, for a fit of rank `rank`.
    pub(crate) fn restored(rank: usize, (count, escape_refused): (usize, bool)) -> Self {
        Revival {
            count,
            escape_refused,
            ..Revival::new(rank)
        }
    }

    /// Restarts the first dead component of W (m x r) and H^T (n x r) from X (m x n), if there
    /// is one and the budget allows; returns whether it did.
    pub(crate) fn revive<T: Float, S: DataMut<Elem = T>>(
        &mut self,
        x: &Images<'_, T>,
        w: &mut Array2<T>,
        ht: &mut ArrayBase<S, Ix2>,
    ) -> bool {
        if self.count >= self.budget {
            return false;
        }
        let Some(k) = first_dead(x, w, &ht.view()) else {
            return false;
        };
        if !restart(x, w, ht, k) {
            return false;
        }
        self.count += 1;
        true
    }

    /// Whether [`Revival::escape`] may still act: asked when the fit has stalled, before it
    /// stops.
    pub(crate) fn can_escape(&self) -> bool {
        !self.escape_refused && self.count < self.budget
    }

    /// Tries to leave a stall that is not a minimum of the parts: merges the two most alike
    /// components of W if their cosine is at least [`DUPLICATE`] (a part held twice), else
    /// clears the component with the least share of W H (a mixed one); either way the freed
    /// component restarts as [`Revival::revive`] restarts a dead one. The change is kept
    /// only if it lowers `loss` (the fit's loss of X given W and H^T); a refused one leaves W
    /// and H as they were and ends the escapes. A kept one counts against the budget.
    /// Returns whether it kept one.
    ///
    /// # Errors
    /// H^T, kept in a file beside streamed images while the escape is tried, cannot be read
    /// back (a full disk, say).
    pub(crate) fn escape<T: Float, S: DataMut<Elem = T>>(
        &mut self,
        x: &Images<'_, T>,
        w: &mut Array2<T>,
        ht: &mut ArrayBase<S, Ix2>,
        mut loss: impl FnMut(&Array2<T>, &ArrayView2<'_, T>) -> f64,
    ) -> Result<bool> {
        if !self.can_escape() {
            return Ok(false);
        }
        let (w_norms, mut h_norms) = (column_norms_sq(w), x.h_column_norms_sq(&ht.view()));
        x.sum(&mut h_norms);
        let share = |k: usize| w_norms[k] * h_norms[k];
        let before = (w.clone(), Saved::save(x, &ht.view()));
        let loss_before = loss(w, &ht.view());
        let free = match most_alike(w) {
            Some((a, b)) => {
                // The kept component is the one with the larger share of W H: on the swimmer
                // keeping the other made the error rise (500 against 478) where this lowers
                // it (440).
                let (keep, free) = if share(a) >= share(b) { (a, b) } else { (b, a) };
                move_share(x, w, ht, keep, free);
                free
            }
            // A mixed component holds less than the parts it mixes: at the local minimum of
            // multiplicative updates on the swimmer (rank 17, f64) the two least shares are
            // the two components that mix arm and leg positions (see the module's doc).
            None => (0..w.ncols())
                .min_by(|&a, &b| share(a).total_cmp(&share(b)))
                .expect("a fit has a component"),
        };
        x.h_pieces_mut(ht, |_, mut rows| rows.column_mut(free).fill(T::zero()));
        w.column_mut(free).fill(T::zero());
        if restart(x, w, ht, free) && loss(w, &ht.view()) < loss_before {
            self.count += 1;
            return Ok(true);
        }
        *w = before.0;
        before.1.restore(x, ht)?;
        self.escape_refused = true;
        Ok(false)
    }
}

/// H^T as it was before an escape, to put back if it is refused: in a file beside streamed
/// images (`spill.rs`; a second H in memory would be 39 MB at 200,000 faces), else in memory.
enum Saved<T> {
    Memory(Array2<T>),
    File(RowsFile<T>),
}

impl<T: Float> Saved<T> {
    fn save(x: &Images<'_, T>, ht: &ArrayView2<'_, T>) -> Self {
        match x.scratch() {
            Some(dir) => match RowsFile::holding(dir, ht, x.release()) {
                Ok(file) => Saved::File(file),
                // As the extrapolation's copies: where the folder cannot take it, memory.
                Err(_) => Saved::Memory(ht.to_owned()),
            },
            None => Saved::Memory(ht.to_owned()),
        }
    }

    fn restore<S: DataMut<Elem = T>>(
        self,
        x: &Images<'_, T>,
        ht: &mut ArrayBase<S, Ix2>,
    ) -> Result<()> {
        match self {
            Saved::Memory(a) => {
                ht.assign(&a);
                Ok(())
            }
            Saved::File(file) => {
                let mut done = Ok(());
                x.h_pieces_mut(ht, |rows, piece| {
                    if done.is_ok() {
                        done = file.read(rows.start, piece);
                    }
                });
                done.map_err(|e| Error::Output {
                    path: file.path().to_path_buf(),
                    reason: format!(
                        "H, kept in this folder while an escape from a stall was tried, cannot \
                         be read back ({e}); free space on its disk, or move the cache to a disk \
                         with room"
                    ),
                })
            }
        }
    }
}

/// Moves component `free`'s share, projected onto `keep`'s basis image, to `keep`:
/// `h_keep += (w_keep . w_free / ||w_keep||^2) h_free`.
fn move_share<T: Float, S: DataMut<Elem = T>>(
    x: &Images<'_, T>,
    w: &Array2<T>,
    ht: &mut ArrayBase<S, Ix2>,
    keep: usize,
    free: usize,
) {
    let (wk, wf) = (w.column(keep), w.column(free));
    let along: f64 = wk
        .iter()
        .zip(&wf)
        .map(|(a, b)| a.to_f64() * b.to_f64())
        .sum::<f64>()
        / wk.iter().map(|a| a.to_f64() * a.to_f64()).sum::<f64>();
    x.h_pieces_mut(ht, |_, mut rows| {
        for mut row in rows.rows_mut() {
            row[keep] = T::from_f64(row[keep].to_f64() + along * row[free].to_f64());
        }
    });
}

/// The least cosine between two basis images for [`Revival::escape`] to take them
/// for one part found twice. On the swimmer's local minimum of multiplicative updates at rank
/// 17 the duplicated arm gives 0.93; fitted faces (CBCL, ORL, Olivetti at rank 49, hals and
/// mu) have none above 0.77.
pub(crate) const DUPLICATE: f64 = 0.9;

/// The pair of components whose basis images have the largest cosine, if it is at least
/// [`DUPLICATE`], lower index first.
fn most_alike<T: Float>(w: &Array2<T>) -> Option<(usize, usize)> {
    let r = w.ncols();
    let norms: Vec<f64> = column_norms_sq(w).iter().map(|v| v.sqrt()).collect();
    let gram = w.t().dot(w);
    let mut best: Option<(f64, usize, usize)> = None;
    for a in 0..r {
        for b in a + 1..r {
            if norms[a] == 0.0 || norms[b] == 0.0 {
                continue;
            }
            let cosine = gram[[a, b]].to_f64() / (norms[a] * norms[b]);
            if cosine >= DUPLICATE && best.is_none_or(|(c, _, _)| cosine > c) {
                best = Some((cosine, a, b));
            }
        }
    }
    best.map(|(_, a, b)| (a, b))
}

/// Restarts component k (its column of W and of H^T are overwritten) as the positive part of
/// the residual of the image worst explained, with each image's least-squares coefficient on
/// it given the others. Returns false, changing nothing, when no residual is positive.
fn restart<T: Float, S: DataMut<Elem = T>>(
    x: &Images<'_, T>,
    w: &mut Array2<T>,
    ht: &mut ArrayBase<S, Ix2>,
    k: usize,
) -> bool {
    let residual = worst_residual(x, w, &ht.view());
    if residual.iter().all(|&v| v <= T::zero()) {
        // Nothing left to explain.
        return false;
    }
    // The new column, then each image's least-squares coefficient on it given the
    // others: max(0, r_j^T w_k) / ||w_k||^2, which can only lower the error.
    w.column_mut(k)
        .iter_mut()
        .zip(&residual)
        .for_each(|(wk, &r)| *wk = r.max_of(T::zero()));
    let wk = w.column(k);
    let norm_sq: f64 = wk.iter().map(|v| v.to_f64() * v.to_f64()).sum();
    let xtw = match x.in_memory_x() {
        Some(x) => x.t().dot(&wk),
        None => {
            let mut xtw = Array1::zeros(ht.nrows());
            x.for_each(|cols, xb| xtw.slice_mut(ndarray::s![cols]).assign(&xb.t().dot(&wk)));
            xtw
        }
    };
    let gram = w.t().dot(&wk);
    let inv = 1.0 / norm_sq;
    // Row by row, so a mapped H^T is visited a piece at a time: each row's coefficient
    // depends on that row alone.
    x.h_pieces_mut(ht, |rows, mut piece| {
        piece.column_mut(k).fill(T::zero());
        let explained = piece.dot(&gram);
        Zip::from(piece.column_mut(k))
            .and(&xtw.slice(ndarray::s![rows]))
            .and(&explained)
            .for_each(|h, &a, &e| *h = T::from_f64(((a.to_f64() - e.to_f64()) * inv).max(0.0)));
    });
    true
}

/// The residual `x_j - W h_j` of the image with the largest residual norm (the first of
/// equals), found block by block so that W H is never held whole. Split over processes, the
/// process holding that image gives its residual to all.
fn worst_residual<T: Float>(
    images: &Images<'_, T>,
    w: &Array2<T>,
    ht: &ArrayView2<'_, T>,
) -> Vec<T> {
    let n = images.count();
    let mut norms = Vec::with_capacity(n);
    images.for_each(|cols, x| {
        let ht = ht.slice(ndarray::s![cols, ..]);
        norms.extend(residual_norms(&x, w, &ht));
    });
    let worst = (0..n)
        .max_by(|&a, &b| norms[a].total_cmp(&norms[b]).then(b.cmp(&a)))
        .unwrap_or(0);
    let residual = |j: usize| -> Vec<T> {
        let fitted = w.dot(&ht.row(j));
        images
            .column(j)
            .iter()
            .zip(&fitted)
            .map(|(&v, &f)| v - f)
            .collect()
    };
    let Some(share) = images.share() else {
        return residual(worst);
    };
    // Each process's worst; the largest norm wins, the lowest column among equals (the
    // processes hold the columns in order).
    let candidates = share.group.gather(&[norms[worst]]);
    let owner = (0..candidates.len())
        .max_by(|&a, &b| candidates[a].total_cmp(&candidates[b]).then(b.cmp(&a)))
        .expect("a group has a process");
    let mut values: Vec<f64> = if owner == share.group.rank() {
        residual(worst).iter().map(|v| v.to_f64()).collect()
    } else {
        vec![0.0; images.pixels()]
    };
    share.group.broadcast(&mut values, owner);
    values.into_iter().map(T::from_f64).collect()
}

/// The squared residual norm of each image of `x` (m x b) given W and its rows of H^T.
fn residual_norms<T: Float>(
    x: &ArrayView2<'_, T>,
    w: &Array2<T>,
    ht: &ArrayView2<'_, T>,
) -> Vec<f64> {
    const BLOCK: usize = 256;
    let n = x.ncols();
    (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .flat_map_iter(|b| {
            let cols = b * BLOCK..((b + 1) * BLOCK).min(n);
            let approx = w.dot(&ht.slice(ndarray::s![cols.clone(), ..]).t());
            let xb = x.slice(ndarray::s![.., cols]);
            let mut norms = vec![0.0f64; approx.ncols()];
            Zip::from(approx.axis_iter(Axis(1)))
                .and(xb.axis_iter(Axis(1)))
                .and(&mut norms)
                .for_each(|a, xc, norm| {
                    *norm = a
                        .iter()
                        .zip(xc)
                        .map(|(&a, &v)| (v.to_f64() - a.to_f64()).powi(2))
                        .sum();
                });
            norms
        })
        .collect()
}

/// The first component whose share of W H (the product of its two norms) is below rounding
/// of the largest share.
fn first_dead<T: Float>(
    images: &Images<'_, T>,
    w: &Array2<T>,
    ht: &ArrayView2<'_, T>,
) -> Option<usize> {
    let (wn, mut hn) = (column_norms_sq(w), images.h_column_norms_sq(ht));
    images.sum(&mut hn);
    let shares: Vec<f64> = wn.iter().zip(&hn).map(|(a, b)| (a * b).sqrt()).collect();
    let largest = shares.iter().copied().fold(0.0, f64::max);
    let threshold = largest * T::EPSILON.to_f64();
    shares.iter().position(|&s| s <= threshold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// X holds two disjoint parts; the fit has found the first and lost the second.
    fn half_found() -> (Array2<f64>, Array2<f64>, Array2<f64>) {
        let x = array![
            [1.0, 0.0, 2.0],
            [1.0, 0.0, 2.0],
            [0.0, 3.0, 1.0],
            [0.0, 3.0, 1.0]
        ];
        let w = array![[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]];
        let ht = array![[1.0, 0.0], [0.0, 0.0], [2.0, 0.0]];
        (x, w, ht)
    }

    /// The Frobenius loss an escape is judged by, as a Frobenius fit judges it.
    fn frobenius<'a>(
        images: &'a Images<'_, f64>,
    ) -> impl FnMut(&Array2<f64>, &ArrayView2<'_, f64>) -> f64 + 'a {
        |w, ht| images.residual_sq(w, ht)
    }

    fn error(x: &Array2<f64>, w: &Array2<f64>, ht: &Array2<f64>) -> f64 {
        (x - &w.dot(&ht.t())).mapv(|v| v * v).sum()
    }

    #[test]
    fn a_dead_component_restarts_as_the_worst_residual() {
        let (x, mut w, mut ht) = half_found();
        let before = error(&x, &w, &ht);
        let mut revival = Revival::new(2);
        assert!(revival.revive(&Images::in_memory(x.view(), None), &mut w, &mut ht));
        // Image 1 is worst explained: its residual is the second part, three times over.
        assert_eq!(w.column(1).to_vec(), vec![0.0, 0.0, 3.0, 3.0]);
        // Least-squares coefficients: image 1 all of it, image 2 a third, image 0 none.
        let h: Vec<f64> = ht.column(1).to_vec();
        assert!(
            (h[0]).abs() < 1e-12 && (h[1] - 1.0).abs() < 1e-12 && (h[2] - 1.0 / 3.0).abs() < 1e-12,
            "{h:?}"
        );
        assert!(error(&x, &w, &ht) < before * 1e-12);
        // Alive now, so nothing more to do.
        assert!(!revival.revive(&Images::in_memory(x.view(), None), &mut w, &mut ht));
        assert_eq!(revival.count, 1);
    }

    #[test]
    fn the_budget_bounds_restarts() {
        let mut revival = Revival::new(1);
        for round in 0..5 {
            let (x, mut w, mut ht) = half_found();
            assert_eq!(
                revival.revive(&Images::in_memory(x.view(), None), &mut w, &mut ht),
                round < RESTARTS_PER_COMPONENT,
                "round {round}"
            );
        }
    }

    #[test]
    fn a_living_or_exact_factorization_is_left_alone() {
        let (x, mut w, mut ht) = half_found();
        w[[2, 1]] = 1e-3;
        ht[[1, 1]] = 1.0;
        let before = (w.clone(), ht.clone());
        assert!(!Revival::new(2).revive(&Images::in_memory(x.view(), None), &mut w, &mut ht));
        assert_eq!((w, ht), before);
        // A dead component where nothing is left to explain stays as it is.
        let x = array![[1.0, 2.0], [1.0, 2.0]];
        let mut w = array![[1.0, 0.0], [1.0, 0.0]];
        let mut ht = array![[1.0, 0.0], [2.0, 0.0]];
        assert!(!Revival::new(2).revive(&Images::in_memory(x.view(), None), &mut w, &mut ht));
    }

    /// X holds three disjoint parts; the fit holds the first twice and has mixed the other
    /// two into one component.
    fn held_twice() -> (Array2<f64>, Array2<f64>, Array2<f64>) {
        let x = array![
            [1.0, 0.0, 0.0, 1.0],
            [1.0, 0.0, 0.0, 1.0],
            [0.0, 2.0, 0.0, 0.0],
            [0.0, 0.0, 2.0, 0.0]
        ];
        let w = array![
            [1.0, 0.5, 0.0],
            [1.0, 0.45, 0.0],
            [0.0, 0.0, 1.0],
            [0.0, 0.0, 1.0]
        ];
        let ht = array![
            [0.5, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [0.0, 0.0, 1.0],
            [0.5, 1.0, 0.0]
        ];
        (x, w, ht)
    }

    #[test]
    fn a_part_held_twice_frees_a_component_for_a_mixed_one() {
        let (x, mut w, mut ht) = held_twice();
        let before = error(&x, &w, &ht);
        let images = Images::in_memory(x.view(), None);
        let mut revival = Revival::new(3);
        assert!(most_alike(&w).is_some());
        assert!(
            revival
                .escape(&images, &mut w, &mut ht, frobenius(&images))
                .unwrap()
        );
        // The kept first part carries both shares; the freed component is the worst image's
        // residual (image 1 or 2: the two mixed parts are equally badly explained).
        assert!(error(&x, &w, &ht) < before);
        assert_eq!(w.column(1).to_vec(), vec![0.0, 0.0, 1.0, 0.0]);
        assert!(most_alike(&w).is_none());
        assert_eq!(revival.count, 1);
        assert!(revival.can_escape());
    }

    #[test]
    fn an_escape_that_does_not_lower_the_error_is_undone_and_ends_the_escapes() {
        // Two alike components each needed: image 0 uses one, image 1 the other.
        let x = array![[1.0, 1.0], [1.0, 0.9]];
        let mut w = array![[1.0, 1.0], [1.0, 0.9]];
        let mut ht = array![[1.0, 0.0], [0.0, 1.0]];
        let before = (w.clone(), ht.clone());
        let images = Images::in_memory(x.view(), None);
        let mut revival = Revival::new(2);
        assert!(revival.can_escape());
        assert!(
            !revival
                .escape(&images, &mut w, &mut ht, frobenius(&images))
                .unwrap()
        );
        assert_eq!((w, ht), before);
        assert!(!revival.can_escape());
        assert_eq!(revival.count, 0, "a refused escape is not a restart");
    }

    /// X holds three disjoint parts, each alone in some image; the fit holds the first
    /// part, and a mix of the other two in each of its other components, with no duplicate.
    #[test]
    fn a_mixed_component_with_the_least_share_restarts_as_a_part() {
        let x = array![
            [1.0, 0.0, 0.0, 1.0],
            [1.0, 0.0, 0.0, 1.0],
            [0.0, 2.0, 0.0, 0.0],
            [0.0, 0.0, 2.0, 0.0]
        ];
        let mut w = array![
            [1.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.3],
            [0.0, 0.5, 1.0]
        ];
        let mut ht = array![
            [1.0, 0.0, 0.0],
            [0.0, 1.6, 0.0],
            [0.0, 0.0, 1.5],
            [1.0, 0.0, 0.0]
        ];
        let before = error(&x, &w, &ht);
        let images = Images::in_memory(x.view(), None);
        let mut revival = Revival::new(3);
        assert!(most_alike(&w).is_none());
        assert!(
            revival
                .escape(&images, &mut w, &mut ht, frobenius(&images))
                .unwrap()
        );
        assert!(error(&x, &w, &ht) < before);
        // The mix with the least share (the third: 1.5 x 1.04 against 1.6 x 1.12) is now the
        // residual of the image it left worst explained, the third part; the others are as
        // they were.
        assert_eq!(w.column(2).to_vec(), vec![0.0, 0.0, 0.0, 2.0]);
        assert_eq!(w.column(0).to_vec(), vec![1.0, 1.0, 0.0, 0.0]);
        assert_eq!(w.column(1).to_vec(), vec![0.0, 0.0, 1.0, 0.5]);
        assert_eq!(revival.count, 1);
    }

    /// The fit's own loss decides: an escape that lowers the Frobenius error but not the
    /// loss given (a divergence, say) is refused.
    #[test]
    fn an_escape_is_judged_by_the_fits_loss() {
        let (x, mut w, mut ht) = held_twice();
        let images = Images::in_memory(x.view(), None);
        let before = (w.clone(), ht.clone());
        let mut frobenius = frobenius(&images);
        let opposite = |w: &Array2<f64>, ht: &ArrayView2<'_, f64>| -frobenius(w, ht);
        let mut revival = Revival::new(3);
        assert!(!revival.escape(&images, &mut w, &mut ht, opposite).unwrap());
        assert_eq!((w, ht), before);
    }

    #[test]
    fn different_parts_are_not_duplicates() {
        let (_, w, _) = half_found();
        assert!(most_alike(&w).is_none());
        let w = array![[1.0, 0.3], [0.2, 1.0]];
        assert!(most_alike(&w).is_none());
    }
}
