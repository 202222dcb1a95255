//! SVG line charts of bench results: plain SVG text, viewable in a browser or on GitHub.

use std::fmt::Write;

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
}
