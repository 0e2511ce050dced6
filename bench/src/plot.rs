//! Line charts as a standalone SVG file, for `ringwire-bench --plot`.
//!
//! Written here rather than with a plotting crate: the one made for the job
//! (plotters) needs a system font library to lay out its text, and these
//! charts need only lines, points, ticks and labels, which SVG draws itself.

use std::fmt::Write as _;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x, y) points, drawn in the order given.
    pub points: Vec<(f64, f64)>,
    /// Colour index (series of one tool share a colour).
    pub color: usize,
    /// Line style: 0 solid, 1 dashed, 2 dotted.
    pub dash: usize,
}

/// One chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title above the chart.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Logarithmic Y axis (values ≤ 0 are left out).
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

const W: f64 = 720.0;
const H: f64 = 360.0;
const LEFT: f64 = 70.0;
/// Room right of the plot for the legend.
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// Escape text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// About five round tick values covering `lo..=hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 6.0).unwrap_or(10.0 * mag);
    let first = (lo / step).floor() * step;
    // Each tick computed from the first (no accumulated step, and a bounded
    // count even where `step` is below the values' precision).
    (0..=12)
        .map(|k| first + f64::from(k) * step)
        .take_while(|&t| t <= hi + step * 1e-9)
        .filter(|&t| t >= lo - step * 1e-9)
        .collect()
}

