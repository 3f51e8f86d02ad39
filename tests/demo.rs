//! The bundled demo set: made by the project's generator, and NMF at the true rank finds every
//! ground-truth part.

mod common;

use facenmf::{Loader, Nmf, synth};

#[test]
fn bundled_faces_are_what_the_generator_makes() {
    let dir = common::demo_dir();
    let demo = synth::generate(300, 0);
    for (j, face) in demo.faces.iter().enumerate() {
        let path = dir.join(format!("faces/face-{j:03}.png"));
        let stored = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            stored.to_luma8().as_raw(),
            face.as_raw(),
            "{}",
            path.display()
        );
    }
    let stored = std::fs::read_dir(dir.join("faces")).unwrap().count();
    assert_eq!(stored, 300, "assets/faces holds extra files");
}

#[test]
fn nmf_at_the_true_rank_finds_every_part() {
    let dir = common::demo_dir();
    let faces = Loader::new(dir.join("faces")).load::<f32>().unwrap();
    let parts = Loader::new(dir.join("parts")).load::<f64>().unwrap();
    assert_eq!(parts.x.ncols(), synth::parts().len());
    let fit = Nmf::params(parts.x.ncols()).fit(&faces.x.view()).unwrap();
    assert!(fit.rel_error < 0.01, "relative error {}", fit.rel_error);
    for (k, part) in parts.x.columns().into_iter().enumerate() {
        let part = part.to_vec();
        let best = fit
            .w
            .columns()
            .into_iter()
            .map(|col| common::cosine(&part, &col.iter().map(|&v| v as f64).collect::<Vec<_>>()))
            .fold(0.0, f64::max);
        assert!(
            best >= 0.95,
            "{}: best cosine {best:.3}",
            parts.paths[k].display()
        );
    }
}
