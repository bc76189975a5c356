//! The one chart engine every figure uses: panels side by side, each with lines, points, error
//! bars and dashed horizontal reference lines, on linear, log2 (x) or log10 (y) axes, drawn
//! once on each of PNG and SVG (plotters).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use realbias_train::run_files::files::write_atomic;

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error(
        "no TrueType font found for the plot labels: install fonts-dejavu-core (Debian/Ubuntu) or set REALBIAS_FONT to a .ttf file"
    )]
    NoFont,
    #[error("{path}: cannot draw: {message}")]
    Draw { path: PathBuf, message: String },
    #[error("nothing to plot: no finished results")]
    Empty,
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    /// Line with dots at the points.
    Line,
    /// Dots only.
    Points,
    /// A thin line without dots.
    Thin,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Half-widths of vertical error bars, one per point (empty: none).
    pub errors: Vec<f64>,
    pub mark: Mark,
    /// A fixed palette index (default: the series' position), so that one thing keeps one
    /// colour across panels.
    pub color: Option<usize>,
}

impl Series {
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>, mark: Mark) -> Self {
        Series {
            label: label.into(),
            points,
            errors: Vec::new(),
            mark,
            color: None,
        }
    }

    pub fn colored(mut self, index: usize) -> Self {
        self.color = Some(index);
        self
    }

    /// Error bars of ±`errors[i]` around point `i`.
    pub fn with_errors(mut self, errors: Vec<f64>) -> Self {
        self.errors = errors;
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// x on a log2 axis (H, k).
    pub log2_x: bool,
    /// y on a log10 axis.
    pub log_y: bool,
    pub series: Vec<Series>,
    /// Horizontal reference lines `(label, y)`, dashed.
    pub references: Vec<(String, f64)>,
    /// The legend in the upper left corner (for curves that rise) instead of the right.
    pub legend_left: bool,
    /// Vertical dashed lines `(label, x)`: a width worth pointing at.
    pub x_marks: Vec<(String, f64)>,
    /// This panel starts a new row of the figure.
    pub new_row: bool,
}

/// Pixels of one panel; a figure of n panels is n panels wide.
pub const PANEL_SIZE: (u32, u32) = (540, 450);

const COLORS: [RGBColor; 8] = [
    RGBColor(40, 90, 200),
    RGBColor(210, 50, 40),
    RGBColor(40, 150, 60),
    RGBColor(230, 130, 20),
    RGBColor(120, 40, 170),
    RGBColor(20, 160, 170),
    RGBColor(180, 60, 140),
    RGBColor(110, 110, 110),
];

