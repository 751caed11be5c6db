//! The training loss curve as an SVG chart, and the small line [`Chart`] behind it (hand-written
//! SVG, no dependency), which the benchmark chart reuses.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::atomic_file::write_atomically;

use crate::loss_log::LossLog;

/// The loss at one training step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossPoint {
    /// The step (0-based).
    pub step: usize,
    /// The training loss of that step.
    pub train_loss: f64,
    /// The validation loss, when it was evaluated at that step.
    pub val_loss: Option<f64>,
}

/// Writes the loss curve of `log` as an SVG chart titled `title`: the raw training loss as a
/// faint line (past the log's bound, means of equal runs of steps), its moving average as a solid
/// line, and the validation loss as dots joined by a line. Non-finite losses are skipped. The file
/// is replaced atomically.
pub fn write_svg(path: &Path, log: &LossLog, title: &str) -> io::Result<()> {
    let svg = loss_chart(log, title).to_svg();
    write_atomically(path, svg.as_bytes())
}

const TRAIN_COLOUR: &str = "#1f77b4";
const VAL_COLOUR: &str = "#d62728";

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
            width: 1.0,
            opacity: 0.3,
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
    /// Any SVG colour, e.g. `#1f77b4`.
    pub colour: String,
    /// The `(x, y)` points, drawn in order; points with a non-finite coordinate are skipped (and
    /// those with `x <= 0` on a log-scale x axis).
    pub points: Vec<(f64, f64)>,
    /// Line width in pixels.
    pub width: f64,
    /// Line opacity, 0 to 1.
    pub opacity: f64,
    /// Whether to draw a dot at each point (always done for a single point).
    pub markers: bool,
}

impl Series {
    /// A solid line 2 pixels wide without markers.
    pub fn new(
        label: impl Into<String>,
        colour: impl Into<String>,
        points: Vec<(f64, f64)>,
    ) -> Self {
        Self {
            label: label.into(),
            colour: colour.into(),
            points,
            width: 2.0,
            opacity: 1.0,
            markers: false,
        }
    }
}

