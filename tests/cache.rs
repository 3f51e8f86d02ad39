//! The decoded cache: the same X as decoding, bit for bit; read when it matches its folder,
//! rebuilt (and why said) when it does not; nothing half-written taken for good.

mod common;

use std::path::Path;
use std::process::Command;

use common::{dataset, facenmf, stderr};
use facenmf::Loader;
use facenmf::loader::{CACHE_IMAGES, CACHE_MANIFEST, CacheState};
use image::{GrayImage, ImageBuffer, Luma};

fn gray8(dir: &Path, name: &str, seed: u32) {
    let img = GrayImage::from_fn(6, 5, |x, y| {
        Luma([((x * 37 + y * 11 + seed * 53) % 256) as u8])
    });
    img.save(dir.join(name)).unwrap();
}

fn gray16(dir: &Path, name: &str, seed: u32) {
    let img: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_fn(6, 5, |x, y| {
        Luma([((x * 7919 + y * 104_729 + seed * 1_299_709) % 65536) as u16])
    });
    img.save(dir.join(name)).unwrap();
}

/// The dtype `images.npy` was written in, from its header.
fn stored_dtype(cache: &Path) -> String {
    let bytes = std::fs::read(cache.join(CACHE_IMAGES)).unwrap();
    let header = String::from_utf8_lossy(&bytes[10..128]).into_owned();
    let at = header.find("'descr': '").unwrap() + 10;
    header[at..at + 3].to_string()
}

fn built(state: &CacheState) -> &str {
    match state {
        CacheState::Built { reason } => reason,
        CacheState::Hit => panic!("expected a build, the cache was read"),
        _ => panic!("unknown state"),
    }
}

#[test]
fn cached_loads_equal_decoding_bit_for_bit_in_the_narrowest_exact_type() {
    let tmp = tempfile::tempdir().unwrap();
    let (eight, sixteen) = (tmp.path().join("eight"), tmp.path().join("sixteen"));
    std::fs::create_dir_all(eight.join("sub")).unwrap();
    std::fs::create_dir_all(&sixteen).unwrap();
    for i in 0..5 {
        gray8(&eight, &format!("f{i}.png"), i);
        gray16(&sixteen, &format!("g{i}.png"), i);
    }
    gray8(&eight.join("sub"), "a.pgm", 9);
    std::fs::write(eight.join("notes.txt"), "not an image").unwrap();
    let cases = [
        (Loader::new(&eight), "|u1"),
        (Loader::new(&sixteen), "<u2"),
        // Resampled values are f32 (the resampler works in f32).
        (Loader::new(&eight).resize(4, 3), "<f4"),
    ];
    for (k, (loader, dtype)) in cases.into_iter().enumerate() {
        let cache = tmp.path().join(format!("cache{k}"));
        let (first, state) = loader.load_cached::<f64>(&cache, |_| {}).unwrap();
        assert!(built(&state).contains("no cache"), "{state:?}");
        assert_eq!(stored_dtype(&cache), dtype, "case {k}");
        let decoded = loader.load::<f64>().unwrap();
        assert_eq!(first.x, decoded.x, "case {k}: f64");
        assert_eq!(first.paths, decoded.paths);
        assert_eq!(first.skipped, decoded.skipped);
        assert_eq!((first.height, first.width), (decoded.height, decoded.width));
        let (again, state) = loader.load_cached::<f32>(&cache, |_| {}).unwrap();
        assert_eq!(state, CacheState::Hit, "case {k}");
        assert_eq!(again.x, loader.load::<f32>().unwrap().x, "case {k}: f32");
    }
    // Preprocessing is applied after the cache, so one cache serves both.
    let cache = tmp.path().join("cache0");
    let loader = Loader::new(&eight).preprocess(facenmf::Preprocess::LeeSeung);
    let (pre, state) = loader.load_cached::<f64>(&cache, |_| {}).unwrap();
    assert_eq!(state, CacheState::Hit);
    assert_eq!(pre.x, loader.load::<f64>().unwrap().x);
    // numpy reads the images as rows: the first image's first pixels.
    let bytes = std::fs::read(cache.join(CACHE_IMAGES)).unwrap();
    let x = Loader::new(&eight).load::<f64>().unwrap().x;
    for (i, &b) in bytes[128..134].iter().enumerate() {
        assert_eq!(f64::from(b) / 255.0, x[[i, 0]]);
    }
}