const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers one font as plotters' "sans-serif", once per process.
fn ensure_font() -> Result<(), ChartError> {
    static FONT: OnceLock<bool> = OnceLock::new();
    let ok = *FONT.get_or_init(|| {
        let mut paths: Vec<PathBuf> = std::env::var_os("REALBIAS_FONT")
            .map(PathBuf::from)
            .into_iter()
            .collect();
        paths.extend(FONT_CANDIDATES.iter().map(PathBuf::from));
        paths.into_iter().any(|p| {
            std::fs::read(&p).is_ok_and(|bytes| {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    });
    if ok { Ok(()) } else { Err(ChartError::NoFont) }
}

fn transform(panel: &Panel, (x, y): (f64, f64)) -> Option<(f64, f64)> {
    let x = if panel.log2_x {
        (x > 0.0).then(|| x.log2())?
    } else {
        x
    };
    let y = if panel.log_y {
        (y > 0.0).then(|| y.log10())?
    } else {
        y
    };
    (x.is_finite() && y.is_finite()).then_some((x, y))
}

/// A series in plot coordinates: the point and, where it has one, its error bar's ends.
type Plotted = Vec<((f64, f64), Option<(f64, f64)>)>;

fn plotted(panel: &Panel, series: &Series) -> Plotted {
    series
        .points
        .iter()
        .enumerate()
        .filter_map(|(i, &(x, y))| {
            let p = transform(panel, (x, y))?;
            let bar = series.errors.get(i).filter(|e| **e > 0.0).and_then(|e| {
                let lo = transform(panel, (x, y - e)).map_or(p.1, |q| q.1);
                transform(panel, (x, y + e)).map(|hi| (lo, hi.1))
            });
            Some((p, bar))
        })
        .collect()
}

/// The plot ranges: the data with padding, and headroom above for the legend.
fn ranges(panel: &Panel, series: &[Plotted], refs: &[(String, f64)]) -> Option<[f64; 4]> {
    let points = series.iter().flatten();
    let xs = points.clone().map(|(p, _)| p.0);
    let ys = points
        .flat_map(|(p, bar)| [Some(p.1), bar.map(|b| b.0), bar.map(|b| b.1)])
        .flatten()
        .chain(refs.iter().map(|r| r.1));
    let fold = |it: &mut dyn Iterator<Item = f64>| {
        it.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        })
    };
    let (x0, x1) = fold(&mut xs.into_iter());
    let (y0, y1) = fold(&mut ys.into_iter());
    if !(x0.is_finite() && y0.is_finite()) {
        return None;
    }
    let xpad = ((x1 - x0) * 0.05).max(0.3);
    let ypad = ((y1 - y0) * 0.08).max(if panel.log_y { 0.1 } else { 1e-3 });
    // Room above the data for the legend; on a log axis a little goes a long way.
    let headroom = if panel.log_y { 0.2 } else { 0.35 };
    Some([
        x0 - xpad,
        x1 + xpad,
        y0 - ypad,
        y1 + ypad + headroom * (y1 - y0 + ypad),
    ])
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn mesh<DB: DrawingBackend>(chart: &mut Chart<DB>, panel: &Panel) -> Result<(), String> {
    let (log2_x, log_y) = (panel.log2_x, panel.log_y);
    let x_range = chart.x_range();
    let y_range = chart.y_range();
    // Enough decimals to tell the ticks apart, no more.
    let span = y_range.end - y_range.start;
    let decimals_for = |span: f64| match span {
        s if s >= 20.0 => 0,
        s if s >= 2.0 => 1,
        s if s >= 0.2 => 2,
        _ => 3,
    };
    let decimals = decimals_for(span);
    let x_decimals = decimals_for(x_range.end - x_range.start);
    // A log axis spanning decades is labelled at whole decades only (1, 10, 100, 1e3 ...):
    // enough labels that the step is one decade. A narrower one gets plotters' finer ticks,
    // labelled with their values.
    let decades = (y_range.end - y_range.start).ceil() as usize + 1;
    let whole_decades = log_y && span >= 2.0;
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .x_labels(if log2_x {
            ((x_range.end - x_range.start) as usize + 1).min(14)
        } else {
            8
        })
        .y_labels(if whole_decades { decades } else { 8 })
        .x_label_formatter(&|x| match log2_x {
            true => format!("{}", 2f64.powf(x.round()) as u64),
            false => format!("{x:.x_decimals$}"),
        })
        .y_label_formatter(&|y| match (log_y, whole_decades) {
            (true, true) => decade_label(*y),
            (true, false) => log_tick_label(*y),
            (false, _) => format!("{y:.decimals$}"),
        })
        .draw()
        .map_err(|e| e.to_string())
}

/// The label of a log10 tick: `10^y` written plainly at a whole decade, nothing elsewhere.
fn decade_label(y: f64) -> String {
    if (y - y.round()).abs() > 1e-6 {
        return String::new();
    }
    match y.round() as i32 {
        k @ 0..=3 => format!("{}", 10u32.pow(k as u32)),
        -1 => "0.1".into(),
        -2 => "0.01".into(),
        k => format!("1e{k}"),
    }
}

/// The label of any log10 tick: a whole decade as [`decade_label`], another value with three
/// significant digits, written plainly (`398`, `3160`, `0.0501`).
fn log_tick_label(y: f64) -> String {
    let whole = decade_label(y);
    if !whole.is_empty() {
        return whole;
    }
    let value = 10f64.powf(y);
    let decimals = (2 - y.floor() as i32).max(0) as usize;
    let rounded = format!("{value:.decimals$}");
    // Three significant digits of a value of 1000 or more: round the units away.
    match y.floor() as i32 {
        k if k >= 3 => {
            let step = 10f64.powi(k - 2);
            format!("{}", ((value / step).round() * step) as u64)
        }
        _ => rounded,
    }
}

fn draw_series<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    series: &Series,
    pts: &Plotted,
    color: RGBColor,
) -> Result<(), String> {
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| err.to_string();
    let dots = || {
        pts.iter()
            .map(move |&(p, _)| Circle::new(p, 3, color.filled()))
    };
    let anno = match series.mark {
        Mark::Points => chart.draw_series(dots()).map_err(e)?,
        mark => {
            let width = if mark == Mark::Thin { 1 } else { 2 };
            let line = LineSeries::new(pts.iter().map(|&(p, _)| p), color.stroke_width(width));
            chart.draw_series(line).map_err(e)?
        }
    };
    anno.label(series.label.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    if series.mark == Mark::Line {
        chart.draw_series(dots()).map_err(e)?;
    }
    let bars = pts.iter().filter_map(|&(p, bar)| {
        bar.map(|(lo, hi)| ErrorBar::new_vertical(p.0, lo, p.1, hi, color.stroke_width(1), 6))
    });
    chart.draw_series(bars).map_err(e)?;
    Ok(())
}

/// A dashed line from `start` to `end` (plot coordinates) in `pieces` equal parts, every
/// other one drawn, with its legend entry.
fn draw_dashed<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    label: &str,
    (start, end): ((f64, f64), (f64, f64)),
    (pieces, width): (usize, u32),
    color: RGBColor,
) -> Result<(), String> {
    let n = pieces as f64;
    let at = |j: usize| {
        let j = j as f64;
        (
            start.0 + (end.0 - start.0) * j / n,
            start.1 + (end.1 - start.1) * j / n,
        )
    };
    let dashes: Vec<PathElement<(f64, f64)>> = (0..pieces)
        .filter(|j| j % 2 == 0)
        .map(|j| PathElement::new(vec![at(j), at(j + 1)], color.stroke_width(width)))
        .collect();
    chart
        .draw_series(dashes)
        .map_err(|e| e.to_string())?
        .label(label)
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width))
        });
    Ok(())
}