/// A line chart rendered as a self-contained SVG: title, axes with labelled ticks, a legend, and
/// one `<polyline>` per series that has a drawable point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chart {
    /// The title above the chart.
    pub title: String,
    /// The x axis label.
    pub x_label: String,
    /// The y axis label.
    pub y_label: String,
    /// Whether the x axis is logarithmic (ticks at powers of ten).
    pub log_x: bool,
    /// Whether the y axis is logarithmic (ticks at powers of ten).
    pub log_y: bool,
    /// The lines, drawn in order (later ones on top).
    pub series: Vec<Series>,
}

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

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
            ..Self::default()
        }
    }

    /// The chart as SVG text.
    pub fn to_svg(&self) -> String {
        // Drawable points, with x already in axis space (log10 x on a log axis).
        let series: Vec<(&Series, Vec<(f64, f64)>)> = self
            .series
            .iter()
            .map(|series| {
                let points = series.points.iter().filter_map(|&(x, y)| {
                    let x = if self.log_x { x.log10() } else { x };
                    let y = if self.log_y { y.log10() } else { y };
                    (x.is_finite() && y.is_finite()).then_some((x, y))
                });
                (series, points.collect::<Vec<_>>())
            })
            .filter(|(_, points)| !points.is_empty())
            .collect();
        let all = || series.iter().flat_map(|(_, points)| points.iter().copied());
        let x_axis = Axis::new(all().map(|(x, _)| x), self.log_x, 0.0);
        // The faint raw line of a smoothed loss would stretch the axis to its spikes (a resumed
        // run's early steps reach 8 where the curve stays under 3.5): when opaque lines are drawn,
        // they set the range and the faint one is clamped to it.
        let opaque = || {
            series
                .iter()
                .filter(|(series, _)| series.opacity >= 1.0)
                .flat_map(|(_, points)| points.iter().copied())
        };
        let y_axis = if opaque().next().is_some() {
            Axis::new(opaque().map(|(_, y)| y), self.log_y, 0.05)
        } else {
            Axis::new(all().map(|(_, y)| y), self.log_y, 0.05)
        };
        let (plot_width, plot_height) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let px = |x: f64| LEFT + x_axis.fraction(x) * plot_width;
        let py = |y: f64| TOP + (1.0 - y_axis.fraction(y)) * plot_height;

        let mut svg = String::new();
        let out = &mut svg;
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            out,
            r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="30" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
            WIDTH / 2.0,
            escape(&self.title)
        );
        let _ = writeln!(out, r##"<g stroke="#e6e6e6">"##);
        for (value, _) in &x_axis.ticks {
            let x = px(*value);
            let _ = writeln!(
                out,
                r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{}"/>"#,
                TOP + plot_height
            );
        }
        for (value, _) in &y_axis.ticks {
            let y = py(*value);
            let _ = writeln!(
                out,
                r#"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}"/>"#,
                LEFT + plot_width
            );
        }
        let _ = writeln!(out, "</g>");
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_width}" height="{plot_height}" fill="none" stroke="#444"/>"##
        );
        for (value, label) in &x_axis.ticks {
            let (x, y) = (px(*value), TOP + plot_height + 18.0);
            let _ = writeln!(
                out,
                r#"<text x="{x:.1}" y="{y}" text-anchor="middle">{label}</text>"#
            );
        }
        for (value, label) in &y_axis.ticks {
            let (x, y) = (LEFT - 8.0, py(*value) + 4.0);
            let _ = writeln!(
                out,
                r#"<text x="{x}" y="{y:.1}" text-anchor="end">{label}</text>"#
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            LEFT + plot_width / 2.0,
            HEIGHT - 15.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            out,
            r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + plot_height / 2.0,
            escape(&self.y_label)
        );

        for (series, points) in &series {
            let colour = escape(&series.colour);
            let coordinates: Vec<String> = points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="{}" stroke-opacity="{}" stroke-linejoin="round" points="{}"/>"#,
                series.width,
                series.opacity,
                coordinates.join(" ")
            );
            if series.markers || points.len() == 1 {
                for &(x, y) in points {
                    let _ = writeln!(
                        out,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                        px(x),
                        py(y)
                    );
                }
            }
        }

        // Legend in the top-right corner, where a decreasing loss curve leaves room.
        if !series.is_empty() {
            let longest = series
                .iter()
                .map(|(series, _)| series.label.chars().count())
                .max()
                .unwrap_or(0);
            let (width, height) = (
                longest as f64 * 6.6 + 44.0,
                series.len() as f64 * 18.0 + 8.0,
            );
            let (x, y) = (
                (LEFT + plot_width - width - 10.0).max(LEFT + 10.0),
                TOP + 10.0,
            );
            let _ = writeln!(
                out,
                r##"<rect x="{x:.1}" y="{y}" width="{width:.1}" height="{height}" fill="white" fill-opacity="0.85" stroke="#ccc"/>"##
            );
            for (index, (series, _)) in series.iter().enumerate() {
                let line_y = y + 13.0 + index as f64 * 18.0;
                let _ = writeln!(
                    out,
                    r#"<line x1="{:.1}" y1="{line_y}" x2="{:.1}" y2="{line_y}" stroke="{}" stroke-width="{}" stroke-opacity="{}"/>"#,
                    x + 8.0,
                    x + 30.0,
                    escape(&series.colour),
                    series.width.max(2.0),
                    series.opacity
                );
                if series.markers {
                    let _ = writeln!(
                        out,
                        r#"<circle cx="{:.1}" cy="{line_y}" r="3" fill="{}"/>"#,
                        x + 19.0,
                        escape(&series.colour)
                    );
                }
                let _ = writeln!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                    x + 36.0,
                    line_y + 4.0,
                    escape(&series.label)
                );
            }
        }
        let _ = writeln!(out, "</svg>");
        svg
    }
}

/// An axis range and its ticks `(value, label)`, in axis space (log10 of the data on a log axis).
struct Axis {
    min: f64,
    max: f64,
    ticks: Vec<(f64, String)>,
}

