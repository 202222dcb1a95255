//! SVG charts of bench results with plotters' SVG backend, viewable in a browser or on GitHub:
//! line charts over time (`make soak`) and bar charts of the arms (`make bench`, from
//! `summary.json`).

use std::ops::Range;

use anyhow::{Result, anyhow};
use plotters::coord::ranged1d::{AsRangedCoord, SegmentValue, ValueFormatter};
use plotters::prelude::*;
use serde_json::Value;

/// plotters' errors borrow its backend; ours carry their text.
fn drawing<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("drawing the chart: {e}")
}

const FONT: &str = "sans-serif";

/// The upper end of an axis from 0: a little above the data (plotters places the ticks).
fn top(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    if max > 0.0 { max * 1.1 } else { 1.0 }
}

/// Two series over the same x axis: `a` against the left axis, `b` against the right one.
pub fn two_series(
    title: &str,
    (x_label, _): (&str, &str),
    a: (&str, &[(f64, f64)]),
    b: (&str, &[(f64, f64)]),
) -> Result<String> {
    let finite = |points: &[(f64, f64)]| -> Vec<(f64, f64)> {
        points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect()
    };
    let (pa, pb) = (finite(a.1), finite(b.1));
    let x_top = top(pa.iter().chain(&pb).map(|p| p.0));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (820, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 15))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0.0..x_top, 0.0..top(pa.iter().map(|p| p.1)))
            .map_err(drawing)?
            .set_secondary_coord(0.0..x_top, 0.0..top(pb.iter().map(|p| p.1)));
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(a.0)
            .draw()
            .map_err(drawing)?;
        chart
            .configure_secondary_axes()
            .y_desc(b.0)
            .draw()
            .map_err(drawing)?;
        let (ca, cb) = (Palette99::pick(0), Palette99::pick(1));
        chart
            .draw_series(LineSeries::new(pa, ca.stroke_width(2)))
            .map_err(drawing)?
            .label(a.0)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], ca.stroke_width(2)));
        chart
            .draw_secondary_series(LineSeries::new(pb, cb.stroke_width(2)))
            .map_err(drawing)?
            .label(b.0)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], cb.stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(drawing)?;
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// One bar: a median with a min–max whisker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Index into the panel's series (its color and legend entry).
    pub series: usize,
    /// The bar's length.
    pub median: f64,
    /// The whisker's low end.
    pub min: f64,
    /// The whisker's high end.
    pub max: f64,
}

/// Bars under one label.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Left of the bars.
    pub label: String,
    /// One per series that has a value.
    pub bars: Vec<Bar>,
}

/// Horizontal bars against one value axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Above the panel.
    pub title: String,
    /// Under the value axis (the unit).
    pub axis: String,
    /// A log₁₀ axis (values spanning decades: latency of warm and cold arms).
    pub log: bool,
    /// Legend entries, by series index.
    pub series: Vec<String>,
    /// Colors, by series index (cycled).
    pub colors: &'static [RGBColor],
    /// Top to bottom.
    pub rows: Vec<Row>,
}

const BAR_W: u32 = 980;
/// Pixels per bar, and above and below each panel's bars.
const BAR_H: u32 = 16;
const PANEL_EXTRA: u32 = 110;
/// The load generators' colors (in-house, wrk).
const GENERATORS: &[RGBColor] = &[RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xff, 0x7f, 0x0e)];
/// p50 and p99.
const PERCENTILES: &[RGBColor] = &[RGBColor(0x2c, 0xa0, 0x2c), RGBColor(0x94, 0x67, 0xbd)];

