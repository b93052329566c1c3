//! Dependency-free SVG plots: latency-throughput curves and link heat maps.
//!
//! Every entry point is a pure function returning one complete, standalone
//! SVG document (starting with `<svg`, ending with `</svg>\n`). The output is
//! deterministic: all numbers are written with fixed precision, elements are
//! emitted in input order and no hash-map iteration is involved, so the same
//! input always yields byte-identical output (handy for golden files).
//!
//! * [`line_chart_svg`]: x/y line and marker chart (latency–throughput curves,
//!   per-iteration metrics). Non-finite points are skipped, as are
//!   non-positive y values on a logarithmic axis.
//!
//!   **Clipping above `y_max`:** the y axis ends exactly at `y_max`. A line
//!   running into the region above `y_max` is drawn up to the top edge and
//!   stops there; points above `y_max` get no marker. For every series each
//!   run of consecutive points above `y_max` is shown by one upward
//!   arrowhead on the top edge at the x of the first point of the run (its
//!   true x, so two series clipped at the same x show it there). When
//!   anything was clipped the legend says so.
//! * [`link_heatmap_svg`]: per-directed-link values on a 2-D mesh, coloured
//!   with a viridis colour map ([`viridis`]).
//! * [`bar_chart_svg`]: grouped bar chart for comparing mappings or policies.

use std::fmt::Write as _;

/// Fixed series palette (matplotlib "tab10"); series `i` uses entry `i % 10`.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Viridis control points at t = 0, 0.1, ..., 1 (sampled from matplotlib).
const VIRIDIS: [(u8, u8, u8); 11] = [
    (0x44, 0x01, 0x54),
    (0x48, 0x24, 0x75),
    (0x41, 0x44, 0x87),
    (0x35, 0x5f, 0x8d),
    (0x2a, 0x78, 0x8e),
    (0x21, 0x91, 0x8c),
    (0x22, 0xa8, 0x84),
    (0x44, 0xbf, 0x70),
    (0x7a, 0xd1, 0x51),
    (0xbd, 0xdf, 0x26),
    (0xfd, 0xe7, 0x25),
];

const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";
const AXIS_COLOUR: &str = "#333333";
const GRID_COLOUR: &str = "#e3e3e3";
const MINOR_GRID_COLOUR: &str = "#f2f2f2";
const NA_COLOUR: &str = "#b8b8b8";
/// Fill of a link that carried nothing (value exactly 0): white with a grey
/// outline, apart from the colour map, whose bottom is a dark colour that
/// a lightly used link also gets (the cold links of a phase matter).
const IDLE_FILL: &str = r##"fill="#ffffff" stroke="#9a9a9a" stroke-width="0.8""##;

// ---------------------------------------------------------------------------
// Public data types
// ---------------------------------------------------------------------------

/// How a [`Series`] is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesStyle {
    /// A solid polyline through the points, in the given order.
    Line,
    /// Hollow markers only (e.g. BookSim2 reference points).
    Markers,
    /// A polyline plus filled markers at every point.
    LineMarkers,
    /// A horizontal reference line at the y of its points, across the
    /// whole x axis; its x values do not widen the axis.
    HLine,
}

/// One named data series of a [`LineChart`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// `(x, y)` points, drawn in this order (sort by x beforehand for a
    /// curve). Non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
    /// Line, markers or both.
    pub style: SeriesStyle,
}

impl Series {
    /// A flat line at `y` across the x axis (a reference such as parity
    /// or a threshold: [`SeriesStyle::HLine`]); `None` when the series of
    /// `over` have no point (there is no axis to span).
    pub fn flat(name: String, y: f64, over: &[Series]) -> Option<Series> {
        let (lo, hi) = min_max(over.iter().flat_map(|s| s.points.iter().map(|p| p.0)))?;
        Some(Series {
            name,
            points: vec![(lo, y), (hi, y)],
            style: SeriesStyle::HLine,
        })
    }
}

/// A line chart: several series on shared x/y axes.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label left of the y axis (rotated).
    pub y_label: String,
    /// Series in drawing and legend order; colours and marker shapes are
    /// assigned by index.
    pub series: Vec<Series>,
    /// Upper end of the y axis; points above it are clipped (see the module
    /// documentation). `None`: fit the data with a nice round upper limit.
    pub y_max: Option<f64>,
    /// Logarithmic y axis (non-positive y values are skipped).
    pub log_y: bool,
    /// Logarithmic x axis (non-positive x values are skipped).
    pub log_x: bool,
}

/// One directed link value of a [`LinkHeat`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkValue {
    /// Source node as `(row, col)`.
    pub from: (usize, usize),
    /// Destination node as `(row, col)`; normally a 4-neighbour of `from`.
    /// Other pairs are drawn as a straight bar between the two nodes;
    /// self-loops and out-of-range nodes are skipped.
    pub to: (usize, usize),
    /// The value to colour by (e.g. utilisation); non-finite values are
    /// drawn grey as "n/a".
    pub value: f64,
}

/// A heat map of directed link values on a `rows × cols` mesh.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkHeat {
    /// Mesh rows.
    pub rows: usize,
    /// Mesh columns.
    pub cols: usize,
    /// Directed links in drawing order (a repeated link is drawn again, on
    /// top of the earlier one).
    pub links: Vec<LinkValue>,
    /// Title above the mesh.
    pub title: String,
    /// Value mapped to the top of the colour map; larger values saturate.
    /// `None` (or a non-positive/non-finite value): the largest finite value.
    pub max_value: Option<f64>,
    /// Draw dashed tile boundaries every `a` rows and every `b` columns
    /// (a zero disables that direction).
    pub tile: Option<(usize, usize)>,
    /// The values' unit, printed under the colour bar (short: `flits`,
    /// `flits/cycle`); empty for none.
    pub value_label: String,
}

// ---------------------------------------------------------------------------
// Public helpers
// ---------------------------------------------------------------------------

/// Escapes `&`, `<`, `>`, `"` and `'` for XML text and attribute values.
/// Characters not allowed in XML 1.0 (most C0 controls) are dropped; tab,
/// newline and carriage return become spaces.
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Viridis colour for `t` in `[0, 1]` (clamped; NaN maps to 0), by linear
/// interpolation between 11 control points of matplotlib's viridis.
pub fn viridis(t: f64) -> (u8, u8, u8) {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let pos = t * (VIRIDIS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(VIRIDIS.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let lerp = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * f).round() as u8;
    (lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

/// Tick values for an axis covering `[lo, hi]` with roughly `target`
/// intervals: the step is 1, 2 or 5 times a power of ten, the first tick is
/// `<= lo` and the last `>= hi`. A degenerate range (`lo == hi`) is widened;
/// non-finite input yields `[0, 1]`. Always returns at least two ticks.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() {
        return vec![0.0, 1.0];
    }
    let (mut lo, mut hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    let scale = lo.abs().max(hi.abs());
    if hi - lo <= scale * 1e-12 {
        if scale == 0.0 {
            hi = 1.0;
        } else {
            let pad = scale * 0.1;
            lo -= pad;
            hi += pad;
        }
    }
    let span = hi - lo;
    if !span.is_finite() {
        return vec![lo, hi];
    }
    let target = target.max(1) as f64;
    let raw = span / target;
    let e = (raw.log10() + 1e-12).floor() as i32;
    let norm = raw / 10f64.powi(e);
    let (mult, e) = if norm <= 1.0 + 1e-9 {
        (1i64, e)
    } else if norm <= 2.0 + 1e-9 {
        (2, e)
    } else if norm <= 5.0 + 1e-9 {
        (5, e)
    } else {
        (1, e + 1)
    };
    // Tick k is k * mult * 10^e; dividing by 10^-e for negative exponents
    // keeps decimal values exact-looking (0.3, not 0.30000000000000004).
    let value = |k: i64| -> f64 {
        let m = (k * mult) as f64;
        if e < 0 {
            m / 10f64.powi(-e)
        } else {
            m * 10f64.powi(e)
        }
    };
    let step = value(1);
    let start = (lo / step + 1e-9).floor() as i64;
    let end = ((hi / step - 1e-9).ceil() as i64).max(start + 1);
    let end = end.min(start + 1000);
    (start..=end).map(|k| value(k) + 0.0).collect()
}

// ---------------------------------------------------------------------------
// SVG writer and small utilities
// ---------------------------------------------------------------------------

/// Accumulates one SVG document.
struct Svg {
    out: String,
}

impl Svg {
    fn new(width: f64, height: f64) -> Self {
        let (w, h) = (width.ceil(), height.ceil());
        let mut out = String::with_capacity(16 * 1024);
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="{FONT}" font-size="12">"#
        );
        let _ = writeln!(
            out,
            r#"<rect x="0" y="0" width="{w:.0}" height="{h:.0}" fill="white"/>"#
        );
        Svg { out }
    }

    fn raw(&mut self, s: &str) {
        self.out.push_str(s);
        self.out.push('\n');
    }

    #[allow(clippy::too_many_arguments)]
    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, width: f64, extra: &str) {
        let _ = writeln!(
            self.out,
            r#"<line x1="{x1:.2}" y1="{y1:.2}" x2="{x2:.2}" y2="{y2:.2}" stroke="{stroke}" stroke-width="{width:.2}"{extra}/>"#
        );
    }

    /// Text at `(x, y)` (baseline); `anchor` is start/middle/end; `extra` is
    /// raw extra attributes (must start with a space if non-empty).
    fn text(&mut self, x: f64, y: f64, anchor: &str, size: f64, extra: &str, content: &str) {
        let _ = writeln!(
            self.out,
            r#"<text x="{x:.2}" y="{y:.2}" text-anchor="{anchor}" font-size="{size:.1}"{extra}>{}</text>"#,
            escape_xml(content)
        );
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// Approximate rendered width of `s` at `size` px (sans-serif average).
fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.6
}

fn colour_hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Relative luminance (0..1) of an sRGB colour, good enough to choose black or
/// white text on top of it.
fn luminance((r, g, b): (u8, u8, u8)) -> f64 {
    (0.2126 * r as f64 + 0.7152 * g as f64 + 0.0722 * b as f64) / 255.0
}

/// `v` with `decimals` decimals, never printing "-0".
fn fmt_fixed(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    let s = format!("{v:.decimals$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => s,
    }
}

/// Decimals needed to tell ticks `step` apart.
fn decimals_for_step(step: f64) -> usize {
    if step.is_nan() || step <= 0.0 || !step.is_finite() {
        return 2;
    }
    let d = -(step.log10() + 1e-9).floor();
    (d.max(0.0) as usize).min(12)
}

/// Tick label for `v` on an axis with tick spacing `step`.
fn fmt_tick(v: f64, step: f64) -> String {
    let a = v.abs();
    if a >= 1e6 || (a > 0.0 && a < 1e-4) {
        fmt_exp(v)
    } else {
        fmt_fixed(v, decimals_for_step(step))
    }
}

/// Exponent notation with up to 3 significant digits (`2.5e6`, `1e-5`).
fn fmt_exp(v: f64) -> String {
    let s = format!("{v:.2e}");
    match s.split_once('e') {
        Some((mant, exp)) => {
            let mant = mant.trim_end_matches('0').trim_end_matches('.');
            format!("{mant}e{exp}")
        }
        None => s,
    }
}

/// `v` with about three significant digits (values, not ticks).
fn fmt_sig(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".to_string();
    }
    if !(1e-3..1e6).contains(&a) {
        return fmt_exp(v);
    }
    let mag = (a.log10() + 1e-12).floor() as i32;
    let decimals = (2 - mag).max(0) as usize;
    fmt_fixed(v, decimals)
}

