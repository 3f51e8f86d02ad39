//! The options of a fit do what they say: stopping rules, given starts, runs, penalties, sparseness, missing data, the multilevel start.

use std::time::Duration;

use ndarray::{Array2, Zip};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use super::*;
use crate::nmf::*;

#[test]
fn tolerance_stops_early_and_reports_convergence() {
    let x = noisy(30, 30, 8);
    let fit = Nmf::params(4)
        .max_iter(10_000)
        .tol(1e-3)
        .fit(&x.view())
        .unwrap();
    assert!(fit.converged());
    assert!(fit.n_iter < 10_000);
    let fit = Nmf::params(6).max_iter(3).tol(1e-3).fit(&x.view()).unwrap();
    assert!(!fit.converged());
    assert_eq!(fit.stop, Stop::MaxIter);
    assert_eq!(fit.history.len(), 4);
}

#[test]
fn max_time_stops_the_loop() {
    let x = noisy(40, 30, 9);
    let fit = Nmf::params(4)
        .max_iter(1_000_000)
        .tol(0.0)
        .max_time(Some(Duration::from_millis(50)))
        .fit(&x.view())
        .unwrap();
    assert_eq!(fit.stop, Stop::MaxTime);
    assert!(fit.n_iter < 1_000_000);
}

#[test]
fn fit_from_given_factors_continues_a_fit() {
    let x = noisy(30, 20, 12);
    let first = Nmf::params(3).max_iter(20).tol(0.0).fit(&x.view()).unwrap();
    let more = Nmf::params(3)
        .max_iter(20)
        .tol(0.0)
        .fit_from(&x.view(), &first.w.view(), &first.h.view(), |_| {})
        .unwrap();
    assert!(more.history[0].rel_error <= first.rel_error + 1e-12);
    assert!(more.rel_error <= first.rel_error + 1e-12);
}

#[test]
fn several_runs_keep_the_best_and_report_every_error() {
    let x = noisy(40, 30, 15);
    let params = Nmf::params(4).init(Init::Random).max_iter(15).tol(0.0);
    let best = params.clone().runs(4).fit(&x.view()).unwrap();
    assert_eq!(best.run_errors.len(), 4);
    let least = best.run_errors.iter().copied().fold(f64::MAX, f64::min);
    assert_eq!(best.rel_error, least);
    assert_eq!(best.run_errors[best.best_run], least);
    // The first run is the single fit of the same seed.
    let single = params.fit(&x.view()).unwrap();
    assert_eq!(best.run_errors[0], single.rel_error);
    assert!(
        best.run_errors.windows(2).any(|p| p[0] != p[1]),
        "distinct starts"
    );
    assert!(
        Nmf::params(4)
            .runs(0)
            .fit(&x.view())
            .unwrap_err()
            .to_string()
            .starts_with("runs:")
    );
}

#[test]
fn penalised_fits_lower_their_own_objective_and_l1_makes_sparser_factors() {
    let x = noisy(40, 30, 16);
    for solver in ALL_SOLVERS {
        let params = Nmf::params(5).solver(solver).max_iter(60).tol(0.0);
        let plain = params.clone().fit(&x.view()).unwrap();
        let lasso = params.clone().alpha_w(0.05).alpha_h(0.05).l1_ratio(1.0);
        let fit = lasso.fit(&x.view()).unwrap();
        // The reported objective is the penalised one, and the fit beats the unpenalised
        // factors on it.
        let own = lasso.objective(&x.view(), &fit.w.view(), &fit.h.view());
        assert!((fit.objective - own).abs() <= 1e-9 * own, "{solver}");
        let other = lasso.objective(&x.view(), &plain.w.view(), &plain.h.view());
        assert!(
            fit.objective < other,
            "{solver}: {} vs {other}",
            fit.objective
        );
        let zeros = |a: &Array2<f64>| a.iter().filter(|&&v| v == 0.0).count();
        assert!(
            zeros(&fit.h.to_owned()) > zeros(&plain.h.to_owned()),
            "{solver}: L1 should zero more of H"
        );
    }
}