/// A value as the charts print it.
fn number(v: f64) -> String {
    if v == 0.0 || v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The value axis of a panel: from 0 (linear) or from the decade below the smallest value (log).
fn value_range(panel: &Panel) -> Range<f64> {
    let values = || {
        panel
            .rows
            .iter()
            .flat_map(|r| r.bars.iter())
            .flat_map(|b| [b.median, b.min, b.max])
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    if panel.log {
        let lo = values().fold(f64::INFINITY, f64::min);
        let lo = if lo.is_finite() {
            10f64.powf(lo.log10().floor())
        } else {
            1.0
        };
        let hi = values().fold(lo * 10.0, f64::max);
        lo..10f64.powf(hi.log10().ceil())
    } else {
        0.0..top(values())
    }
}

/// Panels of horizontal bars, one under the other, in one SVG.
pub fn bar_panels(title: &str, note: &str, panels: &[Panel]) -> Result<String> {
    let heights: Vec<u32> = panels
        .iter()
        .map(|p| PANEL_EXTRA + BAR_H * slots(p).len().max(1) as u32)
        .collect();
    let height = 40 + heights.iter().sum::<u32>() + 30;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (BAR_W, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let (head, rest) = root.split_vertically(40);
        head.titled(title, (FONT, 16)).map_err(drawing)?;
        let (mut body, foot) = rest.split_vertically(height - 40 - 30);
        foot.draw(&Text::new(
            note,
            (10, 10),
            (FONT, 11).into_font().color(&RGBColor(0x55, 0x55, 0x55)),
        ))
        .map_err(drawing)?;
        for (panel, h) in panels.iter().zip(&heights) {
            let (area, below) = body.split_vertically(*h);
            let range = value_range(panel);
            if panel.log {
                draw_panel(&area, panel, range.log_scale())?;
            } else {
                draw_panel(&area, panel, range)?;
            }
            body = below;
        }
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// Each bar's slot on the category axis, top to bottom: (row, bar).
fn slots(panel: &Panel) -> Vec<(usize, usize)> {
    panel
        .rows
        .iter()
        .enumerate()
        .flat_map(|(r, row)| (0..row.bars.len()).map(move |b| (r, b)))
        .collect()
}

/// One panel: its title, legend, bars with whiskers and their values, the value axis.
fn draw_panel<DB, X>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    x: X,
) -> Result<()>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let slots = slots(panel);
    // Slots count from the bottom (plotters' y grows upwards); the first bar goes on top, under
    // room for the legend.
    let n = i32::try_from(slots.len())?;
    let legend = i32::try_from(panel.series.len())?;
    let y_of = |slot: usize| n - 1 - i32::try_from(slot).unwrap_or(n);
    let label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(y) => {
            let slot = usize::try_from(n - 1 - *y).unwrap_or(usize::MAX);
            match (
                slots.get(slot),
                slot.checked_sub(1).and_then(|j| slots.get(j)),
            ) {
                (Some((r, _)), prev) if prev.map(|p| p.0) != Some(*r) => {
                    panel.rows[*r].label.clone()
                }
                _ => String::new(),
            }
        }
        _ => String::new(),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 14).into_font().style(FontStyle::Bold))
        .margin_left(10)
        .margin_right(70)
        .x_label_area_size(40)
        .y_label_area_size(280)
        .build_cartesian_2d(x, (0..(n + legend).max(1)).into_segmented())
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .y_labels(usize::try_from(n + legend)?.max(1))
        .y_label_formatter(&label)
        .x_desc(panel.axis.as_str())
        .x_label_formatter(&|v| number(*v))
        .draw()
        .map_err(drawing)?;
    let color = |series: usize| panel.colors[series % panel.colors.len().max(1)];
    for (s, name) in panel.series.iter().enumerate() {
        let c = color(s);
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, SegmentValue<i32>)>>())
            .map_err(drawing)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    let x_lo = chart.x_range().start;
    for (slot, (r, b)) in slots.iter().enumerate() {
        let bar = panel.rows[*r].bars[*b];
        let i = y_of(slot);
        let (top, bottom) = (SegmentValue::Exact(i), SegmentValue::Exact(i + 1));
        let mut rect = Rectangle::new(
            [(x_lo, top), (bar.median, bottom)],
            color(bar.series).filled(),
        );
        rect.set_margin(2, 2, 0, 0);
        chart.draw_series([rect]).map_err(drawing)?;
        if bar.max > bar.min {
            chart
                .draw_series([ErrorBar::new_horizontal(
                    SegmentValue::CenterOf(i),
                    bar.min,
                    bar.median,
                    bar.max,
                    BLACK.stroke_width(1),
                    8,
                )])
                .map_err(drawing)?;
        }
        chart
            .draw_series([Text::new(
                number(bar.median),
                (bar.max.max(bar.median), SegmentValue::CenterOf(i)),
                (FONT, 12),
            )])
            .map_err(drawing)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(0x88, 0x88, 0x88))
        .draw()
        .map_err(drawing)?;
    Ok(())
}

