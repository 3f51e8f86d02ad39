//! Extrapolation with restarts between outer iterations.
//!
//! A. M. S. Ang and N. Gillis, "Accelerating nonnegative matrix factorization algorithms using
//! extrapolation", Neural Computation 31(2), 2019 (their heuristic "HER" scheme; with A-HALS
//! inside it is E-A-HALS). Each factor update starts from the extrapolated point of the previous
//! iteration, and after it the factor is pushed further along its last step:
//! `Hy = max(0, Hn + beta (Hn - H))`, `Wy = Wn + beta (Wn - W)`. When the error rises, the
//! extrapolated points are dropped (restart from the last accepted W, H) and beta shrinks;
//! while it falls, beta grows, up to a ceiling that itself grows slowly. The loop keeps the best
//! pair seen, since the error is not monotone.

use std::ops::Range;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip, s};

use super::checkpoint::{ExtrapolationArrays, ExtrapolationScalars};
use crate::Float;

/// Initial beta.
const BETA0: f64 = 0.5;
/// Division of beta after an increase of the error.
const ETA: f64 = 1.5;
/// Growth of beta after a decrease (1.01 for HALS and MU in the paper).
const GAMMA: f64 = 1.01;
/// Growth of beta's ceiling after a decrease.
const GAMMA_BAR: f64 = 1.005;
/// Iterations over which beta ramps up from 0 to [`BETA0`] after a start from an init. Where X
/// has exact factorizations other than its parts (the swimmer's torso, in every image with
/// coefficient 1, can be shared out among the limbs at no cost), pushing the iterates along
/// their steps before the parts have formed carries them along that flat valley into a
/// mixture. Measured with `cargo bench --bench parts` (E-A-HALS, swimmer at ranks 17 and 20,
/// f32 and f64, least cosine to the true limbs): 0.64-0.94 with no ramp, 0.970-0.992 with a
/// 3-iteration ramp, 0.989-0.996 with this one; five iterations with no extrapolation at all
/// also found the parts but cost CBCL three iterations to scikit-learn's error where this ramp
/// costs two.
pub(crate) const WARMUP: usize = 5;

/// The step-size state of the scheme.
#[derive(Debug, Clone, Copy)]
struct Extrapolation {
    /// beta of the current iteration.
    beta: f64,
    /// beta of the previous iteration (the new ceiling after a restart).
    previous: f64,
    /// Ceiling of beta.
    ceiling: f64,
}

impl Extrapolation {
    fn new() -> Self {
        Extrapolation {
            beta: BETA0,
            previous: BETA0,
            ceiling: 1.0,
        }
    }

    /// No extrapolation (beta stays 0: accepted steps grow it by a factor) until replaced.
    fn off() -> Self {
        Extrapolation {
            beta: 0.0,
            previous: 0.0,
            ceiling: 1.0,
        }
    }

    /// Judges the iteration that used `self.beta`: `true` to accept its iterates, `false` to
    /// restart from the last accepted ones. Updates beta for the next iteration.
    fn judge(&mut self, error: f64, previous_error: f64) -> bool {
        let used = self.beta;
        let accepted = error <= previous_error;
        if accepted {
            self.beta = (used * GAMMA).min(self.ceiling);
            self.ceiling = (self.ceiling * GAMMA_BAR).min(1.0);
        } else {
            self.ceiling = self.previous;
            self.beta = used / ETA;
        }
        self.previous = used;
        accepted
    }
}

/// The scheme with the iterates it keeps: the last accepted pair (the restart point), the pair
/// just updated before it was pushed along its step, and the best pair seen.
#[derive(Debug)]
pub(crate) struct Extrapolated<T> {
    scheme: Extrapolation,
    /// Iterations of the ramp still to run before the scheme runs on its own.
    warmup: usize,
    w: Array2<T>,
    ht: Array2<T>,
    w_new: Array2<T>,
    ht_new: Array2<T>,
    best_w: Array2<T>,
    best_ht: Array2<T>,
    /// Lowest value of an extrapolated W: HALS projects every entry it updates, so W may leave
    /// the orthant between iterations (as in the paper); a multiplicative update keeps the
    /// sign it is given, so its points are floored at 0.
    floor: f64,
}

impl<T: Float> Extrapolated<T> {
    /// Starts from the factors W and H^T; `keeps_sign` for a multiplicative update; `warm_up`
    /// to ramp beta up over [`WARMUP`] iterations first (a start from an init, not from factors
    /// that have already formed parts).
    pub(crate) fn new(w: &Array2<T>, ht: &Array2<T>, keeps_sign: bool, warm_up: bool) -> Self {
        Extrapolated {
            scheme: if warm_up && WARMUP > 0 {
                Extrapolation::off()
            } else {
                Extrapolation::new()
            },
            warmup: if warm_up { WARMUP } else { 0 },
            w: w.clone(),
            ht: ht.clone(),
            w_new: w.clone(),
            ht_new: ht.clone(),
            best_w: w.clone(),
            best_ht: ht.clone(),
            floor: if keeps_sign { 0.0 } else { f64::NEG_INFINITY },
        }
    }

