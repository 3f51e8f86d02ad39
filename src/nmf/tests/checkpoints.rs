//! Checkpoints: a fit resumed from the state after any iteration ends with the same bits as
//! the fit that never stopped, for every solver and the options that carry state (the
//! extrapolation, a multilevel start, restarts of dead components, missing data, penalties,
//! sparseness, a divergence), in f32 and f64; and a checkpoint of another fit is refused.

use ndarray::{Array2, ArrayView2};

use super::*;
use crate::{Checkpoint, Checkpointing, Error, Factorization, Float};

/// A fit that takes its checkpointing: in memory, streamed, from given factors.
type FitWith<'f, T> =
    dyn Fn(Checkpointing<'_, T>) -> crate::Result<(Factorization<T>, Option<Checkpoint<T>>)> + 'f;

/// The fit, and every checkpoint it saved (one after each iteration).
fn fit_saving_all<T: Float>(fit: &FitWith<'_, T>) -> (Factorization<T>, Vec<Checkpoint<T>>) {
    let mut saved = Vec::new();
    let mut save = |c: &Checkpoint<T>| saved.push(c.clone());
    let checkpointing = Checkpointing {
        every: Some(0.0),
        save: &mut save,
        resume: None,
        context: "test".into(),
    };
    let (fit, last) = fit(checkpointing).expect("fit");
    assert!(
        last.is_none(),
        "a fit that was not interrupted has no last state"
    );
    (fit, saved)
}

/// Checkpointing that saves nothing, resuming from `resume` if given.
fn unsaved<'a, T>(
    ignore: &'a mut (dyn FnMut(&Checkpoint<T>) + Send),
    resume: Option<Checkpoint<T>>,
) -> Checkpointing<'a, T> {
    Checkpointing {
        every: None,
        save: ignore,
        resume,
        context: String::new(),
    }
}

fn resume<T: Float>(
    params: &Nmf,
    x: &ArrayView2<T>,
    known: Option<&ArrayView2<bool>>,
    from: Checkpoint<T>,
) -> crate::Result<Factorization<T>> {
    let mut ignore = |_: &Checkpoint<T>| {};
    let checkpointing = unsaved(&mut ignore, Some(from));
    params
        .fit_checkpointed(x, None, known, |_| {}, checkpointing)
        .map(|(fit, _)| fit)
}

fn bits<T: Float>(a: &Array2<T>) -> Vec<u64> {
    a.iter().map(|v| v.to_f64().to_bits()).collect()
}

/// How many entries of two factors differ in their bits.
fn differing<T: Float>(a: &Array2<T>, b: &Array2<T>) -> usize {
    assert_eq!(a.dim(), b.dim());
    bits(a)
        .iter()
        .zip(bits(b))
        .filter(|(x, y)| **x != *y)
        .count()
}

/// Resumes from checkpoints through the bytes (the first, one in the middle, the last) and
/// compares with the uninterrupted fit.
fn resumes_exactly<T: Float>(
    label: &str,
    params: &Nmf,
    x: &Array2<f64>,
    known: Option<&Array2<bool>>,
) {
    let x = x.mapv(T::from_f64);
    let known_view = known.map(|k| k.view());
    let fit = |checkpointing: Checkpointing<'_, T>| {
        params.fit_checkpointed(&x.view(), None, known_view.as_ref(), |_| {}, checkpointing)
    };
    resumes_exactly_with(label, &fit);
}

