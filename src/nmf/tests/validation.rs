//! Bad parameters and input are errors naming the parameter, before any work.

use ndarray::Array2;

use super::*;
use crate::Error;
use crate::nmf::*;

#[test]
fn given_factors_of_the_wrong_shape_or_sign_are_rejected() {
    let x = noisy(30, 20, 12);
    let w = Array2::<f64>::ones((30, 3));
    let h = Array2::<f64>::ones((3, 21));
    let err = Nmf::params(3)
        .fit_from(&x.view(), &w.view(), &h.view(), |_| {})
        .unwrap_err();
    assert!(
        err.to_string().contains("H0 is 3 x 21, expected 3 x 20"),
        "{err}"
    );
    let mut h = Array2::<f64>::ones((3, 20));
    h[[1, 1]] = -1.0;
    let err = Nmf::params(3)
        .fit_from(&x.view(), &w.view(), &h.view(), |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("negative"), "{err}");
}

#[test]
fn a_zero_start_or_one_that_overflows_is_rejected() {
    let x = noisy(30, 20, 12).mapv(|v| v as f32);
    let (w, h) = (Array2::<f32>::ones((30, 3)), Array2::<f32>::ones((3, 20)));
    let zero_w = Array2::<f32>::zeros((30, 3));
    let err = Nmf::params(3)
        .fit_from(&x.view(), &zero_w.view(), &h.view(), |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("W0 is all zero"), "{err}");
    // 1e38 fits in f32, but its products do not: an error, not a plot of nothing.
    let huge = w.mapv(|_| 1e38f32);
    let err = Nmf::params(3)
        .fit_from(&x.view(), &huge.view(), &h.view(), |_| {})
        .unwrap_err();
    assert!(
        matches!(err, Error::NonFinite { iteration: 0, .. }),
        "{err}"
    );
}

#[test]
fn a_rank_above_both_dimensions_is_rejected_for_every_init() {
    let x = noisy(30, 20, 12);
    let err = Nmf::params(100_000)
        .init(Init::Random)
        .fit(&x.view())
        .unwrap_err();
    assert!(
        err.to_string().contains("above max(pixels, images) = 30"),
        "{err}"
    );
    // Over-complete but below the larger side is allowed with a random start.
    assert!(
        Nmf::params(25)
            .init(Init::Random)
            .max_iter(2)
            .fit(&x.view())
            .is_ok()
    );
}

#[test]
fn divergence_losses_need_multiplicative_updates_or_kl_coordinate_descent() {
    let x = noisy(10, 8, 21);
    for solver in [Solver::Hals, Solver::Fpgm, Solver::Anls] {
        let err = Nmf::params(2)
            .solver(solver)
            .loss(Loss::KullbackLeibler)
            .fit(&x.view())
            .unwrap_err();
        assert!(
            err.to_string().contains(
                "use the cd solver (coordinate descent, the faster) or the mu solver for kl"
            ),
            "{err}"
        );
    }
    // Coordinate descent has KL's, not the other divergences'.
    let cd = Nmf::params(2).solver(Solver::Cd);
    assert!(
        cd.clone()
            .loss(Loss::KullbackLeibler)
            .fit(&x.view())
            .is_ok()
    );
    for loss in [Loss::ItakuraSaito, Loss::Beta(1.5)] {
        let err = cd.clone().loss(loss).fit(&x.view()).unwrap_err();
        assert!(
            err.to_string().contains(
                "the cd solver minimises the Frobenius and kl loss only; use the mu solver for"
            ),
            "{err}"
        );
    }
    let err = Nmf::params(2)
        .solver(Solver::Mu)
        .loss(Loss::ItakuraSaito)
        .alpha_w(0.1)
        .fit(&x.view())
        .unwrap_err();
    assert!(err.to_string().starts_with("loss:"), "{err}");
    for (text, loss) in [
        ("fro", Loss::Frobenius),
        ("kl", Loss::KullbackLeibler),
        ("is", Loss::ItakuraSaito),
        ("beta:1.5", Loss::Beta(1.5)),
        ("beta:1", Loss::KullbackLeibler),
    ] {
        assert_eq!(text.parse::<Loss>().unwrap(), loss);
    }
    assert!("beta:x".parse::<Loss>().is_err() && "l3".parse::<Loss>().is_err());
    let known = Array2::from_elem((10, 8), true);
    let masked = Nmf::params(2)
        .solver(Solver::Mu)
        .loss(Loss::KullbackLeibler);
    assert!(masked.fit_masked(&x.view(), &known.view(), |_| {}).is_err());
    assert_eq!(
        Loss::Beta(1.5).to_string().parse::<Loss>().unwrap(),
        Loss::Beta(1.5)
    );
}

