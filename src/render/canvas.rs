//! Colour pictures made of tiles with a line of text under each: the report's building block.

use image::{Rgb, RgbImage};
use ndarray::ArrayView1;
use plotters::prelude::*;

use super::look::Look;
use crate::Float;

/// Height of the text line under a labelled tile.
pub(crate) const LABEL_HEIGHT: u32 = 16;
const LABEL_SIZE: f64 = 12.0;
const GAP: u32 = 4;
const BACKGROUND: [u8; 3] = [255, 255, 255];
/// Histogram bars: gray, so that a picture of faces, gray parts and histograms stays
/// grayscale and is stored as such (a third of the bytes).
const BAR: [u8; 3] = [96, 96, 96];

/// One image, `height` x `width` row-major pixels, upscaled `scale` times, each value mapped to
/// a colour by `colour`.
pub(crate) fn tile<T: Float>(
    pixels: &ArrayView1<T>,
    height: usize,
    width: usize,
    scale: usize,
    colour: impl Fn(f64) -> [u8; 3],
) -> RgbImage {
    let scale = scale.max(1);
    let (out_w, out_h) = (width * scale, height * scale);
    let mut buf = vec![0u8; out_w * out_h * 3];
    for (y, rows) in buf.chunks_exact_mut(out_w * 3 * scale).enumerate() {
        let (first, rest) = rows.split_at_mut(out_w * 3);
        for (x, block) in first.chunks_exact_mut(3 * scale).enumerate() {
            let c = colour(pixels[y * width + x].to_f64());
            for px in block.chunks_exact_mut(3) {
                px.copy_from_slice(&c);
            }
        }
        for row in rest.chunks_exact_mut(out_w * 3) {
            row.copy_from_slice(first);
        }
    }
    RgbImage::from_raw(out_w as u32, out_h as u32, buf).expect("buffer sized for the image")
}

/// A face on X's own scale: [0, 1] as black to white, clipped.
pub(crate) fn face_tile<T: Float>(
    pixels: &ArrayView1<T>,
    height: usize,
    width: usize,
    scale: usize,
) -> RgbImage {
    tile(pixels, height, width, scale, |v| {
        [(v.clamp(0.0, 1.0) * 255.0).round() as u8; 3]
    })
}

/// A basis image (nonnegative, or signed for eigenfaces) scaled by `look`'s tile scale and
/// coloured by its palette.
pub(crate) fn part_tile<T: Float>(
    pixels: &ArrayView1<T>,
    height: usize,
    width: usize,
    scale: usize,
    look: Look,
) -> RgbImage {
    let gain = look
        .tile_scale
        .gain(pixels.iter().map(|v| v.to_f64().abs()));
    tile(pixels, height, width, scale, |v| {
        look.palette.colour(v * gain)
    })
}

/// The integer upscaling that brings an image's longer side to at least `side` pixels.
pub(crate) fn scale_for(height: usize, width: usize, side: usize) -> usize {
    side.div_ceil(height.max(width).max(1)).max(1)
}

/// Tiles with a label under each, `cols` to a row, on white; cells sized to the largest tile.
pub(crate) fn labelled_grid(
    tiles: &[(RgbImage, String)],
    cols: usize,
    separator: [u8; 3],
) -> RgbImage {
    let cols = cols.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(cols).max(1);
    let cell_w = tiles.iter().map(|(t, _)| t.width()).max().unwrap_or(1);
    let cell_h = tiles.iter().map(|(t, _)| t.height()).max().unwrap_or(1) + LABEL_HEIGHT;
    let width = cols as u32 * (cell_w + GAP) + GAP;
    let height = rows as u32 * (cell_h + GAP) + GAP;
    let mut canvas = RgbImage::from_pixel(width, height, Rgb(separator));
    let mut labels = Vec::with_capacity(tiles.len());
    for (k, (img, label)) in tiles.iter().enumerate() {
        let (row, col) = ((k / cols) as u32, (k % cols) as u32);
        let (x0, y0) = (GAP + col * (cell_w + GAP), GAP + row * (cell_h + GAP));
        fill(
            &mut canvas,
            x0,
            y0 + cell_h - LABEL_HEIGHT,
            cell_w,
            LABEL_HEIGHT,
            BACKGROUND,
        );
        paste(&mut canvas, img, x0, y0);
        labels.push((
            label.clone(),
            x0 as i32 + 2,
            (y0 + cell_h - LABEL_HEIGHT + 2) as i32,
        ));
    }
    draw_text(&mut canvas, &labels, LABEL_SIZE);
    canvas
}