    /// After the H update of the images in `rows` (their rows of H^T in `ht`): keeps the
    /// update and pushes `ht` along its step, `max(0, new + beta (new - old))`.
    pub(crate) fn extrapolate_h(&mut self, rows: Range<usize>, ht: ArrayViewMut2<'_, T>) {
        let new = self.ht_new.slice_mut(s![rows.clone(), ..]);
        let old = self.ht.slice(s![rows, ..]);
        step(ht, new, old, None, self.scheme.beta, 0.0);
    }

    /// Judges the iteration that scored `current` (the one before scored `previous`, the best
    /// so far `best`). Accepted: the updated pair becomes the restart point (and the best pair
    /// if it is), and W is pushed along its step. Rejected: W and H^T restart from the last
    /// accepted pair. Returns whether the iteration was accepted.
    pub(crate) fn judge(
        &mut self,
        w: &mut Array2<T>,
        ht: &mut Array2<T>,
        current: f64,
        previous: f64,
        best: f64,
    ) -> bool {
        let beta = self.scheme.beta;
        let accepted = self.scheme.judge(current, previous);
        if self.warmup > 0 {
            self.warmup -= 1;
            if self.warmup == 0 {
                self.scheme = Extrapolation::new();
            } else {
                self.scheme.beta = BETA0 * (WARMUP - self.warmup) as f64 / WARMUP as f64;
            }
        }
        if !accepted {
            w.assign(&self.w);
            ht.assign(&self.ht);
            return false;
        }
        // An accepted step is the only kind that can be the best so far.
        let improved = current <= best;
        if improved {
            self.best_ht.assign(ht);
        }
        let best_w = improved.then(|| self.best_w.view_mut());
        step(
            w.view_mut(),
            self.w_new.view_mut(),
            self.w.view(),
            best_w,
            beta,
            self.floor,
        );
        std::mem::swap(&mut self.w, &mut self.w_new);
        std::mem::swap(&mut self.ht, &mut self.ht_new);
        true
    }

    /// The state a checkpoint keeps: the scheme's scalars and the accepted and best pairs
    /// (`w_new` and `ht_new` are overwritten before they are read).
    pub(crate) fn state(&self) -> (ExtrapolationScalars, ExtrapolationArrays<T>) {
        let scalars = ExtrapolationScalars {
            beta: self.scheme.beta.to_bits(),
            previous: self.scheme.previous.to_bits(),
            ceiling: self.scheme.ceiling.to_bits(),
            warmup: self.warmup,
        };
        let arrays = ExtrapolationArrays {
            w: self.w.clone(),
            ht: self.ht.clone(),
            best_w: self.best_w.clone(),
            best_ht: self.best_ht.clone(),
        };
        (scalars, arrays)
    }

    /// The extrapolation [`Extrapolated::state`] saved; `keeps_sign` as for [`Extrapolated::new`].
    pub(crate) fn restore(
        scalars: ExtrapolationScalars,
        arrays: ExtrapolationArrays<T>,
        keeps_sign: bool,
    ) -> Self {
        Extrapolated {
            scheme: Extrapolation {
                beta: f64::from_bits(scalars.beta),
                previous: f64::from_bits(scalars.previous),
                ceiling: f64::from_bits(scalars.ceiling),
            },
            warmup: scalars.warmup,
            w_new: arrays.w.clone(),
            ht_new: arrays.ht.clone(),
            w: arrays.w,
            ht: arrays.ht,
            best_w: arrays.best_w,
            best_ht: arrays.best_ht,
            floor: if keeps_sign { 0.0 } else { f64::NEG_INFINITY },
        }
    }

    /// The best pair seen, or the start when no iteration ran.
    pub(crate) fn into_best(self, ran: bool) -> (Array2<T>, Array2<T>) {
        if ran {
            (self.best_w, self.best_ht)
        } else {
            (self.w, self.ht)
        }
    }
}

/// One pass over a factor just updated in place in `y`: `new <- y` (and `best <- y` if given),
/// then `y <- max(floor, new + beta (new - old))`.
fn step<T: Float>(
    y: ArrayViewMut2<'_, T>,
    new: ArrayViewMut2<'_, T>,
    old: ArrayView2<'_, T>,
    best: Option<ArrayViewMut2<'_, T>>,
    beta: f64,
    floor: f64,
) {
    let (beta, floor) = (T::from_f64(beta), T::from_f64(floor));
    let extrapolated = move |v: T, o: T| (v + beta * (v - o)).max_of(floor);
    match best {
        Some(best) => Zip::from(y)
            .and(new)
            .and(old)
            .and(best)
            .par_for_each(|y, n, &o, b| {
                let v = *y;
                (*n, *b) = (v, v);
                *y = extrapolated(v, o);
            }),
        None => Zip::from(y).and(new).and(old).par_for_each(|y, n, &o| {
            let v = *y;
            *n = v;
            *y = extrapolated(v, o);
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_grows_while_the_error_falls_and_shrinks_on_a_rise() {
        let mut e = Extrapolation::new();
        assert!(e.judge(0.9, 1.0));
        assert!((e.beta - 0.505).abs() < 1e-12);
        assert!(e.judge(0.8, 0.9));
        let before = e.beta;
        assert!(!e.judge(0.85, 0.8));
        assert!((e.beta - before / ETA).abs() < 1e-12);
        // The ceiling is now the beta used just before the rise.
        for _ in 0..100 {
            e.judge(0.1, 0.2);
        }
        assert!(e.beta <= 1.0);
    }
}
