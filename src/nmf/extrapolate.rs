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
use std::path::Path;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip, s};

use super::checkpoint::{ExtrapolationArrays, ExtrapolationScalars};
use super::spill::{HtStore, Release, Rows, RowsFile, try_by_pieces};
use crate::{Error, Float, Result};

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
    ht: HtCopy<T>,
    w_new: Array2<T>,
    ht_new: HtCopy<T>,
    best_w: Array2<T>,
    best_ht: HtCopy<T>,
    /// Lowest value of an extrapolated W: HALS projects every entry it updates, so W may leave
    /// the orthant between iterations (as in the paper); a multiplicative update keeps the
    /// sign it is given, so its points are floored at 0.
    floor: f64,
    /// With the copies of H^T in files: a block's rows of the last accepted and of the updated
    /// H^T, and the first failure to read or write them.
    old_rows: Array2<T>,
    new_rows: Array2<T>,
    failure: Option<Error>,
    /// Why the copies of H^T are in memory although a folder was given for them.
    spill_warning: Option<String>,
    /// Drops the loop's rows of a mapped H^T from memory as the copies are read into it or
    /// written from it.
    release: Option<Release>,
}

/// A copy of H^T (n x r): in memory, or in a file when the images are streamed (`spill.rs`).
type HtCopy<T> = Rows<T>;

/// The three copies of H^T: the last accepted (`accepted`), the updated one (overwritten
/// before it is read, so a file starts empty) and the best. In files in `spill` when given and
/// it can take them; otherwise in memory, with the reason.
fn ht_copies<T: Float>(
    accepted: &ArrayView2<'_, T>,
    best: &ArrayView2<'_, T>,
    spill: Option<&Path>,
    release: Option<&Release>,
) -> ([HtCopy<T>; 3], Option<String>) {
    let mut warning = None;
    if let Some(dir) = spill {
        let (n, r) = accepted.dim();
        let files = (|| {
            Ok::<_, std::io::Error>([
                Rows::File(RowsFile::holding(dir, accepted, release)?),
                Rows::File(RowsFile::create(dir, n, r)?),
                Rows::File(RowsFile::holding(dir, best, release)?),
            ])
        })();
        match files {
            Ok(copies) => return (copies, None),
            Err(e) => {
                let mb = 3 * n * r * size_of::<T>() / 1_000_000;
                warning = Some(format!(
                    "the extrapolation's copies of H are held in memory ({mb} MB), as they could \
                     not be kept in {}: {e}",
                    dir.display()
                ));
            }
        }
    }
    let copies = [accepted, accepted, best].map(|a| Rows::Memory(a.to_owned()));
    (copies, warning)
}

/// Rows of H^T per piece of a whole copy: about 8 MB.
fn piece_rows(cols: usize, value_bytes: usize) -> usize {
    ((8 << 20) / (cols * value_bytes).max(1)).max(1)
}

impl<T: Float> HtCopy<T> {
    /// Into `out` (n x r, standard layout), a piece of rows at a time, each released from
    /// memory after it is written when `out` is mapped.
    fn read_all(&self, out: &mut ArrayViewMut2<'_, T>, release: Option<&Release>) -> Result<()> {
        let rows = piece_rows(out.ncols(), size_of::<T>());
        try_by_pieces(out.nrows(), rows, release, true, |piece| {
            self.read(piece.start, out.slice_mut(s![piece, ..]))
                .map_err(|e| self.failure(e))
        })
    }

    /// From `a` (n x r, standard layout), a piece of rows at a time as [`HtCopy::read_all`].
    fn write_all(&mut self, a: &ArrayView2<'_, T>, release: Option<&Release>) -> Result<()> {
        let rows = piece_rows(a.ncols(), size_of::<T>());
        try_by_pieces(a.nrows(), rows, release, false, |piece| {
            self.write(piece.start, a.slice(s![piece, ..]))
                .map_err(|e| self.failure(e))
        })?;
        Ok(())
    }