/// Pictures side by side (top-aligned), `GAP` apart, on white.
pub(crate) fn side_by_side(parts: &[RgbImage]) -> RgbImage {
    let width = parts.iter().map(|p| p.width() + GAP).sum::<u32>() + GAP;
    let height = parts.iter().map(RgbImage::height).max().unwrap_or(1) + 2 * GAP;
    let mut canvas = RgbImage::from_pixel(width, height, Rgb(BACKGROUND));
    let mut x = GAP;
    for p in parts {
        paste(&mut canvas, p, x, GAP);
        x += p.width() + GAP;
    }
    canvas
}

/// Pictures one under another (left-aligned), on white.
pub(crate) fn stacked(parts: &[RgbImage]) -> RgbImage {
    let width = parts.iter().map(RgbImage::width).max().unwrap_or(1);
    let height = parts.iter().map(RgbImage::height).sum::<u32>().max(1);
    let mut canvas = RgbImage::from_pixel(width, height, Rgb(BACKGROUND));
    let mut y = 0;
    for p in parts {
        paste(&mut canvas, p, 0, y);
        y += p.height();
    }
    canvas
}

/// A histogram of `values` in `bins` bins from 0 to their maximum, gray bars, the
/// counts on a square-root scale so that a tall zero bin does not flatten the rest; labelled
/// with the range under the bars.
pub(crate) fn histogram(values: &[f64], bins: usize, width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::from_pixel(width, height, Rgb(BACKGROUND));
    let top = values.iter().fold(0.0f64, |a, &v| a.max(v));
    let mut counts = vec![0usize; bins.max(1)];
    for &v in values.iter().filter(|v| v.is_finite() && **v >= 0.0) {
        let b = if top > 0.0 {
            ((v / top) * bins as f64) as usize
        } else {
            0
        };
        counts[b.min(bins - 1)] += 1;
    }
    let most = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let plot_h = height.saturating_sub(LABEL_HEIGHT + 2);
    let bar_w = (width / bins as u32).max(1);
    for (b, &count) in counts.iter().enumerate() {
        let bar_h = ((count as f64 / most).sqrt() * plot_h as f64).round() as u32;
        let x0 = b as u32 * bar_w;
        fill(
            &mut img,
            x0,
            plot_h - bar_h,
            bar_w.saturating_sub(1),
            bar_h,
            BAR,
        );
    }
    fill(&mut img, 0, plot_h, width, 1, [0, 0, 0]);
    let labels = [
        ("0".to_string(), 1, plot_h as i32 + 2),
        (
            format!("{top:.3}"),
            width as i32 - 7 * format!("{top:.3}").len() as i32,
            plot_h as i32 + 2,
        ),
    ];
    draw_text(&mut img, &labels, LABEL_SIZE);
    img
}

