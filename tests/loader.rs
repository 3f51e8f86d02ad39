//! The loader on image folders built at run time, and on the real datasets.

mod common;

use std::path::Path;

use facenmf::{Error, Loader, SkipReason};
use image::{GrayImage, ImageBuffer, ImageFormat, Luma, Rgb, RgbImage};

fn gray(width: u32, height: u32, f: impl Fn(u32, u32) -> u8) -> GrayImage {
    GrayImage::from_fn(width, height, |x, y| Luma([f(x, y)]))
}

/// A constant `width` x `height` image at `dir/name`, its format taken from the extension.
fn flat(dir: &Path, name: &str, width: u32, height: u32, value: u8) {
    save(
        &gray(width, height, |_, _| value),
        &dir.join(name),
        ImageFormat::from_path(name).unwrap(),
    );
}

fn save(img: &GrayImage, path: &Path, format: ImageFormat) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    if format == ImageFormat::Gif {
        // The GIF encoder takes RGBA; the palette is gray all the same.
        image::DynamicImage::ImageLuma8(img.clone())
            .to_rgba8()
            .save_with_format(path, format)
            .unwrap();
    } else {
        img.save_with_format(path, format).unwrap();
    }
}

#[test]
fn nested_folders_load_in_sorted_relative_path_order_row_major() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Each image is constant except pixel (x=1, y=0), so columns are told apart by value.
    save(
        &gray(3, 2, |x, y| if (x, y) == (1, 0) { 10 } else { 1 }),
        &root.join("b/c/2.pgm"),
        ImageFormat::Pnm,
    );
    save(
        &gray(3, 2, |x, y| if (x, y) == (1, 0) { 20 } else { 2 }),
        &root.join("a/1.png"),
        ImageFormat::Png,
    );
    save(
        &gray(3, 2, |x, y| if (x, y) == (1, 0) { 30 } else { 3 }),
        &root.join("0.bmp"),
        ImageFormat::Bmp,
    );
    save(
        &gray(3, 2, |x, y| if (x, y) == (1, 0) { 40 } else { 4 }),
        &root.join("a-z.tiff"),
        ImageFormat::Tiff,
    );
    save(
        &gray(3, 2, |x, y| (x + 3 * y) as u8 * 20),
        &root.join("s10/x.png"),
        ImageFormat::Png,
    );

    let faces = Loader::new(root).load::<f64>().unwrap();
    let names: Vec<_> = faces
        .paths
        .iter()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    // Plain string order: '-' (0x2D) sorts before '/' (0x2F).
    assert_eq!(
        names,
        ["0.bmp", "a-z.tiff", "a/1.png", "b/c/2.pgm", "s10/x.png"]
    );
    assert_eq!((faces.height, faces.width), (2, 3));
    assert_eq!(faces.x.dim(), (6, 5));
    assert_eq!(faces.x[[1, 0]], 30.0 / 255.0);
    assert_eq!(faces.x[[0, 0]], 3.0 / 255.0);
    assert_eq!(faces.x[[1, 2]], 20.0 / 255.0);
    // Row-major: index = y * width + x.
    let expect: Vec<f64> = (0..6).map(|i| (i * 20) as f64 / 255.0).collect();
    assert_eq!(faces.x.column(4).to_vec(), expect);
    assert!(faces.skipped.is_empty());
}

#[test]
fn file_without_extension_is_recognised_by_content() {
    let dir = tempfile::tempdir().unwrap();
    save(
        &gray(4, 4, |_, _| 100),
        &dir.path().join("face"),
        ImageFormat::Gif,
    );
    flat(dir.path(), "other.png", 4, 4, 50);
    let faces = Loader::new(dir.path()).load::<f32>().unwrap();
    assert_eq!(faces.x.ncols(), 2);
    assert!((faces.x[[0, 0]] - 100.0 / 255.0).abs() < 1e-6);
}

#[test]
fn sixteen_bit_png_is_scaled_by_65535() {
    let dir = tempfile::tempdir().unwrap();
    let img: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(2, 2, |x, _| Luma([if x == 0 { 65535 } else { 1000 }]));
    img.save(dir.path().join("deep.png")).unwrap();
    flat(dir.path(), "flat.png", 2, 2, 255);
    let faces = Loader::new(dir.path()).load::<f64>().unwrap();
    assert_eq!(faces.x[[0, 0]], 1.0);
    assert_eq!(faces.x[[1, 0]], 1000.0 / 65535.0);
}

