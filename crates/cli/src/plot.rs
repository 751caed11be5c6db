//! The training loss curve and the benchmark's sizes chart as SVG, drawn with plotters: a small
//! [`Chart`] of line [`Series`] that both fill in, and the loss chart built from a [`LossLog`].

use std::io;
use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::atomic_file::{Durability, Staged, stage_bytes};
use crate::loss_log::LossLog;

/// The loss curve of `log` as an SVG chart titled `title`, written to a temporary file beside
/// `path` and ready to replace it ([`crate::atomic_file::put_in_place`]): the raw training loss
/// as a faint line (past the log's bound, means of equal runs of steps), its moving average as a
/// solid line, and the validation loss as dots joined by a line. Non-finite losses are skipped.
/// The file is not flushed to disk ([`Durability::Unsynced`]).
pub fn stage_svg(path: &Path, log: &LossLog, title: &str) -> io::Result<Staged> {
    let svg = loss_chart(log, title).to_svg()?;
    stage_bytes(path, svg.as_bytes(), Durability::Unsynced)
}

const TRAIN_COLOUR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const VAL_COLOUR: RGBColor = RGBColor(0xd6, 0x27, 0x28);

fn loss_chart(log: &LossLog, title: &str) -> Chart {
    let train: Vec<(f64, f64)> = log
        .train()
        .map(|(step, loss)| (step as f64, loss))
        .collect();
    let val: Vec<(f64, f64)> = log.val().map(|(step, loss)| (step as f64, loss)).collect();
    // One document per step makes the raw loss very noisy; the average shows the trend.
    // A window under 5 would hardly smooth; short runs show the raw line only.
    let window = (train.len() / 20).min(50);
    let mut chart = Chart::new(title, "step", "loss");
    if window >= 5 {
        let smoothed = moving_average(&train, window);
        chart.series.push(Series {
            faint: true,
            ..Series::new("train loss", TRAIN_COLOUR, train)
        });
        // In steps: on a long run each point is already the mean of several steps.
        let label = format!(
            "train loss, moving average of {}",
            window * log.train_steps_per_point()
        );
        chart
            .series
            .push(Series::new(label, TRAIN_COLOUR, smoothed));
    } else {
        chart
            .series
            .push(Series::new("train loss", TRAIN_COLOUR, train));
    }
    if !val.is_empty() {
        chart.series.push(Series {
            markers: true,
            ..Series::new("val loss", VAL_COLOUR, val)
        });
    }
    chart
}

/// The mean of each point's `y` and up to `window - 1` points before it.
fn moving_average(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let mut sum = 0.0;
    let mut averaged = Vec::with_capacity(points.len());
    for (index, &(x, y)) in points.iter().enumerate() {
        sum += y;
        if index >= window {
            sum -= points[index - window].1;
        }
        averaged.push((x, sum / (index + 1).min(window) as f64));
    }
    averaged
}

/// One line of a [`Chart`].
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend text.
    pub label: String,
    /// The line's colour.
    pub colour: RGBColor,
    /// The `(x, y)` points, drawn in order; points with a non-finite coordinate are skipped (and
    /// those not above 0 on log axes).
    pub points: Vec<(f64, f64)>,
    /// A thin, pale line that does not set the y range (the raw loss under its average): drawn
    /// clamped to the range of the others, so that early spikes do not squash their curves.
    pub faint: bool,
    /// Whether to draw a dot at each point (always done for a single point).
    pub markers: bool,
}

impl Series {
    /// A solid line without markers.
    pub fn new(label: impl Into<String>, colour: RGBColor, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            colour,
            points,
            faint: false,
            markers: false,
        }
    }
}

/// A line chart: title, labelled axes, a legend and one line per series with a drawable point.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// The title above the chart.
    pub title: String,
    /// The x axis label.
    pub x_label: String,
    /// The y axis label.
    pub y_label: String,
    /// Whether both axes are logarithmic.
    pub log_axes: bool,
    /// Where the legend goes: top right by default, where a decreasing loss curve leaves room.
    pub legend: SeriesLabelPosition,
    /// The lines, drawn in order (later ones on top).
    pub series: Vec<Series>,
}