/// As [`resumes_exactly`], for any fit that takes its checkpointing.
fn resumes_exactly_with<T: Float>(label: &str, fit: &FitWith<'_, T>) {
    let (whole, saved) = fit_saving_all(fit);
    assert!(
        saved.len() >= 3,
        "{label}: only {} checkpoints",
        saved.len()
    );
    // One after each iteration; a rule that stops the fit at the foot of an iteration
    // (tolerance, time) stops it before that iteration's save, but a refused escape from a
    // stall stops it at the head of the next, after the save.
    let foot = whole.n_iter - usize::from(whole.stop != Stop::MaxIter);
    assert!(
        saved.len() == foot || whole.stop == Stop::Tolerance && saved.len() == whole.n_iter,
        "{label}: {} checkpoints for {} iterations ({:?})",
        saved.len(),
        whole.n_iter,
        whole.stop
    );
    for k in [0, saved.len() / 2, saved.len() - 1] {
        let from = Checkpoint::<T>::from_bytes(&saved[k].to_bytes()).expect("reads back");
        assert_eq!(from.iteration(), k + 1);
        assert_eq!(from.context, "test");
        let mut ignore = |_: &Checkpoint<T>| {};
        let resumed = fit(unsaved(&mut ignore, Some(from)))
            .map(|(fit, _)| fit)
            .unwrap_or_else(|e| panic!("{label}: resume from {}: {e}", k + 1));
        let at = format!("{label} {} resumed after iteration {}", T::NAME, k + 1);
        assert_eq!(differing(&resumed.w, &whole.w), 0, "{at}: W differs");
        assert_eq!(
            differing(&resumed.h.to_owned(), &whole.h.to_owned()),
            0,
            "{at}: H differs"
        );
        assert_eq!(resumed.n_iter, whole.n_iter, "{at}");
        assert_eq!(resumed.stop, whole.stop, "{at}");
        assert_eq!(resumed.restarts, whole.restarts, "{at}");
        assert_eq!(resumed.start, whole.start, "{at}");
        let errors = |f: &Factorization<T>| {
            f.history
                .iter()
                .map(|i| i.rel_error.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(errors(&resumed), errors(&whole), "{at}: history differs");
    }
}

/// The options with state that a streamed fit takes too: the tolerance rule (and its escapes
/// from a stall), restarts of dead components (`true`: on data of lower rank than the fit's),
/// penalties.
fn streamable_cases() -> Vec<(&'static str, Nmf, bool)> {
    vec![
        ("hals to tolerance", Nmf::params(6).max_iter(500), false),
        (
            "restarts at rank above the data's",
            Nmf::params(12).solver(Solver::Cd).max_iter(40).tol(0.0),
            true,
        ),
        (
            "penalties",
            Nmf::params(6)
                .alpha_w(0.01)
                .alpha_h(0.01)
                .l1_ratio(0.5)
                .max_iter(20)
                .tol(0.0),
            false,
        ),
    ]
}

/// `cases` with their data: `deficient` where they ask for data of low rank, else `x`.
fn with_data<'a>(
    cases: Vec<(&'static str, Nmf, bool)>,
    x: &'a Array2<f64>,
    deficient: &'a Array2<f64>,
) -> Vec<(&'static str, Nmf, &'a Array2<f64>)> {
    cases
        .into_iter()
        .map(|(label, params, low)| (label, params, if low { deficient } else { x }))
        .collect()
}

/// Streamed block by block, as `learn --stream --checkpoint-every` fits: the same bits after
/// a resume, in blocks of 32 and of all images, with the extrapolation, restarts, penalties
/// and a stop on the tolerance rule.
#[test]
fn streamed_fits_resume_to_the_same_bits() {
    let x = noisy(40, 100, 4);
    let deficient = low_rank(30, 80, 4, 2);
    let cases = with_data(streamable_cases(), &x, &deficient);
    fn case<T: Float>(label: &str, params: &Nmf, x: &Array2<f64>) {
        let held = super::options::Held(x.mapv(T::from_f64));
        for width in [32, x.ncols()] {
            let fit = |checkpointing: Checkpointing<'_, T>| {
                params.fit_blocks_checkpointed(&held, width, |_| {}, checkpointing)
            };
            resumes_exactly_with(&format!("{label}, streamed in blocks of {width}"), &fit);
        }
    }
    for (label, params, data) in &cases {
        case::<f64>(label, params, data);
        case::<f32>(label, params, data);
    }
    // A checkpoint of a streamed fit does not go on over other images.
    let params = Nmf::params(6).max_iter(5).tol(0.0);
    let params = &params;
    let fit_on = |x: &Array2<f64>| {
        let held = super::options::Held(x.clone());
        move |checkpointing: Checkpointing<'_, f64>| {
            params.fit_blocks_checkpointed(&held, 32, |_| {}, checkpointing)
        }
    };
    let (_, saved) = fit_saving_all(&fit_on(&x));
    let mut ignore = |_: &Checkpoint<f64>| {};
    let other = noisy(40, 100, 5);
    let err = fit_on(&other)(unsaved(&mut ignore, saved.last().cloned())).unwrap_err();
    assert!(
        matches!(err, Error::Checkpoint { .. }) && err.to_string().contains("same images"),
        "{err}"
    );
}

#[test]
fn every_solver_resumes_to_the_same_bits() {
    let x = noisy(40, 30, 3);
    for solver in ALL_SOLVERS {
        let params = Nmf::params(6).solver(solver).max_iter(25).tol(0.0);
        resumes_exactly::<f64>(&format!("{solver}"), &params, &x, None);
        resumes_exactly::<f32>(&format!("{solver}"), &params, &x, None);
    }
}