/// A horizontal reference line at plot coordinate `y`, across the panel.
fn draw_reference<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    (label, y): &(String, f64),
    color: RGBColor,
) -> Result<(), String> {
    let range = chart.x_range();
    let line = ((range.start, *y), (range.end, *y));
    draw_dashed(chart, label, line, (40, 2), color)
}

/// A vertical mark at plot coordinate `x`, the height of the panel.
fn draw_x_mark<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    (label, x): &(String, f64),
    color: RGBColor,
) -> Result<(), String> {
    let range = chart.y_range();
    let line = ((*x, range.start), (*x, range.end));
    draw_dashed(chart, label, line, (30, 1), color)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
) -> Result<(), String> {
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| err.to_string();
    let series: Vec<Plotted> = panel.series.iter().map(|s| plotted(panel, s)).collect();
    let refs: Vec<(String, f64)> = panel
        .references
        .iter()
        .filter_map(|(l, y)| transform(panel, (1.0, *y)).map(|p| (l.clone(), p.1)))
        .collect();
    let Some([x0, x1, y0, y1]) = ranges(panel, &series, &refs) else {
        return Ok(());
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
    mesh(&mut chart, panel)?;
    for (i, (s, pts)) in panel.series.iter().zip(&series).enumerate() {
        draw_series(
            &mut chart,
            s,
            pts,
            COLORS[s.color.unwrap_or(i) % COLORS.len()],
        )?;
    }
    for (i, r) in refs.iter().enumerate() {
        // From the end of the palette: series take it from the start.
        draw_reference(&mut chart, r, COLORS[COLORS.len() - 1 - i % COLORS.len()])?;
    }
    for (label, x) in &panel.x_marks {
        if let Some((x, _)) = transform(panel, (*x, 1.0)) {
            draw_x_mark(&mut chart, &(label.clone(), x), RGBColor(90, 90, 90))?;
        }
    }
    let corner = match panel.legend_left {
        true => SeriesLabelPosition::UpperLeft,
        false => SeriesLabelPosition::UpperRight,
    };
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 12))
        .position(corner)
        .draw()
        .map_err(e)
}