impl Axis {
    /// An axis covering `values`, widened by `margin` (a fraction of their span) on each side but
    /// not below zero for non-negative data, with round ticks (whole ones for whole-number data).
    fn new(values: impl Iterator<Item = f64>, log: bool, margin: f64) -> Self {
        let (mut min, mut max, integers) = values.fold(
            (f64::INFINITY, f64::NEG_INFINITY, true),
            |(min, max, integers), value| {
                (
                    min.min(value),
                    max.max(value),
                    integers && value.fract() == 0.0,
                )
            },
        );
        if min > max {
            (min, max) = (0.0, 1.0); // no data
        }
        if log {
            // Whole decades, at most about 10 ticks.
            let (low, high) = (min.floor(), max.ceil().max(min.floor() + 1.0));
            let stride = ((high - low) / 10.0).ceil().max(1.0);
            let count = ((high - low) / stride).ceil() as usize;
            let ticks = (0..=count)
                .map(|i| low + i as f64 * stride)
                .map(|k| (k, power_of_ten(k)))
                .collect();
            return Self {
                min: low,
                max: low + count as f64 * stride,
                ticks,
            };
        }
        let non_negative = min >= 0.0;
        let pad = if max - min <= 1e-12 * max.abs().max(1.0) {
            // A single value: centre it.
            if min == 0.0 { 1.0 } else { min.abs() * 0.1 }
        } else {
            (max - min) * margin
        };
        (min, max) = (min - pad, max + pad);
        if non_negative {
            min = min.max(0.0);
        }
        let step = nice_step((max - min) / 5.0);
        let step = if integers { step.max(1.0) } else { step };
        if !step.is_finite() || step <= 0.0 {
            return Self {
                min,
                max,
                ticks: vec![(min, format!("{min:e}")), (max, format!("{max:e}"))],
            };
        }
        let (low, high) = ((min / step).floor() * step, (max / step).ceil() * step);
        let count = (((high - low) / step).round() as usize).min(20);
        let decimals = (-step.log10().floor()).clamp(0.0, 12.0) as usize;
        // `+ 0.0` turns -0.0 into 0.0, which would otherwise print as "-0".
        let ticks = (0..=count)
            .map(|i| low + i as f64 * step + 0.0)
            .map(|v| (v, format!("{v:.decimals$}")))
            .collect();
        Self {
            min: low,
            max: high,
            ticks,
        }
    }

    /// Where `value` lies between `min` (0) and `max` (1), clamped so nothing leaves the plot.
    fn fraction(&self, value: f64) -> f64 {
        let fraction = (value - self.min) / (self.max - self.min);
        if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.5
        }
    }
}

/// The smallest of 1, 2, 5 times a power of ten that is at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let nice = match raw / magnitude {
        residual if residual <= 1.0 => 1.0,
        residual if residual <= 2.0 => 2.0,
        residual if residual <= 5.0 => 5.0,
        _ => 10.0,
    };
    nice * magnitude
}

/// The label of the tick at `10^exponent`.
fn power_of_ten(exponent: f64) -> String {
    match exponent as i32 {
        exponent @ 0..=6 => format!("{}", 10u64.pow(exponent as u32)),
        exponent @ -4..=-1 => format!("{:.*}", (-exponent) as usize, 10f64.powi(exponent)),
        exponent => format!("1e{exponent}"),
    }
}

