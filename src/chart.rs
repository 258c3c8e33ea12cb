//! The benchmark chart: latency per input size for each provider and precision, next to the FP16
//! speed-up, drawn with plotters into memory and written as a PNG.

use std::{collections::BTreeMap, path::Path, sync::OnceLock};

use plotters::prelude::*;

use crate::{bench::BenchRow, image_ops};

/// The font for chart text, shipped with cutout (DejaVu Sans, see `assets/fonts`).
pub const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// A reference line drawn dashed behind the measurements (e.g. a published anchor).
#[derive(Debug, Clone)]
pub struct Anchor {
    /// Legend text.
    pub label: String,
    /// (input side px, ms) points.
    pub points: Vec<(u32, f64)>,
}

fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
                .map_err(|_| "the chart font is invalid".to_owned())
        })
        .clone()
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// Draws the chart for `rows` (failed rows are skipped) with optional `anchors`, as a PNG at `path`.
pub fn draw(rows: &[BenchRow], anchors: &[Anchor], title: &str, path: &Path) -> Result<(), String> {
    register_font()?;
    let (width, height) = (1400u32, 560u32);
    let mut pixels = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(title, ("sans-serif", 22))
            .map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(width * 58 / 100);
        latency_panel(&left, rows, anchors)?;
        speedup_panel(&right, rows)?;
        root.present().map_err(|e| e.to_string())?;
    }
    image_ops::write_png_atomic(
        &image_ops::Target::exact(path.to_owned(), None),
        (&pixels, width, height, image::ExtendedColorType::Rgb8),
        image_ops::PngCompression::default(),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

type Series = BTreeMap<String, Vec<(u32, f64)>>;

/// `CUDA FP16`, or `CUDA FP16 NCHW` for the non-default layout.
fn series_name(row: &BenchRow) -> String {
    let layout = if row.layout == "nchw" { " NCHW" } else { "" };
    format!(
        "{} {}{layout}",
        row.provider.to_uppercase(),
        row.precision.to_uppercase()
    )
}

fn series_of(rows: &[BenchRow]) -> Series {
    let mut series: Series = BTreeMap::new();
    for row in rows
        .iter()
        .filter(|r| r.error.is_none() && r.median_ms.is_finite())
    {
        series
            .entry(series_name(row))
            .or_default()
            .push((row.size_px, row.median_ms));
    }
    for points in series.values_mut() {
        points.sort_by_key(|p| p.0);
    }
    series
}

fn size_range(rows: &[BenchRow]) -> (f64, f64) {
    let sizes = rows.iter().map(|r| f64::from(r.size_px));
    let lo = sizes.clone().fold(f64::INFINITY, f64::min);
    let hi = sizes.fold(0.0, f64::max);
    if lo.is_finite() {
        (lo * 0.85, hi * 1.15)
    } else {
        (100.0, 1200.0)
    }
}

fn size_ticks(rows: &[BenchRow]) -> Vec<f64> {
    let mut sizes: Vec<f64> = rows.iter().map(|r| f64::from(r.size_px)).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    sizes
}

/// 1-2-5 steps covering `lo..hi`.
fn ms_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v >= lo && v <= hi {
                ticks.push(v);
            }
        }
        decade *= 10.0;
    }
    ticks
}