/// Draws the figure: its title, the note's `lines` below it, then the panels.
fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    (title, lines): (&str, &[String]),
    panels: &[Panel],
) -> Result<(), String> {
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| err.to_string();
    root.fill(&WHITE).map_err(e)?;
    let mut root = root.titled(title, ("sans-serif", 22)).map_err(e)?;
    if !lines.is_empty() {
        let (strip, rest) = root.split_vertically(note_height(lines));
        for (i, line) in lines.iter().enumerate() {
            let y = NOTE_LINE_PIXELS * i as i32;
            strip
                .draw_text(
                    line,
                    &("sans-serif", 14).into_font().color(&BLACK.mix(0.75)),
                    (12, y),
                )
                .map_err(e)?;
        }
        root = rest;
    }
    let (count, columns) = grid(panels);
    let areas = root.split_evenly((count, columns));
    for (r, row) in rows(panels).iter().enumerate() {
        for (c, panel) in row.iter().enumerate() {
            draw_panel(&areas[r * columns + c], panel)?;
        }
    }
    root.present().map_err(e)
}

/// A note's line height and a character's mean width at its 14-point font, in pixels.
const NOTE_LINE_PIXELS: i32 = 18;
const NOTE_CHAR_PIXELS: usize = 7;

/// Pixels a note's lines take below the title.
fn note_height(lines: &[String]) -> i32 {
    NOTE_LINE_PIXELS * lines.len() as i32 + 6
}

/// `text` in lines of at most `width` characters, broken between words.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// The figure's rows: split where a panel starts a new row, and rows of 5 beyond 6 panels.
fn rows(panels: &[Panel]) -> Vec<Vec<&Panel>> {
    let mut rows: Vec<Vec<&Panel>> = Vec::new();
    for panel in panels {
        match rows.last_mut() {
            Some(row) if !panel.new_row => row.push(panel),
            _ => rows.push(vec![panel]),
        }
    }
    if rows.len() == 1 && panels.len() > 6 {
        return panels.chunks(5).map(|c| c.iter().collect()).collect();
    }
    rows
}

/// Rows and columns of a figure.
fn grid(panels: &[Panel]) -> (usize, usize) {
    let rows = rows(panels);
    let columns = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
    (rows.len().max(1), columns)
}

/// Draws `stem.png` and `stem.svg`, panels side by side (in rows of 5 beyond 6 panels),
/// under the title's first line; its further text is a note, wrapped below it.
pub fn draw_panels(stem: &Path, title: &str, panels: &[Panel]) -> Result<Vec<PathBuf>, ChartError> {
    if panels
        .iter()
        .all(|p| p.series.iter().all(|s| s.points.is_empty()))
    {
        return Err(ChartError::Empty);
    }
    ensure_font()?;
    let (rows, columns) = grid(panels);
    let width = PANEL_SIZE.0 * columns as u32;
    // A note below the title (its text after the first line) makes the figure taller.
    let (title, note) = title.split_once('\n').unwrap_or((title, ""));
    let lines = wrap(note, width as usize / NOTE_CHAR_PIXELS);
    let note_pixels = match lines.is_empty() {
        true => 0,
        false => note_height(&lines) as u32,
    };
    let size = (width, PANEL_SIZE.1 * rows as u32 + note_pixels);
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let fail = |path: &PathBuf, message: String| ChartError::Draw {
        path: path.clone(),
        message,
    };
    // Drawn in memory and written atomically: a failed write (a full disk) leaves the
    // previous figure in place, never a truncated one under its final name.
    let mut pixels = vec![0u8; 3 * size.0 as usize * size.1 as usize];
    draw(
        BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area(),
        (title, &lines),
        panels,
    )
    .map_err(|m| fail(&png, m))?;
    let encoded = encode_png(&pixels, size).map_err(|m| fail(&png, m))?;
    let mut text = String::new();
    draw(
        SVGBackend::with_string(&mut text, size).into_drawing_area(),
        (title, &lines),
        panels,
    )
    .map_err(|m| fail(&svg, m))?;
    for (path, bytes) in [(&png, encoded), (&svg, text.into_bytes())] {
        write_atomic(path, &bytes).map_err(|e| fail(path, e.to_string()))?;
    }
    Ok(vec![png, svg])
}

