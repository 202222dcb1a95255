//! SVG charts of bench results, plain SVG text viewable in a browser or on GitHub: line charts
//! over time (`make soak`) and bar charts of the arms (`make bench`, from `summary.json`).

use std::fmt::Write;

use serde_json::Value;

const W: f64 = 820.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 80.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 2] = ["#1f77b4", "#d62728"];

/// A "nice" upper bound for an axis and its tick step (1, 2 or 5 × 10^k, five steps or so).
fn axis(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Two series over the same x axis: `a` against the left axis, `b` against the right one.
pub fn two_series(
    title: &str,
    (x_label, _): (&str, &str),
    a: (&str, &[(f64, f64)]),
    b: (&str, &[(f64, f64)]),
) -> String {
    let x_max = a.1.iter().chain(b.1).map(|p| p.0).fold(0.0f64, f64::max);
    let (x_top, x_step) = axis(x_max);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x = |v: f64| LEFT + v / x_top * plot_w;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>
"#,
        W / 2.0,
        escape(title)
    );
    // Frame and x ticks.
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>"##
    );
    let mut t = 0.0;
    while t <= x_top + x_step / 2.0 {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{t}</text>"##,
            x(t),
            TOP + plot_h + 18.0
        );
        t += x_step;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        H - 10.0,
        escape(x_label)
    );
    for (i, (label, points)) in [a, b].into_iter().enumerate() {
        let color = COLORS[i];
        let y_max = points.iter().map(|p| p.1).fold(0.0f64, f64::max);
        let (y_top, y_step) = axis(y_max);
        let y = |v: f64| TOP + plot_h - v / y_top * plot_h;
        let (anchor, tick_x, label_x) = if i == 0 {
            ("end", LEFT - 6.0, 16.0)
        } else {
            ("start", LEFT + plot_w + 6.0, W - 16.0)
        };
        let mut v = 0.0;
        while v <= y_top + y_step / 2.0 {
            let _ = writeln!(
                svg,
                r#"<text x="{tick_x:.1}" y="{:.1}" text-anchor="{anchor}" fill="{color}">{v}</text>"#,
                y(v) + 4.0
            );
            v += y_step;
        }
        let _ = writeln!(
            svg,
            r#"<text x="{label_x}" y="{:.1}" text-anchor="middle" fill="{color}" transform="rotate(-90 {label_x} {:.1})">{}</text>"#,
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            escape(label)
        );
        let path: Vec<String> = points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            path.join(" ")
        );
    }
    svg.push_str("</svg>\n");
    svg
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
    pub colors: &'static [&'static str],
    /// Top to bottom.
    pub rows: Vec<Row>,
}

const BAR_W: f64 = 980.0;
const LABEL_X: f64 = 290.0;
const VALUES_W: f64 = 120.0;
const BAR_H: f64 = 12.0;
/// The load generators' colors (in-house, wrk).
const GENERATORS: &[&str] = &["#1f77b4", "#ff7f0e"];
/// p50 and p99.
const PERCENTILES: &[&str] = &["#2ca02c", "#9467bd"];