#[test]
fn a_cache_that_no_longer_matches_its_folder_is_rebuilt_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let faces = tmp.path().join("faces");
    std::fs::create_dir(&faces).unwrap();
    for i in 0..4 {
        gray8(&faces, &format!("f{i}.png"), i);
    }
    let cache = tmp.path().join("cache");
    let loader = Loader::new(&faces);
    let load = || loader.load_cached::<f32>(&cache, |_| {}).unwrap();
    load();
    assert_eq!(load().1, CacheState::Hit);

    // A changed file (another size on disk), a new one, a gone one: each named.
    let bigger = GrayImage::from_fn(6, 5, |x, _| Luma([(x * 40) as u8]));
    bigger.save(faces.join("f1.png")).unwrap();
    let (after, state) = load();
    assert!(built(&state).contains("f1.png changed"), "{state:?}");
    assert_eq!(after.x, loader.load::<f32>().unwrap().x);
    gray8(&faces, "f9.png", 9);
    assert!(built(&load().1).contains("f9.png is new"));
    std::fs::remove_file(faces.join("f0.png")).unwrap();
    let (after, state) = load();
    assert!(built(&state).contains("f0.png is gone"), "{state:?}");
    assert_eq!(after.x.ncols(), 4);

    // Other loading settings, another folder.
    let resized = Loader::new(&faces).resize(3, 3);
    let (_, state) = resized.load_cached::<f32>(&cache, |_| {}).unwrap();
    assert!(
        built(&state).contains("other loading settings"),
        "{state:?}"
    );
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    gray8(&other, "a.png", 1);
    gray8(&other, "b.png", 2);
    let (_, state) = Loader::new(&other)
        .load_cached::<f32>(&cache, |_| {})
        .unwrap();
    assert!(built(&state).contains("was made from"), "{state:?}");

    // A damaged cache: truncated data, a manifest that is not one.
    Loader::new(&faces)
        .load_cached::<f32>(&cache, |_| {})
        .unwrap();
    let data = std::fs::read(cache.join(CACHE_IMAGES)).unwrap();
    std::fs::write(cache.join(CACHE_IMAGES), &data[..data.len() - 7]).unwrap();
    let (again, state) = load();
    assert!(built(&state).contains("not the size"), "{state:?}");
    assert_eq!(again.x, loader.load::<f32>().unwrap().x);
    std::fs::write(cache.join(CACHE_MANIFEST), "{ half").unwrap();
    assert!(built(&load().1).contains("not a facenmf cache manifest"));
    assert_eq!(load().1, CacheState::Hit);
}

