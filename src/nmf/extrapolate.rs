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

use ndarray::{Array2, Zip};

use crate::Float;

/// Initial beta.
const BETA0: f64 = 0.5;
/// Division of beta after an increase of the error.
const ETA: f64 = 1.5;
/// Growth of beta after a decrease (1.01 for HALS and MU in the paper).
const GAMMA: f64 = 1.01;
/// Growth of beta's ceiling after a decrease.
const GAMMA_BAR: f64 = 1.005;

/// The step-size state of the scheme.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Extrapolation {
    /// beta of the current iteration.
    pub(crate) beta: f64,
    /// beta of the previous iteration (the new ceiling after a restart).
    previous: f64,
    /// Ceiling of beta.
    ceiling: f64,
}

impl Extrapolation {
    pub(crate) fn new() -> Self {
        Extrapolation {
            beta: BETA0,
            previous: BETA0,
            ceiling: 1.0,
        }
    }

    /// Judges the iteration that used `self.beta`: `true` to accept its iterates, `false` to
    /// restart from the last accepted ones. Updates beta for the next iteration.
    pub(crate) fn judge(&mut self, error: f64, previous_error: f64) -> bool {
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

/// One pass over a factor just updated in place in `y`: `new <- y` (and `best <- y` if given),
/// then `y <- max(floor, new + beta (new - old))`.
pub(crate) fn step<T: Float>(
    y: &mut Array2<T>,
    new: &mut Array2<T>,
    old: &Array2<T>,
    best: Option<&mut Array2<T>>,
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
