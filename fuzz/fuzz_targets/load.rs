//! Any bytes as one file of a face folder: loading must return, with the images or an error,
//! and never panic, abort, hang or allocate past the pixel limit.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// A folder with two good 4x4 faces, made once per process; the input is the third file.
fn folder() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("facenmf-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..2u8 {
            let mut pgm = b"P5 4 4 255\n".to_vec();
            pgm.extend((0..16).map(|j| i * 16 + j));
            std::fs::write(dir.join(format!("good{i}.pgm")), pgm).unwrap();
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = folder();
    std::fs::write(dir.join("input"), data).unwrap();
    for skip in [false, true] {
        let _ = facenmf::Loader::new(dir)
            .max_pixels(1 << 16)
            .skip_unreadable(skip)
            .load::<f32>();
    }
});