#[test]
fn sparseness_constraint_holds_on_the_result() {
    let x = noisy(60, 40, 17);
    for solver in ALL_SOLVERS {
        let fit = Nmf::params(4)
            .solver(solver)
            .sparsity_w(Some(0.6))
            .sparsity_h(Some(0.3))
            .max_iter(40)
            .fit(&x.view())
            .unwrap();
        assert!(
            (fit.sparseness_w() - 0.6).abs() < 1e-6,
            "{solver}: {}",
            fit.sparseness_w()
        );
        assert!(
            (fit.sparseness_h() - 0.3).abs() < 1e-6,
            "{solver}: {}",
            fit.sparseness_h()
        );
    }
    let err = Nmf::params(4)
        .sparsity_w(Some(1.5))
        .fit(&x.view())
        .unwrap_err();
    assert!(err.to_string().starts_with("sparsity_w:"), "{err}");
}

#[test]
fn masked_fits_ignore_hidden_entries_and_predict_them() {
    let x = low_rank(50, 40, 3, 18);
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let known = Array2::from_shape_simple_fn((50, 40), || uniform(&mut rng) >= 0.3);
    // Garbage in the hidden entries must not matter.
    let mut corrupted = x.clone();
    Zip::from(&mut corrupted).and(&known).for_each(|v, &k| {
        if !k {
            *v = 1000.0;
        }
    });
    for solver in [Solver::Hals, Solver::Cd, Solver::Mu, Solver::Anls] {
        let fit = Nmf::params(3)
            .solver(solver)
            .max_iter(400)
            .tol(0.0)
            .fit_masked(&corrupted.view(), &known.view(), |_| {})
            .unwrap();
        let hidden = fit.hidden_error.unwrap();
        // The hidden entries of `corrupted` are the garbage, so compare WH with x instead.
        let wh = fit.w.dot(&fit.h.view());
        let (mut err, mut norm) = (0.0, 0.0);
        Zip::from(&wh).and(&x).and(&known).for_each(|&p, &v, &k| {
            if !k {
                err += (p - v) * (p - v);
                norm += v * v;
            }
        });
        let predicted = (err / norm).sqrt();
        // MU converges slowly; the HALS solvers fit this exact low-rank matrix closely.
        let (fit_tol, predict_tol) = if solver == Solver::Mu {
            (0.1, 0.15)
        } else {
            (0.02, 0.05)
        };
        assert!(
            fit.rel_error < fit_tol,
            "{solver}: known-entry error {}",
            fit.rel_error
        );
        assert!(
            predicted < predict_tol,
            "{solver}: hidden entries predicted to {predicted}"
        );
        assert!(
            hidden > 0.9,
            "{solver}: the reported hidden error is against the garbage"
        );
        for pair in fit.history.windows(2) {
            assert!(
                pair[1].rel_error <= pair[0].rel_error * (1.0 + 1e-9),
                "{solver}: not monotone"
            );
        }
    }
    let wrong = Array2::from_elem((5, 5), true);
    assert!(
        Nmf::params(3)
            .fit_masked(&x.view(), &wrong.view(), |_| {})
            .is_err()
    );
}