#[test]
fn a_warm_start_needs_a_divergence_and_no_given_factors() {
    let x = noisy(10, 8, 22);
    let err = Nmf::params(2).warm_start(5).fit(&x.view()).unwrap_err();
    assert!(err.to_string().starts_with("warm_start:"), "{err}");
    assert!(err.to_string().contains("kl"), "{err}");
    // 0 is the plain start, so it is accepted with any loss.
    Nmf::params(2).warm_start(0).fit(&x.view()).unwrap();
    let kl = Nmf::params(2)
        .solver(Solver::Cd)
        .loss(Loss::KullbackLeibler)
        .max_iter(3);
    let start = kl.fit(&x.view()).unwrap();
    let given = |params: Nmf| params.fit_from(&x.view(), &start.w.view(), &start.h.view(), |_| {});
    let err = given(kl.clone().warm_start(5)).unwrap_err();
    assert!(err.to_string().starts_with("warm_start:"), "{err}");
    // The default warm start gives way to the given factors.
    assert_eq!(given(kl).unwrap().start, "given");
}

#[test]
fn unit_sum_w_needs_the_kl_loss_and_multiplicative_updates() {
    let x = noisy(10, 8, 21);
    for (solver, loss) in [
        (Solver::Mu, Loss::Frobenius),
        (Solver::Mu, Loss::ItakuraSaito),
        (Solver::Hals, Loss::Frobenius),
        (Solver::Cd, Loss::KullbackLeibler),
    ] {
        let err = Nmf::params(2)
            .solver(solver)
            .loss(loss)
            .unit_sum_w(true)
            .fit(&x.view())
            .unwrap_err();
        assert!(err.to_string().starts_with("unit_sum_w:"), "{err}");
    }
    let fit = Nmf::params(2)
        .solver(Solver::Mu)
        .loss(Loss::KullbackLeibler)
        .unit_sum_w(true)
        .fit(&x.view())
        .unwrap();
    assert!(
        fit.w
            .columns()
            .into_iter()
            .all(|c| (c.sum() - 1.0).abs() < 1e-9)
    );
}

#[test]
fn invalid_penalties_are_rejected() {
    let x = noisy(6, 5, 0);
    let err = |p: Nmf| p.fit(&x.view()).unwrap_err().to_string();
    assert!(err(Nmf::params(2).alpha_w(-1.0)).starts_with("alpha_w:"));
    assert!(err(Nmf::params(2).alpha_h(f64::NAN)).starts_with("alpha_h:"));
    assert!(err(Nmf::params(2).l1_ratio(1.5)).starts_with("l1_ratio:"));
}

#[test]
fn zero_rank_is_rejected() {
    let err = Nmf::params(0).fit(&noisy(5, 5, 0).view()).unwrap_err();
    assert!(err.to_string().starts_with("rank:"), "{err}");
}

#[test]
fn rank_above_min_dimension_is_rejected_for_nndsvd_inits_only() {
    let x = noisy(10, 4, 0);
    for init in [Init::Nndsvd, Init::Nndsvda, Init::Nndsvdar, Init::Spa] {
        let err = Nmf::params(5).init(init).fit(&x.view()).unwrap_err();
        assert!(err.to_string().contains("min(pixels, images) = 4"), "{err}");
    }
    assert!(
        Nmf::params(5)
            .init(Init::Random)
            .max_iter(5)
            .fit(&x.view())
            .is_ok()
    );
}

#[test]
fn negative_nan_infinite_and_blank_input_is_rejected() {
    let error = |x: &Array2<f64>| Nmf::params(2).fit(&x.view()).unwrap_err().to_string();
    let mut x = noisy(6, 5, 0);
    for (bad, says) in [
        (-0.5, "nonnegative"),
        (f64::NAN, "finite"),
        (f64::INFINITY, "finite"),
    ] {
        x[[2, 3]] = bad;
        let message = error(&x);
        assert!(
            message.contains(says) && message.contains("(2, 3)"),
            "{message}"
        );
    }
    assert!(error(&Array2::zeros((6, 5))).contains("blank"));
    let empty = Array2::<f64>::zeros((0, 5));
    assert!(matches!(
        Nmf::params(1).fit(&empty.view()),
        Err(Error::InvalidInput { .. })
    ));
}

#[test]
fn an_image_shape_that_does_not_match_x_is_rejected() {
    let err = Nmf::params(2)
        .image_shape(5, 5)
        .fit(&noisy(24, 10, 0).view())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("5x5 images have 25 pixels, but X has 24 rows"),
        "{err}"
    );
}

#[test]
fn negative_tolerance_is_rejected() {
    let err = Nmf::params(2)
        .tol(-1.0)
        .fit(&noisy(6, 5, 0).view())
        .unwrap_err();
    assert!(err.to_string().starts_with("tol:"), "{err}");
}

#[test]
fn names_round_trip_through_from_str() {
    for solver in ALL_SOLVERS {
        assert_eq!(solver.to_string().parse::<Solver>().unwrap(), solver);
    }
    for init in ALL_INITS {
        assert_eq!(init.to_string().parse::<Init>().unwrap(), init);
    }
    assert!(
        "kl".parse::<Solver>()
            .unwrap_err()
            .to_string()
            .contains("expected hals")
    );
}