#[test]
fn colour_is_converted_as_pillow_does() {
    let dir = tempfile::tempdir().unwrap();
    let img = RgbImage::from_fn(2, 1, |x, _| {
        if x == 0 {
            Rgb([255, 0, 0])
        } else {
            Rgb([10, 200, 30])
        }
    });
    img.save(dir.path().join("colour.png")).unwrap();
    img.save(dir.path().join("colour.jpg")).unwrap();
    let faces = Loader::new(dir.path()).load::<f64>().unwrap();
    // Pillow: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16
    let l =
        |r: u32, g: u32, b: u32| ((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16) as f64 / 255.0;
    let png = faces
        .paths
        .iter()
        .position(|p| p.ends_with("colour.png"))
        .unwrap();
    assert_eq!(faces.x[[0, png]], l(255, 0, 0));
    assert_eq!(faces.x[[1, png]], l(10, 200, 30));
    let jpg = 1 - png;
    assert!(
        (faces.x[[1, jpg]] - l(10, 200, 30)).abs() < 0.1,
        "lossy but close"
    );
}

#[test]
fn mixed_sizes_are_an_error_naming_the_file_unless_resized() {
    let dir = tempfile::tempdir().unwrap();
    flat(dir.path(), "a.png", 8, 6, 100);
    flat(dir.path(), "b.png", 8, 6, 100);
    save(
        &gray(10, 12, |x, _| x as u8 * 20),
        &dir.path().join("c.png"),
        ImageFormat::Png,
    );
    let err = Loader::new(dir.path()).load::<f32>().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::MixedSizes { .. }));
    assert!(
        msg.contains("c.png") && msg.contains("10x12") && msg.contains("8x6"),
        "{msg}"
    );
    assert!(msg.contains("one size"), "{msg}");

    let faces = Loader::new(dir.path()).resize(5, 4).load::<f32>().unwrap();
    assert_eq!((faces.width, faces.height), (5, 4));
    assert_eq!(faces.x.dim(), (20, 3));
    assert!(faces.x.iter().all(|v| (0.0..=1.0).contains(v)));
    // A constant image stays constant when resampled.
    assert!(
        faces
            .x
            .column(0)
            .iter()
            .all(|v| (v - 100.0 / 255.0).abs() < 1e-5)
    );
}

#[test]
fn corrupt_image_is_an_error_naming_it_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    flat(dir.path(), "a.png", 4, 4, 1);
    flat(dir.path(), "c.png", 4, 4, 2);
    let mut bytes = std::fs::read(dir.path().join("a.png")).unwrap();
    bytes.truncate(30);
    std::fs::write(dir.path().join("b.png"), &bytes).unwrap();

    let err = Loader::new(dir.path()).load::<f32>().unwrap_err();
    assert!(matches!(err, Error::Undecodable { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("b.png") && msg.contains("cannot decode image"),
        "{msg}"
    );

    let faces = Loader::new(dir.path())
        .skip_unreadable(true)
        .load::<f32>()
        .unwrap();
    assert_eq!(faces.x.ncols(), 2);
    assert_eq!(faces.skipped.len(), 1);
    assert_eq!(faces.skipped[0].path, Path::new("b.png"));
    assert!(matches!(faces.skipped[0].reason, SkipReason::Unreadable(_)));
}

#[test]
fn hidden_files_are_ignored_and_non_images_skipped() {
    let dir = tempfile::tempdir().unwrap();
    flat(dir.path(), "a.png", 4, 4, 1);
    flat(dir.path(), "b.pgm", 4, 4, 2);
    flat(dir.path(), ".hidden.png", 9, 9, 2);
    flat(dir.path(), ".cache/x.png", 9, 9, 2);
    std::fs::write(dir.path().join("notes.txt"), "these are my faces\n").unwrap();
    let faces = Loader::new(dir.path()).load::<f32>().unwrap();
    assert_eq!(faces.x.ncols(), 2);
    assert_eq!(faces.skipped.len(), 1);
    assert_eq!(faces.skipped[0].reason, SkipReason::NotAnImage);
}

#[test]
fn empty_missing_and_single_image_folders_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = Loader::new(dir.path()).load::<f32>().unwrap_err();
    assert!(matches!(err, Error::NoImages { .. }), "{err}");
    assert!(err.to_string().contains("no images found"));

    let err = Loader::new(dir.path().join("nope"))
        .load::<f32>()
        .unwrap_err();
    assert!(matches!(err, Error::NoSuchFolder { .. }), "{err}");
    assert!(err.to_string().contains("nope"));

    flat(dir.path(), "a.png", 4, 4, 1);
    let err = Loader::new(dir.path()).load::<f32>().unwrap_err();
    assert!(matches!(err, Error::OneImage { .. }), "{err}");
}