    /// What a failure to read or write this copy stops the fit with.
    fn failure(&self, e: std::io::Error) -> Error {
        match self {
            Rows::File(f) => spill_failure(f, e),
            Rows::Memory(_) => unreachable!("a copy in memory is read and written without I/O"),
        }
    }

    /// The copy as the loop's H^T: a file is mapped as it is, not read.
    fn into_store(self) -> Result<HtStore<T>> {
        match self {
            Rows::Memory(a) => Ok(HtStore::Held(a)),
            Rows::File(f) => {
                let path = f.path().to_path_buf();
                f.into_mapped()
                    .map(HtStore::Mapped)
                    .map_err(|e| spill_failure_at(path, e))
            }
        }
    }

    fn to_array(&self) -> Result<Array2<T>> {
        match self {
            Rows::Memory(a) => Ok(a.clone()),
            Rows::File(f) => f.to_array().map_err(|e| spill_failure(f, e)),
        }
    }
}

impl<T: Float> Extrapolated<T> {
    /// Starts from the factors W and H^T; `keeps_sign` for a multiplicative update; `warm_up`
    /// to ramp beta up over [`WARMUP`] iterations first (a start from an init, not from factors
    /// that have already formed parts); the copies of H^T in files in `spill` if given and it
    /// can take them (else [`Extrapolated::spill_warning`] says why not); `release` when the
    /// loop's H^T is mapped, to drop its rows as whole copies pass through them.
    pub(crate) fn new(
        w: &Array2<T>,
        ht: &ArrayView2<'_, T>,
        keeps_sign: bool,
        warm_up: bool,
        spill: Option<&Path>,
        release: Option<Release>,
    ) -> Self {
        let ([accepted, updated, best], spill_warning) = ht_copies(ht, ht, spill, release.as_ref());
        Extrapolated {
            scheme: if warm_up && WARMUP > 0 {
                Extrapolation::off()
            } else {
                Extrapolation::new()
            },
            warmup: if warm_up { WARMUP } else { 0 },
            w: w.clone(),
            ht: accepted,
            w_new: w.clone(),
            ht_new: updated,
            best_w: w.clone(),
            best_ht: best,
            floor: if keeps_sign { 0.0 } else { f64::NEG_INFINITY },
            old_rows: Array2::zeros((0, 0)),
            new_rows: Array2::zeros((0, 0)),
            failure: None,
            spill_warning,
            release,
        }
    }

    /// Why the copies of H^T are in memory although a folder was given for them, once.
    pub(crate) fn spill_warning(&mut self) -> Option<String> {
        self.spill_warning.take()
    }

    /// After the H update of the images in `rows` (their rows of H^T in `ht`): keeps the
    /// update and pushes `ht` along its step, `max(0, new + beta (new - old))`.
    pub(crate) fn extrapolate_h(&mut self, rows: Range<usize>, ht: ArrayViewMut2<'_, T>) {
        let beta = self.scheme.beta;
        match (&mut self.ht_new, &self.ht) {
            (Rows::Memory(new), Rows::Memory(old)) => {
                let new = new.slice_mut(s![rows.clone(), ..]);
                let old = old.slice(s![rows, ..]);
                step(ht, new, old, None, beta, 0.0);
            }
            (Rows::File(new), Rows::File(old)) => {
                if self.failure.is_some() {
                    return;
                }
                let (len, r) = (rows.len(), ht.ncols());
                if self.old_rows.nrows() < len {
                    self.old_rows = Array2::zeros((len, r));
                    self.new_rows = Array2::zeros((len, r));
                }
                let mut old_rows = self.old_rows.slice_mut(s![..len, ..]);
                let mut new_rows = self.new_rows.slice_mut(s![..len, ..]);
                let done = old.read(rows.start, old_rows.view_mut()).and_then(|()| {
                    step(ht, new_rows.view_mut(), old_rows.view(), None, beta, 0.0);
                    new.write(rows.start, new_rows.view())
                });
                if let Err(e) = done {
                    self.failure = Some(spill_failure(new, e));
                }
            }
            _ => unreachable!("the copies of H^T are all in memory or all in files"),
        }
    }