#[test]
fn a_folder_that_cannot_be_cached_leaves_no_cache_that_looks_good() {
    let tmp = tempfile::tempdir().unwrap();
    let faces = tmp.path().join("faces");
    std::fs::create_dir(&faces).unwrap();
    gray8(&faces, "a.png", 1);
    gray8(&faces, "b.png", 2);
    let cache = tmp.path().join("cache");
    Loader::new(&faces)
        .load_cached::<f32>(&cache, |_| {})
        .unwrap();
    // An image of another size: the error of plain loading, and the old cache is gone
    // rather than left to be read for a folder it no longer describes.
    GrayImage::new(7, 7).save(faces.join("c.png")).unwrap();
    let err = Loader::new(&faces)
        .load_cached::<f32>(&cache, |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("c.png") && err.contains("7x7"), "{err}");
    assert!(!cache.join(CACHE_MANIFEST).exists());
    let leftovers: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_while_caching_is_a_clear_error_and_leaves_no_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let faces = tmp.path().join("faces");
    std::fs::create_dir(&faces).unwrap();
    // 300 images of 64 x 64 (1.2 MB decoded), a disk of 256 KiB.
    for i in 0..300u32 {
        let img = GrayImage::from_fn(64, 64, |x, y| Luma([((x * y + i * 31) % 251) as u8]));
        img.save(faces.join(format!("f{i:03}.png"))).unwrap();
    }
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&disk)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!(
            "\n!!!!!!!! FULL-DISK CACHE TEST NOT RUN: cannot mount a tmpfs here (needs root) !!!!!!!!\n"
        );
        return;
    }
    let result = std::panic::catch_unwind(|| {
        let cache = disk.join("cache");
        let err = Loader::new(&faces)
            .load_cached::<f32>(&cache, |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("No space left") && err.contains("images.npy"),
            "{err}"
        );
        let left: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        // Through the binary: the error names the cache, exit code 1.
        let out = facenmf(
            &[
                "learn",
                "faces",
                "--cache",
                cache.to_str().unwrap(),
                "-r",
                "4",
                "-q",
            ],
            tmp.path(),
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("cannot load through the cache"),
            "{}",
            stderr(&out)
        );
    });
    let _ = Command::new("umount").arg(&disk).status();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn learn_through_the_cache_fits_the_same_bits_and_says_what_it_did() {
    let tmp = tempfile::tempdir().unwrap();
    let out = facenmf(&["synth", "--out", "d", "--count", "40"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let run = |args: &[&str]| {
        let mut all = vec!["learn", "d/faces", "-r", "6", "--max-iter", "30"];
        all.extend_from_slice(args);
        let out = facenmf(&all, tmp.path());
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    let said = run(&["--cache", "c", "-o", "a"]);
    assert!(
        said.contains("decoded 40 images into the cache in c"),
        "{said}"
    );
    let said = run(&["--cache", "c", "-o", "b"]);
    assert!(
        said.contains("read 40 decoded images from the cache in c"),
        "{said}"
    );
    run(&["-o", "plain"]);
    let bytes = |dir: &str, file: &str| std::fs::read(tmp.path().join(dir).join(file)).unwrap();
    for file in ["W.npy", "H.npy"] {
        assert!(bytes("a", file) == bytes("plain", file), "{file}");
        assert!(bytes("b", file) == bytes("plain", file), "{file}");
    }
}

#[test]
fn cbcl_through_the_cache_is_the_baselines_x() {
    let Some(dir) = dataset("cbcl") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let loader = Loader::new(&dir);
    loader.load_cached::<f64>(&cache, |_| {}).unwrap();
    let (faces, state) = loader.load_cached::<f64>(&cache, |_| {}).unwrap();
    assert_eq!(state, CacheState::Hit);
    assert_eq!(faces.x.dim(), (361, 2429));
    // ../shared/bench/baseline.md: x_sum 437092.129412, Frobenius norm 512.448033.
    assert!((faces.x.sum() - 437_092.129_412).abs() < 1e-5);
    assert!((faces.x.mapv(|v| v * v).sum().sqrt() - 512.448_033).abs() < 1e-5);
    assert_eq!(stored_dtype(&cache), "|u1");
    assert_eq!(
        std::fs::metadata(cache.join(CACHE_IMAGES)).unwrap().len(),
        128 + 361 * 2429
    );
}

/// `facenmf learn d/faces` in `root` with `args` after the shared ones (rank 12, f64, no
/// tolerance); its stderr. Fails the test if the run fails.
fn learn_f64(root: &Path, args: &[&str]) -> String {
    let mut all = vec![
        "learn",
        "d/faces",
        "-r",
        "12",
        "--tol",
        "0",
        "--precision",
        "f64",
    ];
    all.extend_from_slice(args);
    let out = facenmf(&all, root);
    assert!(out.status.success(), "{}", stderr(&out));
    stderr(&out)
}

/// The run.json of output folder `dir` under `root`.
fn run_json(root: &Path, dir: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(root.join(dir).join("run.json")).unwrap()).unwrap()
}

/// Every iteration's relative error in a run.json.
fn errors_by_iteration(run: &serde_json::Value) -> Vec<f64> {
    run["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["rel_error"].as_f64().unwrap())
        .collect()
}

#[test]
fn learn_stream_fits_from_the_cache_and_writes_every_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = facenmf(&["synth", "--out", "d", "--count", "90"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let run = |args: &[&str]| {
        let mut all = vec!["--max-iter", "40", "--multilevel", "off"];
        all.extend_from_slice(args);
        learn_f64(tmp.path(), &all)
    };
    let said = run(&[
        "--cache",
        "c",
        "--stream",
        "--block-images",
        "32",
        "-o",
        "s",
    ]);
    assert!(said.contains("streaming 90 images"), "{said}");
    run(&["-o", "m"]);
    let (streamed, memory) = (run_json(tmp.path(), "s"), run_json(tmp.path(), "m"));
    assert_eq!(streamed["images"], 90);
    assert_eq!(streamed["files"], memory["files"]);
    let (a, b) = (errors_by_iteration(&streamed), errors_by_iteration(&memory));
    assert_eq!(a.len(), b.len());
    for (k, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!((a - b).abs() <= 1e-9 * b, "iteration {k}: {a} against {b}");
    }
    for file in [
        "W.npy",
        "H.npy",
        "report.html",
        "basis.png",
        "reconstructions.png",
    ] {
        assert!(tmp.path().join("s").join(file).is_file(), "{file}");
    }
    let warnings = streamed["warnings"].to_string();
    assert!(warnings.contains("streamed"), "{warnings}");
    // What a streamed fit cannot do is refused before any work, by flag.
    for (extra, flag) in [
        (vec!["--stream"], "--cache"),
        (
            vec!["--cache", "c", "--stream", "--sparsity-h", "0.5"],
            "--sparsity-h",
        ),
        (
            vec!["--cache", "c", "--stream", "--hide-fraction", "0.1"],
            "--hide-fraction",
        ),
    ] {
        let mut all = vec!["learn", "d/faces", "-r", "4", "-o", "x"];
        all.extend_from_slice(&extra);
        let out = facenmf(&all, tmp.path());
        assert!(!out.status.success());
        assert!(stderr(&out).contains(flag), "{flag}: {}", stderr(&out));
    }
}

#[test]
fn learn_online_moves_the_parts_batch_by_batch_in_memory_or_streamed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = facenmf(&["synth", "--out", "d", "--count", "150"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let run = |args: &[&str]| {
        let mut all = vec!["--max-iter", "25", "--online", "--batch-images", "64"];
        all.extend_from_slice(args);
        learn_f64(tmp.path(), &all)
    };
    let said = run(&["--cache", "c", "--stream", "-o", "s"]);
    assert!(said.contains("in batches of 64"), "{said}");
    assert!(said.contains("25 passes (online)"), "{said}");
    run(&["-o", "m"]);
    let (streamed, memory) = (run_json(tmp.path(), "s"), run_json(tmp.path(), "m"));
    assert_eq!(memory["params"]["online"]["batch_images"], 64);
    assert_eq!(memory["params"]["online"]["forget"], 0.1);
    let (a, b) = (errors_by_iteration(&streamed), errors_by_iteration(&memory));
    assert_eq!(a.len(), 26);
    assert_eq!(a.len(), b.len());
    for (k, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!((a - b).abs() <= 1e-9 * b, "pass {k}: {a} against {b}");
    }
    assert!(b[25] < 0.5 * b[0], "{} against {}", b[25], b[0]);
    assert!(tmp.path().join("m").join("report.html").is_file());
    // Refused before any work, by flag.
    for (extra, flag) in [
        (vec!["--batch-images", "64"], "--online"),
        (vec!["--online", "--forget", "0"], "--online"),
        (
            vec!["--online", "--checkpoint-every", "5"],
            "--checkpoint-every",
        ),
        (vec!["--online", "--alpha-w", "0.1"], "--online"),
        (
            vec![
                "--online",
                "--cache",
                "c",
                "--stream",
                "--block-images",
                "32",
            ],
            "--block-images",
        ),
    ] {
        let mut all = vec!["learn", "d/faces", "-r", "4", "-o", "x"];
        all.extend_from_slice(&extra);
        let out = facenmf(&all, tmp.path());
        assert!(!out.status.success(), "{extra:?}");
        assert!(stderr(&out).contains(flag), "{flag}: {}", stderr(&out));
    }
    assert!(!tmp.path().join("x").exists());
}
