//! A hand-written SVG chart (no plotting dependency): throughput per scenario on the left,
//! p50/p99 latency per scenario on the right.

use std::fmt::Write as _;

/// One scenario's numbers in the chart.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Label under its bars.
    pub name: String,
    /// Requests per second.
    pub throughput: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 400.0;
const PANEL_W: f64 = 380.0;
const PANEL_H: f64 = 250.0;
const TOP: f64 = 80.0;
const COLORS: [&str; 4] = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1"];

/// The smallest 1, 2 or 5 × 10^k not below `v` (the top of an axis).
pub fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|c| *c >= v * 0.999_999)
        .unwrap_or(10.0 * mag)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Axis, grid and tick labels of one panel whose origin is at (`x0`, `TOP + PANEL_H`).
fn axis(svg: &mut String, x0: f64, max: f64, title: &str) {
    let y0 = TOP + PANEL_H;
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="15" font-weight="bold" text-anchor="middle">{}</text>"#,
        x0 + PANEL_W / 2.0,
        TOP - 18.0,
        escape(title)
    );
    for i in 0..=5 {
        let v = max * f64::from(i) / 5.0;
        let y = y0 - PANEL_H * f64::from(i) / 5.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            x0 + PANEL_W,
            x0 - 6.0,
            y + 4.0,
            fmt_value(v)
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{x0:.1}" y1="{TOP:.1}" x2="{x0:.1}" y2="{y0:.1}" stroke="#333"/><line x1="{x0:.1}" y1="{y0:.1}" x2="{:.1}" y2="{y0:.1}" stroke="#333"/>"##,
        x0 + PANEL_W
    );
}

fn bar(svg: &mut String, x: f64, w: f64, value: f64, max: f64, color: &str, label: &str) {
    let y0 = TOP + PANEL_H;
    let h = (value / max).clamp(0.0, 1.0) * PANEL_H;
    let _ = writeln!(
        svg,
        r#"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
        y0 - h,
        x + w / 2.0,
        y0 - h - 4.0,
        escape(label)
    );
}

/// The chart as a standalone SVG document. `subtitle` says when and where it was measured.
pub fn render(bars: &[Bar], subtitle: &str) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#fff"/><text x="{:.1}" y="24" font-size="17" font-weight="bold" text-anchor="middle">invoker: full chain vs floor (wrk, loopback)</text><text x="{:.1}" y="42" font-size="12" fill="#555" text-anchor="middle">{}</text>"##,
        WIDTH / 2.0,
        WIDTH / 2.0,
        escape(subtitle)
    );
    let n = bars.len().max(1) as f64;

    // Left: throughput.
    let x0 = 70.0;
    let max = nice_ceiling(bars.iter().map(|b| b.throughput).fold(0.0, f64::max));
    axis(
        &mut svg,
        x0,
        max,
        "throughput (requests/s, higher is better)",
    );
    let slot = PANEL_W / n;
    for (i, b) in bars.iter().enumerate() {
        let x = x0 + slot * i as f64 + slot * 0.2;
        let color = COLORS[i % COLORS.len()];
        bar(
            &mut svg,
            x,
            slot * 0.6,
            b.throughput,
            max,
            color,
            &fmt_value(b.throughput),
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
            x0 + slot * (i as f64 + 0.5),
            TOP + PANEL_H + 18.0,
            escape(&b.name)
        );
    }

    // Right: latency p50 (light) and p99 (solid).
    let x1 = x0 + PANEL_W + 90.0;
    let max = nice_ceiling(
        bars.iter()
            .map(|b| b.p99_ms.max(b.p50_ms))
            .fold(0.0, f64::max),
    );
    axis(&mut svg, x1, max, "latency (ms, lower is better)");
    for (i, b) in bars.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let w = slot * 0.3;
        let x = x1 + slot * i as f64 + slot * 0.2;
        let _ = writeln!(svg, r#"<g opacity="0.55">"#);
        bar(&mut svg, x, w, b.p50_ms, max, color, &fmt_value(b.p50_ms));
        let _ = writeln!(svg, "</g>");
        bar(
            &mut svg,
            x + w,
            w,
            b.p99_ms,
            max,
            color,
            &fmt_value(b.p99_ms),
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
            x1 + slot * (i as f64 + 0.5),
            TOP + PANEL_H + 18.0,
            escape(&b.name)
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#555" text-anchor="middle">left bar of each pair: p50 (pale) · right bar: p99</text>"##,
        x1 + PANEL_W / 2.0,
        TOP + PANEL_H + 40.0
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(5000.0), 5000.0);
        assert_eq!(nice_ceiling(5001.0), 10000.0);
        assert_eq!(nice_ceiling(0.013), 0.02);
    }

    #[test]
    fn renders_a_document_with_every_scenario() {
        let bars = [
            Bar {
                name: "floor".into(),
                throughput: 5800.0,
                p50_ms: 9.5,
                p99_ms: 21.0,
            },
            Bar {
                name: "chain <x>".into(),
                throughput: 3900.0,
                p50_ms: 14.0,
                p99_ms: 40.0,
            },
        ];
        let svg = render(&bars, "today");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">floor<") && svg.contains("chain &lt;x&gt;"));
        assert_eq!(svg.matches("<rect").count(), 1 + 2 + 4);
    }
}
