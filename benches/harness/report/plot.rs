//! The push-latency plot (SVG, drawn with plotters): origin-discovery and nchan against
//! subscriber count, both axes logarithmic, with the relative p99 targets marked.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::rows::{PushRow, Report};
use super::targets::{PUSH_MAX_RATIO, PUSH_TARGET_SIZES};
use crate::stats::Summary;

/// Which statistic of a [`Summary`] a plotted series shows.
type Pick = fn(&Summary) -> f64;
/// A plotted series: label, colour, statistic.
type Series = (&'static str, RGBColor, Pick);

const GREEN: RGBColor = RGBColor(0, 150, 0);

impl Report {
    /// Draws push latency against subscriber count: origin-discovery WebSocket p50/p99/max
    /// as solid lines with dots, nchan WebSocket p50/p99 as dashed lines with hollow
    /// squares, SSE as filled triangles and nchan EventSource as hollow ones (both a
    /// little right of their subscriber count); green crosses mark the p99 target
    /// (0.5 × nchan's WebSocket p99) and each origin-discovery WebSocket p99 point at a
    /// target size is labelled with its ratio to nchan.
    pub fn plot(&self, path: &Path) -> Result<()> {
        let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let peer = |r: &PushRow| r.nchan.as_ref().map(|n| n.latency);
        let all: Vec<Summary> = self
            .push
            .iter()
            .flat_map(|r| std::iter::once(r.latency).chain(peer(r)))
            .collect();
        let hi = all.iter().map(|l| l.max).fold(60.0_f64, f64::max) * 2.0;
        let lo = all.iter().map(|l| l.p50).fold(1.0_f64, f64::min).max(0.01) / 2.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "push latency: origin-discovery (pod event → delta received) vs nchan (publish → received)",
                ("sans-serif", 18),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((50.0_f64..20_000.0_f64).log_scale(), (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("subscribers")
            .y_desc("latency (ms)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| short(*y))
            .draw()?;
        let ws: Vec<&PushRow> = self
            .push
            .iter()
            .filter(|r| r.transport == "WebSocket")
            .collect();
        let sse: Vec<&PushRow> = self.push.iter().filter(|r| r.transport == "SSE").collect();
        let at = |r: &PushRow, l: &Summary, pick: Pick| (r.subscribers as f64, pick(l).max(lo));

        let ours: [Series; 3] = [
            ("WebSocket p50", BLUE, |s| s.p50),
            ("WebSocket p99", RED, |s| s.p99),
            ("WebSocket max", BLACK, |s| s.max),
        ];
        for (label, color, pick) in ours {
            let pts: Vec<(f64, f64)> = ws.iter().map(|r| at(r, &r.latency, pick)).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| {
                    EmptyElement::at((x + 10, y))
                        + PathElement::new(vec![(-10, 0), (10, 0)], color.stroke_width(2))
                        + Circle::new((0, 0), 3, color.filled())
                });
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
        let theirs: [Series; 2] = [
            ("nchan WebSocket p50", BLUE, |s| s.p50),
            ("nchan WebSocket p99", RED, |s| s.p99),
        ];
        for (label, color, pick) in theirs {
            let pts: Vec<(f64, f64)> = ws
                .iter()
                .filter_map(|r| Some(at(r, &peer(r)?, pick)))
                .collect();
            chart
                .draw_series(DashedLineSeries::new(
                    pts.clone(),
                    6,
                    4,
                    color.stroke_width(2),
                ))?
                .label(label)
                .legend(move |(x, y)| {
                    EmptyElement::at((x + 10, y))
                        + PathElement::new(vec![(-10, 0), (-4, 0)], color.stroke_width(2))
                        + PathElement::new(vec![(4, 0), (10, 0)], color.stroke_width(2))
                        + square(color)
                });
            chart.draw_series(pts.into_iter().map(|p| EmptyElement::at(p) + square(color)))?;
        }
        // SSE sits a little right of WebSocket at the same subscriber count.
        let right = |(x, y): (f64, f64)| (x * 1.1, y);
        let sse_ours: [Series; 3] = [
            ("SSE p50", BLUE, |s| s.p50),
            ("SSE p99", RED, |s| s.p99),
            ("SSE max", BLACK, |s| s.max),
        ];
        for (label, color, pick) in sse_ours {
            chart
                .draw_series(sse.iter().map(|r| {
                    TriangleMarker::new(right(at(r, &r.latency, pick)), 6, color.filled())
                }))?
                .label(label)
                .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 5, color.filled()));
        }
        let sse_theirs: [Series; 2] = [
            ("nchan EventSource p50", BLUE, |s| s.p50),
            ("nchan EventSource p99", RED, |s| s.p99),
        ];
        for (label, color, pick) in sse_theirs {
            chart
                .draw_series(sse.iter().filter_map(|r| {
                    Some(EmptyElement::at(right(at(r, &peer(r)?, pick))) + triangle(color))
                }))?
                .label(label)
                .legend(move |(x, y)| EmptyElement::at((x + 10, y)) + triangle(color));
        }
        let targets: Vec<(f64, f64)> = ws
            .iter()
            .filter(|r| PUSH_TARGET_SIZES.contains(&r.subscribers))
            .filter_map(|r| Some((r.subscribers as f64, PUSH_MAX_RATIO * peer(r)?.p99)))
            .collect();
        chart
            .draw_series(
                targets
                    .into_iter()
                    .map(|p| Cross::new(p, 7, GREEN.stroke_width(2))),
            )?
            .label("p99 target (0.5 × nchan WebSocket p99)")
            .legend(move |(x, y)| Cross::new((x + 10, y), 5, GREEN.stroke_width(2)));
        chart.draw_series(
            ws.iter()
                .filter(|r| PUSH_TARGET_SIZES.contains(&r.subscribers))
                .filter_map(|r| {
                    let ratio = r.p99_ratio()?;
                    Some(Text::new(
                        format!("{ratio:.2}× nchan"),
                        // Up and to the left of the point, clear of the SSE markers.
                        (r.subscribers as f64 * 0.6, r.latency.p99 * 1.35),
                        ("sans-serif", 13).into_font().color(&RED),
                    ))
                }),
        )?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }
}

/// A hollow square marker (nchan WebSocket), in pixels around its point.
fn square(color: RGBColor) -> Rectangle<(i32, i32)> {
    Rectangle::new([(-4, -4), (4, 4)], color.stroke_width(2))
}

/// A hollow triangle marker (nchan EventSource), in pixels around its point.
fn triangle(color: RGBColor) -> PathElement<(i32, i32)> {
    PathElement::new(
        vec![(0, -6), (5, 4), (-5, 4), (0, -6)],
        color.stroke_width(2),
    )
}

/// A tick label with a sensible number of digits.
fn short(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