/// A value as the charts print it.
fn number(v: f64) -> String {
    if v == 0.0 || v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The value axis: a map to pixels and its ticks.
struct Scale {
    log: bool,
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Scale {
    fn new(log: bool, values: impl Iterator<Item = f64> + Clone) -> Scale {
        let max = values.clone().fold(0.0f64, f64::max);
        if log {
            let min = values.filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
            let (lo, hi) = if min.is_finite() {
                (
                    min.log10().floor(),
                    max.log10().ceil().max(min.log10().floor() + 1.0),
                )
            } else {
                (0.0, 1.0)
            };
            let decades = hi - lo;
            let mut ticks = Vec::new();
            let mut e = lo;
            while e <= hi {
                for m in [1.0, 2.0, 5.0] {
                    if m == 1.0 || decades <= 3.0 {
                        ticks.push(m * 10f64.powf(e));
                    }
                }
                e += 1.0;
            }
            ticks.retain(|t| *t <= 10f64.powf(hi) * 1.0001);
            Scale {
                log,
                lo: 10f64.powf(lo),
                hi: 10f64.powf(hi),
                ticks,
            }
        } else {
            let (top, step) = axis(max);
            let ticks = (0..=((top / step).round() as usize))
                .map(|i| i as f64 * step)
                .collect();
            Scale {
                log,
                lo: 0.0,
                hi: top,
                ticks,
            }
        }
    }

    /// 0..=1 along the axis.
    fn at(&self, v: f64) -> f64 {
        let f = if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            v / self.hi
        };
        f.clamp(0.0, 1.0)
    }
}

/// Panels of horizontal bars, one under the other, in one SVG.
pub fn bar_panels(title: &str, note: &str, panels: &[Panel]) -> String {
    let plot_w = BAR_W - LABEL_X - VALUES_W;
    let mut body = String::new();
    let mut y = 40.0;
    for panel in panels {
        let scale = Scale::new(
            panel.log,
            panel
                .rows
                .iter()
                .flat_map(|r| r.bars.iter())
                .flat_map(|b| [b.median, b.min, b.max])
                .filter(|v| v.is_finite()),
        );
        let x = |v: f64| LABEL_X + scale.at(v) * plot_w;
        let _ = writeln!(
            body,
            r#"<text x="10" y="{:.1}" font-size="14" font-weight="bold">{}</text>"#,
            y + 14.0,
            escape(&panel.title)
        );
        y += 22.0;
        let mut lx = LABEL_X;
        for (i, name) in panel.series.iter().enumerate() {
            let color = panel.colors[i % panel.colors.len().max(1)];
            let _ = writeln!(
                body,
                r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                y,
                lx + 16.0,
                y + 10.5,
                escape(name)
            );
            lx += 16.0 + 7.0 * name.chars().count() as f64 + 20.0;
        }
        y += 20.0;
        let top = y;
        for row in &panel.rows {
            let h = BAR_H * row.bars.len().max(1) as f64 + 2.0 * (row.bars.len().max(1) - 1) as f64;
            let _ = writeln!(
                body,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LABEL_X - 8.0,
                y + h / 2.0 + 4.0,
                escape(&row.label)
            );
            for (j, b) in row.bars.iter().enumerate() {
                let color = panel.colors[b.series % panel.colors.len().max(1)];
                let by = y + j as f64 * (BAR_H + 2.0);
                let cy = by + BAR_H / 2.0;
                let _ = writeln!(
                    body,
                    r#"<rect x="{LABEL_X}" y="{by:.1}" width="{:.1}" height="{BAR_H}" fill="{color}"><title>{}</title></rect>"#,
                    (x(b.median) - LABEL_X).max(1.0),
                    escape(&format!("{}: {}", row.label, number(b.median)))
                );
                if b.max > b.min {
                    let _ = writeln!(
                        body,
                        r##"<path d="M{0:.1} {1:.1}H{2:.1}M{0:.1} {3:.1}V{4:.1}M{2:.1} {3:.1}V{4:.1}" stroke="#333" fill="none"/>"##,
                        x(b.min),
                        cy,
                        x(b.max),
                        cy - 4.0,
                        cy + 4.0
                    );
                }
                let _ = writeln!(
                    body,
                    r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                    x(b.max.max(b.median)) + 5.0,
                    cy + 4.0,
                    number(b.median)
                );
            }
            y += h + 8.0;
        }
        // The value axis: grid lines, ticks, unit.
        for t in &scale.ticks {
            let _ = writeln!(
                body,
                r##"<line x1="{0:.1}" y1="{top:.1}" x2="{0:.1}" y2="{1:.1}" stroke="#ddd"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle" font-size="11">{3}</text>"##,
                x(*t),
                y,
                y + 14.0,
                number(*t)
            );
        }
        let _ = writeln!(
            body,
            r##"<line x1="{LABEL_X}" y1="{top:.1}" x2="{LABEL_X}" y2="{y:.1}" stroke="#888"/><line x1="{LABEL_X}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#888"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            LABEL_X + plot_w,
            LABEL_X + plot_w / 2.0,
            y + 30.0,
            escape(&panel.axis)
        );
        y += 52.0;
    }
    let _ = writeln!(
        body,
        r##"<text x="10" y="{:.1}" font-size="11" fill="#555">{}</text>"##,
        y,
        escape(note)
    );
    let h = y + 12.0;
    // Grid lines under the bars: the axes go first in the document.
    let (bars, axes): (Vec<&str>, Vec<&str>) =
        body.lines().partition(|l| !l.starts_with("<line x1"));
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{BAR_W}" height="{h:.0}" viewBox="0 0 {BAR_W} {h:.0}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{:.1}" y="22" text-anchor="middle" font-size="15">{}</text>
{}
{}
</svg>
"#,
        BAR_W / 2.0,
        escape(title),
        axes.join("\n"),
        bars.join("\n")
    )
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
pub fn bench(summary: &Value) -> String {
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

    #[test]
    fn axes_end_on_a_round_number_above_the_data() {
        assert_eq!(axis(87.0), (100.0, 20.0));
        assert_eq!(axis(23_456.0), (25_000.0, 5_000.0));
        assert_eq!(axis(0.0), (1.0, 0.2));
    }

    #[test]
    fn both_series_are_drawn_and_text_is_escaped() {
        let svg = two_series(
            "a <b>",
            ("seconds", ""),
            ("MB", &[(0.0, 1.0), (10.0, 2.0)]),
            ("req/s", &[(5.0, 100.0)]),
        );
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt;b&gt;"));
    }

    #[test]
    fn log_axes_span_whole_decades() {
        let s = Scale::new(true, [32.0, 19_993.0].into_iter());
        assert_eq!((s.lo, s.hi), (10.0, 100_000.0));
        assert_eq!(s.ticks, vec![10.0, 100.0, 1_000.0, 10_000.0, 100_000.0]);
        assert!((s.at(1_000.0) - 0.5).abs() < 1e-9);
        let s = Scale::new(true, [150.0, 700.0].into_iter());
        assert_eq!(s.ticks, vec![100.0, 200.0, 500.0, 1_000.0]);
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
                "b": { "rps": spread(19_000.0), "p50_us": spread(1_000.0), "p99_us": spread(2_000.0) },
                "c": { "rps": spread(18_000.0), "p50_us": spread(1_000.0), "p99_us": spread(2_000.0) } } }
        });
        let svg = bench(&summary);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("(b) jwt_authn RS256"));
        assert!(svg.contains("(c) autoid &lt;warm&gt;"));
        assert!(svg.contains("wrk debian/4.1.0-3+b2"));
        // Throughput: 3 in-house bars and 2 wrk bars; fixed rate: 3 × 2; saturation: 4 × 2.
        assert_eq!(svg.matches(r#"<rect x="290""#).count(), 5 + 6 + 8);
        assert!(svg.contains(">18902<") && svg.contains(">59<"));
    }
}