fn label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Draw one chart at (`ox`, `oy`).
fn chart(out: &mut String, c: &Chart, ox: f64, oy: f64) {
    let pts: Vec<(f64, f64)> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|&(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let _ = writeln!(out, r#"<g transform="translate({ox},{oy})">"#);
    let _ = writeln!(out, r##"<rect width="{W}" height="{H}" fill="white" stroke="#ccc"/>"##);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        W / 2.0,
        esc(&c.title)
    );
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let ys: Vec<f64> = pts.iter().map(|p| p.1).filter(|&y| !c.log_y || y > 0.0).collect();
    if ys.is_empty() {
        let _ = writeln!(out, r#"<text x="{}" y="{}" text-anchor="middle">no data</text></g>"#, W / 2.0, H / 2.0);
        return;
    }
    let (mut x0, mut x1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    if x1 - x0 < 1e-12 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    let (ylo, yhi) = ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| (a.min(y), b.max(y)));
    let (y0, y1, yticks) = if c.log_y {
        let (a, b) = (ylo.log10().floor(), yhi.log10().ceil().max(ylo.log10().floor() + 1.0));
        (a, b, (a as i32..=b as i32).map(f64::from).collect::<Vec<_>>())
    } else {
        let lo = ylo.min(0.0);
        let hi = if yhi - lo < 1e-12 { lo + 1.0 } else { yhi * 1.05 };
        (lo, hi, ticks(lo, hi))
    };
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let sy_axis = |t: f64| TOP + ph - (t - y0) / (y1 - y0) * ph;
    let sy = |y: f64| sy_axis(if c.log_y { y.log10() } else { y });
    for t in &yticks {
        let y = sy_axis(*t);
        let text = if c.log_y { label(10f64.powf(*t)) } else { label(*t) };
        let _ = writeln!(out, r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/>"##, LEFT + pw);
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end" font-size="11">{text}</text>"#,
            LEFT - 6.0,
            y + 4.0
        );
    }
    for t in ticks(x0, x1) {
        let x = sx(t);
        let _ = writeln!(out, r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#eee"/>"##, TOP + ph);
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle" font-size="11">{}</text>"#,
            TOP + ph + 16.0,
            label(t)
        );
    }
    let _ = writeln!(out, r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="12">{}</text>"#,
        LEFT + pw / 2.0,
        H - 10.0,
        esc(&c.x_label)
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle" font-size="12">{}</text>"#,
        TOP + ph / 2.0,
        esc(&c.y_label)
    );
    for (i, s) in c.series.iter().enumerate() {
        let color = COLORS[s.color % COLORS.len()];
        let dash = ["", r#" stroke-dasharray="7,4""#, r#" stroke-dasharray="2,3""#][s.dash.min(2)];
        let p: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|&&(x, y)| x.is_finite() && y.is_finite() && (!c.log_y || y > 0.0))
            .map(|&(x, y)| (sx(x), sy(y)))
            .collect();
        if p.len() > 1 {
            let line: Vec<String> = p.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
                line.join(" ")
            );
        }
        for (x, y) in &p {
            let _ = writeln!(out, r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{color}"/>"#);
        }
        let (lx, ly) = (LEFT + pw + 12.0, TOP + 8.0 + 16.0 * i as f64);
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2"{dash}/>"#,
            lx + 22.0,
            ly - 4.0,
            ly - 4.0
        );
        let _ = writeln!(out, r#"<text x="{}" y="{ly}" font-size="11">{}</text>"#, lx + 28.0, esc(&s.name));
    }
    let _ = writeln!(out, "</g>");
}

/// The charts laid out `columns` wide, with a caption under them, as one SVG document.
#[must_use]
pub fn svg(charts: &[Chart], columns: usize, caption: &str) -> String {
    // No wider than the charts need: one chart is not drawn beside an empty column.
    let columns = columns.clamp(1, charts.len().max(1));
    let rows = charts.len().div_ceil(columns).max(1);
    let (w, h) = (W * columns as f64 + 10.0 * (columns as f64 + 1.0), (H + 10.0) * rows as f64 + 54.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"#fafafa\"/>\n"
    );
    for (i, c) in charts.iter().enumerate() {
        chart(&mut out, c, 10.0 + (W + 10.0) * (i % columns) as f64, 10.0 + (H + 10.0) * (i / columns) as f64);
    }
    // The caption, broken into lines that fit the width.
    let per_line = (w / 6.5) as usize;
    let mut lines = vec![String::new()];
    for word in caption.split(' ') {
        let last = lines.last_mut().expect("one line at least");
        if !last.is_empty() && last.len() + word.len() + 1 > per_line {
            lines.push(word.to_owned());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    for (i, l) in lines.iter().enumerate() {
        let _ = writeln!(out, r#"<text x="10" y="{}" font-size="11">{}</text>"#, h - 26.0 + 14.0 * i as f64, esc(l));
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 1.0).len(), 6);
        assert!((ticks(0.0, 1.0)[3] - 0.6).abs() < 1e-12);
        assert!(ticks(1.8e19, 1.8e19 + 1.0).len() <= 13, "a span below the values' precision ends");
        let t = ticks(0.0, 1_450_000.0);
        assert_eq!(t.first(), Some(&0.0));
        assert!(t.len() >= 3 && t.len() <= 7 && *t.last().unwrap() <= 1_450_000.0, "{t:?}");
        assert_eq!(label(1_500_000.0), "1.5M");
        assert_eq!(label(20_000.0), "20k");
    }

    #[test]
    fn a_chart_draws_each_series_with_its_legend_and_escapes_text() {
        let c = Chart {
            title: "latency <p99>".into(),
            x_label: "offered frames/s".into(),
            y_label: "µs".into(),
            log_y: true,
            series: vec![
                Series { name: "ringwire".into(), points: vec![(1000.0, 12.0), (500_000.0, 30.0)], color: 0, dash: 0 },
                Series { name: "tcpdump".into(), points: vec![(1000.0, 0.0), (500_000.0, 9000.0)], color: 1, dash: 1 },
            ],
        };
        let s = svg(&[c.clone(), Chart { series: vec![], ..c.clone() }], 2, "caption & more");
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert_eq!(s.matches("<polyline").count(), 1, "tcpdump's 0 is off a log axis: one point left");
        assert_eq!(s.matches("<circle").count(), 3);
        assert!(s.contains("latency &lt;p99&gt;") && s.contains("caption &amp; more") && s.contains("no data"));
        // One chart asked two columns wide is one column wide.
        let width = |s: &str| s.split("width=\"").nth(1).and_then(|w| w.split('"').next()).map(str::to_owned);
        assert_eq!(width(&svg(std::slice::from_ref(&c), 2, "")), Some(format!("{}", W + 20.0)));
        assert_eq!(width(&svg(&[c.clone(), c], 2, "")), Some(format!("{}", 2.0 * W + 30.0)));
    }
}