fn check_dataset(name: &str) {
    let Some(dir) = common::dataset(name) else {
        return;
    };
    let want = common::baseline(name);
    let faces = Loader::new(&dir).load::<f64>().unwrap();
    assert_eq!(faces.x.dim(), (want.m, want.n));
    let sum: f64 = faces.x.iter().sum();
    let fro = faces.x.iter().map(|v| v * v).sum::<f64>().sqrt();
    // baseline.md prints 6 decimals; summation order moves the last ones.
    assert!(
        (sum - want.x_sum).abs() < 1e-4,
        "{name}: x_sum {sum:.6} vs {}",
        want.x_sum
    );
    assert!(
        (fro - want.x_fro).abs() < 1e-6,
        "{name}: ||X|| {fro:.6} vs {}",
        want.x_fro
    );
    assert_eq!(
        faces
            .paths
            .first()
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/"),
        want.first
    );
    assert_eq!(
        faces
            .paths
            .last()
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/"),
        want.last
    );
}

#[test]
fn cbcl_matches_the_scikit_learn_x() {
    check_dataset("cbcl");
}

#[test]
fn orl_matches_the_scikit_learn_x() {
    check_dataset("orl");
}

#[test]
fn olivetti_matches_the_scikit_learn_x() {
    check_dataset("olivetti");
}

#[test]
fn lee_seung_preprocessing_sets_each_faces_mean_and_spread_then_clips() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // a: a checkerboard of two values, each one standard deviation from the mean, so it
    // scales to 0 and 0.5 with nothing clipped; b: one bright pixel among dark ones, whose
    // scaled peak is far above 1 and is clipped; c: constant.
    save(
        &gray(4, 4, |x, y| if (x + y) % 2 == 0 { 100 } else { 140 }),
        &root.join("a.png"),
        ImageFormat::Png,
    );
    save(
        &gray(4, 4, |x, y| if (x, y) == (0, 0) { 250 } else { 10 }),
        &root.join("b.png"),
        ImageFormat::Png,
    );
    flat(root, "c.png", 4, 4, 77);
    let raw = Loader::new(root).load::<f64>().unwrap();
    let faces = Loader::new(root)
        .preprocess(facenmf::Preprocess::LeeSeung)
        .load::<f64>()
        .unwrap();
    assert_eq!(faces.preprocess, facenmf::Preprocess::LeeSeung);
    assert_eq!(raw.preprocess, facenmf::Preprocess::None);
    let moments = |j: usize| {
        let c = faces.x.column(j);
        let mean = c.mean().unwrap();
        let std = (c.mapv(|v| (v - mean).powi(2)).mean().unwrap()).sqrt();
        (mean, std)
    };
    let (mean, std) = moments(0);
    assert!(
        (mean - 0.25).abs() < 1e-12 && (std - 0.25).abs() < 1e-12,
        "{mean} {std}"
    );
    for (i, &v) in faces.x.column(0).iter().enumerate() {
        let expect = if raw.x[[i, 0]] < 0.5 { 0.0 } else { 0.5 };
        assert!((v - expect).abs() < 1e-12, "pixel {i}: {v}");
    }
    // The bright pixel is 3.87 standard deviations above the mean: clipped at 1, the rest
    // below the mean.
    assert_eq!(faces.x[[0, 1]], 1.0);
    assert!(
        faces
            .x
            .column(1)
            .iter()
            .skip(1)
            .all(|&v| v > 0.0 && v < 0.25)
    );
    assert!(faces.x.iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert!(faces.x.column(2).iter().all(|&v| v == 0.25));
    assert_eq!(
        "lee-seung".parse::<facenmf::Preprocess>().unwrap(),
        facenmf::Preprocess::LeeSeung
    );
    assert!("zscore".parse::<facenmf::Preprocess>().is_err());
}

#[test]
fn loading_reports_each_decoded_file_once() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..37 {
        flat(dir.path(), &format!("f{i:02}.png"), 4, 3, i as u8);
    }
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let faces = Loader::new(dir.path())
        .load_with::<f32>(|p| seen.lock().unwrap().push((p.done, p.total)))
        .unwrap();
    assert_eq!(faces.x.ncols(), 37);
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    // Every decoded file once, counted 1..=37 of 37; the text file is never decoded.
    assert_eq!(seen, (1..=37).map(|d| (d, 37)).collect::<Vec<_>>());
}
