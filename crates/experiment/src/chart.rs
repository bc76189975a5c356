//! Line charts of measured values for the theory experiments: panels side by side, each with
//! lines, scattered points and horizontal reference lines (a convex optimum), on linear, log2
//! (x) or log10 (y) axes. PNG and SVG.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::plot::{Figure, PlotError, render};

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
            mark,
            color: None,
        }
    }

    pub fn colored(mut self, index: usize) -> Self {
        self.color = Some(index);
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
}

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

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Panel],
) -> Result<(), String> {
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| err.to_string();
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(e)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        let points: Vec<Vec<(f64, f64)>> = panel
            .series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .filter_map(|&p| transform(panel, p))
                    .collect()
            })
            .collect();
        let refs: Vec<(String, f64)> = panel
            .references
            .iter()
            .filter_map(|(l, y)| transform(panel, (1.0, *y)).map(|p| (l.clone(), p.1)))
            .collect();
        let xs = points.iter().flatten().map(|p| p.0);
        let ys = points
            .iter()
            .flatten()
            .map(|p| p.1)
            .chain(refs.iter().map(|r| r.1));
        let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
        let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(y), b.max(y))
        });
        if !(x0.is_finite() && y0.is_finite()) {
            continue;
        }
        let xpad = ((x1 - x0) * 0.05).max(0.3);
        let ypad = ((y1 - y0) * 0.08).max(if panel.log_y { 0.1 } else { 1e-3 });
        // Headroom above the curves for the legend.
        let (ylo, yhi) = (y0 - ypad, y1 + ypad + 0.35 * (y1 - y0 + ypad));
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((x0 - xpad)..(x1 + xpad), ylo..yhi)
            .map_err(e)?;
        let log2_x = panel.log2_x;
        let log_y = panel.log_y;
        chart
            .configure_mesh()
            .x_desc(panel.x_label.as_str())
            .y_desc(panel.y_label.as_str())
            .x_labels(if log2_x {
                ((x1 - x0) as usize + 1).min(14)
            } else {
                8
            })
            .x_label_formatter(&|x| {
                if log2_x {
                    format!("{}", 2f64.powf(x.round()) as u64)
                } else {
                    format!("{x:.2}")
                }
            })
            .y_label_formatter(&|y| {
                if log_y {
                    // Two significant digits: log ticks rarely fall on round numbers.
                    format!("{:.1e}", 10f64.powf(*y))
                } else {
                    format!("{y:.3}")
                }
            })
            .draw()
            .map_err(e)?;
        for (i, (series, pts)) in panel.series.iter().zip(&points).enumerate() {
            let color = COLORS[series.color.unwrap_or(i) % COLORS.len()];
            let width = if series.mark == Mark::Thin { 1 } else { 2 };
            let legend_color = color;
            let anno = if series.mark == Mark::Points {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(e)?
            } else {
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().copied(),
                        color.stroke_width(width),
                    ))
                    .map_err(e)?
            };
            anno.label(series.label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], legend_color.stroke_width(2))
            });
            if series.mark == Mark::Line {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(e)?;
            }
        }
        for (i, (label, y)) in refs.iter().enumerate() {
            // From the end of the palette: series take it from the start.
            let color = COLORS[COLORS.len() - 1 - i % COLORS.len()];
            let (a, b) = (x0 - xpad, x1 + xpad);
            let dashes: Vec<PathElement<(f64, f64)>> = (0..40)
                .filter(|j| j % 2 == 0)
                .map(|j| {
                    let s = a + (b - a) * j as f64 / 40.0;
                    let t = a + (b - a) * (j + 1) as f64 / 40.0;
                    PathElement::new(vec![(s, *y), (t, *y)], color.stroke_width(2))
                })
                .collect();
            chart
                .draw_series(dashes)
                .map_err(e)?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 12))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)
}

struct Panels<'a> {
    title: &'a str,
    panels: &'a [Panel],
}

impl Figure for Panels<'_> {
    fn draw_on<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        draw(root, self.title, self.panels)
    }
}

/// Draws `stem.png` and `stem.svg`, panels side by side.
pub fn draw_panels(stem: &Path, title: &str, panels: &[Panel]) -> Result<Vec<PathBuf>, PlotError> {
    if panels
        .iter()
        .all(|p| p.series.iter().all(|s| s.points.is_empty()))
    {
        return Err(PlotError::Empty);
    }
    let size = (520 * panels.len().max(1) as u32, 440);
    render(stem, size, &Panels { title, panels })
}
