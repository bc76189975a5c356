//! The paper's figures redrawn from measured summaries (plotters, PNG and SVG).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::summary::{Stat, Summary, SummaryRow};
use crate::sweep::Condition;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error(
        "no TrueType font found for the plot labels: install fonts-dejavu-core (Debian/Ubuntu) or set REALBIAS_FONT to a .ttf file"
    )]
    NoFont,
    #[error("{path}: cannot draw: {message}")]
    Draw { path: PathBuf, message: String },
    #[error("nothing to plot: the summary has no finished runs")]
    Empty,
}

const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers one font as plotters' "sans-serif", once per process.
fn ensure_font() -> Result<(), PlotError> {
    static FONT: OnceLock<bool> = OnceLock::new();
    let ok = *FONT.get_or_init(|| {
        let mut paths: Vec<PathBuf> = std::env::var_os("REALBIAS_FONT")
            .map(PathBuf::from)
            .into_iter()
            .collect();
        paths.extend(FONT_CANDIDATES.iter().map(PathBuf::from));
        for p in paths {
            if let Ok(bytes) = std::fs::read(&p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    });
    if ok { Ok(()) } else { Err(PlotError::NoFont) }
}

fn conditions(summary: &Summary) -> Vec<Condition> {
    let mut c: Vec<Condition> = summary.rows.iter().map(|r| r.condition).collect();
    c.dedup();
    c
}

fn panel_rows(summary: &Summary, c: Condition) -> Vec<&SummaryRow> {
    summary.rows.iter().filter(|r| r.condition == c).collect()
}

type Series = (&'static str, RGBColor, fn(&SummaryRow) -> Stat);

const ERROR_SERIES: [Series; 3] = [
    ("training error", RGBColor(40, 90, 200), |r| r.train_error),
    ("test error (at convergence)", RGBColor(210, 50, 40), |r| {
        r.test_error
    }),
    ("test error (early stopping)", RGBColor(40, 150, 60), |r| {
        r.early_stop_test_error
    }),
];

const NORM_SERIES: [Series; 3] = [
    (
        "Σ‖u_h‖‖v_h‖ (group norm)",
        RGBColor(120, 40, 170),
        |r| r.group_norm,
    ),
    ("½(‖U‖² + ‖V‖²)", RGBColor(230, 130, 20), |r| {
        r.weight_decay_penalty
    }),
    ("parameters H(d+k)", RGBColor(110, 110, 110), |r| Stat {
        mean: r.parameters as f64,
        std: 0.0,
    }),
];

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    summary: &Summary,
    title: &str,
    series: &[Series],
    y_label: &str,
    log_y: bool,
) -> Result<(), String> {
    // Errors fall with H (upper right is free); norms and counts grow (upper left is).
    let legend = if log_y {
        SeriesLabelPosition::UpperLeft
    } else {
        SeriesLabelPosition::UpperRight
    };
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| err.to_string();
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(e)?;
    let conds = conditions(summary);
    let panels = root.split_evenly((1, conds.len().max(1)));
    for (panel, &c) in panels.iter().zip(&conds) {
        let rows = panel_rows(summary, c);
        let xs: Vec<f64> = rows.iter().map(|r| (r.hidden as f64).log2()).collect();
        let (x0, x1) = (
            xs.iter().cloned().fold(f64::INFINITY, f64::min),
            xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        );
        let scale = |v: f64| {
            if log_y {
                v.max(1e-12).log10()
            } else {
                100.0 * v
            }
        };
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for r in &rows {
            for (_, _, get) in series {
                let s = get(r);
                if s.mean.is_finite() {
                    lo = lo.min(scale(s.mean - s.std.max(0.0)).min(scale(s.mean)));
                    hi = hi.max(scale(s.mean + s.std.max(0.0)));
                }
            }
        }
        if !lo.is_finite() {
            continue;
        }
        let pad = ((hi - lo) * 0.08).max(if log_y { 0.1 } else { 0.5 });
        // Headroom above the curves keeps the legend (upper corner) off them.
        let (y0, y1) = if log_y {
            (lo - pad, hi + pad + 0.3 * (hi - lo))
        } else {
            (0.0, 1.35 * hi + pad)
        };
        let mut chart = ChartBuilder::on(panel)
            .caption(c.name(), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x0 - 0.4)..(x1 + 0.4), y0..y1)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("hidden units H")
            .y_desc(y_label)
            .x_labels(((x1 - x0) as usize + 1).min(14))
            .x_label_formatter(&|x| format!("{}", 2f64.powf(x.round()) as u64))
            .y_label_formatter(&|y| {
                if log_y {
                    format!("{:.0e}", 10f64.powf(*y))
                } else {
                    format!("{y:.1}")
                }
            })
            .draw()
            .map_err(e)?;
        for &(name, color, get) in series {
            let pts: Vec<(f64, f64, Stat)> = rows
                .iter()
                .zip(&xs)
                .map(|(r, &x)| (x, scale(get(r).mean), get(r)))
                .filter(|p| p.1.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    color.stroke_width(2),
                ))
                .map_err(e)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    pts.iter()
                        .map(|p| Circle::new((p.0, p.1), 3, color.filled())),
                )
                .map_err(e)?;
            chart
                .draw_series(pts.iter().filter(|p| p.2.std > 0.0).map(|p| {
                    ErrorBar::new_vertical(
                        p.0,
                        scale(p.2.mean - p.2.std),
                        p.1,
                        scale(p.2.mean + p.2.std),
                        color.stroke_width(1),
                        6,
                    )
                }))
                .map_err(e)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 13))
            .position(legend.clone())
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)
}