/// RGB pixels as a PNG file's bytes.
fn encode_png(pixels: &[u8], (width, height): (u32, u32)) -> Result<Vec<u8>, String> {
    use image::ImageEncoder;
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(pixels, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// A figure: the file stem, the title and the panels.
pub type Figure = (&'static str, String, Vec<Panel>);

/// Draws every figure into `dir` and returns the files written and, for each figure that could
/// not be drawn (no font, nothing to plot), why; other failures are errors.
pub fn draw_figures(
    dir: &Path,
    figures: Vec<Figure>,
) -> Result<(Vec<PathBuf>, Vec<String>), ChartError> {
    let (mut files, mut warnings) = (Vec::new(), Vec::new());
    for (stem, title, panels) in figures {
        match draw_panels(&dir.join(stem), &title, &panels) {
            Ok(written) => files.extend(written),
            Err(e @ (ChartError::NoFont | ChartError::Empty)) => {
                warnings.push(format!("{stem}: {e}"))
            }
            Err(e) => return Err(e),
        }
    }
    Ok((files, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(y: f64) -> Vec<Panel> {
        vec![Panel {
            title: "p".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            log2_x: false,
            log_y: false,
            series: vec![Series::new("s", vec![(1.0, y), (2.0, 2.0 * y)], Mark::Line)],
            references: Vec::new(),
            legend_left: false,
            x_marks: Vec::new(),
            new_row: false,
        }]
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn log_ticks_are_labelled_at_whole_decades_only() {
        let labels: Vec<String> = [-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 2.5, 3.0, 5.0]
            .iter()
            .map(|&y| decade_label(y))
            .collect();
        assert_eq!(
            labels,
            ["0.01", "0.1", "1", "", "10", "100", "", "1000", "1e5"]
        );
    }

    #[test]
    fn a_note_wraps_between_words_within_its_width() {
        let lines = wrap("a rising norm is  expected here", 12);
        assert_eq!(lines, ["a rising", "norm is", "expected", "here"]);
        assert!(wrap("", 12).is_empty());
        assert_eq!(wrap("unbreakable-word", 4), ["unbreakable-word"]);
    }

    #[test]
    fn a_panel_can_start_a_new_row() {
        let mut panels: Vec<Panel> = (0..4).map(|_| figure(1.0).remove(0)).collect();
        assert_eq!(grid(&panels), (1, 4));
        panels[2].new_row = true;
        assert_eq!(grid(&panels), (2, 2));
        let many: Vec<Panel> = (0..8).map(|_| figure(1.0).remove(0)).collect();
        assert_eq!(grid(&many), (2, 5), "rows of 5 beyond 6 panels");
    }

    #[test]
    fn a_figure_that_cannot_be_written_leaves_the_previous_one_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let stem = tmp.path().join("errors");
        if let Err(ChartError::NoFont) = draw_panels(&stem, "first", &figure(1.0)) {
            eprintln!("skipped: no font");
            return;
        }
        let png = std::fs::read(stem.with_extension("png")).unwrap();
        let svg = std::fs::read(stem.with_extension("svg")).unwrap();
        assert!(image::load_from_memory(&png).is_ok(), "a whole PNG");
        assert!(svg.ends_with(b"</svg>\n") || svg.ends_with(b"</svg>"));
        // The PNG's place is taken (a folder): its write fails after both were drawn.
        std::fs::remove_file(stem.with_extension("png")).unwrap();
        std::fs::create_dir(stem.with_extension("png")).unwrap();
        std::fs::write(stem.with_extension("png").join("x"), b"x").unwrap();
        let err = draw_panels(&stem, "second", &figure(3.0)).unwrap_err();
        assert!(matches!(err, ChartError::Draw { .. }), "{err}");
        assert_eq!(std::fs::read(stem.with_extension("svg")).unwrap(), svg);
        assert_eq!(
            files_in(tmp.path()),
            ["errors.png", "errors.svg"],
            "no temporary left"
        );
    }
}
