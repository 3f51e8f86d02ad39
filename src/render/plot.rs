//! Convergence plots: relative error against iteration and against time, log scale.

use std::sync::Once;

use image::RgbImage;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::{CoarseLevel, Error, Iteration, Result};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 480;
/// The "tab10" palette without its grey (the target line is grey): nine lines before a colour
/// repeats.
const COLOURS: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The bundled DejaVu Sans becomes plotters' "sans-serif", so no system font is needed.
pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font ships inside the dejavu crate and always parses.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// A point the log axis can show: a finite positive error at a finite time.
fn plottable(p: &Iteration) -> bool {
    p.rel_error.is_finite() && p.rel_error > 0.0 && p.seconds.is_finite()
}

/// Two panels, relative error against iteration (left) and against seconds (right), one line
/// per labelled history, log-scaled error axis. With a `target` error, it is drawn as a
/// horizontal line and the error axis stops at three times it, so that the approach to the
/// target stays readable when a start is far off.
///
/// The time axis reads in milliseconds when the longest history is under a second. Each of
/// `levels` (the coarse levels of a multilevel start, whose time the first iteration's includes)
/// is marked by a dashed line on the time panel where it ended.
///
/// Points with a zero, infinite or NaN error are left out, so any history draws.
///
/// # Errors
/// A history with no plottable point, or a drawing failure.
pub fn convergence_plot(
    series: &[(&str, &[Iteration])],
    target: Option<f64>,
    levels: &[CoarseLevel],
) -> Result<RgbImage> {
    register_font();
    let points = series
        .iter()
        .flat_map(|(_, h)| h.iter().filter(|p| plottable(p)));
    let (mut lo, mut hi, mut max_iter, mut max_sec) = (f64::MAX, 0.0f64, 1usize, 0.0f64);
    for p in points {
        lo = lo.min(p.rel_error);
        hi = hi.max(p.rel_error);
        max_iter = max_iter.max(p.iter);
        max_sec = max_sec.max(p.seconds);
    }
    if hi <= 0.0 || lo == f64::MAX {
        return Err(Error::param(
            "history",
            "nothing to plot: no positive error recorded",
        ));
    }
    if let Some(t) = target.filter(|t| t.is_finite() && *t > 0.0) {
        lo = lo.min(t);
        hi = hi.min(3.0 * t);
    }
    // At most 15 decades: the log axis places ticks per decade.
    let (lo, hi) = (lo.max(hi * 1e-15) / 1.1, hi * 1.1);
    let (ticks, decimals) = error_ticks(lo, hi);
    let max_sec = max_sec.max(levels.iter().map(|l| l.seconds).fold(0.0, f64::max));
    let max_sec = if max_sec > 0.0 { max_sec * 1.02 } else { 1.0 };
    // Milliseconds on short runs, so that the ticks are not all "0.00".
    let (unit, unit_name) = if max_sec < 1.0 {
        (1000.0, "milliseconds")
    } else {
        (1.0, "seconds")
    };
    let time_decimals = match max_sec * unit {
        t if t >= 100.0 => 0,
        t if t >= 10.0 => 1,
        _ => 2,
    };

    let mut buf = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| Error::param("plot", e.to_string());
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let (left, right) = root.split_horizontally(WIDTH / 2);
        for (area, by_time) in [(left, false), (right, true)] {
            let x_max = if by_time {
                max_sec * unit
            } else {
                max_iter as f64
            };
            let caption = if by_time {
                "error against time"
            } else {
                "error against iteration"
            };
            let mut chart = ChartBuilder::on(&area)
                .caption(caption, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(64)
                .build_cartesian_2d(
                    0.0..x_max,
                    (lo..hi).log_scale().with_key_points(ticks.clone()),
                )
                .map_err(|e| fail(&e))?;
            chart
                .configure_mesh()
                .x_desc(if by_time { unit_name } else { "iteration" })
                .x_label_formatter(&|v| {
                    if by_time {
                        format!("{v:.time_decimals$}")
                    } else {
                        format!("{v:.0}")
                    }
                })
                .y_desc("relative error ||X - WH|| / ||X||")
                .y_label_formatter(&|v| format!("{v:.decimals$}"))
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| fail(&e))?;
            if let Some(t) = target {
                let grey = RGBColor(120, 120, 120);
                chart
                    .draw_series(LineSeries::new(
                        [(0.0, t), (x_max, t)],
                        grey.stroke_width(1),
                    ))
                    .map_err(|e| fail(&e))?
                    .label(format!("target {t:.4}"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
            }
            if by_time {
                let mark = RGBColor(90, 90, 90);
                for (k, level) in levels.iter().enumerate() {
                    let x = level.seconds * unit;
                    let series = chart
                        .draw_series(DashedLineSeries::new(
                            [(x, lo), (x, hi)],
                            5,
                            4,
                            mark.stroke_width(1),
                        ))
                        .map_err(|e| fail(&e))?;
                    if k == 0 {
                        series.label("end of a coarse level").legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], mark)
                        });
                    }
                }
            }
            for (k, (label, history)) in series.iter().enumerate() {
                let colour = COLOURS[k % COLOURS.len()];
                let line = history.iter().filter(|p| plottable(p)).map(|p| {
                    let x = if by_time {
                        p.seconds * unit
                    } else {
                        p.iter as f64
                    };
                    (x, p.rel_error.clamp(lo, hi))
                });
                chart
                    .draw_series(LineSeries::new(line, colour.stroke_width(2)))
                    .map_err(|e| fail(&e))?
                    .label(*label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(|e| fail(&e))?;
        }
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(RgbImage::from_raw(WIDTH, HEIGHT, buf).expect("buffer sized for the image"))
}

