//! `--plot`: an SVG with the latency-percentile curve and throughput over time.
//!
//! The percentile axis is in "nines" (−log10(1 − p)), as HdrHistogram plots are, so the
//! tail gets as much room as the median.

use std::path::Path;

use plotters::prelude::*;

use crate::BenchError;
use crate::report::Report;

const WIDTH_PX: u32 = 900;
const PANEL_HEIGHT_PX: u32 = 360;

/// Nines shown for the max (p100 has no finite nines).
const MAX_NINES: f64 = 5.0;

fn nines(percentile: f64) -> f64 {
    let rest = 1.0 - percentile / 100.0;
    if rest <= 0.0 {
        MAX_NINES
    } else {
        (-rest.log10()).min(MAX_NINES)
    }
}

/// Writes the SVG for `report` to `path`.
pub fn write(path: &Path, report: &Report) -> Result<(), BenchError> {
    let panels = if report.latency.is_some() { 2 } else { 1 };
    let root = SVGBackend::new(path, (WIDTH_PX, PANEL_HEIGHT_PX * panels)).into_drawing_area();
    draw(&root, report).map_err(|e| BenchError::Setup(format!("plot {}: {e}", path.display())))?;
    root.present()
        .map_err(|e| BenchError::Setup(format!("plot {}: {e}", path.display())))?;
    Ok(())
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>, report: &Report) -> DrawResult {
    root.fill(&WHITE)?;
    let areas = if report.latency.is_some() {
        root.split_evenly((2, 1))
    } else {
        vec![root.clone()]
    };
    if let Some(latency) = &report.latency {
        let points: Vec<(f64, f64)> = latency
            .percentile_curve
            .iter()
            .map(|(p, us)| (nines(*p), *us))
            .collect();
        let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&areas[0])
            .caption(
                format!(
                    "{}: e2e latency by percentile (flush={})",
                    report.workload, report.flush
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..MAX_NINES, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (us)")
            .x_label_formatter(&|x| {
                let p = 100.0 * (1.0 - 10f64.powf(-*x));
                format!("{p:.3}%")
            })
            .draw()?;
        chart.draw_series(LineSeries::new(points.clone(), &BLUE))?;
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, BLUE.filled())))?;
    }
    let throughput_area = areas.last().unwrap_or(root);
    let intervals = report
        .throughput
        .as_ref()
        .map(|t| t.intervals.clone())
        .unwrap_or_default();
    let x_max = intervals.iter().map(|i| i.end_s).fold(1.0, f64::max);
    let y_max = intervals.iter().map(|i| i.mb_per_s).fold(0.1, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(throughput_area)
        .caption(
            format!(
                "{}: throughput over time (flush={})",
                report.workload, report.flush
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start (hollow: warm-up)")
        .y_desc("MB/s")
        .draw()?;
    chart.draw_series(LineSeries::new(
        intervals.iter().map(|i| (i.end_s, i.mb_per_s)),
        &RED,
    ))?;
    chart.draw_series(intervals.iter().map(|i| {
        let style = if i.measured {
            RED.filled()
        } else {
            RED.stroke_width(1)
        };
        Circle::new((i.end_s, i.mb_per_s), 3, style)
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_spread_the_tail() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), MAX_NINES);
        assert_eq!(nines(0.0), 0.0);
    }
}
