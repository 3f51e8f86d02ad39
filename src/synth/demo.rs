//! The bundled demo set: synthetic faces built from known parts.
//!
//! Twelve parts in four groups (brows, eyes, nose, mouth), three variants each. Every face picks,
//! independently per group, one variant with probability 0.85 (or none) and gives it a random
//! intensity in [0.4, 1]. So X = W0 H0 exactly (up to 8-bit rounding), no part is in every face,
//! and NMF at rank 12 should find each part as one basis image. `facenmf synth` writes the faces
//! and, beside them, the ground-truth parts. [`with_outline`] adds a thirteenth part, the outline
//! of the head, present in every face: the case where a part can hide inside the others.

use std::path::Path;

use image::GrayImage;
use ndarray::{Array2, ArrayView1};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use super::PartsSet;
use crate::Result;
use crate::render::write_png;

/// Side of the demo images in pixels; the parts are drawn in these coordinates.
pub const SIZE: usize = 32;
/// Probability that a face shows some variant of a given group.
const GROUP_PRESENCE: f64 = 0.85;
/// Supersampling per axis for anti-aliased shapes.
const SUPERSAMPLE: usize = 4;

/// A shape in image coordinates (x right, y down, pixel centres at +0.5).
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// A filled ellipse: centre, radii.
    Ellipse(f64, f64, f64, f64),
    /// A polyline of three points with a thickness: a bar, an arc or a hook.
    Stroke([(f64, f64); 3], f64),
}

/// One ground-truth part: a name and its shapes (a pair for the symmetric ones).
#[derive(Debug, Clone)]
pub struct Part {
    /// Group and variant, as in `eyes-round`.
    pub name: &'static str,
    shapes: Vec<Shape>,
}

/// The twelve parts, grouped by three (brows, eyes, nose, mouth).
pub fn parts() -> Vec<Part> {
    use Shape::{Ellipse, Stroke};
    let pair = |a: [(f64, f64); 3], t: f64| {
        let mirror = a.map(|(x, y)| (32.0 - x, y));
        vec![Stroke(a, t), Stroke(mirror, t)]
    };
    let eyes = |cx: f64, cy: f64, rx: f64, ry: f64| {
        vec![Ellipse(cx, cy, rx, ry), Ellipse(32.0 - cx, cy, rx, ry)]
    };
    vec![
        Part {
            name: "brows-flat",
            shapes: pair([(6.0, 6.5), (9.5, 6.5), (13.0, 6.5)], 1.6),
        },
        Part {
            name: "brows-arched",
            shapes: pair([(6.0, 9.5), (9.5, 7.0), (13.0, 9.5)], 1.4),
        },
        Part {
            name: "brows-slanted",
            shapes: pair([(6.0, 4.5), (9.5, 6.2), (13.0, 8.0)], 1.6),
        },
        Part {
            name: "eyes-round",
            shapes: eyes(10.0, 12.5, 2.2, 2.2),
        },
        Part {
            name: "eyes-wide",
            shapes: eyes(10.0, 14.0, 3.6, 1.1),
        },
        Part {
            name: "eyes-closed",
            shapes: pair([(7.0, 15.5), (10.0, 17.0), (13.0, 15.5)], 1.1),
        },
        Part {
            name: "nose-line",
            shapes: vec![Stroke([(16.0, 15.0), (16.0, 18.0), (16.0, 21.0)], 1.4)],
        },
        Part {
            name: "nose-wide",
            shapes: vec![Ellipse(16.0, 20.5, 3.2, 1.3)],
        },
        Part {
            name: "nose-hook",
            shapes: vec![Stroke([(14.0, 14.5), (18.5, 19.0), (14.5, 21.5)], 1.3)],
        },
        Part {
            name: "mouth-smile",
            shapes: vec![Stroke([(10.0, 23.5), (16.0, 27.0), (22.0, 23.5)], 1.5)],
        },
        Part {
            name: "mouth-open",
            shapes: vec![Ellipse(16.0, 26.0, 2.8, 1.8)],
        },
        Part {
            name: "mouth-flat",
            shapes: vec![Stroke([(11.0, 29.0), (16.0, 29.0), (21.0, 29.0)], 1.5)],
        },
    ]
}