#[test]
fn multilevel_start_fits_half_resolution_first_and_starts_closer() {
    let x = smooth_images(3);
    let params = Nmf::params(3).image_shape(24, 24).max_iter(20).tol(0.0);
    let multilevel = params.fit(&x.view()).unwrap();
    let full = params.clone().multilevel(false).fit(&x.view()).unwrap();
    // 12 x 12 keeps 48 pixels per part; 6 x 6 would keep 12.
    assert_eq!(multilevel.coarse_levels.len(), 1);
    let level = multilevel.coarse_levels[0];
    assert_eq!(
        level.shape,
        ImageShape {
            height: 12,
            width: 12
        }
    );
    assert!(level.iterations >= 1 && level.rel_error < 0.1, "{level:?}");
    assert_eq!(
        multilevel.start,
        format!(
            "nndsvda at 12x12 ({} iterations) -> full size (multilevel)",
            level.iterations
        )
    );
    assert!(full.coarse_levels.is_empty());
    assert_eq!(full.start, "nndsvda");
    // The prolongated parts start far nearer than the full-resolution initialisation, and
    // the fit ends at least as well.
    let (ml0, full0) = (multilevel.history[0].rel_error, full.history[0].rel_error);
    assert!(ml0 < 0.5 * full0, "start {ml0} against {full0}");
    assert!(multilevel.rel_error <= full.rel_error * 1.001);
    assert!(
        multilevel
            .w
            .iter()
            .chain(multilevel.h.iter())
            .all(|&v| v >= 0.0)
    );
    // Its time counts: the first full-resolution error comes after the coarse fit.
    assert!(multilevel.history[0].seconds >= level.seconds);
    // Reproducible.
    let again = params.fit(&x.view()).unwrap();
    assert_eq!(again.w, multilevel.w);
}

#[test]
fn many_images_start_from_a_sample_then_h_is_fitted_for_every_image() {
    // 400 images at rank 5, 80 per part: every 4th (100 images, 20 per part) is fitted first,
    // and 100 are too few to sample again.
    let x = noisy(30, 400, 12);
    let params = Nmf::params(5).max_iter(30).tol(0.0);
    let sampled = params.fit(&x.view()).unwrap();
    let full = params.clone().multilevel(false).fit(&x.view()).unwrap();
    assert_eq!(sampled.coarse_levels.len(), 1);
    let level = sampled.coarse_levels[0];
    assert_eq!(level.images, Some(100));
    // No image shape given: the pixels as one column.
    assert_eq!(level.shape.pixels(), 30);
    assert!(level.iterations >= 1, "{level:?}");
    assert_eq!(
        sampled.start,
        format!(
            "nndsvda at 100 images ({} iterations) -> full size (multilevel)",
            level.iterations
        )
    );
    assert!(full.coarse_levels.is_empty());
    // The sample's parts with every image's H fitted to them start far nearer than the
    // initialisation (0.081 against 0.419), within 5% of where 30 iterations from the
    // initialisation end, and the fit ends as well to 1% (another local minimum of noise).
    let (s0, full0) = (sampled.history[0].rel_error, full.history[0].rel_error);
    assert!(s0 < 0.5 * full0, "start {s0} against {full0}");
    assert!(
        s0 < 1.05 * full.rel_error,
        "start {s0} against {}",
        full.rel_error
    );
    assert!(sampled.rel_error <= full.rel_error * 1.01);
    assert!(sampled.w.iter().chain(sampled.h.iter()).all(|&v| v >= 0.0));
    assert!(sampled.history[0].seconds >= level.seconds);
    let again = params.fit(&x.view()).unwrap();
    assert_eq!(again.w, sampled.w);

    // With images large enough to halve, the sample's own fit starts at half resolution:
    // 300 images of 24 x 24 at rank 3 are sampled to every 4th (75), those to every 2nd (38),
    // and the 38 fitted at 12 x 12 first.
    let x = smooth_images_n(5, 300);
    let nested = Nmf::params(3)
        .image_shape(24, 24)
        .max_iter(10)
        .fit(&x.view())
        .unwrap();
    let levels: Vec<String> = nested.coarse_levels.iter().map(|l| l.to_string()).collect();
    assert_eq!(levels, ["12x12", "38 images", "75 images"]);
    assert!(
        nested.start.starts_with("nndsvda at 12x12 ("),
        "{}",
        nested.start
    );
    // Each level ends after the levels inside it, and the full fit after all of them.
    let ends: Vec<f64> = nested.coarse_levels.iter().map(|l| l.seconds).collect();
    assert!(ends.is_sorted(), "{ends:?}");
    assert!(nested.history[0].seconds >= ends[2]);
}