/// Ticks for a log error axis from `lo` to `hi`, and the decimals they need: 1-9 times each
/// power of ten (1, 2 and 5, or 1 alone, when that is many), or evenly spaced round numbers when the range
/// is too narrow to hold three of those (a fit that starts close to its end).
fn error_ticks(lo: f64, hi: f64) -> (Vec<f64>, usize) {
    let decades = lo.log10().floor() as i32..=hi.log10().ceil() as i32;
    let within = |mults: &[f64]| -> Vec<f64> {
        decades
            .clone()
            .flat_map(|d| mults.iter().map(move |m| m * 10f64.powi(d)))
            .filter(|t| (lo..=hi).contains(t))
            .collect()
    };
    let mut ticks = within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    if ticks.len() > 12 {
        ticks = within(&[1.0, 2.0, 5.0]);
    }
    if ticks.len() > 12 {
        ticks = within(&[1.0]);
    }
    if ticks.len() >= 3 {
        let smallest = ticks.iter().copied().fold(f64::MAX, f64::min);
        return (ticks, decimals_for(smallest));
    }
    let raw = (hi - lo) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let ticks = (first..=last).map(|i| i as f64 * step).collect();
    (ticks, decimals_for(step))
}

/// Decimals that show `v`'s first significant digit, and at least three.
fn decimals_for(v: f64) -> usize {
    if v > 0.0 && v.is_finite() {
        ((-v.log10().floor()) as i64).max(0) as usize + 1
    } else {
        3
    }
    .max(3)
}

/// The rank study's picture: each replicate's test error as a point and the mean test error
/// as a line against the rank, the training error's mean dashed beside it, and the chosen rank
/// marked.
///
/// # Errors
/// A report with no finite error, or a drawing failure.
pub fn rank_plot(report: &crate::eval::RankReport) -> Result<RgbImage> {
    register_font();
    let errors = report
        .fits
        .iter()
        .flat_map(|f| [f.test_error, f.train_error])
        .filter(|e| e.is_finite());
    let (lo, hi) = errors.fold((f64::MAX, f64::MIN), |(lo, hi), e| (lo.min(e), hi.max(e)));
    if lo > hi {
        return Err(Error::param("ranks", "nothing to plot: no finite error"));
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let (lo, hi) = ((lo - pad).max(0.0), hi + pad);
    let rank_lo = report.summary.iter().map(|s| s.rank).min().unwrap_or(1) as f64 - 0.5;
    let rank_hi = report.summary.iter().map(|s| s.rank).max().unwrap_or(1) as f64 + 0.5;
    let (width, height) = (800u32, 480u32);
    let mut buf = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| Error::param("plot", e.to_string());
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "held-out error by rank: chosen {}, one-SE {}",
                    report.chosen_rank, report.one_se_rank
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(rank_lo..rank_hi, lo..hi)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("rank")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("relative error")
            .y_label_formatter(&|v| format!("{v:.3}"))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| fail(&e))?;
        let (test, train, mark) = (COLOURS[0], COLOURS[2], COLOURS[1]);
        chart
            .draw_series(LineSeries::new(
                [
                    (report.chosen_rank as f64, lo),
                    (report.chosen_rank as f64, hi),
                ],
                mark.stroke_width(1),
            ))
            .map_err(|e| fail(&e))?
            .label(format!("chosen rank {}", report.chosen_rank))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], mark));
        chart
            .draw_series(
                report
                    .fits
                    .iter()
                    .map(|f| Circle::new((f.rank as f64, f.test_error), 3, test.filled())),
            )
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(LineSeries::new(
                report
                    .summary
                    .iter()
                    .map(|s| (s.rank as f64, s.mean_test_error)),
                test.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?
            .label("test error (hidden pixels): replicates and mean")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], test.stroke_width(2))
            });
        chart
            .draw_series(DashedLineSeries::new(
                report
                    .summary
                    .iter()
                    .map(|s| (s.rank as f64, s.mean_train_error)),
                6,
                4,
                train.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?
            .label("training error (known pixels), mean")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], train.stroke_width(2))
            });
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(RgbImage::from_raw(width, height, buf).expect("buffer sized for the image"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(iter: usize, seconds: f64, rel_error: f64) -> Iteration {
        Iteration {
            iter,
            seconds,
            rel_error,
            divergence: None,
        }
    }

    #[test]
    fn a_narrow_error_range_still_gets_labelled_ticks() {
        let (ticks, decimals) = error_ticks(0.131, 0.162);
        assert!(ticks.len() >= 3, "{ticks:?}");
        assert!(ticks.iter().all(|t| (0.131..=0.162).contains(t)));
        assert_eq!(decimals, 3);
        let (wide, _) = error_ticks(0.07, 0.45);
        assert!(wide.contains(&0.1) && wide.contains(&0.4), "{wide:?}");
        let (tiny, decimals) = error_ticks(0.081_01, 0.081_09);
        assert!(tiny.len() >= 3, "{tiny:?}");
        assert!(decimals >= 5, "{decimals}");
    }

    #[test]
    fn any_history_draws_or_says_why_not() {
        let odd = [
            point(0, 0.0, 0.5),
            point(1, 0.001, f64::INFINITY),
            point(2, 0.002, f64::NAN),
            point(3, 0.003, 0.0),
            point(4, f64::NAN, 0.4),
            point(5, 0.004, 1e-300),
            point(6, 0.005, 1e300),
        ];
        assert!(convergence_plot(&[("odd", &odd)], Some(f64::NAN), &[]).is_ok());
        let empty = [point(0, 0.0, 0.0), point(1, 0.1, f64::NAN)];
        assert!(convergence_plot(&[("empty", &empty)], None, &[]).is_err());
    }
}