/// A figure that can draw itself on any plotters backend (so one drawing makes both files).
pub(crate) trait Figure {
    fn draw_on<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Draws `figure` into `stem.png` and `stem.svg`, `size` pixels.
pub(crate) fn render(
    stem: &Path,
    size: (u32, u32),
    figure: &impl Figure,
) -> Result<Vec<PathBuf>, PlotError> {
    ensure_font()?;
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let fail = |path: &PathBuf, message: String| PlotError::Draw {
        path: path.clone(),
        message,
    };
    figure
        .draw_on(BitMapBackend::new(&png, size).into_drawing_area())
        .map_err(|m| fail(&png, m))?;
    figure
        .draw_on(SVGBackend::new(&svg, size).into_drawing_area())
        .map_err(|m| fail(&svg, m))?;
    Ok(vec![png, svg])
}

/// One of the sweep figures: `series` against H, one panel per condition.
struct SummaryFigure<'a> {
    summary: &'a Summary,
    title: &'a str,
    series: &'a [Series],
    y_label: &'a str,
    log_y: bool,
}

impl Figure for SummaryFigure<'_> {
    fn draw_on<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        draw(
            root,
            self.summary,
            self.title,
            self.series,
            self.y_label,
            self.log_y,
        )
    }
}

/// Draws `stem.png` and `stem.svg`.
fn both(
    stem: &Path,
    summary: &Summary,
    title: &str,
    series: &[Series],
    y_label: &str,
    log_y: bool,
) -> Result<Vec<PathBuf>, PlotError> {
    if summary.rows.is_empty() {
        return Err(PlotError::Empty);
    }
    let width = 560 * conditions(summary).len().max(1) as u32;
    let figure = SummaryFigure {
        summary,
        title,
        series,
        y_label,
        log_y,
    };
    render(stem, (width, 460), &figure)
}

/// The paper's figure: training error and test errors (at convergence, with early stopping)
/// against H on a log2 axis, one panel per condition, bars = ±1 std over repetitions.
pub fn plot_errors(stem: &Path, summary: &Summary, title: &str) -> Result<Vec<PathBuf>, PlotError> {
    both(stem, summary, title, &ERROR_SERIES, "error (%)", false)
}

/// Beyond the paper: the norm measures against H, beside the parameter count (log scale).
pub fn plot_norms(stem: &Path, summary: &Summary, title: &str) -> Result<Vec<PathBuf>, PlotError> {
    both(
        stem,
        summary,
        title,
        &NORM_SERIES,
        "value (log scale)",
        true,
    )
}