/// A square heat map of an r x r matrix of values in [0, 1] (white to dark blue), `cell`
/// pixels per entry, every tenth index marked along the top and left.
pub(crate) fn heat_map(values: &[f64], r: usize, cell: u32) -> RgbImage {
    let margin = 28;
    let side = r as u32 * cell;
    let mut img = RgbImage::from_pixel(side + margin + 2, side + margin + 2, Rgb(BACKGROUND));
    for i in 0..r {
        for j in 0..r {
            let v = values[i * r + j].clamp(0.0, 1.0);
            let mix = |lo: f64, hi: f64| (lo + (hi - lo) * v).round() as u8;
            let c = [mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0)];
            fill(
                &mut img,
                margin + j as u32 * cell,
                margin + i as u32 * cell,
                cell,
                cell,
                c,
            );
        }
    }
    let mut labels = Vec::new();
    for k in (0..r).step_by(10) {
        let at = (margin + k as u32 * cell) as i32;
        labels.push((format!("{}", k + 1), at, 8));
        labels.push((format!("{}", k + 1), 2, at));
    }
    draw_text(&mut img, &labels, LABEL_SIZE - 2.0);
    img
}

fn paste(canvas: &mut RgbImage, img: &RgbImage, x0: u32, y0: u32) {
    let (cw, ch) = canvas.dimensions();
    if x0 >= cw || y0 >= ch {
        return;
    }
    let w = img.width().min(cw - x0) as usize * 3;
    let rows = img.height().min(ch - y0) as usize;
    let (stride, src_stride) = (cw as usize * 3, img.width() as usize * 3);
    let dst: &mut [u8] = canvas.as_mut();
    for y in 0..rows {
        let at = (y0 as usize + y) * stride + x0 as usize * 3;
        dst[at..at + w].copy_from_slice(&img.as_raw()[y * src_stride..y * src_stride + w]);
    }
}

fn fill(canvas: &mut RgbImage, x0: u32, y0: u32, w: u32, h: u32, colour: [u8; 3]) {
    for y in y0..(y0 + h).min(canvas.height()) {
        for x in x0..(x0 + w).min(canvas.width()) {
            canvas.put_pixel(x, y, Rgb(colour));
        }
    }
}

/// Draws each `(text, x, y)` (top-left corner) in black, in the bundled DejaVu Sans.
fn draw_text(canvas: &mut RgbImage, labels: &[(String, i32, i32)], size: f64) {
    super::plot::register_font();
    let (w, h) = canvas.dimensions();
    let root = BitMapBackend::with_buffer(canvas.as_mut(), (w, h)).into_drawing_area();
    let style = TextStyle::from(("sans-serif", size).into_font()).color(&BLACK);
    for (text, x, y) in labels {
        // Text that would fall off the picture is clipped by the backend, never an error
        // worth failing a report for.
        let _ = root.draw_text(text, &style, (*x, *y));
    }
    let _ = root.present();
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;

    #[test]
    fn a_labelled_grid_holds_every_tile_and_its_label() {
        let pixels = Array1::from_vec(vec![1.0f32; 4]);
        let one = face_tile(&pixels.view(), 2, 2, 10);
        assert_eq!(one.dimensions(), (20, 20));
        let tiles: Vec<_> = (0..5).map(|k| (one.clone(), format!("#{k}"))).collect();
        let grid = labelled_grid(&tiles, 3, [200, 200, 200]);
        assert_eq!(grid.width(), 3 * (20 + GAP) + GAP);
        assert_eq!(grid.height(), 2 * (20 + LABEL_HEIGHT + GAP) + GAP);
        assert_eq!(grid.get_pixel(GAP, GAP).0, [255, 255, 255], "a white face");
        let label_row = (GAP + 20..GAP + 20 + LABEL_HEIGHT)
            .flat_map(|y| (GAP..GAP + 20).map(move |x| (x, y)))
            .filter(|&(x, y)| grid.get_pixel(x, y).0[0] < 128)
            .count();
        assert!(
            label_row > 5,
            "the label is drawn ({label_row} dark pixels)"
        );
    }

    #[test]
    fn a_histogram_draws_its_bars() {
        let img = histogram(&[0.0, 0.5, 1.0, 1.0], 4, 80, 60);
        let bars = img.pixels().filter(|p| p.0 == BAR).count();
        assert!(bars > 100, "{bars}");
    }
}