/// The arms in the order the docs list them, then any other in `summary.json`.
fn arm_letters(summary: &Value) -> Vec<String> {
    let mut letters: Vec<String> = "afbcdegh"
        .chars()
        .map(String::from)
        .filter(|l| summary["arms"].get(l).is_some())
        .collect();
    if let Some(arms) = summary["arms"].as_object() {
        for k in arms.keys() {
            if !letters.contains(k) {
                letters.push(k.clone());
            }
        }
    }
    letters
}

/// A bar from a `summary.json` spread (`{median, min, max}`), if it has one.
fn spread_bar(series: usize, v: &Value) -> Option<Bar> {
    let get = |k: &str| v.get(k).and_then(Value::as_f64);
    Some(Bar {
        series,
        median: get("median")?,
        min: get("min")?,
        max: get("max")?,
    })
}

/// `make bench`'s chart, from `summary.json`: throughput of every arm (the in-house load
/// generator and, for (b) and (c), wrk), latency at the fixed rate, and latency at saturation
/// under both generators.
pub fn bench(summary: &Value) -> Result<String> {
    let letters = arm_letters(summary);
    let label = |l: &str| {
        format!(
            "({l}) {}",
            summary["arms"][l]["name"].as_str().unwrap_or("?")
        )
    };
    let wrk = &summary["wrk"]["arms"];
    let wrk_name = summary["wrk"]["settings"]["version"]
        .as_str()
        .and_then(|v| v.split_whitespace().nth(1))
        .map_or("wrk".to_owned(), |v| format!("wrk {v}"));
    let mut panels = vec![Panel {
        title: "Throughput at saturation (median; whisker: min–max over repetitions)".into(),
        axis: "requests per second (2xx)".into(),
        log: false,
        colors: GENERATORS,
        series: vec![
            "autoid-bench load generator".into(),
            format!("{wrk_name} (Lua script, pre-made requests)"),
        ],
        rows: letters
            .iter()
            .map(|l| Row {
                label: label(l),
                bars: [
                    spread_bar(0, &summary["arms"][l]["saturation"]["rps"]),
                    spread_bar(1, &wrk[l]["rps"]),
                ]
                .into_iter()
                .flatten()
                .collect(),
            })
            .collect(),
    }];
    panels.push(Panel {
        title: format!(
            "Latency at a fixed rate of {} req/s (cold arms: half their own saturation rate)",
            summary["paced_rate_rps"]
                .as_f64()
                .map_or("?".to_owned(), number)
        ),
        axis: "microseconds (log scale)".into(),
        log: true,
        colors: PERCENTILES,
        series: vec!["p50".into(), "p99".into()],
        rows: letters
            .iter()
            .map(|l| Row {
                label: label(l),
                bars: [
                    spread_bar(0, &summary["arms"][l]["paced"]["p50_us"]),
                    spread_bar(1, &summary["arms"][l]["paced"]["p99_us"]),
                ]
                .into_iter()
                .flatten()
                .collect(),
            })
            .collect(),
    });
    if let Some(arms) = wrk.as_object() {
        let mut rows = Vec::new();
        for l in letters.iter().filter(|l| arms.contains_key(*l)) {
            for (who, a) in [
                ("autoid-bench", &summary["arms"][l]["saturation"]),
                ("wrk", &wrk[l]),
            ] {
                rows.push(Row {
                    label: format!("{}, {who}", label(l)),
                    bars: [spread_bar(0, &a["p50_us"]), spread_bar(1, &a["p99_us"])]
                        .into_iter()
                        .flatten()
                        .collect(),
                });
            }
        }
        panels.push(Panel {
            title: format!(
                "Latency at saturation, {} connections (wrk's with its coordinated-omission correction)",
                summary["settings"]["connections"]
            ),
            axis: "microseconds".into(),
            log: false,
            colors: PERCENTILES,
        series: vec!["p50".into(), "p99".into()],
            rows,
        });
    }
    let m = &summary["environment"]["machine"];
    let w = &summary["wrk"]["settings"];
    let note = format!(
        "autoid-bench run{}: {} repetition(s), {} s warm-up + {} s per run{}; Envoy --concurrency 1; {} ({} cores); tree {}",
        if summary["settings"]["quick"].as_bool() == Some(true) {
            " --quick"
        } else {
            ""
        },
        summary["settings"]["reps"],
        summary["settings"]["warmup_secs"],
        summary["settings"]["duration_secs"],
        if w.is_object() {
            format!(" (wrk: {} s + {} s)", w["warmup_secs"], w["duration_secs"])
        } else {
            String::new()
        },
        m["cpu_model"].as_str().unwrap_or("?"),
        m["nproc"],
        m["git_head"].as_str().unwrap_or("?"),
    );
    bar_panels(
        "make bench: autoid in Envoy against its baselines",
        &note,
        &panels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts of an SVG's `<text>` elements.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("</text>")
            .filter_map(|t| t.rsplit_once('>').map(|(_, text)| text.trim().to_owned()))
            .collect()
    }

    #[test]
    fn both_series_are_drawn_with_their_legends_and_text_is_escaped() {
        let svg = two_series(
            "a <b>",
            ("seconds", ""),
            ("MB", &[(0.0, 1.0), (10.0, 2.0)]),
            ("req/s", &[(5.0, 100.0), (10.0, 90.0)]),
        )
        .unwrap();
        assert!(svg.starts_with("<svg"));
        let texts = texts(&svg);
        for t in ["a &lt;b&gt;", "MB", "req/s", "seconds"] {
            assert!(texts.iter().any(|x| x == t), "{t} in {texts:?}");
        }
        assert!(svg.matches("<polyline").count() >= 2);
    }

    #[test]
    fn log_axes_span_whole_decades() {
        let panel = |values: &[f64]| Panel {
            title: String::new(),
            axis: String::new(),
            log: true,
            series: Vec::new(),
            colors: PERCENTILES,
            rows: vec![Row {
                label: "x".into(),
                bars: values
                    .iter()
                    .map(|v| Bar {
                        series: 0,
                        median: *v,
                        min: *v,
                        max: *v,
                    })
                    .collect(),
            }],
        };
        assert_eq!(value_range(&panel(&[32.0, 19_993.0])), 10.0..100_000.0);
        assert_eq!(value_range(&panel(&[150.0, 700.0])), 100.0..1_000.0);
    }

    #[test]
    fn the_bench_chart_draws_every_arm_and_both_generators() {
        let spread = |m: f64| serde_json::json!({ "median": m, "min": m * 0.9, "max": m * 1.1 });
        let arm = |name: &str, rps: f64| {
            serde_json::json!({ "name": name,
                "saturation": { "rps": spread(rps), "p50_us": spread(900.0), "p99_us": spread(3000.0) },
                "paced": { "p50_us": spread(200.0), "p99_us": spread(600.0) } })
        };
        let summary = serde_json::json!({
            "arms": { "b": arm("jwt_authn RS256", 18_902.0), "c": arm("autoid <warm>", 18_306.0),
                      "d": arm("autoid cold", 59.0) },
            "paced_rate_rps": 1850.0,
            "settings": { "reps": 3, "duration_secs": 10.0, "quick": false, "connections": 32 },
            "environment": { "machine": { "cpu_model": "AMD EPYC", "nproc": 2, "git_head": "abc" } },
            "wrk": { "settings": { "version": "wrk debian/4.1.0-3+b2 [epoll]" }, "arms": {
                "b": { "rps": spread(19_013.0), "p50_us": spread(1_000.0), "p99_us": spread(2_000.0) },
                "c": { "rps": spread(17_977.0), "p50_us": spread(1_000.0), "p99_us": spread(2_000.0) } } }
        });
        let svg = bench(&summary).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("(b) jwt_authn RS256"));
        assert!(svg.contains("(c) autoid &lt;warm&gt;"));
        assert!(svg.contains("wrk debian/4.1.0-3+b2"));
        // Every bar prints its median: throughput 3 in-house and 2 wrk bars.
        let texts = texts(&svg);
        for v in ["18902", "18306", "59", "19013", "17977"] {
            assert!(texts.iter().any(|t| t == v), "{v} in {texts:?}");
        }
        // Throughput: 5 bars; fixed rate: 3 × 2; saturation: 4 × 2.
        assert!(
            svg.matches("<rect").count() >= 5 + 6 + 8,
            "{} rects",
            svg.matches("<rect").count()
        );
    }
}