#[test]
fn multilevel_start_applies_only_to_plain_frobenius_fits() {
    let x = smooth_images(4);
    let base = Nmf::params(3).image_shape(24, 24).max_iter(3);
    let levels = |nmf: Nmf| nmf.fit(&x.view()).unwrap().coarse_levels.len();
    assert_eq!(levels(base.clone()), 1);
    assert_eq!(levels(Nmf::params(3).max_iter(3)), 0, "no image shape");
    assert_eq!(
        levels(base.clone().solver(Solver::Cd)),
        0,
        "off for cd by default"
    );
    assert_eq!(levels(base.clone().solver(Solver::Cd).multilevel(true)), 1);
    assert_eq!(levels(base.clone().alpha_w(0.1)), 0, "penalty");
    assert_eq!(levels(base.clone().sparsity_w(Some(0.5))), 0, "sparseness");
    assert_eq!(
        levels(base.clone().solver(Solver::Mu).loss(Loss::KullbackLeibler)),
        0,
        "divergence"
    );
    let known = Array2::from_elem(x.dim(), true);
    let masked = base.fit_masked(&x.view(), &known.view(), |_| {}).unwrap();
    assert!(masked.coarse_levels.is_empty(), "missing data");
}

#[test]
fn column_blocks_give_the_iterates_of_one_block() {
    // 150 images in blocks of 64: two full blocks and a short one, as a streamed or split X
    // would come. Only the order of the sums changes, so every iteration agrees to rounding.
    let x = noisy(40, 150, 3);
    let penalised = Nmf::params(4).alpha_w(0.01).alpha_h(0.02).l1_ratio(0.5);
    let mut cases: Vec<Nmf> = ALL_SOLVERS
        .iter()
        .map(|&s| Nmf::params(4).solver(s))
        .collect();
    cases.push(penalised.clone());
    cases.push(penalised.solver(Solver::Mu));
    cases.push(Nmf::params(4).sparsity_w(Some(0.4)));
    for params in cases {
        let params = params.max_iter(25).tol(0.0);
        let one = params.fit(&x.view()).unwrap();
        let blocked = Nmf {
            column_block: Some(64),
            ..params.clone()
        }
        .fit(&x.view())
        .unwrap();
        assert_eq!(one.n_iter, blocked.n_iter);
        for (a, b) in one.history.iter().zip(&blocked.history) {
            assert!(
                (a.rel_error - b.rel_error).abs() <= 1e-9 * a.rel_error,
                "{} at iteration {}: {} against {}",
                params.solver,
                a.iter,
                a.rel_error,
                b.rel_error
            );
        }
        let dw = (&one.w - &blocked.w)
            .iter()
            .fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(dw < 1e-7, "{}: W differs by {dw}", params.solver);
    }
}

/// X behind the column-block seam, as a decoded cache gives it: rows copied out on demand.
#[derive(Debug)]
pub(super) struct Held<T>(pub(super) Array2<T>);

impl<T: crate::Float> ColumnBlocks<T> for Held<T> {
    fn pixels(&self) -> usize {
        self.0.nrows()
    }
    fn count(&self) -> usize {
        self.0.ncols()
    }
    fn read(&self, first: usize, mut out: ndarray::ArrayViewMut2<'_, T>) {
        let range = first..first + out.nrows();
        out.assign(&self.0.slice(ndarray::s![.., range]).t());
    }
}

/// [`Held`] with a scratch folder: the extrapolation's copies of H^T go to files there.
#[derive(Debug)]
struct HeldSpilling<T>(Held<T>, std::path::PathBuf);

impl<T: crate::Float> ColumnBlocks<T> for HeldSpilling<T> {
    fn pixels(&self) -> usize {
        self.0.pixels()
    }
    fn count(&self) -> usize {
        self.0.count()
    }
    fn read(&self, first: usize, out: ndarray::ArrayViewMut2<'_, T>) {
        self.0.read(first, out);
    }
    fn scratch(&self) -> Option<&std::path::Path> {
        Some(&self.1)
    }
}