/// Smallest and largest value, ignoring nothing (callers pre-filter).
fn min_max(it: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    it.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Extends `[lo, hi]` down to 0 when all data are non-negative and 0 is
/// "near" (lo < hi / 2), the usual choice for latencies and rates; the
/// mirror case for all-negative data.
fn include_zero(lo: f64, hi: f64) -> (f64, f64) {
    if lo >= 0.0 && lo < hi / 2.0 {
        (0.0, hi)
    } else if hi <= 0.0 && hi > lo / 2.0 {
        (lo, 0.0)
    } else {
        (lo, hi)
    }
}

/// Clamps a screen coordinate so huge data values cannot produce inf/NaN.
fn clamp_px(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(-1e7, 1e7)
    }
}

type Pt = (f64, f64);

/// Axis-aligned rectangle in screen coordinates.
#[derive(Clone, Copy)]
struct Rect {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Rect {
    fn contains(&self, p: Pt) -> bool {
        p.0 >= self.x0 && p.0 <= self.x1 && p.1 >= self.y0 && p.1 <= self.y1
    }
}

/// Liang–Barsky clipping of segment `p`–`q` to `r`.
fn clip_segment(p: Pt, q: Pt, r: Rect) -> Option<(Pt, Pt)> {
    let (dx, dy) = (q.0 - p.0, q.1 - p.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (pp, qq) in [
        (-dx, p.0 - r.x0),
        (dx, r.x1 - p.0),
        (-dy, p.1 - r.y0),
        (dy, r.y1 - p.1),
    ] {
        if pp == 0.0 {
            if qq < 0.0 {
                return None;
            }
        } else {
            let t = qq / pp;
            if pp < 0.0 {
                if t > t1 {
                    return None;
                }
                t0 = t0.max(t);
            } else {
                if t < t0 {
                    return None;
                }
                t1 = t1.min(t);
            }
        }
    }
    Some((
        (p.0 + t0 * dx, p.1 + t0 * dy),
        (p.0 + t1 * dx, p.1 + t1 * dy),
    ))
}

fn points_attr(pts: &[Pt]) -> String {
    let mut s = String::with_capacity(pts.len() * 14);
    for (i, p) in pts.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{:.2},{:.2}", p.0, p.1);
    }
    s
}

/// Marker shapes, cycled per series.
#[derive(Clone, Copy)]
enum Marker {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
}

const MARKERS: [Marker; 5] = [
    Marker::Circle,
    Marker::Square,
    Marker::TriangleUp,
    Marker::Diamond,
    Marker::TriangleDown,
];

/// One marker of radius ~`r` at `(x, y)`; `hollow` draws white fill with a
/// coloured outline.
fn marker_svg(m: Marker, x: f64, y: f64, r: f64, colour: &str, hollow: bool) -> String {
    let paint = if hollow {
        format!(r#"fill="white" stroke="{colour}" stroke-width="1.6""#)
    } else {
        format!(r#"fill="{colour}" stroke="white" stroke-width="0.8""#)
    };
    match m {
        Marker::Circle => format!(r#"<circle cx="{x:.2}" cy="{y:.2}" r="{r:.2}" {paint}/>"#),
        Marker::Square => {
            let h = r * 0.9;
            format!(
                r#"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" {paint}/>"#,
                x - h,
                y - h,
                2.0 * h,
                2.0 * h
            )
        }
        Marker::TriangleUp | Marker::TriangleDown => {
            let s = if matches!(m, Marker::TriangleUp) {
                1.0
            } else {
                -1.0
            };
            let r = r * 1.15;
            let pts = [
                (x, y - s * r),
                (x + r * 0.95, y + s * r * 0.65),
                (x - r * 0.95, y + s * r * 0.65),
            ];
            format!(r#"<polygon points="{}" {paint}/>"#, points_attr(&pts))
        }
        Marker::Diamond => {
            let r = r * 1.2;
            let pts = [(x, y - r), (x + r, y), (x, y + r), (x - r, y)];
            format!(r#"<polygon points="{}" {paint}/>"#, points_attr(&pts))
        }
    }
}

/// Font size for a bold title centred at `cx` on a canvas `width` wide:
/// `base`, or smaller (not below 9) so that the title fits (estimating a
/// bold sans-serif character at 0.62 em). Was: long titles ran off both
/// sides of the balancer's link maps (visual QA, session 18).
fn title_font(text: &str, cx: f64, width: f64, base: f64) -> f64 {
    let room = 2.0 * cx.min(width - cx) - 12.0;
    let est = 0.62 * base * text.chars().count() as f64;
    if est <= room || room <= 0.0 {
        base
    } else {
        (base * room / est).max(9.0)
    }
}

/// Upward arrowhead whose tip touches the top edge `y_top` at `x`.
fn up_arrow_svg(x: f64, y_top: f64, colour: &str) -> String {
    let pts = [(x, y_top), (x + 5.5, y_top + 10.0), (x - 5.5, y_top + 10.0)];
    format!(
        r#"<polygon points="{}" fill="{colour}" stroke="white" stroke-width="0.8"/>"#,
        points_attr(&pts)
    )
}

/// A legend entry: name, colour, whether a line sample and which marker.
struct LegendEntry {
    name: String,
    colour: String,
    line: bool,
    marker: Option<(Marker, bool)>,
    swatch: bool,
}

fn legend_width(entries: &[LegendEntry], notes: &[String]) -> f64 {
    let names = entries.iter().map(|e| text_width(&e.name, 12.0));
    let note_w = notes.iter().map(|n| text_width(n, 11.0) - 20.0);
    let w = names.chain(note_w).fold(0.0f64, f64::max);
    if entries.is_empty() && notes.is_empty() {
        0.0
    } else {
        w + 52.0
    }
}

/// Draws a legend box with its top-left corner at `(x, y)`.
fn draw_legend(svg: &mut Svg, x: f64, y: f64, entries: &[LegendEntry], notes: &[String]) {
    if entries.is_empty() && notes.is_empty() {
        return;
    }
    let w = legend_width(entries, notes);
    let h = 10.0 + 20.0 * (entries.len() + notes.len()) as f64;
    let _ = writeln!(
        svg.out,
        r##"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="white" stroke="#bbbbbb" stroke-width="1"/>"##
    );
    for (i, e) in entries.iter().enumerate() {
        let cy = y + 15.0 + 20.0 * i as f64;
        let (x0, x1) = (x + 8.0, x + 36.0);
        if e.swatch {
            let _ = writeln!(
                svg.out,
                r#"<rect x="{:.2}" y="{:.2}" width="20" height="12" fill="{}"/>"#,
                x0 + 4.0,
                cy - 6.0,
                e.colour
            );
        }
        if e.line {
            svg.line(x0, cy, x1, cy, &e.colour, 2.2, "");
        }
        if let Some((m, hollow)) = e.marker {
            svg.raw(&marker_svg(m, (x0 + x1) / 2.0, cy, 4.5, &e.colour, hollow));
        }
        svg.text(x1 + 8.0, cy + 4.0, "start", 12.0, "", &e.name);
    }
    for (j, note) in notes.iter().enumerate() {
        let cy = y + 15.0 + 20.0 * (entries.len() + j) as f64;
        svg.raw(&up_arrow_svg(x + 22.0, cy - 6.0, "#555555"));
        svg.text(
            x + 44.0,
            cy + 4.0,
            "start",
            11.0,
            r##" fill="#555555""##,
            note,
        );
    }
}

/// A numeric axis mapping data values to `[0, 1]`.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    /// `(value, label)`; unlabelled ticks are minor grid lines.
    ticks: Vec<(f64, Option<String>)>,
}

impl Axis {
    fn frac(&self, v: f64) -> f64 {
        let (a, b, v) = if self.log {
            (self.lo.log10(), self.hi.log10(), v.log10())
        } else {
            (self.lo, self.hi, v)
        };
        if b - a == 0.0 {
            0.5
        } else {
            (v - a) / (b - a)
        }
    }

    /// Linear axis with nice ticks; `cap` fixes the upper end.
    fn linear(lo: f64, hi: f64, cap: Option<f64>, target: usize) -> Axis {
        let ticks = nice_ticks(lo, hi, target);
        let step = ticks[1] - ticks[0];
        let first = ticks[0];
        let last = ticks[ticks.len() - 1];
        let top = cap.unwrap_or(last);
        let eps = step * 1e-6;
        let ticks = ticks
            .into_iter()
            .filter(|&t| t <= top + eps)
            .map(|t| (t, Some(fmt_tick(t, step))))
            .collect();
        Axis {
            lo: first,
            hi: top,
            log: false,
            ticks,
        }
    }

    /// Log axis spanning `[lo, hi]` (both > 0); `cap` fixes the upper end.
    fn log(lo: f64, hi: f64, cap: Option<f64>) -> Axis {
        let mut e_lo = (lo.log10() + 1e-9).floor();
        let mut e_hi = match cap {
            Some(c) => c.log10(),
            None => (hi.log10() - 1e-9).ceil(),
        };
        if e_hi - e_lo < 1e-9 {
            if cap.is_some() {
                e_lo -= 1.0;
            } else {
                e_hi += 1.0;
            }
        }
        let span = e_hi - e_lo;
        let every = (span / 8.0).ceil().max(1.0) as i64;
        let label_125 = span <= 2.5;
        let minor = span <= 6.0;
        let mut ticks = Vec::new();
        let (first, last) = (e_lo.floor() as i64, e_hi.ceil() as i64);
        for e in first..=last {
            for m in 1..=9 {
                let v = m as f64 * 10f64.powi(e as i32);
                let ev = v.log10();
                if ev < e_lo - 1e-9 || ev > e_hi + 1e-9 {
                    continue;
                }
                let labelled = if m == 1 {
                    (e - first) % every == 0
                } else {
                    label_125 && (m == 2 || m == 5)
                };
                if labelled {
                    let label = if (-4..6).contains(&e) {
                        fmt_fixed(v, (-e).max(0) as usize)
                    } else {
                        fmt_exp(v)
                    };
                    ticks.push((v, Some(label)));
                } else if m == 1 || minor {
                    ticks.push((v, None));
                }
            }
        }
        Axis {
            lo: 10f64.powf(e_lo),
            hi: 10f64.powf(e_hi),
            log: true,
            ticks,
        }
    }
}

// ---------------------------------------------------------------------------
// Line chart
// ---------------------------------------------------------------------------

/// Renders a [`LineChart`] as a standalone SVG document: nice 1-2-5 ticks,
/// grid, one palette colour and marker shape per series, legend on the
/// right. Points above `y_max` are clipped as described in the module
/// documentation.
pub fn line_chart_svg(c: &LineChart) -> String {
    let log_y = c.log_y;
    let log_x = c.log_x;
    let cap = c.y_max.filter(|m| m.is_finite() && (!log_y || *m > 0.0));
    let mut clean: Vec<Vec<Pt>> = c
        .series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .copied()
                .filter(|&(x, y)| {
                    x.is_finite() && y.is_finite() && (!log_y || y > 0.0) && (!log_x || x > 0.0)
                })
                .collect()
        })
        .collect();
    // x values that set the x axis: every series' but reference lines'.
    let data_x = |clean: &[Vec<Pt>]| -> Vec<f64> {
        c.series
            .iter()
            .zip(clean)
            .filter(|(s, _)| s.style != SeriesStyle::HLine)
            .flat_map(|(_, pts)| pts.iter().map(|p| p.0))
            .collect()
    };
    let xs = data_x(&clean);
    let has_x = !xs.is_empty();

    // x axis
    let mut x_axis = if log_x {
        let (lo, hi) = min_max(xs.iter().copied()).unwrap_or((1.0, 10.0));
        Axis::log(lo, hi, None)
    } else {
        let (x_lo, x_hi) = min_max(xs.iter().copied()).unwrap_or((0.0, 1.0));
        let (x_lo, x_hi) = include_zero(x_lo, x_hi);
        Axis::linear(x_lo, x_hi, None, 8)
    };
    // Reference lines span the axis.
    for (s, pts) in c.series.iter().zip(clean.iter_mut()) {
        if s.style == SeriesStyle::HLine {
            if let Some(&(_, y)) = pts.first() {
                *pts = vec![(x_axis.lo, y), (x_axis.hi, y)];
            }
        }
    }
    let all = || clean.iter().flatten().copied();
    let has_data = all().next().is_some();
    // Integer data (iterations, mesh sides): no label at a fraction, the
    // tick stays as a minor grid line (was: "100.5" on an iteration axis).
    if !log_x && has_x && xs.iter().all(|x| x.fract() == 0.0) {
        for t in &mut x_axis.ticks {
            t.1 = if t.0.fract().abs() > 1e-9 {
                None
            } else {
                Some(format!("{}", t.0.round()))
            };
        }
    }

    // y axis (points above the cap do not influence it)
    let in_range = || all().map(|p| p.1).filter(|&y| cap.is_none_or(|m| y <= m));
    let y_axis = if log_y {
        let (lo, hi) = match (min_max(in_range()), cap) {
            (Some((lo, hi)), _) => (lo, hi),
            (None, Some(m)) => (m / 10.0, m),
            (None, None) => (1.0, 10.0),
        };
        Axis::log(lo, hi, cap)
    } else {
        match cap {
            Some(m) => {
                let lo = min_max(in_range()).map_or(0.0, |r| r.0);
                let (mut lo, _) = include_zero(lo, m);
                if lo >= m {
                    lo = if m > 0.0 { 0.0 } else { m - 1.0 };
                }
                Axis::linear(lo, m, Some(m), 6)
            }
            None => {
                let (lo, hi) = min_max(in_range()).unwrap_or((0.0, 1.0));
                let (lo, hi) = include_zero(lo, hi);
                Axis::linear(lo, hi, None, 6)
            }
        }
    };

    // Layout
    let y_label_w = y_axis
        .ticks
        .iter()
        .filter_map(|t| t.1.as_ref())
        .map(|l| text_width(l, 11.0))
        .fold(0.0f64, f64::max);
    let left = 40.0 + y_label_w + 10.0;
    let top = 50.0;
    let (pw, ph) = (620.0, 400.0);
    let bottom = top + ph;
    let right = left + pw;
    let sx = |x: f64| clamp_px(left + x_axis.frac(x) * pw);
    let sy = |y: f64| clamp_px(bottom - y_axis.frac(y) * ph);

    // Pre-compute series geometry so the legend knows about clipping.
    let tol = Rect {
        x0: left - 0.5,
        y0: top - 0.5,
        x1: right + 0.5,
        y1: bottom + 0.5,
    };
    let mut body = Svg { out: String::new() };
    let mut clipped_any = false;
    for (i, (s, pts)) in c.series.iter().zip(&clean).enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let marker = MARKERS[i % MARKERS.len()];
        let has_line = matches!(
            s.style,
            SeriesStyle::Line | SeriesStyle::LineMarkers | SeriesStyle::HLine
        );
        let has_markers = matches!(s.style, SeriesStyle::Markers | SeriesStyle::LineMarkers);
        let scr: Vec<Pt> = pts.iter().map(|&(x, y)| (sx(x), sy(y))).collect();
        let above: Vec<bool> = pts
            .iter()
            .map(|&(_, y)| cap.is_some_and(|m| y > m))
            .collect();
        let _ = writeln!(body.out, r#"<g data-series="{}">"#, escape_xml(&s.name));
        if has_line {
            let mut runs: Vec<Vec<Pt>> = Vec::new();
            let mut cur: Vec<Pt> = Vec::new();
            for w in scr.windows(2) {
                match clip_segment(w[0], w[1], tol) {
                    Some((a, b)) => {
                        let joined = cur
                            .last()
                            .is_some_and(|l| (l.0 - a.0).abs() < 1e-6 && (l.1 - a.1).abs() < 1e-6);
                        if !joined {
                            if cur.len() >= 2 {
                                runs.push(std::mem::take(&mut cur));
                            }
                            cur.clear();
                            cur.push(a);
                        }
                        cur.push(b);
                        if (b.0 - w[1].0).abs() > 1e-6 || (b.1 - w[1].1).abs() > 1e-6 {
                            runs.push(std::mem::take(&mut cur));
                        }
                    }
                    None => {
                        if cur.len() >= 2 {
                            runs.push(std::mem::take(&mut cur));
                        }
                        cur.clear();
                    }
                }
            }
            if cur.len() >= 2 {
                runs.push(cur);
            }
            for run in &runs {
                let _ = writeln!(
                    body.out,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2.2" stroke-linejoin="round" stroke-linecap="round"/>"#,
                    points_attr(run)
                );
            }
            // A lone visible point of a line-only series still shows up.
            let visible: Vec<&Pt> = scr.iter().filter(|p| tol.contains(**p)).collect();
            if s.style == SeriesStyle::Line && visible.len() == 1 {
                let p = visible[0];
                let _ = writeln!(
                    body.out,
                    r#"<circle cx="{:.2}" cy="{:.2}" r="3" fill="{colour}"/>"#,
                    p.0, p.1
                );
            }
        }
        if has_markers {
            for (p, &up) in scr.iter().zip(&above) {
                if !up && tol.contains(*p) {
                    body.raw(&marker_svg(
                        marker,
                        p.0,
                        p.1,
                        4.5,
                        colour,
                        s.style == SeriesStyle::Markers,
                    ));
                }
            }
        }
        // One arrowhead per run of points above the cap.
        for k in 0..scr.len() {
            if !above[k] || (k > 0 && above[k - 1]) {
                continue;
            }
            clipped_any = true;
            // At the point's own x, for lines as for markers: at the
            // line's crossing instead, a curve clipped between two points
            // looked as if it saturated at a lower rate than a marker
            // series clipped at the same rate (visual QA, session 18).
            body.raw(&up_arrow_svg(scr[k].0, top, colour));
        }
        body.raw("</g>");
    }

    let entries: Vec<LegendEntry> = c
        .series
        .iter()
        .zip(&clean)
        .enumerate()
        .map(|(i, (s, pts))| LegendEntry {
            name: if pts.is_empty() {
                format!("{} (no data)", s.name)
            } else {
                s.name.clone()
            },
            colour: PALETTE[i % PALETTE.len()].to_string(),
            line: s.style != SeriesStyle::Markers,
            marker: (!matches!(s.style, SeriesStyle::Line | SeriesStyle::HLine))
                .then_some((MARKERS[i % MARKERS.len()], s.style == SeriesStyle::Markers)),
            swatch: false,
        })
        .collect();
    let notes: Vec<String> = match (clipped_any, cap) {
        (true, Some(m)) => vec![format!("above y = {}", fmt_sig(m))],
        _ => Vec::new(),
    };
    let legend_x = right + 24.0;
    let lw = legend_width(&entries, &notes);
    let width = if lw > 0.0 {
        legend_x + lw + 16.0
    } else {
        right + 30.0
    };
    let height = bottom + 60.0;

    let mut svg = Svg::new(width, height);
    svg.text(
        (left + right) / 2.0,
        28.0,
        "middle",
        title_font(&c.title, (left + right) / 2.0, width, 17.0),
        r#" font-weight="bold""#,
        &c.title,
    );
    // grid
    for (v, label) in &y_axis.ticks {
        let y = sy(*v);
        let colour = if label.is_some() {
            GRID_COLOUR
        } else {
            MINOR_GRID_COLOUR
        };
        svg.line(left, y, right, y, colour, 1.0, "");
    }
    for (v, _) in &x_axis.ticks {
        let x = sx(*v);
        svg.line(x, top, x, bottom, GRID_COLOUR, 1.0, "");
    }
    if !log_y && y_axis.lo < 0.0 && y_axis.hi > 0.0 {
        let y = sy(0.0);
        svg.line(left, y, right, y, "#999999", 1.0, "");
    }
    svg.out.push_str(&body.out);
    if !has_data {
        svg.text(
            (left + right) / 2.0,
            (top + bottom) / 2.0,
            "middle",
            14.0,
            r##" fill="#888888""##,
            "no data",
        );
    }
    // frame, ticks and labels
    let _ = writeln!(
        svg.out,
        r#"<rect x="{left:.2}" y="{top:.2}" width="{pw:.2}" height="{ph:.2}" fill="none" stroke="{AXIS_COLOUR}" stroke-width="1"/>"#
    );
    for (v, label) in &y_axis.ticks {
        if let Some(label) = label {
            let y = sy(*v);
            svg.line(left - 5.0, y, left, y, AXIS_COLOUR, 1.0, "");
            svg.text(left - 8.0, y + 4.0, "end", 11.0, "", label);
        }
    }
    for (v, label) in &x_axis.ticks {
        let x = sx(*v);
        svg.line(x, bottom, x, bottom + 5.0, AXIS_COLOUR, 1.0, "");
        if let Some(label) = label {
            svg.text(x, bottom + 19.0, "middle", 11.0, "", label);
        }
    }
    svg.text(
        (left + right) / 2.0,
        bottom + 44.0,
        "middle",
        13.0,
        "",
        &c.x_label,
    );
    let ylx = 18.0;
    let yly = (top + bottom) / 2.0;
    svg.text(
        ylx,
        yly,
        "middle",
        13.0,
        &format!(r#" transform="rotate(-90 {ylx:.2} {yly:.2})""#),
        &c.y_label,
    );
    draw_legend(&mut svg, legend_x, top, &entries, &notes);
    svg.finish()
}

// ---------------------------------------------------------------------------
// Link heat map
// ---------------------------------------------------------------------------

/// Renders a [`LinkHeat`] as a standalone SVG document. Nodes are small
/// squares on a grid (labelled with their id `col + cols * row` when the mesh
/// is at most 16×16); every directed link is a pointed bar from source to
/// destination, drawn on the right-hand side of its direction of travel so
/// the two directions of a physical link sit side by side. Colours follow
/// [`viridis`] over `0..max_value`; a colour bar is drawn on the right, and
/// optional dashed tile boundaries. Meshes up to 6×6 print each value on its
/// bar; every bar also carries a `<title>` tooltip with
/// its endpoints and value.
pub fn link_heatmap_svg(h: &LinkHeat) -> String {
    let (rows, cols) = (h.rows, h.cols);
    let n = rows.max(cols).max(1) as f64;
    let s = (760.0 / n).clamp(12.0, 200.0);
    let (ml, mt) = (40.0, 72.0);
    let (gw, gh) = (cols as f64 * s, rows as f64 * s);
    let cb_x = ml + gw + 36.0;
    let cb_w = 18.0;
    let cb_h = gh.clamp(140.0, 520.0);
    let width = (cb_x + cb_w + 90.0).max(420.0);
    let height = mt + gh.max(cb_h + 64.0) + 30.0;

    let in_mesh = |(r, c): (usize, usize)| r < rows && c < cols;
    let links: Vec<&LinkValue> = h
        .links
        .iter()
        .filter(|l| l.from != l.to && in_mesh(l.from) && in_mesh(l.to))
        .collect();
    let data_max = links
        .iter()
        .map(|l| l.value)
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let vmax = h
        .max_value
        .filter(|m| m.is_finite() && *m > 0.0)
        .unwrap_or(data_max);
    let vmax = if vmax.is_finite() && vmax > 0.0 {
        vmax
    } else {
        1.0
    };
    let saturated = data_max > vmax * (1.0 + 1e-12);
    let any_na = links.iter().any(|l| !l.value.is_finite());
    let any_idle = links.iter().any(|l| l.value == 0.0);

    let mut svg = Svg::new(width, height);
    svg.text(
        width / 2.0,
        30.0,
        "middle",
        title_font(&h.title, width / 2.0, width, 17.0),
        r#" font-weight="bold""#,
        &h.title,
    );
    let subtitle = format!(
        "{rows}×{cols} mesh · {} directed links · bar on the right of its direction of travel{}",
        links.len(),
        if h.tile.is_some_and(|(a, b)| a > 0 || b > 0) {
            " · dashed red: tile boundaries"
        } else {
            ""
        }
    );
    svg.text(
        width / 2.0,
        52.0,
        "middle",
        12.0,
        r##" fill="#555555""##,
        &subtitle,
    );

    let cx = |c: usize| ml + (c as f64 + 0.5) * s;
    let cy = |r: usize| mt + (r as f64 + 0.5) * s;
    let ns = s * 0.34;

    // Mesh skeleton: thin lines between all 4-neighbours.
    let mut d = String::new();
    for r in 0..rows {
        for c in 0..cols {
            if c + 1 < cols {
                let _ = write!(d, "M{:.2} {:.2}H{:.2}", cx(c), cy(r), cx(c + 1));
            }
            if r + 1 < rows {
                let _ = write!(d, "M{:.2} {:.2}V{:.2}", cx(c), cy(r), cy(r + 1));
            }
        }
    }
    if !d.is_empty() {
        let _ = writeln!(
            svg.out,
            r##"<path d="{d}" fill="none" stroke="#dddddd" stroke-width="1"/>"##
        );
    }

    // Links.
    let hw = (s * 0.095).min(13.0);
    let gap = s * 0.025;
    let off = hw + gap / 2.0;
    let pad = s * 0.05;
    // Values are printed on the bars only for small meshes (up to 6×6);
    // larger ones stay readable through colour and `<title>` tooltips.
    let show_values = s >= 120.0;
    // Bar labels share one precision: about two significant digits of vmax.
    let label_step = vmax / 20.0;
    let id = |(r, c): (usize, usize)| c + cols * r;
    // Drawn after the tile boundaries so dashed lines never cross them.
    let mut value_labels = Svg { out: String::new() };
    for l in &links {
        let (p, q) = ((cx(l.from.1), cy(l.from.0)), (cx(l.to.1), cy(l.to.0)));
        let (dx, dy) = (q.0 - p.0, q.1 - p.1);
        let len = (dx * dx + dy * dy).sqrt();
        let inset = ns / 2.0 + pad;
        if len <= 2.0 * inset + 1.0 {
            continue;
        }
        let (ux, uy) = (dx / len, dy / len);
        // Right-hand normal in screen coordinates (y grows downwards).
        let (nx, ny) = (-uy, ux);
        let a = (p.0 + ux * inset + nx * off, p.1 + uy * inset + ny * off);
        let b = (q.0 - ux * inset + nx * off, q.1 - uy * inset + ny * off);
        let blen = len - 2.0 * inset;
        let hl = (hw * 1.6).min(blen * 0.4);
        let hb = (b.0 - ux * hl, b.1 - uy * hl);
        let poly = [
            (a.0 + nx * hw, a.1 + ny * hw),
            (hb.0 + nx * hw, hb.1 + ny * hw),
            b,
            (hb.0 - nx * hw, hb.1 - ny * hw),
            (a.0 - nx * hw, a.1 - ny * hw),
        ];
        let (fill, rgb) = if l.value == 0.0 {
            (IDLE_FILL.to_string(), Some((255, 255, 255)))
        } else if l.value.is_finite() {
            let rgb = viridis(l.value / vmax);
            (format!(r#"fill="{}""#, colour_hex(rgb)), Some(rgb))
        } else {
            (format!(r#"fill="{NA_COLOUR}""#), None)
        };
        let _ = writeln!(
            svg.out,
            r#"<polygon points="{}" {fill}><title>{} → {} (r{},c{})→(r{},c{}): {}</title></polygon>"#,
            points_attr(&poly),
            id(l.from),
            id(l.to),
            l.from.0,
            l.from.1,
            l.to.0,
            l.to.1,
            escape_xml(&fmt_sig(l.value)),
        );
        if show_values {
            let label = fmt_tick(l.value, label_step);
            let font = (2.0 * hw * 0.62).min(11.0);
            let (mx, my) = ((a.0 + hb.0) / 2.0, (a.1 + hb.1) / 2.0);
            if text_width(&label, font) <= (blen - hl) * 0.85 {
                let mut ang = uy.atan2(ux).to_degrees();
                if ang > 90.0 + 1e-9 {
                    ang -= 180.0;
                } else if ang <= -90.0 + 1e-9 {
                    ang += 180.0;
                }
                let tc = match rgb {
                    Some(rgb) if luminance(rgb) < 0.55 => "white",
                    _ => "black",
                };
                value_labels.text(
                    mx,
                    my + font * 0.35,
                    "middle",
                    font,
                    &format!(r#" fill="{tc}" transform="rotate({ang:.2} {mx:.2} {my:.2})""#),
                    &label,
                );
            }
        }
    }

    // Nodes.
    let labels = rows <= 16 && cols <= 16;
    let (node_stroke, node_sw) = if s >= 40.0 {
        ("#555555", 1.0)
    } else {
        ("#8a8a8a", 0.8)
    };
    for r in 0..rows {
        for c in 0..cols {
            let _ = writeln!(
                svg.out,
                r##"<rect x="{:.2}" y="{:.2}" width="{ns:.2}" height="{ns:.2}" fill="#f7f7f7" stroke="{node_stroke}" stroke-width="{node_sw:.2}"/>"##,
                cx(c) - ns / 2.0,
                cy(r) - ns / 2.0
            );
            if labels {
                let label = id((r, c)).to_string();
                let font = (ns * 0.88 / (label.len() as f64 * 0.6))
                    .min(ns * 0.55)
                    .min(14.0);
                svg.text(
                    cx(c),
                    cy(r) + font * 0.36,
                    "middle",
                    font,
                    r##" fill="#222222""##,
                    &label,
                );
            }
        }
    }

    // Tile boundaries.
    if let Some((ta, tb)) = h.tile {
        let dash = r##" stroke-dasharray="7 4" stroke-opacity="0.85""##;
        let colour = "#d62728";
        let tile_w = if s >= 40.0 { 1.8 } else { 1.4 };
        if ta > 0 {
            let mut k = ta;
            while k < rows {
                let y = mt + k as f64 * s;
                svg.line(ml, y, ml + gw, y, colour, tile_w, dash);
                k += ta;
            }
        }
        if tb > 0 {
            let mut k = tb;
            while k < cols {
                let x = ml + k as f64 * s;
                svg.line(x, mt, x, mt + gh, colour, tile_w, dash);
                k += tb;
            }
        }
        if ta > 0 || tb > 0 {
            let _ = writeln!(
                svg.out,
                r#"<rect x="{ml:.2}" y="{mt:.2}" width="{gw:.2}" height="{gh:.2}" fill="none" stroke="{colour}" stroke-width="{tile_w:.2}"{dash}/>"#
            );
        }
    }
    svg.out.push_str(&value_labels.out);
    if rows == 0 || cols == 0 {
        svg.text(
            ml + 190.0,
            mt + 90.0,
            "middle",
            14.0,
            r##" fill="#888888""##,
            "empty mesh",
        );
    }

    // Colour bar.
    let _ = writeln!(
        svg.out,
        r#"<defs><linearGradient id="wafernoc-viridis" x1="0" y1="1" x2="0" y2="0">"#
    );
    for (i, rgb) in VIRIDIS.iter().enumerate() {
        let _ = writeln!(
            svg.out,
            r#"<stop offset="{:.2}" stop-color="{}"/>"#,
            i as f64 / (VIRIDIS.len() - 1) as f64,
            colour_hex(*rgb)
        );
    }
    svg.raw("</linearGradient></defs>");
    let cb_y = mt;
    let _ = writeln!(
        svg.out,
        r#"<rect x="{cb_x:.2}" y="{cb_y:.2}" width="{cb_w:.2}" height="{cb_h:.2}" fill="url(#wafernoc-viridis)" stroke="{AXIS_COLOUR}" stroke-width="1"/>"#
    );
    let ticks = nice_ticks(0.0, vmax, 5);
    let step = ticks[1] - ticks[0];
    let bar_y = |v: f64| cb_y + cb_h * (1.0 - v / vmax);
    for &t in &ticks {
        if t > vmax * (1.0 - 0.08) {
            continue;
        }
        let y = bar_y(t);
        svg.line(cb_x + cb_w, y, cb_x + cb_w + 5.0, y, AXIS_COLOUR, 1.0, "");
        svg.text(
            cb_x + cb_w + 8.0,
            y + 4.0,
            "start",
            11.0,
            "",
            &fmt_tick(t, step),
        );
    }
    // The top label uses the tick precision when vmax is a round value.
    let on_tick = ticks.iter().any(|t| (t - vmax).abs() <= step * 1e-6);
    let top_value = if on_tick {
        fmt_tick(vmax, step)
    } else {
        fmt_sig(vmax)
    };
    let top_label = if saturated {
        format!("≥{top_value}")
    } else {
        top_value
    };
    svg.line(
        cb_x + cb_w,
        cb_y,
        cb_x + cb_w + 5.0,
        cb_y,
        AXIS_COLOUR,
        1.0,
        "",
    );
    svg.text(cb_x + cb_w + 8.0, cb_y + 4.0, "start", 11.0, "", &top_label);
    // Boxes under the bar for what the colour map does not cover.
    let mut y = cb_y + cb_h + 14.0;
    if any_idle {
        let _ = writeln!(
            svg.out,
            r#"<rect x="{cb_x:.2}" y="{y:.2}" width="{cb_w:.2}" height="12" {IDLE_FILL}/>"#
        );
        svg.text(cb_x + cb_w + 8.0, y + 10.0, "start", 11.0, "", "0 (idle)");
        y += 20.0;
    }
    if any_na {
        let _ = writeln!(
            svg.out,
            r#"<rect x="{cb_x:.2}" y="{y:.2}" width="{cb_w:.2}" height="12" fill="{NA_COLOUR}" stroke="{AXIS_COLOUR}" stroke-width="1"/>"#
        );
        svg.text(cb_x + cb_w + 8.0, y + 10.0, "start", 11.0, "", "n/a");
        y += 20.0;
    }
    if !h.value_label.is_empty() {
        let y = y + 6.0;
        svg.text(
            cb_x,
            y,
            "start",
            11.0,
            r##" fill="#555555""##,
            &h.value_label,
        );
    }
    svg.finish()
}

// ---------------------------------------------------------------------------
// Bar chart
// ---------------------------------------------------------------------------

/// Renders a grouped bar chart: one cluster per entry of `categories` along
/// the x axis, one bar per `(name, values)` group inside each cluster (value
/// `i` belongs to category `i`; missing or non-finite values leave a gap).
/// Bars start at zero (negative values hang down), the legend lists the
/// groups, and values are printed above the bars when there is room.
pub fn bar_chart_svg(
    title: &str,
    categories: &[String],
    groups: &[(String, Vec<f64>)],
    y_label: &str,
) -> String {
    let ncat = categories.len();
    let ng = groups.len();
    let value = |g: usize, c: usize| groups[g].1.get(c).copied().filter(|v| v.is_finite());
    let vals = (0..ng).flat_map(|g| (0..ncat).filter_map(move |c| value(g, c)));
    let (lo, hi) = min_max(vals).unwrap_or((0.0, 1.0));
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let axis = Axis::linear(lo, hi, None, 6);

    let y_label_w = axis
        .ticks
        .iter()
        .filter_map(|t| t.1.as_ref())
        .map(|l| text_width(l, 11.0))
        .fold(0.0f64, f64::max);
    let top = 50.0;
    let pw = (ncat as f64 * (ng as f64 * 16.0 + 24.0)).clamp(620.0, 1400.0);
    let ph = 380.0;
    let bottom = top + ph;
    let slot = pw / ncat.max(1) as f64;
    let cat_w = categories
        .iter()
        .map(|c| text_width(c, 11.0))
        .fold(0.0f64, f64::max);
    // Category labels too wide for their slot are rotated by 35 degrees;
    // the margins then make room for them (cos 35° ≈ 0.82, sin 35° ≈ 0.57).
    let rotate = cat_w > slot * 0.95;
    let cat_h = if rotate { cat_w * 0.6 + 10.0 } else { 14.0 };
    let left = if rotate {
        (40.0 + y_label_w + 10.0).max(cat_w * 0.82 - slot / 2.0 + 12.0)
    } else {
        40.0 + y_label_w + 10.0
    };
    let right = left + pw;
    // Value labels share one precision: none for integer data, else one
    // decimal more than the axis ticks.
    let all_int = (0..ng).all(|g| {
        (0..ncat)
            .filter_map(|c| value(g, c))
            .all(|v| v.fract() == 0.0 && v.abs() < 1e15)
    });
    let value_step = if all_int {
        1.0
    } else {
        (axis.ticks[1].0 - axis.ticks[0].0) / 10.0
    };

    let entries: Vec<LegendEntry> = groups
        .iter()
        .enumerate()
        .map(|(i, (name, _))| LegendEntry {
            name: name.clone(),
            colour: PALETTE[i % PALETTE.len()].to_string(),
            line: false,
            marker: None,
            swatch: true,
        })
        .collect();
    let lw = legend_width(&entries, &[]);
    let legend_x = right + 24.0;
    let width = if lw > 0.0 {
        legend_x + lw + 16.0
    } else {
        right + 30.0
    };
    let height = bottom + cat_h + 50.0;
    let sy = |v: f64| clamp_px(bottom - axis.frac(v) * ph);

    let mut svg = Svg::new(width, height);
    svg.text(
        (left + right) / 2.0,
        28.0,
        "middle",
        title_font(title, (left + right) / 2.0, width, 17.0),
        r#" font-weight="bold""#,
        title,
    );
    for (v, _) in &axis.ticks {
        let y = sy(*v);
        svg.line(left, y, right, y, GRID_COLOUR, 1.0, "");
    }
    let y0 = sy(0.0);
    let bw = slot * 0.8 / ng.max(1) as f64;
    let show_values = bw >= 22.0;
    for (c, cat) in categories.iter().enumerate() {
        let x_slot = left + c as f64 * slot;
        for g in 0..ng {
            let Some(v) = value(g, c) else { continue };
            let x = x_slot + slot * 0.1 + g as f64 * bw + bw * 0.04;
            let y = sy(v);
            let (ry, rh) = if y <= y0 { (y, y0 - y) } else { (y0, y - y0) };
            // A bar shorter than a pixel (a zero) is drawn one pixel tall,
            // centred on the zero line, so that it is told apart from a
            // missing value (a gap), and no rectangle has zero height
            // (which SVG renders as nothing and resvg warns about).
            let (ry, rh) = if rh < 1.0 {
                (ry + rh / 2.0 - 0.5, 1.0)
            } else {
                (ry, rh)
            };
            let _ = writeln!(
                svg.out,
                r#"<rect x="{x:.2}" y="{ry:.2}" width="{:.2}" height="{rh:.2}" fill="{}"><title>{}: {}</title></rect>"#,
                bw * 0.92,
                PALETTE[g % PALETTE.len()],
                escape_xml(&format!("{cat} / {}", groups[g].0)),
                escape_xml(&fmt_sig(v)),
            );
            if show_values {
                // Outside the bar end, or just inside it (white) when the
                // plot frame leaves no room.
                let (ty, inside) = if v >= 0.0 {
                    if y - 14.0 < top {
                        (y + 12.0, true)
                    } else {
                        (y - 4.0, false)
                    }
                } else if y + 14.0 > bottom {
                    (y - 4.0, true)
                } else {
                    (y + 12.0, false)
                };
                let colour = if inside && rh >= 14.0 {
                    r#" fill="white""#
                } else {
                    r##" fill="#333333""##
                };
                svg.text(
                    x + bw * 0.46,
                    ty,
                    "middle",
                    10.0,
                    colour,
                    &fmt_tick(v, value_step),
                );
            }
        }
    }
    if ncat == 0 || ng == 0 {
        svg.text(
            (left + right) / 2.0,
            (top + bottom) / 2.0,
            "middle",
            14.0,
            r##" fill="#888888""##,
            "no data",
        );
    }
    let _ = writeln!(
        svg.out,
        r#"<rect x="{left:.2}" y="{top:.2}" width="{pw:.2}" height="{ph:.2}" fill="none" stroke="{AXIS_COLOUR}" stroke-width="1"/>"#
    );
    if axis.lo < 0.0 {
        svg.line(left, y0, right, y0, AXIS_COLOUR, 1.0, "");
    }
    for (v, label) in &axis.ticks {
        if let Some(label) = label {
            let y = sy(*v);
            svg.line(left - 5.0, y, left, y, AXIS_COLOUR, 1.0, "");
            svg.text(left - 8.0, y + 4.0, "end", 11.0, "", label);
        }
    }
    for (c, name) in categories.iter().enumerate() {
        let x = left + (c as f64 + 0.5) * slot;
        svg.line(x, bottom, x, bottom + 5.0, AXIS_COLOUR, 1.0, "");
        if rotate {
            let y = bottom + 16.0;
            svg.text(
                x,
                y,
                "end",
                11.0,
                &format!(r#" transform="rotate(-35 {x:.2} {y:.2})""#),
                name,
            );
        } else {
            svg.text(x, bottom + 19.0, "middle", 11.0, "", name);
        }
    }
    let ylx = 18.0;
    let yly = (top + bottom) / 2.0;
    svg.text(
        ylx,
        yly,
        "middle",
        13.0,
        &format!(r#" transform="rotate(-90 {ylx:.2} {yly:.2})""#),
        y_label,
    );
    draw_legend(&mut svg, legend_x, top, &entries, &[]);
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimal well-formedness check: every tag is closed in the right
    /// order, attribute values are quoted, `&` only starts an entity and no
    /// raw `<` appears in text. Returns the number of elements.
    fn check_xml(doc: &str) -> usize {
        assert!(doc.starts_with("<svg"), "must start with <svg");
        assert!(
            doc.ends_with("</svg>\n"),
            "must end with </svg> and newline"
        );
        let mut stack: Vec<String> = Vec::new();
        let mut elements = 0;
        let mut rest = doc;
        while let Some(lt) = rest.find('<') {
            check_text(&rest[..lt]);
            let gt = rest[lt..].find('>').expect("unterminated tag") + lt;
            let tag = &rest[lt + 1..gt];
            rest = &rest[gt + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().expect("close without open");
                assert_eq!(open, name.trim(), "mismatched close tag");
                continue;
            }
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name: String = body
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == ':')
                .collect();
            assert!(!name.is_empty(), "empty tag name in <{tag}>");
            check_attrs(&body[name.len()..]);
            elements += 1;
            if !self_closing {
                stack.push(name);
            }
            if stack.is_empty() {
                assert_eq!(rest, "\n", "content after the root element");
            }
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed elements: {stack:?}");
        elements
    }

    fn check_text(t: &str) {
        assert!(
            !t.contains('>') || t.trim().is_empty(),
            "raw > in text {t:?}"
        );
        let mut s = t;
        while let Some(i) = s.find('&') {
            let semi = s[i..].find(';').expect("& without ;") + i;
            let ent = &s[i + 1..semi];
            assert!(
                ["amp", "lt", "gt", "quot", "apos"].contains(&ent),
                "unknown entity &{ent};"
            );
            s = &s[semi + 1..];
        }
    }

    fn check_attrs(a: &str) {
        let mut s = a.trim();
        while !s.is_empty() {
            let eq = s.find('=').expect("attribute without =");
            let name = s[..eq].trim();
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'),
                "bad attribute name {name:?}"
            );
            let after = &s[eq + 1..];
            assert!(after.starts_with('"'), "unquoted attribute {name}");
            let end = after[1..].find('"').expect("unterminated attribute") + 1;
            let value = &after[1..end];
            assert!(!value.contains('<'), "< in attribute");
            assert!(
                !value.contains("NaN") && !value.contains("inf"),
                "non-finite number in {name}={value}"
            );
            check_text(value);
            s = after[end + 1..].trim_start();
        }
    }

    fn latency_chart() -> LineChart {
        let curve = |z: f64, sat: f64| -> Vec<(f64, f64)> {
            (1..=12)
                .map(|i| {
                    let x = i as f64 * 0.05;
                    (x, z + 10.0 * x / (sat - x).max(0.002))
                })
                .collect()
        };
        LineChart {
            title: "Uniform random, 8×8 mesh <XY> & \"VC=2\"".into(),
            x_label: "offered load (flits/node/cycle)".into(),
            y_label: "mean packet latency (cycles)".into(),
            series: vec![
                Series {
                    name: "wafernoc uniform".into(),
                    points: curve(20.0, 0.45),
                    style: SeriesStyle::LineMarkers,
                },
                Series {
                    name: "BookSim2 uniform".into(),
                    points: curve(21.0, 0.46),
                    style: SeriesStyle::Markers,
                },
                Series {
                    name: "wafernoc transpose".into(),
                    points: curve(20.0, 0.3),
                    style: SeriesStyle::Line,
                },
                Series {
                    name: "BookSim2 transpose".into(),
                    points: curve(21.0, 0.31),
                    style: SeriesStyle::Markers,
                },
            ],
            y_max: Some(200.0),
            log_y: false,
            log_x: false,
        }
    }

    fn heat(rows: usize, cols: usize) -> LinkHeat {
        let mut links = Vec::new();
        for r in 0..rows {
            for c in 0..cols {
                let v = |a: (usize, usize), b: (usize, usize)| {
                    let t = ((a.0 * 7 + a.1 * 13 + b.0 * 3 + b.1 * 5) % 17) as f64 / 16.0;
                    t * 0.8
                };
                if c + 1 < cols {
                    links.push(LinkValue {
                        from: (r, c),
                        to: (r, c + 1),
                        value: v((r, c), (r, c + 1)),
                    });
                    links.push(LinkValue {
                        from: (r, c + 1),
                        to: (r, c),
                        value: v((r, c + 1), (r, c)),
                    });
                }
                if r + 1 < rows {
                    links.push(LinkValue {
                        from: (r, c),
                        to: (r + 1, c),
                        value: v((r, c), (r + 1, c)),
                    });
                    links.push(LinkValue {
                        from: (r + 1, c),
                        to: (r, c),
                        value: v((r + 1, c), (r, c)),
                    });
                }
            }
        }
        LinkHeat {
            rows,
            cols,
            links,
            title: format!("Link utilisation {rows}×{cols}"),
            max_value: None,
            tile: Some((4, 4)),
            value_label: "flits/cycle".into(),
        }
    }

    fn bars() -> (Vec<String>, Vec<(String, Vec<f64>)>) {
        let cats = ["uniform", "transpose", "hotspot", "MoE all-to-all"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let groups = vec![
            ("row-major".to_string(), vec![0.42, 0.28, 0.15, 0.21]),
            ("FTD tiles".to_string(), vec![0.44, 0.33, 0.19, 0.31]),
            ("balancer".to_string(), vec![0.45, 0.35, f64::NAN, 0.36]),
        ];
        (cats, groups)
    }

    #[test]
    fn plot_line_chart_well_formed_and_deterministic() {
        let c = latency_chart();
        let a = line_chart_svg(&c);
        let b = line_chart_svg(&c);
        assert_eq!(a, b);
        assert!(check_xml(&a) > 20);
        assert!(a.contains("&lt;XY&gt; &amp; &quot;VC=2&quot;"));
        // clipped: arrowheads and the legend note
        assert!(a.contains("above y = 200"));
    }

    #[test]
    fn plot_line_chart_clips_to_y_max() {
        let c = LineChart {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: vec![Series {
                name: "s".into(),
                points: vec![(0.0, 10.0), (1.0, 50.0), (2.0, 1e300), (3.0, 20.0)],
                style: SeriesStyle::LineMarkers,
            }],
            y_max: Some(100.0),
            log_y: false,
            log_x: false,
        };
        let svg = line_chart_svg(&c);
        check_xml(&svg);
        // 3 markers drawn (circles, the first marker shape), not 4.
        let body = &svg[svg.find("<g data-series").unwrap()..svg.find("</g>").unwrap()];
        assert_eq!(body.matches("<circle").count(), 3);
        assert_eq!(body.matches("<polygon").count(), 1, "one arrowhead");
        // Nothing is drawn above the plot's top edge (y = 50).
        for poly in svg.split("<polyline points=\"").skip(1) {
            let pts = &poly[..poly.find('"').unwrap()];
            for p in pts.split(' ') {
                let y: f64 = p.split(',').nth(1).unwrap().parse().unwrap();
                assert!(y >= 49.5, "point above plot: {p}");
            }
        }
    }

    #[test]
    fn long_titles_shrink_to_fit() {
        assert_eq!(title_font("short", 400.0, 800.0, 17.0), 17.0);
        let long = "x".repeat(120);
        let f = title_font(&long, 400.0, 800.0, 17.0);
        assert!(f < 17.0 && 0.62 * f * 120.0 <= 800.0 - 12.0 + 1e-9, "{f}");
        // Off-centre: the nearer edge limits it.
        assert!(title_font(&long, 200.0, 800.0, 17.0) < f);
        assert_eq!(title_font(&"x".repeat(10_000), 400.0, 800.0, 17.0), 9.0);
    }

    /// Links that carried nothing are drawn apart from the colour map
    /// (white, outlined) and the colour bar says so; a map without idle
    /// links has no such box.
    #[test]
    fn idle_links_are_drawn_apart() {
        let mut h = heat(3, 3);
        let idle = h.links.iter().filter(|l| l.value == 0.0).count();
        assert!(idle > 0, "the fixture has idle links");
        let svg = link_heatmap_svg(&h);
        check_xml(&svg);
        let polys = svg.matches("<polygon points=").count();
        let white = svg
            .split("<polygon points=")
            .skip(1)
            .filter(|p| p.contains(r##"fill="#ffffff""##))
            .count();
        assert_eq!(white, idle, "{svg}");
        assert!(polys >= h.links.len());
        assert!(svg.contains(">0 (idle)<"));
        for l in &mut h.links {
            if l.value == 0.0 {
                l.value = 0.01;
            }
        }
        assert!(!link_heatmap_svg(&h).contains("0 (idle)"));
    }

    /// Integer x data get labels only at integers.
    #[test]
    fn integer_x_axes_label_only_integers() {
        let mk = |pts: Vec<(f64, f64)>| LineChart {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: vec![Series {
                name: "s".into(),
                points: pts,
                style: SeriesStyle::LineMarkers,
            }],
            y_max: None,
            log_y: false,
            log_x: false,
        };
        let labels = |svg: &str| -> Vec<String> {
            // x tick labels sit below the plot: text with anchor middle.
            svg.split("<text ")
                .filter(|t| t.contains(r#"text-anchor="middle" font-size="11.0""#))
                .filter_map(|t| {
                    let v = &t[t.find('>')? + 1..t.find("</text>")?];
                    v.parse::<f64>().ok().map(|_| v.to_string())
                })
                .collect()
        };
        let ints = labels(&line_chart_svg(&mk(vec![
            (100.0, 1.0),
            (101.0, 2.0),
            (103.0, 3.0),
        ])));
        assert!(!ints.is_empty());
        assert!(ints.iter().all(|l| !l.contains('.')), "{ints:?}");
        let frac = labels(&line_chart_svg(&mk(vec![(0.1, 1.0), (0.25, 2.0)])));
        assert!(frac.iter().any(|l| l.contains('.')), "{frac:?}");
    }

    /// A line and a marker series clipped at the same x show their
    /// arrowheads at that x (was: the line's at its crossing of the top
    /// edge, to the left, as if it saturated earlier).
    #[test]
    fn clipped_lines_and_markers_point_at_the_same_x() {
        let pts = vec![(0.1, 30.0), (0.2, 40.0), (0.3, 500.0)];
        let c = LineChart {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: vec![
                Series {
                    name: "line".into(),
                    points: pts.clone(),
                    style: SeriesStyle::LineMarkers,
                },
                Series {
                    name: "markers".into(),
                    points: pts,
                    style: SeriesStyle::Markers,
                },
            ],
            y_max: Some(100.0),
            log_y: false,
            log_x: false,
        };
        let svg = line_chart_svg(&c);
        check_xml(&svg);
        // The tip's x of each series' arrowhead (the polygon's first point).
        let tips: Vec<f64> = svg
            .split("<g data-series")
            .skip(1)
            .map(|g| {
                let at = "<polygon points=\"";
                let poly = &g[g.find(at).unwrap() + at.len()..];
                poly.split([',', ' ']).next().unwrap().parse().unwrap()
            })
            .collect();
        assert_eq!(tips.len(), 2, "{svg}");
        assert!((tips[0] - tips[1]).abs() < 1e-6, "{tips:?}");
    }

    #[test]
    fn plot_line_chart_degenerate_inputs() {
        let mk = |points: Vec<(f64, f64)>, y_max: Option<f64>, log_y: bool| LineChart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![
                Series {
                    name: "a".into(),
                    points,
                    style: SeriesStyle::Line,
                },
                Series {
                    name: "empty".into(),
                    points: vec![],
                    style: SeriesStyle::Markers,
                },
            ],
            y_max,
            log_y,
            log_x: false,
        };
        let cases = vec![
            vec![],
            vec![
                (f64::NAN, 1.0),
                (1.0, f64::INFINITY),
                (f64::NEG_INFINITY, f64::NAN),
            ],
            vec![(3.0, 5.0)],
            vec![(1.0, 5.0), (2.0, 5.0), (3.0, 5.0)],
            vec![(2.0, 0.0), (2.0, 0.0)],
            vec![(0.0, -3.0), (1.0, -1.0), (2.0, 4.0)],
            vec![(0.0, 1e-9), (1.0, 1e12)],
            vec![(-1e300, -1e300), (1e300, 1e300)],
        ];
        for pts in cases {
            for (y_max, log_y) in [
                (None, false),
                (None, true),
                (Some(3.0), false),
                (Some(3.0), true),
                (Some(f64::NAN), false),
                (Some(-2.0), true),
                (Some(0.0), false),
            ] {
                let c = mk(pts.clone(), y_max, log_y);
                let svg = line_chart_svg(&c);
                check_xml(&svg);
                assert_eq!(svg, line_chart_svg(&c));
            }
        }
        let empty = LineChart {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: vec![],
            y_max: None,
            log_y: false,
            log_x: false,
        };
        assert!(line_chart_svg(&empty).contains("no data"));
    }

    #[test]
    fn plot_log_axis_ticks_are_decades() {
        let c = LineChart {
            title: "log".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series {
                name: "s".into(),
                points: vec![(0.0, 3.0), (1.0, 40.0), (2.0, 5000.0)],
                style: SeriesStyle::LineMarkers,
            }],
            y_max: None,
            log_y: true,
            log_x: false,
        };
        let svg = line_chart_svg(&c);
        check_xml(&svg);
        for label in [
            ">1</text>",
            ">10</text>",
            ">100</text>",
            ">1000</text>",
            ">10000</text>",
        ] {
            assert!(svg.contains(label), "missing {label}");
        }
    }

    /// A reference line spans the whole x axis (linear and log) and does
    /// not widen it: data at x 3..6.5 on a 0..7 axis, 2..64 on 1..100.
    #[test]
    fn plot_reference_lines_span_the_axis() {
        for (log_x, xs, lo, hi) in [
            (false, [3.0, 6.5], 0.0, 7.0),
            (true, [2.0, 64.0], 1.0, 100.0),
        ] {
            let data = Series {
                name: "data".into(),
                points: vec![(xs[0], 0.5), (xs[1], 2.0)],
                style: SeriesStyle::LineMarkers,
            };
            let mut series = vec![data];
            series.extend(Series::flat("parity".into(), 1.0, &series));
            assert_eq!(series[1].style, SeriesStyle::HLine);
            let c = LineChart {
                title: "t".into(),
                x_label: "x".into(),
                y_label: "y".into(),
                series,
                y_max: None,
                log_y: false,
                log_x,
            };
            let svg = line_chart_svg(&c);
            check_xml(&svg);
            let lo_label = format!(">{lo}</text>");
            let hi_label = format!(">{hi}</text>");
            assert!(svg.contains(&lo_label) && svg.contains(&hi_label), "{svg}");
            // The parity polyline's two ends: the plot's left and right edges.
            let g = svg.split(r#"<g data-series="parity">"#).nth(1).unwrap();
            let pts = g.split(r#"points=""#).nth(1).unwrap();
            let pts: Vec<f64> = pts[..pts.find('"').unwrap()]
                .split([' ', ','])
                .map(|v| v.parse().unwrap())
                .collect();
            let d = svg.split(r#"<g data-series="data">"#).nth(1).unwrap();
            let dpts = d.split(r#"points=""#).nth(1).unwrap();
            let dx: Vec<f64> = dpts[..dpts.find('"').unwrap()]
                .split(' ')
                .map(|p| p.split(',').next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(pts.len(), 4, "{pts:?}");
            assert!(
                pts[0] < dx[0] - 10.0 && pts[2] > dx[1] + 10.0,
                "{pts:?} {dx:?}"
            );
            assert_eq!(pts[1], pts[3]);
            assert!((pts[2] - pts[0] - 620.0).abs() < 1.0, "{pts:?}");
        }
    }

    #[test]
    fn plot_heatmap_well_formed_all_sizes() {
        for (r, c) in [
            (4, 4),
            (8, 8),
            (16, 16),
            (32, 32),
            (2, 16),
            (1, 1),
            (0, 0),
            (3, 0),
        ] {
            let h = heat(r, c);
            let svg = link_heatmap_svg(&h);
            let n = check_xml(&svg);
            assert!(n >= r * c, "{r}x{c}: {n} elements");
            assert_eq!(svg, link_heatmap_svg(&h));
            let w: f64 = svg["<svg".len()..]
                .split("width=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            if r.max(c) >= 4 {
                assert!((780.0..=1050.0).contains(&w), "{r}x{c}: width {w}");
            }
        }
    }

    #[test]
    fn plot_heatmap_odd_links_and_labels() {
        let h = LinkHeat {
            rows: 3,
            cols: 3,
            links: vec![
                LinkValue {
                    from: (0, 0),
                    to: (0, 1),
                    value: f64::NAN,
                },
                LinkValue {
                    from: (0, 1),
                    to: (0, 0),
                    value: -1.0,
                },
                LinkValue {
                    from: (1, 1),
                    to: (1, 1),
                    value: 5.0,
                },
                LinkValue {
                    from: (0, 0),
                    to: (2, 2),
                    value: 2.0,
                },
                LinkValue {
                    from: (0, 0),
                    to: (9, 9),
                    value: 2.0,
                },
                LinkValue {
                    from: (2, 2),
                    to: (2, 1),
                    value: f64::INFINITY,
                },
                LinkValue {
                    from: (2, 1),
                    to: (2, 2),
                    value: 4.0,
                },
            ],
            title: "odd".into(),
            max_value: Some(2.0),
            tile: Some((0, 2)),
            value_label: String::new(),
        };
        let svg = link_heatmap_svg(&h);
        check_xml(&svg);
        assert_eq!(
            svg.matches("<polygon").count(),
            5,
            "self-loop and out-of-range skipped"
        );
        assert!(svg.contains(">n/a</text>"));
        assert!(
            svg.contains(">≥2.0</text>"),
            "saturation marked on colour bar"
        );
        assert!(svg.contains(">8</text>"), "node ids as labels");
        let big = link_heatmap_svg(&heat(17, 17));
        assert!(!big.contains(">288</text>"), "no node labels above 16x16");
    }

    #[test]
    fn plot_bar_chart_well_formed() {
        let (cats, groups) = bars();
        let svg = bar_chart_svg(
            "Saturation throughput <by mapping>",
            &cats,
            &groups,
            "flits/node/cycle",
        );
        check_xml(&svg);
        assert_eq!(
            svg,
            bar_chart_svg(
                "Saturation throughput <by mapping>",
                &cats,
                &groups,
                "flits/node/cycle"
            )
        );
        assert_eq!(svg.matches("</title></rect>").count(), 11, "11 finite bars");
        check_xml(&bar_chart_svg("", &[], &[], ""));
        check_xml(&bar_chart_svg(
            "neg",
            &cats,
            &[("d".into(), vec![-1.0, 2.0])],
            "Δ",
        ));
        // Zeros are one-pixel bars on the zero line (told apart from the
        // gap of a missing value), never zero-height rectangles.
        let zeros = bar_chart_svg(
            "zeros",
            &cats,
            &[("z".into(), vec![0.0, 5.0, f64::NAN, 0.0])],
            "y",
        );
        check_xml(&zeros);
        assert_eq!(zeros.matches("</title></rect>").count(), 3, "{zeros}");
        assert_eq!(zeros.matches(r#" height="1.00" "#).count(), 2, "{zeros}");
        assert!(!zeros.contains(r#"height="0.00""#), "{zeros}");
    }

    #[test]
    fn plot_viridis_endpoints() {
        assert_eq!(viridis(0.0), (0x44, 0x01, 0x54));
        assert_eq!(viridis(1.0), (0xfd, 0xe7, 0x25));
        assert_eq!(viridis(-3.0), viridis(0.0));
        assert_eq!(viridis(7.0), viridis(1.0));
        assert_eq!(viridis(f64::NAN), viridis(0.0));
        assert_eq!(viridis(0.5), (0x21, 0x91, 0x8c));
        // luminance increases monotonically (perceptual sequential map)
        let mut prev = -1.0;
        for i in 0..=100 {
            let l = luminance(viridis(i as f64 / 100.0));
            assert!(l >= prev - 1e-9, "luminance not monotone at {i}");
            prev = l;
        }
    }

    #[test]
    fn plot_nice_ticks_are_125_and_cover() {
        let ranges = [
            (0.0, 1.0),
            (0.0, 0.47),
            (0.05, 0.6),
            (17.3, 243.9),
            (-3.2, 4.1),
            (0.0, 200.0),
            (1e-7, 3e-7),
            (123456.0, 987654321.0),
            (5.0, 5.0),
            (0.0, 0.0),
            (-7.0, -7.0),
            (0.9, 0.95),
            (10.0, 1.0),
        ];
        for (lo, hi) in ranges {
            for target in [2, 5, 6, 8, 10] {
                let t = nice_ticks(lo, hi, target);
                assert!(t.len() >= 2, "{lo}..{hi}: {t:?}");
                assert!(
                    t.len() <= 3 * target + 3,
                    "{lo}..{hi}: too many ticks {t:?}"
                );
                let (a, b) = (lo.min(hi), lo.max(hi));
                assert!(t[0] <= a + 1e-12 * a.abs() && *t.last().unwrap() >= b - 1e-12 * b.abs());
                let step = t[1] - t[0];
                assert!(step > 0.0);
                for w in t.windows(2) {
                    assert!(((w[1] - w[0]) - step).abs() <= step * 1e-6, "uneven {t:?}");
                }
                let norm = step / 10f64.powf(step.log10().floor());
                assert!(
                    [1.0, 2.0, 5.0, 10.0]
                        .iter()
                        .any(|m| (norm - m).abs() < 1e-6),
                    "{lo}..{hi}: step {step} not 1-2-5"
                );
            }
        }
        assert_eq!(
            nice_ticks(0.0, 200.0, 4),
            vec![0.0, 50.0, 100.0, 150.0, 200.0]
        );
        assert_eq!(nice_ticks(0.0, 0.3, 3), vec![0.0, 0.1, 0.2, 0.3]);
        assert_eq!(nice_ticks(f64::NAN, 1.0, 5), vec![0.0, 1.0]);
    }

    #[test]
    fn plot_escape_and_formatting() {
        assert_eq!(
            escape_xml("a<b>&\"c'\u{1}\n"),
            "a&lt;b&gt;&amp;&quot;c&apos; "
        );
        assert_eq!(fmt_fixed(-0.0001, 2), "0.00");
        assert_eq!(fmt_tick(0.30000000000000004, 0.1), "0.3");
        assert_eq!(fmt_sig(0.51234), "0.512");
        assert_eq!(fmt_sig(123.4), "123");
        assert_eq!(fmt_sig(2.5e7), "2.5e7");
    }

    /// Writes demo SVGs to `$TMPDIR/wafernoc-plot-demo/` for visual checks:
    /// `cargo test -p wafernoc plot_write_demo -- --ignored`.
    #[test]
    #[ignore]
    fn plot_write_demo() {
        let dir = std::env::temp_dir().join("wafernoc-plot-demo");
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, svg: String| std::fs::write(dir.join(name), svg).unwrap();
        write("latency.svg", line_chart_svg(&latency_chart()));
        let mut log = latency_chart();
        log.log_y = true;
        log.y_max = None;
        write("latency_log.svg", line_chart_svg(&log));
        let iters = LineChart {
            title: "Balancer iterations".into(),
            x_label: "iteration".into(),
            y_label: "max link load / mean".into(),
            series: vec![
                Series {
                    name: "max/mean".into(),
                    points: (1..=20).map(|i| (i as f64, 1.1 + 0.9 / i as f64)).collect(),
                    style: SeriesStyle::LineMarkers,
                },
                Series {
                    name: "single".into(),
                    points: vec![(10.0, 1.5)],
                    style: SeriesStyle::Line,
                },
            ],
            y_max: None,
            log_y: false,
            log_x: false,
        };
        write("iterations.svg", line_chart_svg(&iters));
        let flat = LineChart {
            title: "Degenerate: one point, flat line, NaN".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![
                Series {
                    name: "single".into(),
                    points: vec![(3.0, 5.0), (f64::NAN, 1.0)],
                    style: SeriesStyle::LineMarkers,
                },
                Series {
                    name: "flat".into(),
                    points: vec![(3.0, 5.0), (3.0, 5.0)],
                    style: SeriesStyle::Line,
                },
                Series {
                    name: "nothing".into(),
                    points: vec![],
                    style: SeriesStyle::Markers,
                },
            ],
            y_max: None,
            log_y: false,
            log_x: false,
        };
        write("degenerate.svg", line_chart_svg(&flat));
        for (r, c) in [(4, 4), (8, 8), (16, 16), (32, 32), (2, 16)] {
            write(&format!("heat_{r}x{c}.svg"), link_heatmap_svg(&heat(r, c)));
            // XY routing under uniform traffic: channel load peaks mid-mesh;
            // eastbound and southbound get a 30% bias so directions differ.
            let mut h = heat(r, c);
            for l in &mut h.links {
                let (a, b) = (l.from, l.to);
                let (k, i, bias) = if a.0 == b.0 {
                    (c, a.1.min(b.1), if b.1 > a.1 { 1.3 } else { 1.0 })
                } else {
                    (r, a.0.min(b.0), if b.0 > a.0 { 1.3 } else { 1.0 })
                };
                l.value = bias * ((i + 1) * (k - i - 1)) as f64 / k as f64 * 0.1;
            }
            h.title = format!("XY uniform channel load {r}×{c}");
            h.tile = Some((r.div_ceil(4).max(2), c.div_ceil(4).max(2)));
            write(&format!("xy_{r}x{c}.svg"), link_heatmap_svg(&h));
        }
        let (cats, groups) = bars();
        write(
            "bars.svg",
            bar_chart_svg(
                "Saturation throughput by mapping",
                &cats,
                &groups,
                "flits/node/cycle",
            ),
        );
        let many: Vec<String> = (0..12).map(|i| format!("policy-{i}-long-name")).collect();
        let g = vec![("A".to_string(), (0..12).map(|i| i as f64 - 4.0).collect())];
        write("bars_many.svg", bar_chart_svg("many", &many, &g, "Δ"));
    }
}