impl Chart {
    /// An empty chart with linear axes.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_axes: false,
            legend: SeriesLabelPosition::UpperRight,
            series: Vec::new(),
        }
    }

    /// The chart as SVG text, 800 by 480 pixels.
    pub fn to_svg(&self) -> io::Result<String> {
        let drawable = |&(x, y): &(f64, f64)| {
            x.is_finite() && y.is_finite() && (!self.log_axes || (x > 0.0 && y > 0.0))
        };
        let series: Vec<(&Series, Vec<(f64, f64)>)> = self
            .series
            .iter()
            .map(|series| {
                (
                    series,
                    series.points.iter().copied().filter(drawable).collect(),
                )
            })
            .filter(|(_, points): &(_, Vec<_>)| !points.is_empty())
            .collect();
        let all = || series.iter().flat_map(|(_, points)| points.iter().copied());
        let solid = || {
            let solid = series.iter().filter(|(series, _)| !series.faint);
            solid.flat_map(|(_, points)| points.iter().copied())
        };
        // Steps fill the width; on log axes the end points get room for their dots.
        let x_margin = if self.log_axes { 0.2 } else { 0.0 };
        let x = span(all().map(|(x, _)| x), self.log_axes, x_margin);
        let y = if solid().next().is_some() {
            span(solid().map(|(_, y)| y), self.log_axes, 0.05)
        } else {
            span(all().map(|(_, y)| y), self.log_axes, 0.05)
        };
        let mut svg = String::new();
        let drawn = if self.log_axes {
            self.draw(
                &mut svg,
                &series,
                x.clone().log_scale(),
                y.clone().log_scale(),
                &y,
            )
        } else {
            self.draw(&mut svg, &series, x, y.clone(), &y)
        };
        drawn.map_err(|error| io::Error::other(format!("cannot draw the chart: {error}")))?;
        Ok(svg)
    }

    /// Draws `series` on axes `x` and `y` into `svg`; faint lines are clamped into `y_range`.
    fn draw<X, Y>(
        &self,
        svg: &mut String,
        series: &[(&Series, Vec<(f64, f64)>)],
        x: X,
        y: Y,
        y_range: &Range<f64>,
    ) -> Result<(), Box<dyn std::error::Error + '_>>
    where
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let root = SVGBackend::with_string(svg, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 16))
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x, y)?;
        let label = |value: &f64| tick_label(*value);
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&label)
            .y_label_formatter(&label)
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .draw()?;
        for (series, points) in series {
            let colour = series.colour;
            let style = if series.faint {
                colour.mix(0.3).stroke_width(1)
            } else {
                colour.stroke_width(2)
            };
            let clamp = |&(x, y): &(f64, f64)| {
                let y = if series.faint {
                    y.clamp(y_range.start, y_range.end)
                } else {
                    y
                };
                (x, y)
            };
            chart
                .draw_series(LineSeries::new(points.iter().map(clamp), style))?
                .label(&series.label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
            if series.markers || points.len() == 1 {
                let dot = |&point: &(f64, f64)| Circle::new(point, 3, colour.filled());
                chart.draw_series(points.iter().map(dot))?;
            }
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(self.legend.clone())
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.2))
                .draw()?;
        }
        root.present()?;
        Ok(())
    }
}

/// A tick's value as a reader writes it: the ticks are sums of steps such as 0.2, whose binary
/// rounding `{}` would show (2.4000000000000004), so the value is first rounded to 10 significant
/// digits; `{}` then prints 50 for 50.0 and 0.001 as it is, on linear and log axes alike.
fn tick_label(value: f64) -> String {
    let rounded: f64 = format!("{value:.9e}").parse().unwrap_or(value);
    format!("{rounded}")
}