/// Escapes text for SVG (XML) content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            // XML cannot contain most control characters at all, even escaped.
            control if control.is_control() && !matches!(control, '\t' | '\n' | '\r') => {}
            _ => escaped.push(character),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::point;
    use std::fs;
    use std::path::PathBuf;

    fn scratch_dir(name: &str) -> PathBuf {
        crate::test_support::scratch_dir("plot", name)
    }

    fn log_of(points: &[LossPoint]) -> LossLog {
        let mut log = LossLog::default();
        for point in points {
            log.push(point);
        }
        log
    }

    /// A loss curve like a real run: decaying from ln(27) = 3.30 towards 2.3, with noise.
    fn curve(steps: usize) -> LossLog {
        let points: Vec<LossPoint> = (0..steps)
            .map(|step| {
                let trend = 2.3 + 1.0 * (-(step as f64) / 150.0).exp();
                let noise = 0.4 * ((step as f64 * 12.9898).sin() * 43758.5453).fract();
                let val = (step % 100 == 0 || step + 1 == steps).then_some(trend + 0.05);
                point(step, trend + noise, val)
            })
            .collect();
        log_of(&points)
    }

    /// Checks that the tags of `svg` nest properly (a small stand-in for an XML parser; attribute
    /// values never contain `<` or `>` because they are escaped) and that `&` only starts an entity.
    fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        let mut open: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let end = start + rest[start..].find('>').expect("unclosed tag");
            let tag = &rest[start + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                open.push(tag.split_whitespace().next().unwrap());
            }
            rest = &rest[end + 1..];
        }
        assert!(open.is_empty(), "unclosed tags {open:?}");
        for (index, _) in svg.match_indices('&') {
            let entity = &svg[index
                ..svg[index..]
                    .find(';')
                    .map_or(svg.len(), |end| index + end + 1)];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity),
                "bad entity {entity}"
            );
        }
    }

    /// Every number in `points`, `cx`/`cy`, `x`/`y` attributes, as (x, y) pairs or lone values.
    fn coordinates(svg: &str) -> (Vec<f64>, Vec<f64>) {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        let attribute = |name: &str| -> Vec<f64> {
            svg.match_indices(&format!(" {name}=\""))
                .map(|(index, pattern)| {
                    let value = &svg[index + pattern.len()..];
                    value[..value.find('"').unwrap()].parse::<f64>().unwrap()
                })
                .collect()
        };
        for name in ["x", "x1", "x2", "cx"] {
            xs.extend(attribute(name));
        }
        for name in ["y", "y1", "y2", "cy"] {
            ys.extend(attribute(name));
        }
        for (index, pattern) in svg.match_indices(" points=\"") {
            let value = &svg[index + pattern.len()..];
            for pair in value[..value.find('"').unwrap()].split(' ') {
                let (x, y) = pair.split_once(',').unwrap();
                xs.push(x.parse().unwrap());
                ys.push(y.parse().unwrap());
            }
        }
        (xs, ys)
    }

    fn assert_inside_view_box(svg: &str) {
        let (xs, ys) = coordinates(svg);
        assert!(!xs.is_empty() && !ys.is_empty());
        for x in xs {
            assert!(
                x.is_finite() && (0.0..=WIDTH).contains(&x),
                "x = {x} outside the view box"
            );
        }
        for y in ys {
            assert!(
                y.is_finite() && (0.0..=HEIGHT).contains(&y),
                "y = {y} outside the view box"
            );
        }
    }

    #[test]
    fn a_long_run_has_raw_smoothed_and_val_lines_inside_the_view_box() {
        let svg = loss_chart(&curve(1000), "microgpt <names> & \"friends\"").to_svg();
        assert_well_formed(&svg);
        assert_inside_view_box(&svg);
        assert!(svg.contains(">microgpt &lt;names&gt; &amp; &quot;friends&quot;</text>"));
        assert_eq!(
            svg.matches("<polyline").count(),
            3,
            "raw train, smoothed train, val"
        );
        assert!(svg.contains("moving average of 50"));
        // The validation loss was evaluated at steps 0, 100, ..., 900 and 999: one dot each, and
        // one in the legend.
        assert_eq!(svg.matches("<circle").count(), 12);
        // Ticks on the step axis are round numbers up to the end of training.
        assert!(
            svg.contains(">1000</text>") && svg.contains(">200</text>"),
            "{svg}"
        );
    }

    #[test]
    fn early_spikes_of_the_raw_loss_do_not_stretch_the_axis() {
        // A resumed run's first steps can reach 8 while the smoothed curve stays below 3.5: the
        // axis must follow the smoothed and validation lines, as a 0-8 axis flattens the curve.
        let points: Vec<LossPoint> = (0..1000)
            .map(|step| {
                let loss = if step % 97 == 3 { 8.0 } else { 2.5 };
                point(step, loss, (step % 100 == 0).then_some(2.6))
            })
            .collect();
        let svg = loss_chart(&log_of(&points), "spikes").to_svg();
        assert_inside_view_box(&svg);
        assert!(
            !svg.contains(">8.0</text>") && !svg.contains(">8</text>"),
            "{svg}"
        );
        assert!(
            !svg.contains(">7.0</text>") && !svg.contains(">7</text>"),
            "{svg}"
        );
    }

    #[test]
    fn a_run_past_the_bound_still_spans_every_step_and_averages_over_steps() {
        // 100,000 steps are merged into buckets of 32 (the log's bound is 4,096 points): the moving
        // average of 50 points covers 50 * 32 steps, and the step axis still reaches the end.
        let svg = loss_chart(&curve(100_000), "long").to_svg();
        assert_well_formed(&svg);
        assert_inside_view_box(&svg);
        assert!(svg.contains("moving average of 1600"), "{svg}");
        assert!(svg.contains(">100000</text>"), "{svg}");
        // Validation every 100 steps plus the last: 1,001 points, under their own bound.
        assert_eq!(svg.matches("<circle").count(), 1001 + 1);
    }

    #[test]
    fn degenerate_inputs_render_without_panicking() {
        let cases: Vec<(&str, Vec<LossPoint>, usize)> = vec![
            ("no points", vec![], 0),
            ("one point", vec![point(0, 3.3, None)], 1),
            (
                "two points",
                vec![point(0, 3.3, Some(3.2)), point(1, 3.1, None)],
                2,
            ),
            (
                "constant loss",
                vec![point(0, 2.0, None), point(5, 2.0, None)],
                1,
            ),
            ("zero loss", vec![point(7, 0.0, None)], 1),
            (
                "non-finite losses",
                vec![
                    point(0, f64::NAN, Some(f64::INFINITY)),
                    point(1, 3.0, Some(f64::NAN)),
                    point(2, f64::INFINITY, None),
                    point(3, 2.5, Some(2.6)),
                    point(4, f64::NEG_INFINITY, None),
                ],
                2,
            ),
            (
                "only non-finite",
                vec![point(0, f64::NAN, None), point(1, f64::INFINITY, None)],
                0,
            ),
        ];
        for (name, points, polylines) in cases {
            let svg = loss_chart(&log_of(&points), name).to_svg();
            assert_well_formed(&svg);
            assert_inside_view_box(&svg);
            assert_eq!(svg.matches("<polyline").count(), polylines, "{name}");
            assert!(
                !svg.contains("NaN") && !svg.contains("inf"),
                "{name}: {svg}"
            );
        }
        // A lone point would be an invisible polyline: it gets a dot.
        assert_eq!(
            loss_chart(&log_of(&[point(0, 3.3, None)]), "")
                .to_svg()
                .matches("<circle")
                .count(),
            1
        );
    }

    #[test]
    fn a_log_x_chart_ticks_at_powers_of_ten_and_skips_non_positive_x() {
        let mut chart = Chart::new("throughput", "batch size", "steps/s");
        chart.log_x = true;
        let points = vec![
            (0.0, 5.0),
            (-1.0, 5.0),
            (1.0, 900.0),
            (8.0, 300.0),
            (64.0, 60.0),
        ];
        chart.series.push(Series::new("tape", "#1f77b4", points));
        chart.series.push(Series::new(
            "scalar",
            "#ff7f0e",
            vec![(2.0, 20.0), (32.0, 2.0)],
        ));
        let svg = chart.to_svg();
        assert_well_formed(&svg);
        assert_inside_view_box(&svg);
        assert_eq!(svg.matches("<polyline").count(), 2);
        for label in [">1</text>", ">10</text>", ">100</text>"] {
            assert!(svg.contains(label), "missing tick {label}");
        }
        let tape = svg
            .lines()
            .find(|line| line.contains("<polyline") && line.contains("#1f77b4"))
            .unwrap();
        assert_eq!(
            tape.matches(',').count(),
            3,
            "x <= 0 must be skipped: {tape}"
        );
    }

    #[test]
    fn write_svg_writes_the_chart_file() {
        let dir = scratch_dir("svg");
        let path = dir.join("loss.svg");
        let log = curve(300);
        write_svg(&path, &log, "loss").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            loss_chart(&log, "loss").to_svg()
        );
        fs::remove_dir_all(&dir).unwrap();
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
    fn ticks_are_round_numbers_covering_the_data() {
        let axis = Axis::new([1.93, 3.41].into_iter(), false, 0.0);
        let labels: Vec<&str> = axis.ticks.iter().map(|(_, label)| label.as_str()).collect();
        assert_eq!(labels, ["1.5", "2.0", "2.5", "3.0", "3.5"]);
        assert!(axis.min <= 1.93 && axis.max >= 3.41);
        // Steps are whole numbers: no tick at step 0.2.
        let steps = Axis::new([0.0, 1.0].into_iter(), false, 0.0);
        let labels: Vec<&str> = steps
            .ticks
            .iter()
            .map(|(_, label)| label.as_str())
            .collect();
        assert_eq!(labels, ["0", "1"]);
        // A margin keeps the extreme losses off the frame, and non-negative data stays non-negative.
        let losses = Axis::new([0.01, 3.0].into_iter(), false, 0.05);
        assert!(
            losses.min == 0.0 && losses.max > 3.0,
            "{} {}",
            losses.min,
            losses.max
        );
    }
}