#[test]
fn stateful_options_resume_to_the_same_bits() {
    let images = smooth_images(1);
    let x = noisy(40, 30, 4);
    let deficient = low_rank(30, 25, 4, 2);
    let mut cases = with_data(streamable_cases(), &x, &deficient);
    cases.extend::<Vec<(&str, Nmf, &Array2<f64>)>>(vec![
        (
            "multilevel hals",
            Nmf::params(3).max_iter(30).image_shape(24, 24),
            &images,
        ),
        (
            "sparseness",
            Nmf::params(6).sparsity_w(Some(0.6)).max_iter(20).tol(0.0),
            &x,
        ),
        (
            "kl",
            Nmf::params(6)
                .solver(Solver::Mu)
                .loss(Loss::KullbackLeibler)
                .max_iter(20)
                .tol(0.0),
            &x,
        ),
        (
            "kl by coordinate descent",
            Nmf::params(6)
                .solver(Solver::Cd)
                .loss(Loss::KullbackLeibler)
                .max_iter(20)
                .tol(0.0),
            &x,
        ),
    ]);
    for (label, params, data) in &cases {
        resumes_exactly::<f64>(label, params, data, None);
        resumes_exactly::<f32>(label, params, data, None);
    }
    let known = random_mask(x.dim(), 0.2, 7);
    let params = Nmf::params(6).max_iter(20).tol(0.0);
    resumes_exactly::<f64>("missing data", &params, &x, Some(&known));
    resumes_exactly::<f32>("missing data", &params, &x, Some(&known));
}

#[test]
fn an_interrupted_fit_hands_back_its_last_state() {
    let x = noisy(40, 30, 5);
    let interrupt = Interrupt::new();
    let params = Nmf::params(6)
        .max_iter(40)
        .tol(0.0)
        .interrupt(interrupt.clone());
    let mut ignore = |_: &Checkpoint<f64>| {};
    let checkpointing = unsaved(&mut ignore, None);
    let progress = |it: &Iteration| {
        if it.iter == 7 {
            interrupt.raise();
        }
    };
    let (fit, last) = params
        .fit_checkpointed(&x.view(), None, None, progress, checkpointing)
        .unwrap();
    assert_eq!(fit.stop, Stop::Interrupted);
    let last = last.expect("the last state");
    assert_eq!(last.iteration(), 7);
    // The whole fit, uninterrupted, against the interrupted one resumed.
    let plain = Nmf::params(6).max_iter(40).tol(0.0);
    let whole = plain.fit(&x.view()).unwrap();
    let resumed = resume(&plain, &x.view(), None, last).unwrap();
    assert_eq!(differing(&resumed.w, &whole.w), 0);
    assert_eq!(differing(&resumed.h.to_owned(), &whole.h.to_owned()), 0);
    assert_eq!(resumed.n_iter, 40);
}

#[test]
fn a_checkpoint_of_another_fit_is_refused() {
    let x = noisy(40, 30, 6);
    let params = Nmf::params(6).max_iter(5).tol(0.0);
    let fit = |checkpointing: Checkpointing<'_, f64>| {
        params.fit_checkpointed(&x.view(), None, None, |_| {}, checkpointing)
    };
    let (_, saved) = fit_saving_all(&fit);
    let last = saved.last().unwrap().clone();
    let other_x = noisy(40, 30, 7);
    let err = resume(&params, &other_x.view(), None, last.clone()).unwrap_err();
    assert!(
        matches!(err, Error::Checkpoint { .. }) && err.to_string().contains("same images"),
        "{err}"
    );
    let err = resume(&params.clone().seed(1), &x.view(), None, last.clone()).unwrap_err();
    assert!(err.to_string().contains("other parameters"), "{err}");
    let bytes = last.to_bytes();
    let err = Checkpoint::<f32>::from_bytes(&bytes).unwrap_err();
    assert!(err.to_string().contains("in f64"), "{err}");
    for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            Checkpoint::<f64>::from_bytes(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let runs = Nmf::params(6).runs(2);
    let mut ignore = |_: &Checkpoint<f64>| {};
    let checkpointing = unsaved(&mut ignore, None);
    let err = runs
        .fit_checkpointed(&x.view(), None, None, |_| {}, checkpointing)
        .unwrap_err();
    assert!(err.to_string().contains("one run"), "{err}");
}
