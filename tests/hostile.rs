//! Hostile input: files whose headers lie, decoders that would panic, folders that cannot be
//! read. None may end the process with a panic or an abort, or allocate without bound; each
//! is an error naming the file, or with `--skip-unreadable` a listed skip.

mod common;

use common::{facenmf, stderr};

use std::path::Path;

use facenmf::{Error, Loader};
use image::{GrayImage, ImageFormat};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// Three good 4x4 faces in `dir`.
fn good_faces(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..3u8 {
        let mut pgm = b"P5 4 4 255\n".to_vec();
        pgm.extend((0..16).map(|j| i * 10 + j + 1));
        std::fs::write(dir.join(format!("good{i}.pgm")), pgm).unwrap();
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend(crc32(&body).to_be_bytes());
}

/// A PNG whose header claims `width` x `height`, with a few bytes of image data.
fn lying_png(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    // A zlib stream of ten zero bytes (stored block).
    png_chunk(
        &mut out,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x0a, 0x00, 0xf5, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0, 1,
        ],
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A GIF whose screen and frame claim 65535 x 65535.
fn lying_gif() -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend([0xff, 0xff, 0xff, 0xff, 0x80, 0, 0]);
    out.extend([0, 0, 0, 255, 255, 255]); // a two-colour global table
    out.extend([b',', 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0]);
    out.extend([2, 2, 0x44, 0x01, 0, b';']);
    out
}

#[test]
fn headers_that_claim_huge_images_are_refused_before_decoding() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>); 3] = [
        // This header made the image decoder panic (exit 101) before.
        (
            "evil.pgm",
            b"P5 65536 65536 255\n"
                .iter()
                .copied()
                .chain([0; 100])
                .collect(),
        ),
        ("evil.png", lying_png(100_000, 100_000)),
        ("evil.gif", lying_gif()),
    ];
    for (name, bytes) in cases {
        let dir = tmp.path().join(name.replace('.', "-"));
        good_faces(&dir);
        std::fs::write(dir.join(name), &bytes).unwrap();
        let folder = dir.to_str().unwrap();
        let out = facenmf(&["learn", folder, "-r", "2", "-q", "-o", "out"], tmp.path());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains(name) && err.contains("above the limit") && !err.contains("panicked"),
            "{name}: {err}"
        );
        let out = facenmf(
            &[
                "learn",
                folder,
                "-r",
                "2",
                "-q",
                "-o",
                "out",
                "--skip-unreadable",
            ],
            tmp.path(),
        );
        let err = stderr(&out);
        assert!(out.status.success(), "{name}: {err}");
        assert!(err.contains("skipped 1 files"), "{name}: {err}");
    }
}

#[test]
fn the_pixel_limit_is_a_parameter_and_mixed_sizes_are_found_from_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("faces");
    good_faces(&dir);
    GrayImage::from_pixel(300, 200, image::Luma([7]))
        .save(dir.join("big.png"))
        .unwrap();
    let err = Loader::new(&dir)
        .max_pixels(10_000)
        .load::<f32>()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                width: 300,
                height: 200,
                ..
            }
        ),
        "{err}"
    );
    // Under the limit, the header sizes disagree and say so before decoding.
    let err = Loader::new(&dir).load::<f32>().unwrap_err();
    assert!(matches!(err, Error::MixedSizes { .. }), "{err}");
    assert!(err.to_string().contains("300x200"), "{err}");
    // A resize above the limit is refused up front.
    let err = Loader::new(&dir)
        .resize(100_000, 100_000)
        .load::<f32>()
        .unwrap_err();
    assert!(err.to_string().starts_with("resize:"), "{err}");
}

#[cfg(unix)]
#[test]
fn skip_unreadable_also_skips_files_and_folders_that_cannot_be_read() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("faces");
    good_faces(&dir);
    symlink(dir.join("nowhere.pgm"), dir.join("dangling.pgm")).unwrap();
    std::fs::create_dir(dir.join("loop")).unwrap();
    symlink(dir.join("loop"), dir.join("loop/again")).unwrap();
    let locked = dir.join("locked.pgm");
    std::fs::copy(dir.join("good0.pgm"), &locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads files whatever their mode; the dangling link and the loop still apply.
    let root = std::fs::read(&locked).is_ok();

    let err = Loader::new(&dir).load::<f32>().unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let faces = Loader::new(&dir)
        .skip_unreadable(true)
        .load::<f32>()
        .unwrap();
    let names: Vec<String> = faces.skipped.iter().map(|s| s.name()).collect();
    assert!(names.iter().any(|n| n == "dangling.pgm"), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("loop/again")),
        "{names:?}"
    );
    if !root {
        assert!(names.iter().any(|n| n == "locked.pgm"), "{names:?}");
    }
    assert_eq!(faces.x.ncols(), if root { 4 } else { 3 });
}

/// Valid 12x10 images in every format the loader decodes.
fn valid_images() -> Vec<(&'static str, Vec<u8>)> {
    let img = GrayImage::from_fn(12, 10, |x, y| image::Luma([(x * 20 + y * 3) as u8]));
    let rgb = image::DynamicImage::ImageLuma8(img.clone()).to_rgb8();
    let mut out = Vec::new();
    for (name, format) in [
        ("a.pgm", ImageFormat::Pnm),
        ("a.png", ImageFormat::Png),
        ("a.gif", ImageFormat::Gif),
        ("a.bmp", ImageFormat::Bmp),
        ("a.tif", ImageFormat::Tiff),
        ("a.jpg", ImageFormat::Jpeg),
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        match format {
            ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::Bmp => {
                rgb.write_to(&mut bytes, format).unwrap()
            }
            _ => img.write_to(&mut bytes, format).unwrap(),
        }
        out.push((name, bytes.into_inner()));
    }
    out
}

#[test]
fn mutated_images_never_panic_and_stay_within_the_limit() {
    // Seeded byte flips, truncations and header edits of valid files: the loader must return,
    // with the images or an error, every time. A panic would unwind through catch_unwind
    // below and fail the test; an abort or a hang would end it.
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let mut outcomes = [0usize; 2];
    for (name, valid) in valid_images() {
        for case in 0..60 {
            let dir = tmp.path().join(format!("{name}-{case}"));
            std::fs::create_dir_all(&dir).unwrap();
            for good in ["good0", "good1"] {
                std::fs::write(dir.join(format!("{good}-{name}")), &valid).unwrap();
            }
            let mut bytes = valid.clone();
            match case % 3 {
                0 => {
                    for _ in 0..1 + rng.next_u32() % 4 {
                        let at = rng.next_u32() as usize % bytes.len();
                        bytes[at] ^= 1 << (rng.next_u32() % 8);
                    }
                }
                1 => bytes.truncate(rng.next_u32() as usize % bytes.len()),
                _ => {
                    // Header edits: large values over the first 32 bytes, where the sizes are.
                    let at = rng.next_u32() as usize % bytes.len().min(32);
                    bytes[at] = [0xff, 0x7f, 0x00, 0x80][rng.next_u32() as usize % 4];
                }
            }
            std::fs::write(dir.join(name), &bytes).unwrap();
            let result = std::panic::catch_unwind(|| {
                Loader::new(&dir)
                    .max_pixels(1 << 16)
                    .load::<f32>()
                    .map(|_| ())
            });
            let result = result.unwrap_or_else(|_| panic!("{name} case {case} panicked"));
            outcomes[usize::from(result.is_ok())] += 1;
        }
    }
    // Both outcomes occur: the mutations are not all harmless, nor all fatal.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}