impl Part {
    /// The part as a `SIZE` x `SIZE` image, values in [0, 1], row-major.
    pub fn render(&self) -> Vec<f64> {
        let mut out = vec![0.0; SIZE * SIZE];
        let step = 1.0 / SUPERSAMPLE as f64;
        for (idx, v) in out.iter_mut().enumerate() {
            let (px, py) = ((idx % SIZE) as f64, (idx / SIZE) as f64);
            let mut hits = 0;
            for sy in 0..SUPERSAMPLE {
                for sx in 0..SUPERSAMPLE {
                    let (x, y) = (px + (sx as f64 + 0.5) * step, py + (sy as f64 + 0.5) * step);
                    if self.shapes.iter().any(|s| s.contains(x, y)) {
                        hits += 1;
                    }
                }
            }
            *v = hits as f64 / (SUPERSAMPLE * SUPERSAMPLE) as f64;
        }
        out
    }
}

impl Shape {
    fn contains(&self, x: f64, y: f64) -> bool {
        match *self {
            Shape::Ellipse(cx, cy, rx, ry) => {
                let (dx, dy) = ((x - cx) / rx, (y - cy) / ry);
                dx * dx + dy * dy <= 1.0
            }
            Shape::Stroke(points, thickness) => points
                .windows(2)
                .any(|seg| segment_distance(x, y, seg[0], seg[1]) <= thickness / 2.0),
        }
    }
}

