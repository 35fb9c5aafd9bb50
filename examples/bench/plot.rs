//! The fleet plots (plotters, PNG): completion time and origin bytes against the fleet size.

use std::path::Path;

use plotters::prelude::*;

use crate::report::FleetTable;
use crate::scenarios::Contender;

/// Text needs a font; Debian's DejaVu (fonts-dejavu-core) is registered for plotters.
fn register_font() {
    const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    let bytes = std::fs::read(FONT).unwrap_or_else(|e| panic!("{FONT}: {e}"));
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
        panic!("{FONT} is not a font plotters can use");
    }
}

pub fn fleet(table: &FleetTable, dir: &Path) {
    register_font();
    let series = |contender: Contender, value: fn(&crate::report::FleetRow) -> f64| {
        table
            .rows
            .iter()
            .filter(|r| r.contender == contender)
            .map(|r| (r.k as f64, value(r)))
            .collect::<Vec<_>>()
    };
    let max_k = table.rows.iter().map(|r| r.k).max().unwrap_or(1) as f64;

    let lines = [
        (
            "pactor p50",
            series(Contender::PactorSwarm, |r| r.p50),
            RGBColor(31, 119, 180).mix(1.0),
        ),
        (
            "pactor p95",
            series(Contender::PactorSwarm, |r| r.p95),
            RGBColor(23, 190, 207).mix(1.0),
        ),
        (
            "pacman p50",
            series(Contender::Pacman, |r| r.p50),
            RGBColor(214, 39, 40).mix(1.0),
        ),
        (
            "pacman p95",
            series(Contender::Pacman, |r| r.p95),
            RGBColor(255, 127, 14).mix(1.0),
        ),
    ];
    let max_time = lines
        .iter()
        .flat_map(|(_, s, _)| s.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    draw(
        &dir.join("fleet-time.png"),
        "Fleet: completion time",
        "completion time (s)",
        max_k,
        max_time * 1.1,
        &lines,
    );

    let lines = [
        (
            "pactor",
            series(Contender::PactorSwarm, |r| r.origin * r.k as f64),
            BLUE.mix(1.0),
        ),
        (
            "pacman",
            series(Contender::Pacman, |r| r.origin * r.k as f64),
            RED.mix(1.0),
        ),
    ];
    let max_origin = lines
        .iter()
        .flat_map(|(_, s, _)| s.iter().map(|p| p.1))
        .fold(2.0, f64::max);
    draw(
        &dir.join("fleet-origin.png"),
        "Fleet: bytes from the origin (seedbox + mirror)",
        "origin bytes / update size",
        max_k,
        max_origin * 1.1,
        &lines,
    );
}

/// A labelled line of (x, y) points.
type Line<'a> = (&'a str, Vec<(f64, f64)>, RGBAColor);

fn draw(path: &Path, title: &str, y_label: &str, max_x: f64, max_y: f64, lines: &[Line]) {
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).expect("fill");
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x + 1.0, 0.0..max_y)
        .expect("chart");
    chart
        .configure_mesh()
        .x_desc("clients started at once (K)")
        .y_desc(y_label)
        .draw()
        .expect("mesh");
    for (label, points, color) in lines {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .expect("line")
            .label(*label)
            // A filled swatch: a one-pixel legend line looks black whatever its colour.
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 20, y + 4)], color.filled()));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .expect("points");
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .expect("legend");
    root.present().expect("write the plot");
}