    /// The first failure to read or write the copies of H^T in files, if any: the fit cannot
    /// go on.
    pub(crate) fn failure(&mut self) -> Option<Error> {
        self.failure.take()
    }

    /// Judges the iteration that scored `current` (the one before scored `previous`, the best
    /// so far `best`). Accepted: the updated pair becomes the restart point (and the best pair
    /// if it is), and W is pushed along its step. Rejected: W and H^T restart from the last
    /// accepted pair. Returns whether the iteration was accepted.
    pub(crate) fn judge(
        &mut self,
        w: &mut Array2<T>,
        ht: &mut ArrayViewMut2<'_, T>,
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
            if let Err(e) = self.ht.read_all(ht, self.release.as_ref()) {
                self.failure.get_or_insert(e);
            }
            return false;
        }
        // An accepted step is the only kind that can be the best so far.
        let improved = current <= best;
        if improved && let Err(e) = self.best_ht.write_all(&ht.view(), self.release.as_ref()) {
            self.failure.get_or_insert(e);
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
    ///
    /// # Errors
    /// The copies of H^T in files cannot be read.
    pub(crate) fn state(&self) -> Result<(ExtrapolationScalars, ExtrapolationArrays<T>)> {
        let scalars = ExtrapolationScalars {
            beta: self.scheme.beta.to_bits(),
            previous: self.scheme.previous.to_bits(),
            ceiling: self.scheme.ceiling.to_bits(),
            warmup: self.warmup,
        };
        let arrays = ExtrapolationArrays {
            w: self.w.clone(),
            ht: self.ht.to_array()?,
            best_w: self.best_w.clone(),
            best_ht: self.best_ht.to_array()?,
        };
        Ok((scalars, arrays))
    }

    /// The extrapolation [`Extrapolated::state`] saved; `keeps_sign`, `spill` and `release` as
    /// for [`Extrapolated::new`].
    pub(crate) fn restore(
        scalars: ExtrapolationScalars,
        arrays: ExtrapolationArrays<T>,
        keeps_sign: bool,
        spill: Option<&Path>,
        release: Option<Release>,
    ) -> Self {
        let ([accepted, updated, best], spill_warning) =
            ht_copies(&arrays.ht.view(), &arrays.best_ht.view(), spill, None);
        Extrapolated {
            scheme: Extrapolation {
                beta: f64::from_bits(scalars.beta),
                previous: f64::from_bits(scalars.previous),
                ceiling: f64::from_bits(scalars.ceiling),
            },
            warmup: scalars.warmup,
            w_new: arrays.w.clone(),
            ht_new: updated,
            w: arrays.w,
            ht: accepted,
            best_w: arrays.best_w,
            best_ht: best,
            floor: if keeps_sign { 0.0 } else { f64::NEG_INFINITY },
            old_rows: Array2::zeros((0, 0)),
            new_rows: Array2::zeros((0, 0)),
            failure: None,
            spill_warning,
            release,
        }
    }

    /// The best pair seen, or the start when no iteration ran.
    ///
    /// # Errors
    /// The copies of H^T in files cannot be read.
    pub(crate) fn into_best(self, ran: bool) -> Result<(Array2<T>, HtStore<T>)> {
        if ran {
            Ok((self.best_w, self.best_ht.into_store()?))
        } else {
            Ok((self.w, self.ht.into_store()?))
        }
    }
}

/// A copy of H^T in a file failed to be read or written (a full disk, say).
fn spill_failure<T: Float>(file: &RowsFile<T>, e: std::io::Error) -> Error {
    spill_failure_at(file.path().to_path_buf(), e)
}

fn spill_failure_at(path: std::path::PathBuf, e: std::io::Error) -> Error {
    Error::Output {
        path,
        reason: format!(
            "the extrapolation's copies of H, kept in this folder, cannot be read or written \
             ({e}); free space on its disk, or move the cache to a disk with room"
        ),
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
