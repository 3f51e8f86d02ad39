//! The report of a run: what `learn` writes, `facenmf report` rebuilding it, the display
//! options, and clear errors on folders that are not output folders.

mod common;

use common::{facenmf, stderr};

use std::path::Path;

/// Learns the bundled demo faces at rank 12 into `root/out` with `extra` arguments.
fn learn(root: &Path, extra: &[&str]) {
    let faces = common::demo_dir().join("faces");
    let mut args = vec![
        "learn",
        faces.to_str().unwrap(),
        "-r",
        "12",
        "-o",
        "out",
        "-q",
    ];
    args.extend_from_slice(extra);
    let out = facenmf(&args, root);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[((v >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn learn_writes_a_self_contained_report_whose_pictures_are_also_files() {
    let tmp = tempfile::tempdir().unwrap();
    learn(tmp.path(), &[]);
    let out = tmp.path().join("out");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for id in [
        "summary",
        "parts",
        "components",
        "similarity",
        "reconstructions",
        "worst",
        "convergence",
        "anatomy",
        "comparison",
    ] {
        assert!(html.contains(&format!("<h2 id={id}>")), "no section {id}");
    }
    // Nothing outside the page: every image is a data: address, no script, no stylesheet link.
    assert!(!html.contains("<script") && !html.contains("<link"));
    let sources: Vec<&str> = html.split("<img src=\"").skip(1).collect();
    assert!(sources.len() > 20, "{} images", sources.len());
    for src in &sources {
        assert!(src.starts_with("data:image/png;base64,"), "{}", &src[..40]);
    }
    // The pictures the page shows whole are the PNG files beside it, byte for byte.
    for name in [
        "basis.png",
        "similarity.png",
        "reconstructions.png",
        "worst.png",
        "convergence.png",
        "anatomy.png",
    ] {
        let png = std::fs::read(out.join(name)).unwrap();
        assert!(
            html.contains(&base64(&png)),
            "{name} is not the picture in the page"
        );
    }
    for name in facenmf::render::REPORT_PICTURES {
        assert!(image::open(out.join(name)).is_ok(), "{name} is not a PNG");
    }
    // The summary, the share labels and the three methods with their errors.
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let error = format!("{:.5}", run["rel_error"].as_f64().unwrap());
    assert!(html.contains(&error), "the summary gives the error {error}");
    assert!(
        html.contains("NMF: error") && html.contains("PCA: error") && html.contains("VQ: error")
    );
    assert_eq!(run["display"]["tile_scale"], "p99");
    assert_eq!(run["display"]["palette"], "gray");
}

#[test]
fn report_rebuilds_the_same_page_and_records_a_new_display() {
    let tmp = tempfile::tempdir().unwrap();
    learn(tmp.path(), &[]);
    let out = tmp.path().join("out");
    let first = std::fs::read(out.join("report.html")).unwrap();
    let basis = std::fs::read(out.join("basis.png")).unwrap();

    let rebuilt = facenmf(&["report", "out"], tmp.path());
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    assert!(stderr(&rebuilt).contains("report.html"));
    assert_eq!(
        std::fs::read(out.join("report.html")).unwrap(),
        first,
        "same page"
    );

    let lee = facenmf(
        &[
            "report",
            "out",
            "--display",
            "lee-seung",
            "--tile-scale",
            "max",
        ],
        tmp.path(),
    );
    assert!(lee.status.success(), "{}", stderr(&lee));
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["display"]["palette"], "lee-seung");
    assert_eq!(run["display"]["tile_scale"], "max");
    assert_ne!(std::fs::read(out.join("basis.png")).unwrap(), basis);
    // Black on white: the parts' background is white now, where it was black.
    let white = |png: &image::RgbImage| {
        png.pixels().filter(|p| p.0 == [255, 255, 255]).count() as f64 / png.pixels().len() as f64
    };
    let before = image::load_from_memory(&basis).unwrap().to_rgb8();
    let after = image::open(out.join("basis.png")).unwrap().to_rgb8();
    assert!(
        white(&before) < 0.4 && white(&after) > 0.5,
        "{} {}",
        white(&before),
        white(&after)
    );

    // learn takes the same choice, and a bad one is refused with the accepted spellings.
    let bad = facenmf(&["learn", "x", "--tile-scale", "p0"], tmp.path());
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("percentile"), "{}", stderr(&bad));
}

#[test]
fn report_on_a_folder_that_is_not_a_whole_output_folder_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let failure = |args: &[&str], expect: &[&str]| {
        let out = facenmf(args, root);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        for e in expect {
            assert!(err.contains(e), "{args:?}: expected {e:?} in {err}");
        }
    };
    failure(&["report", "nowhere"], &["nowhere", "run.json"]);
    // An image folder is not an output folder.
    let faces = common::demo_dir().join("faces");
    failure(&["report", faces.to_str().unwrap()], &["run.json"]);

    learn(root, &[]);
    let out = root.join("out");
    std::fs::write(out.join("W.npy"), b"not numpy").unwrap();
    failure(&["report", "out"], &["W.npy"]);

    learn(root, &[]);
    std::fs::write(out.join("run.json"), b"{\"folder\": 3}").unwrap();
    failure(&["report", "out"], &["run.json", "output folder"]);

    learn(root, &[]);
    std::fs::remove_file(out.join("H.npy")).unwrap();
    failure(&["report", "out"], &["H.npy"]);

    // The faces it was learned from have changed: a face is gone.
    let copy = root.join("faces");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(&faces).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let args = ["learn", "faces", "-r", "12", "-o", "out", "-q"];
    assert!(facenmf(&args, root).status.success());
    let before = std::fs::read(out.join("report.html")).unwrap();
    std::fs::remove_file(copy.join("face-003.png")).unwrap();
    failure(&["report", "out"], &["faces", "changed", "face-003.png"]);
    assert_eq!(
        std::fs::read(out.join("report.html")).unwrap(),
        before,
        "untouched"
    );
    // And moved: --faces names the new place.
    std::fs::rename(&copy, root.join("moved")).unwrap();
    failure(&["report", "out"], &["faces", "--faces"]);
}