pub(super) fn segment_distance(x: f64, y: f64, a: (f64, f64), b: (f64, f64)) -> f64 {
    let (vx, vy) = (b.0 - a.0, b.1 - a.1);
    let len2 = vx * vx + vy * vy;
    let t = if len2 > 0.0 {
        (((x - a.0) * vx + (y - a.1) * vy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (dx, dy) = (x - (a.0 + t * vx), y - (a.1 + t * vy));
    (dx * dx + dy * dy).sqrt()
}

/// A generated demo set.
#[derive(Debug, Clone)]
pub struct Demo {
    /// The parts, in [`parts`] order.
    pub parts: Vec<Part>,
    /// The faces as 8-bit images.
    pub faces: Vec<GrayImage>,
    /// `coefficients[j][k]`: intensity of part k in face j (0 when absent).
    pub coefficients: Vec<Vec<f64>>,
}

/// Generates `count` faces from `seed`.
pub fn generate(count: usize, seed: u64) -> Demo {
    let parts = parts();
    let rendered: Vec<Vec<f64>> = parts.iter().map(Part::render).collect();
    let coefficients = draw_coefficients(parts.len(), count, seed);
    let faces = coefficients
        .iter()
        .map(|coef| {
            let mut pixels = vec![0.0; SIZE * SIZE];
            for (c, part) in coef.iter().zip(&rendered) {
                for (p, v) in pixels.iter_mut().zip(part) {
                    *p += c * v;
                }
            }
            to_image(&pixels)
        })
        .collect();
    Demo {
        parts,
        faces,
        coefficients,
    }
}

/// Each face's intensity of each of the `parts` parts: per group of three, one variant with
/// probability [`GROUP_PRESENCE`], at an intensity in [0.4, 1].
fn draw_coefficients(parts: usize, count: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (0..count)
        .map(|_| {
            let mut coef = vec![0.0; parts];
            for group in 0..parts / 3 {
                let present = uniform() < GROUP_PRESENCE;
                let variant = ((uniform() * 3.0) as usize).min(2);
                let intensity = 0.4 + 0.6 * uniform();
                if present {
                    coef[group * 3 + variant] = intensity;
                }
            }
            coef
        })
        .collect()
}

fn to_image(pixels: &[f64]) -> GrayImage {
    super::gray_image(SIZE, SIZE, pixels.iter().copied())
}

/// The least intensity of the outline in [`with_outline`].
const OUTLINE_FAINTEST: f64 = 0.02;

/// The head's outline: cheeks and hairline, clear of every other part.
fn outline() -> Part {
    use Shape::Stroke;
    Part {
        name: "outline",
        shapes: vec![
            Stroke([(1.5, 7.0), (1.5, 16.0), (1.5, 26.0)], 1.4),
            Stroke([(30.5, 7.0), (30.5, 16.0), (30.5, 26.0)], 1.4),
            Stroke([(5.0, 1.5), (16.0, 1.5), (27.0, 1.5)], 1.4),
        ],
    }
}

/// The demo faces with a thirteenth part, the head's outline, in every face with an intensity
/// of its own in [0.02, 1]: a part present everywhere, which NMF may hide inside the others.
/// Other parts as in [`generate`]. The outline must sometimes be faint: were it never below
/// 0.4, then `part + c outline` for any c up to 0.4 would serve as a basis image with the same
/// product W H (the outline's coefficients lowered to match), and the set would have no unique
/// parts to find.
pub fn with_outline(count: usize, seed: u64) -> PartsSet {
    let mut all = parts();
    let drawn = draw_coefficients(all.len(), count, seed);
    all.push(outline());
    let m = SIZE * SIZE;
    let mut parts = Array2::<f64>::zeros((m, all.len()));
    for (k, part) in all.iter().enumerate() {
        parts
            .column_mut(k)
            .assign(&ArrayView1::from(&part.render()));
    }
    // A stream of its own, so that the other parts' coefficients are the demo's.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x006f_7574_6c69_6e65);
    let mut coefficients = Array2::<f64>::zeros((all.len(), count));
    for (j, coef) in drawn.iter().enumerate() {
        for (k, &c) in coef.iter().enumerate() {
            coefficients[[k, j]] = c;
        }
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        coefficients[[all.len() - 1, j]] = OUTLINE_FAINTEST + (1.0 - OUTLINE_FAINTEST) * u;
    }
    PartsSet {
        name: "outlined",
        height: SIZE,
        width: SIZE,
        part_names: all.iter().map(|p| p.name.to_string()).collect(),
        parts,
        coefficients,
        identifiable: vec![true; all.len()],
    }
}

/// Writes a demo set: `dir/faces/face-NNN.png` and `dir/parts/NAME.png`. Returns the number of
/// files written.
///
/// # Errors
/// A folder or file cannot be written, or `faces/` or `parts/` holds files this set would not
/// write.
pub fn write(dir: &Path, count: usize, seed: u64) -> Result<usize> {
    let demo = generate(count, seed);
    let digits = count.max(1).to_string().len().max(3);
    let face_names: Vec<String> = (0..count)
        .map(|j| format!("face-{j:0digits$}.png"))
        .collect();
    let part_names: Vec<String> = demo
        .parts
        .iter()
        .map(|p| format!("{}.png", p.name))
        .collect();
    let (faces_dir, parts_dir) = super::prepare(dir, &face_names, &part_names)?;
    for (face, name) in demo.faces.iter().zip(&face_names) {
        write_png(&faces_dir.join(name), &face.clone().into())?;
    }
    for (part, name) in demo.parts.iter().zip(&part_names) {
        write_png(&parts_dir.join(name), &to_image(&part.render()).into())?;
    }
    Ok(demo.faces.len() + demo.parts.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_part_is_in_every_face_and_every_part_appears() {
        let demo = generate(300, 0);
        for k in 0..demo.parts.len() {
            let count = demo.coefficients.iter().filter(|c| c[k] > 0.0).count();
            assert!(count > 30 && count < 300, "part {k} in {count} faces");
        }
    }

    #[test]
    fn at_most_one_variant_per_group() {
        let demo = generate(100, 1);
        for c in &demo.coefficients {
            for group in c.chunks(3) {
                assert!(group.iter().filter(|v| **v > 0.0).count() <= 1);
            }
        }
    }

    #[test]
    fn every_part_has_ink_and_parts_differ() {
        let rendered: Vec<Vec<f64>> = parts().iter().map(Part::render).collect();
        for (a, part) in rendered.iter().zip(parts()) {
            assert!(a.iter().sum::<f64>() > 5.0, "{} is nearly empty", part.name);
        }
        for i in 0..rendered.len() {
            for j in i + 1..rendered.len() {
                let dot: f64 = rendered[i]
                    .iter()
                    .zip(&rendered[j])
                    .map(|(a, b)| a * b)
                    .sum();
                let ni: f64 = rendered[i].iter().map(|a| a * a).sum::<f64>().sqrt();
                let nj: f64 = rendered[j].iter().map(|a| a * a).sum::<f64>().sqrt();
                assert!(dot / (ni * nj) < 0.8, "parts {i} and {j} nearly coincide");
            }
        }
    }
}