/// The range covering `values`, widened by `margin` (a fraction of their span, or of the values
/// themselves on log axes) on each side, but not below zero for non-negative data on linear axes;
/// a single value gets a range around it, and no values `0..1` (`1..10` on log axes).
fn span(values: impl Iterator<Item = f64>, log: bool, margin: f64) -> Range<f64> {
    let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(min, max), value| {
        (min.min(value), max.max(value))
    });
    if min > max {
        return if log { 1.0..10.0 } else { 0.0..1.0 };
    }
    if log {
        let (low, high) = (min / (1.0 + margin), max * (1.0 + margin));
        return if high / low < 1.5 {
            low / 2.0..high * 2.0
        } else {
            low..high
        };
    }
    let pad = if max - min <= 1e-12 * max.abs().max(1.0) {
        if min == 0.0 { 1.0 } else { min.abs() * 0.1 }
    } else {
        (max - min) * margin
    };
    let low = if min >= 0.0 {
        (min - pad).max(0.0)
    } else {
        min - pad
    };
    low..max + pad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss_log::LossPoint;
    use crate::test_support::{point, scratch_dir};

    fn log_of(points: &[LossPoint]) -> LossLog {
        let mut log = LossLog::default();
        for point in points {
            log.push(point);
        }
        log
    }

    /// The value of `name="..."` in the tag `tag`.
    fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(&tag[start..start + tag[start..].find('"')?])
    }

    /// The `<polyline>`s of `svg` in the colour `#RRGGBB`, in drawing order (the data lines, then
    /// the legend's two-point samples): each one's opacity and pixel points.
    fn polylines(svg: &str, colour: &str) -> Vec<(String, Vec<(f64, f64)>)> {
        svg.split('<')
            .filter(|tag| tag.starts_with("polyline ") && attribute(tag, "stroke") == Some(colour))
            .map(|tag| {
                let points = attribute(tag, "points").unwrap().split_whitespace();
                let points = points.map(|pair| {
                    let (x, y) = pair.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                });
                (
                    attribute(tag, "opacity").unwrap().to_string(),
                    points.collect(),
                )
            })
            .collect()
    }

    /// The centres of the dots in the colour `#RRGGBB`.
    fn dots(svg: &str, colour: &str) -> Vec<(f64, f64)> {
        svg.split('<')
            .filter(|tag| tag.starts_with("circle ") && attribute(tag, "fill") == Some(colour))
            .map(|tag| {
                let centre = |name| attribute(tag, name).unwrap().parse::<f64>().unwrap();
                (centre("cx"), centre("cy"))
            })
            .collect()
    }

    /// The line through the first and last of `pairs` (value, pixel), and the largest distance in
    /// pixels of any pair from it: a chart draws data on a linear axis at `a + b * value`, so
    /// every point must lie on that line up to the pixel rounding.
    fn worst_off_line(pairs: &[(f64, f64)]) -> (f64, f64) {
        let ((v0, p0), (v1, p1)) = (pairs[0], pairs[pairs.len() - 1]);
        let slope = (p1 - p0) / (v1 - v0);
        let worst = pairs
            .iter()
            .map(|&(value, pixel)| (p0 + slope * (value - v0) - pixel).abs())
            .fold(0.0, f64::max);
        (slope, worst)
    }

    #[test]
    fn the_loss_chart_draws_every_logged_loss_where_linear_axes_put_it() {
        // 60 steps: a moving average of 3 points would hardly smooth, so the raw line alone is
        // drawn, one pixel point per logged loss, and the validation loss every 10th step.
        let points: Vec<LossPoint> = (0..60)
            .map(|step| {
                let loss = 3.3 - 0.01 * step as f64 + 0.2 * (step as f64).sin();
                point(
                    step,
                    loss,
                    step.is_multiple_of(10).then_some(3.0 - 0.005 * step as f64),
                )
            })
            .collect();
        let svg = loss_chart(&log_of(&points), "run").to_svg().unwrap();
        let train = polylines(&svg, "#1F77B4");
        // The data line and the legend's sample.
        assert_eq!(train.len(), 2, "{svg}");
        let drawn = &train[0].1;
        assert_eq!(drawn.len(), points.len());
        let xs: Vec<(f64, f64)> = points
            .iter()
            .zip(drawn)
            .map(|(p, d)| (p.step as f64, d.0))
            .collect();
        let ys: Vec<(f64, f64)> = points
            .iter()
            .zip(drawn)
            .map(|(p, d)| (p.train_loss, d.1))
            .collect();
        let (x_slope, x_off) = worst_off_line(&xs);
        let (y_slope, y_off) = worst_off_line(&ys);
        assert!(x_slope > 0.0 && y_slope < 0.0, "steps go right, losses up");
        assert!(
            x_off <= 1.0 && y_off <= 1.0,
            "off the axes' lines: {x_off} {y_off}"
        );

        // The validation dots lie on the same two axes.
        let val: Vec<&LossPoint> = points.iter().filter(|p| p.val_loss.is_some()).collect();
        let centres = dots(&svg, "#D62728");
        assert_eq!(centres.len(), val.len());
        let (x0, y0) = (drawn[0], (points[0].step as f64, points[0].train_loss));
        for (point, &(cx, cy)) in val.iter().zip(&centres) {
            let expected_x = x0.0 + x_slope * (point.step as f64 - y0.0);
            let expected_y = x0.1 + y_slope * (point.val_loss.unwrap() - y0.1);
            assert!(
                (cx - expected_x).abs() <= 1.5 && (cy - expected_y).abs() <= 1.5,
                "{point:?}"
            );
        }
    }

    /// The texts of `svg`'s `<text>` elements.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .map(|tag| {
                let body = &tag[tag.find('>').unwrap() + 1..tag.find("</text>").unwrap()];
                body.trim().to_string()
            })
            .collect()
    }

    #[test]
    fn tick_labels_show_the_ticks_as_written_not_their_binary_rounding() {
        // Losses from 2.2 to 3.6: ticks every 0.2, of which 2.4 is 2.4000000000000004 as a sum.
        let points: Vec<LossPoint> = (0..10)
            .map(|step| point(step, 2.2 + 0.15 * step as f64, None))
            .collect();
        let svg = loss_chart(&log_of(&points), "ticks").to_svg().unwrap();
        let numbers: Vec<String> = texts(&svg)
            .into_iter()
            .filter(|text| text.parse::<f64>().is_ok())
            .collect();
        for expected in ["2.4", "2.6", "2.8", "3", "3.2", "3.4"] {
            assert!(
                numbers.iter().any(|n| n == expected),
                "{expected} in {numbers:?}"
            );
        }
        for number in &numbers {
            // Hand-written ticks: at most a few digits after the point.
            let decimals = number.split_once('.').map_or(0, |(_, d)| d.len());
            assert!(decimals <= 3, "tick label {number:?} in {numbers:?}");
        }
        assert_eq!(tick_label(50.0), "50");
        assert_eq!(tick_label(0.001), "0.001");
        assert_eq!(tick_label(0.1 + 0.2), "0.3");
        assert_eq!(tick_label(1.2345e-7), "0.00000012345");
    }

    #[test]
    fn early_spikes_of_the_raw_loss_do_not_stretch_the_axis() {
        // A resumed run's first steps can reach 8 while the smoothed curve stays below 3.5: the
        // axis follows the smoothed and validation lines (a 0-8 axis would flatten them to a few
        // pixels), and the faint raw line is clamped into it.
        let points: Vec<LossPoint> = (0..1000)
            .map(|step| {
                let loss = if step % 97 == 3 { 8.0 } else { 2.5 };
                point(step, loss, (step % 100 == 0).then_some(2.6))
            })
            .collect();
        let svg = loss_chart(&log_of(&points), "spikes").to_svg().unwrap();
        let lines = polylines(&svg, "#1F77B4");
        let (faint, smoothed) = (&lines[0], &lines[1]);
        assert_eq!(faint.0, "0.3");
        assert_eq!((faint.1.len(), smoothed.1.len()), (1000, 1000));
        let extent = |points: &[(f64, f64)]| {
            let ys = points.iter().map(|&(_, y)| y);
            (
                ys.clone().fold(f64::INFINITY, f64::min),
                ys.fold(0.0, f64::max),
            )
        };
        let (top, bottom) = extent(&smoothed.1);
        // The smoothed curve fills most of the 480-pixel height.
        assert!(
            bottom - top > 250.0,
            "the smoothed curve spans {top}..{bottom}"
        );
        // The spikes end at the axis' top: 5% of the solid lines' span above them.
        let (faint_top, _) = extent(&faint.1);
        assert!(
            faint_top >= top - 0.06 * (bottom - top) - 1.0,
            "{faint_top} above {top}"
        );
    }

    #[test]
    fn a_run_past_the_bound_still_spans_every_step_and_averages_over_steps() {
        // 100,000 steps are merged into buckets of 32 (the log's bound is 4,096 points): the moving
        // average of 50 points covers 50 * 32 steps, and the step axis still reaches the end.
        let points: Vec<LossPoint> = (0..100_000)
            .map(|step| point(step, 2.5, (step % 100 == 0).then_some(2.6)))
            .collect();
        let svg = loss_chart(&log_of(&points), "long").to_svg().unwrap();
        assert!(svg.contains("moving average of 1600"), "{svg}");
        // Validation every 100 steps: 1,000 points, under their own bound.
        assert_eq!(dots(&svg, "#D62728").len(), 1000);
        let lines = polylines(&svg, "#1F77B4");
        let last_x = lines[0].1.last().unwrap().0;
        let val_last_x = dots(&svg, "#D62728").last().unwrap().0;
        assert!(
            last_x > val_last_x,
            "the last step (99,999) is right of the last val (99,900)"
        );
    }

    #[test]
    fn degenerate_inputs_render_without_non_finite_numbers() {
        let cases: Vec<(&str, Vec<LossPoint>)> = vec![
            ("no points", vec![]),
            ("one point", vec![point(0, 3.3, None)]),
            (
                "constant loss",
                vec![point(0, 2.0, None), point(5, 2.0, None)],
            ),
            ("zero loss", vec![point(7, 0.0, None)]),
            (
                "non-finite losses",
                vec![
                    point(0, f64::NAN, Some(f64::INFINITY)),
                    point(1, 3.0, Some(f64::NAN)),
                    point(3, 2.5, Some(2.6)),
                    point(4, f64::NEG_INFINITY, None),
                ],
            ),
            ("only non-finite", vec![point(0, f64::NAN, None)]),
        ];
        for (name, points) in cases {
            let svg = loss_chart(&log_of(&points), name).to_svg().unwrap();
            assert!(
                svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"),
                "{name}"
            );
            assert!(
                !svg.contains("NaN") && !svg.contains("inf"),
                "{name}: {svg}"
            );
        }
        // A lone point would be an invisible line: it gets a dot.
        let svg = loss_chart(&log_of(&[point(0, 3.3, None)]), "")
            .to_svg()
            .unwrap();
        assert_eq!(dots(&svg, "#1F77B4").len(), 1);
    }

    #[test]
    fn log_axes_put_points_at_their_logarithms_and_skip_non_positive_ones() {
        let mut chart = Chart::new("sizes", "parameters", "seconds");
        chart.log_axes = true;
        let points = vec![
            (0.0, 5.0),
            (1e3, -1.0),
            (1e3, 1e-3),
            (1e4, 1e-2),
            (1e5, 2e-1),
        ];
        chart.series.push(Series {
            markers: true,
            ..Series::new("tape", TRAIN_COLOUR, points)
        });
        let svg = chart.to_svg().unwrap();
        let centres = dots(&svg, "#1F77B4");
        assert_eq!(centres.len(), 3, "x = 0 and y = -1 have no logarithm");
        let data = [(1e3f64, 1e-3f64), (1e4, 1e-2), (1e5, 2e-1)];
        let xs: Vec<(f64, f64)> = data
            .iter()
            .zip(&centres)
            .map(|(d, c)| (d.0.log10(), c.0))
            .collect();
        let ys: Vec<(f64, f64)> = data
            .iter()
            .zip(&centres)
            .map(|(d, c)| (d.1.log10(), c.1))
            .collect();
        // Equal ratios are equal distances: 1e3 to 1e4 as far as 1e4 to 1e5.
        assert!(
            worst_off_line(&xs).1 <= 1.0 && worst_off_line(&ys).1 <= 1.0,
            "{centres:?}"
        );
    }

    #[test]
    fn a_staged_svg_replaces_the_file_with_the_chart_only_when_put_in_place() {
        let directory = scratch_dir("plot", "svg");
        let path = directory.join("loss.svg");
        std::fs::write(&path, "old").unwrap();
        let log = log_of(&[point(0, 3.3, None), point(1, 3.1, None)]);
        let staged = stage_svg(&path, &log, "a & b").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        crate::atomic_file::put_in_place([staged]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(
            svg.starts_with("<svg ") && svg.contains("a &amp; b"),
            "{svg}"
        );
        assert_eq!(polylines(&svg, "#1F77B4")[0].1.len(), 2);
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn moving_average_matches_hand_computed_means() {
        let points = [(0.0, 1.0), (1.0, 3.0), (2.0, 5.0), (3.0, 7.0)];
        // Window 2: 1/1, (1+3)/2, (3+5)/2, (5+7)/2.
        assert_eq!(
            moving_average(&points, 2),
            [(0.0, 1.0), (1.0, 2.0), (2.0, 4.0), (3.0, 6.0)]
        );
    }

    #[test]
    fn spans_cover_the_data_with_a_margin_and_stay_non_negative() {
        // Losses 0.01..3 with 5% margins: 0.01 - 0.1495 is clamped to 0, 3 + 0.1495 above.
        let losses = span([0.01, 3.0].into_iter(), false, 0.05);
        assert_eq!(losses.start, 0.0);
        assert!((losses.end - 3.1495).abs() < 1e-12, "{losses:?}");
        // One value gets 10% on each side; none gets 0..1 (1..10 on log axes).
        assert_eq!(span([2.0].into_iter(), false, 0.05), 1.8..2.2);
        assert_eq!(span(std::iter::empty(), false, 0.05), 0.0..1.0);
        assert_eq!(span(std::iter::empty(), true, 0.05), 1.0..10.0);
    }
}