/// With H^T mapped from a file and the extrapolation's copies of it in files (as beside a
/// decoded cache), a streamed fit makes the same bits as with them in memory, for every
/// solver, resumes from a checkpoint to them too, and leaves no file behind; where the folder
/// cannot take them, they stay in memory and the result's warnings say so, naming the folder.
#[test]
fn h_and_its_copies_in_files_make_the_same_bits_as_in_memory() {
    let dir = std::env::temp_dir().join(format!("facenmf-spill-fit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (params, x) in [
        (Nmf::params(5), noisy(40, 203, 5)),
        (Nmf::params(4), low_rank(40, 203, 2, 9)),
        (
            Nmf::params(5).alpha_w(0.01).alpha_h(0.02),
            noisy(30, 150, 4),
        ),
        (Nmf::params(4).solver(Solver::Mu), noisy(30, 150, 7)),
        (Nmf::params(4).solver(Solver::Anls), noisy(30, 150, 8)),
        (Nmf::params(4).solver(Solver::Fpgm), noisy(30, 150, 10)),
    ] {
        let params = params.max_iter(30).tol(0.0);
        let x32 = x.mapv(|v| v as f32);
        let memory = params.fit_blocks(&Held(x32.clone()), 32, |_| {}).unwrap();
        let spilled = HeldSpilling(Held(x32.clone()), dir.clone());
        let on_disk = params.fit_blocks(&spilled, 32, |_| {}).unwrap();
        assert_eq!(memory.w, on_disk.w);
        assert_eq!(memory.h, on_disk.h);
        // The result's H stays in its file.
        assert!(on_disk.h.is_mapped() && !memory.h.is_mapped());
        assert_eq!(
            memory.sparseness_h().to_bits(),
            on_disk.sparseness_h().to_bits()
        );
        let errors = |f: &Factorization<f32>| -> Vec<u64> {
            f.history.iter().map(|i| i.rel_error.to_bits()).collect()
        };
        assert_eq!(errors(&memory), errors(&on_disk));
        assert!(memory.history.len() > 20);
        // A checkpoint of the spilled fit, and a resume from it.
        let mut saved = Vec::new();
        let mut save = |c: &Checkpoint<f32>| saved.push(c.to_bytes());
        params
            .fit_blocks_checkpointed(
                &spilled,
                32,
                |_| {},
                Checkpointing {
                    every: Some(0.0),
                    save: &mut save,
                    resume: None,
                    context: String::new(),
                },
            )
            .unwrap();
        let middle = Checkpoint::<f32>::from_bytes(&saved[saved.len() / 2]).unwrap();
        let (resumed, _) = params
            .fit_blocks_checkpointed(
                &spilled,
                32,
                |_| {},
                Checkpointing {
                    every: None,
                    save: &mut |_| {},
                    resume: Some(middle),
                    context: String::new(),
                },
            )
            .unwrap();
        assert_eq!(resumed.h, memory.h);
    }
    // To the tolerance: the stall tries an escape, whose saved H goes to a file and, when
    // the escape is refused, comes back from it.
    for (params, x) in [
        (Nmf::params(5).tol(1e-3), noisy(40, 203, 5)),
        (Nmf::params(4).tol(1e-3), low_rank(40, 203, 2, 9)),
    ] {
        let x32 = x.mapv(|v| v as f32);
        let params = params.max_iter(500);
        let memory = params.fit_blocks(&Held(x32.clone()), 32, |_| {}).unwrap();
        let spilled = HeldSpilling(Held(x32), dir.clone());
        let on_disk = params.fit_blocks(&spilled, 32, |_| {}).unwrap();
        assert_eq!(memory.stop, Stop::Tolerance);
        assert_eq!(memory.h, on_disk.h);
        assert_eq!(memory.w, on_disk.w);
        assert_eq!(memory.history.len(), on_disk.history.len());
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "a file was left"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let x = noisy(20, 40, 3);
    let gone = HeldSpilling(Held(x.clone()), dir.join("no such folder"));
    let params = Nmf::params(3).max_iter(20);
    let fit = params.fit_blocks(&gone, 16, |_| {}).unwrap();
    let memory = params.fit_blocks(&Held(x), 16, |_| {}).unwrap();
    assert_eq!(fit.h, memory.h);
    for what in ["H is held in memory", "copies of H are held in memory"] {
        assert!(
            fit.warnings
                .iter()
                .any(|w| w.contains(what) && w.contains("no such folder")),
            "{what}: {:?}",
            fit.warnings
        );
    }
}

#[test]
fn streamed_fits_make_the_in_memory_iterates() {
    // 203 images of 40 pixels and 30 images of 90 (X^T is then the short side of the start's
    // SVD), in blocks of 32, 64 and all: every solver, the inits, a blank pixel row, and
    // restarted components (data of rank 2 at rank 4).
    let mut x = noisy(40, 203, 5);
    x.row_mut(3).fill(0.0);
    let tall = noisy(90, 30, 6);
    // Of rank 2: NNDSVDa's components beyond it start at zero and are restarted one by one.
    let two = low_rank(40, 203, 2, 9);
    let penalised = Nmf::params(5).alpha_w(0.01).alpha_h(0.02).l1_ratio(0.5);
    let mut cases: Vec<(Nmf, &Array2<f64>)> = ALL_SOLVERS
        .iter()
        .map(|&s| (Nmf::params(5).solver(s), &x))
        .collect();
    cases.push((penalised, &x));
    cases.push((Nmf::params(5).sparsity_w(Some(0.4)), &x));
    cases.push((Nmf::params(7).init(Init::Nndsvdar), &x));
    cases.push((Nmf::params(4).init(Init::Random), &tall));
    cases.push((Nmf::params(4), &tall));
    cases.push((Nmf::params(4).solver(Solver::Cd), &two));
    let mut restarts = 0;
    for (params, x) in cases {
        // A streamed fit has no multilevel start (the sample start would apply in memory).
        let params = params.max_iter(40).tol(0.0).multilevel(false);
        let memory = params.fit(&x.view()).unwrap();
        restarts += memory.restarts;
        for width in [32, 64, x.ncols()] {
            let streamed = params.fit_blocks(&Held(x.clone()), width, |_| {}).unwrap();
            let label = format!("{} {} in blocks of {width}", params.solver, params.init);
            assert_same_iterates(&memory, &streamed, &label);
            let dw = (&memory.w - &streamed.w)
                .iter()
                .fold(0.0f64, |m, d| m.max(d.abs()));
            assert!(dw < 1e-7, "{label}: W differs by {dw}");
        }
    }
    assert!(
        restarts > 0,
        "no case restarted a component: the test misses revive.rs"
    );
    // f32: the same to rounding.
    let x32 = x.mapv(|v| v as f32);
    let memory = Nmf::params(5)
        .max_iter(40)
        .tol(0.0)
        .multilevel(false)
        .fit(&x32.view())
        .unwrap();
    let streamed = Nmf::params(5)
        .max_iter(40)
        .tol(0.0)
        .fit_blocks(&Held(x32.clone()), 64, |_| {})
        .unwrap();
    assert!((memory.rel_error - streamed.rel_error).abs() <= 1e-4 * memory.rel_error);
}

#[test]
fn streamed_fits_refuse_what_needs_x_whole() {
    let x = Held(noisy(20, 30, 7));
    for (params, name) in [
        (
            Nmf::params(3)
                .solver(Solver::Mu)
                .loss(Loss::KullbackLeibler),
            "loss",
        ),
        (Nmf::params(3).sparsity_h(Some(0.5)), "sparsity_h"),
        (Nmf::params(3).runs(2), "runs"),
        (Nmf::params(3).init(Init::Spa), "init"),
    ] {
        let err = params.fit_blocks(&x, 8, |_| {}).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{name}:")), "{err}");
    }
    // Bad values are found block by block and named by their place in X.
    let mut bad = noisy(20, 30, 8);
    bad[[4, 17]] = -1.0;
    let err = Nmf::params(3)
        .fit_blocks(&Held(bad), 8, |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("entry (4, 17) is -1"), "{err}");
}