fn latency_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    rows: &[BenchRow],
    anchors: &[Anchor],
) -> Result<(), String> {
    let series = series_of(rows);
    let all_ms = series
        .values()
        .flatten()
        .map(|p| p.1)
        .chain(anchors.iter().flat_map(|a| a.points.iter().map(|p| p.1)));
    let (lo, hi) = all_ms.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo.is_finite() {
        (lo * 0.7, hi * 1.4)
    } else {
        (0.1, 10.0)
    };
    let (x_lo, x_hi) = size_range(rows);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Network latency, median (ms, log scale)",
            ("sans-serif", 18),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(
            (x_lo..x_hi).log_scale().with_key_points(size_ticks(rows)),
            (lo..hi).log_scale().with_key_points(ms_ticks(lo, hi)),
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("input side (px)")
        .y_desc("ms")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| {
            if *v < 1.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.0}")
            }
        })
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, anchor) in anchors.iter().enumerate() {
        let color = RGBColor(120 + 40 * (i as u8 % 3), 120, 120);
        let points: Vec<(f64, f64)> = anchor
            .points
            .iter()
            .map(|&(s, ms)| (f64::from(s), ms))
            .collect();
        chart
            .draw_series(DashedLineSeries::new(points, 6, 4, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(anchor.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    for (i, (name, points)) in series.iter().enumerate() {
        plot_series(&mut chart, name, points, COLORS[i % COLORS.len()])?;
    }
    draw_legend(&mut chart)
}

/// One measured series: a line with a dot per point, and its legend entry.
fn plot_series<X, Y>(
    chart: &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<X, Y>>,
    name: &str,
    points: &[(u32, f64)],
    color: RGBColor,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let points: Vec<(f64, f64)> = points.iter().map(|&(s, v)| (f64::from(s), v)).collect();
    chart
        .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))
        .map_err(|e| e.to_string())?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
    chart
        .draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, color.filled())),
        )
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn draw_legend<'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

fn speedup_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    rows: &[BenchRow],
) -> Result<(), String> {
    let mut by_provider: BTreeMap<String, Vec<(u32, f64)>> = BTreeMap::new();
    for fp16 in rows
        .iter()
        .filter(|r| r.error.is_none() && r.precision == "fp16")
    {
        if let Some(fp32) = rows.iter().find(|r| {
            r.error.is_none()
                && r.precision == "fp32"
                && r.provider == fp16.provider
                && r.size_px == fp16.size_px
                && r.layout == fp16.layout
        }) {
            by_provider
                .entry(series_name(fp16).replace(" FP16", ""))
                .or_default()
                .push((fp16.size_px, fp32.median_ms / fp16.median_ms));
        }
    }
    let hi = by_provider
        .values()
        .flatten()
        .map(|p| p.1)
        .fold(1.5f64, f64::max)
        * 1.2;
    let (x_lo, x_hi) = size_range(rows);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "FP16 speed-up (FP32 median / FP16 median)",
            ("sans-serif", 18),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(
            (x_lo..x_hi).log_scale().with_key_points(size_ticks(rows)),
            0.0..hi,
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("input side (px)")
        .y_desc("×")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(x_lo, 1.0), (x_hi, 1.0)],
            6,
            4,
            BLACK.stroke_width(1),
        ))
        .map_err(|e| e.to_string())?;
    for (i, (name, points)) in by_provider.iter_mut().enumerate() {
        points.sort_by_key(|p| p.0);
        plot_series(&mut chart, name, points, COLORS[(i + 3) % COLORS.len()])?;
    }
    draw_legend(&mut chart)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn row(provider: &str, precision: &str, size_px: u32, median_ms: f64) -> BenchRow {
        BenchRow {
            provider: provider.into(),
            precision: precision.into(),
            size_px,
            median_ms,
            min_ms: median_ms,
            ..BenchRow::default()
        }
    }

    #[test]
    fn ticks_step_one_two_five() {
        assert_eq!(ms_ticks(0.8, 30.0), vec![1.0, 2.0, 5.0, 10.0, 20.0]);
    }

    #[test]
    fn draws_a_non_blank_png() {
        let rows = vec![
            row("cuda", "fp32", 160, 1.9),
            row("cuda", "fp32", 320, 2.7),
            row("cuda", "fp16", 160, 1.6),
            row("cuda", "fp16", 320, 2.1),
        ];
        let anchors = [Anchor {
            label: "anchor".into(),
            points: vec![(160, 1.4), (320, 1.7)],
        }];
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chart.png");
        draw(&rows, &anchors, "test", &path).expect("chart");
        let img = image::open(&path).expect("png").into_rgb8();
        assert_eq!(img.dimensions(), (1400, 560));
        let coloured = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(
            coloured > 10_000,
            "the chart has content: {coloured} non-white pixels"
        );
    }
}
