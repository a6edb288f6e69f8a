//! The streams benchmark (`--streams`): skyshelve-streams against the two
//! anchors of the Durable Streams world, the same Rust client for all,
//! in one run on one machine.
//!
//! ```text
//! cargo run --release -p skyshelve-bench -- --streams [--quick] [--anchors] [--chart FILE.svg]
//! ```
//!
//! Without `--anchors` only skyshelve-streams runs (as CI does); with it,
//! the anchors are installed under `target/streams-anchors/` first.

mod client;
#[cfg(feature = "slatedb")]
pub mod scale;
mod servers;
mod workloads;

use servers::Kind;

use crate::systems::Result;

pub use servers::serve_child;

/// Workload sizes.
struct Sizes {
    seconds: f64,
    messages: usize,
    rounds: usize,
}

/// One row of figures, one per server measured (`None`: not run).
struct Row {
    label: String,
    unit: &'static str,
    figures: Vec<Option<f64>>,
    /// Whether lower is better (latencies).
    lower_is_better: bool,
}

pub fn run(quick: bool, anchors: bool, chart_path: Option<&std::path::Path>) -> Result<String> {
    let sizes = if quick {
        Sizes { seconds: 0.5, messages: 20_000, rounds: 30 }
    } else {
        Sizes { seconds: 5.0, messages: 1_000_000, rounds: 300 }
    };
    if anchors {
        servers::install_anchors()?;
    }
    let kinds: Vec<Kind> = if anchors { Kind::ALL.to_vec() } else { vec![Kind::Skyshelve] };
    let mut rows: Vec<Row> = Vec::new();
    let mut add = |label: String, unit, lower_is_better, kind_index: usize, figure: f64, count: usize| {
        if let Some(row) = rows.iter_mut().find(|row| row.label == label) {
            row.figures[kind_index] = Some(figure);
        } else {
            let mut figures = vec![None; count];
            figures[kind_index] = Some(figure);
            rows.push(Row { label, unit, figures, lower_is_better });
        }
    };
    for (index, &kind) in kinds.iter().enumerate() {
        for durable in [true, false] {
            let mode = if durable { "durable" } else { "relaxed" };
            for producers in [1, 16] {
                eprintln!("  {} appends, {producers} producer(s), {mode}", kind.name());
                let server = servers::start(kind, durable, 1)?;
                let rate = workloads::appends(server.ports[0], producers, sizes.seconds)?;
                add(format!("appends/s, {producers} producer(s), {mode}"), "/s", false, index, rate, kinds.len());
            }
        }
        eprintln!("  {} catch-up read of {} messages", kind.name(), sizes.messages);
        let server = servers::start(kind, true, 1)?;
        let (messages, megabytes) = workloads::catch_up(server.ports[0], sizes.messages)?;
        add(
            format!("catch-up read, {} messages: messages/s", sizes.messages),
            "/s",
            false,
            index,
            messages,
            kinds.len(),
        );
        add(format!("catch-up read, {} messages: MB/s", sizes.messages), "MB/s", false, index, megabytes, kinds.len());
        eprintln!("  {} live latency", kind.name());
        let server = servers::start(kind, true, 1)?;
        let (p50, p99) = workloads::live_latency(server.ports[0], server.ports[0], sizes.rounds)?;
        add("append → long-poll woken, same process: p50".into(), "ms", true, index, p50, kinds.len());
        add("append → long-poll woken, same process: p99".into(), "ms", true, index, p99, kinds.len());
        if kind == Kind::Skyshelve {
            let servers = servers::start(kind, true, 2)?;
            let (p50, p99) = workloads::live_latency(servers.ports[0], servers.ports[1], sizes.rounds)?;
            add("append → long-poll woken, across processes: p50".into(), "ms", true, index, p50, kinds.len());
            add("append → long-poll woken, across processes: p99".into(), "ms", true, index, p99, kinds.len());
        }
    }
    if let (Some(path), true) = (chart_path, anchors) {
        chart(&kinds, &rows, path)?;
    }
    Ok(table(&kinds, &rows))
}

/// Throughput rows as bars relative to the better anchor of each row.
fn chart(kinds: &[Kind], rows: &[Row], path: &std::path::Path) -> Result<()> {
    use plotters::prelude::*;
    let rows: Vec<&Row> = rows.iter().filter(|row| !row.lower_is_better && row.unit == "/s").collect();
    let relative = |row: &Row, index: usize| -> Option<f64> {
        let best = row.figures[1..].iter().flatten().copied().reduce(f64::max)?;
        Some(row.figures[index]? / best)
    };
    let top = rows.iter().flat_map(|row| (0..kinds.len()).filter_map(|i| relative(row, i))).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (1100, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Durable Streams servers, one client, one machine", ("sans-serif", 18))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..rows.len() as f64 - 0.5, 0.0..top * 1.25)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .y_desc("relative to the better anchor")
        .draw()?;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let below = TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, row) in rows.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64, 0.0));
        let label = row.label.replace("appends/s, ", "").replace(": messages/s", "");
        root.draw(&Text::new(label, (x, y + 8), below.clone()))?;
    }
    let colors = [RGBColor(31, 119, 180), RGBColor(127, 127, 127), RGBColor(255, 127, 14)];
    for (index, kind) in kinds.iter().enumerate() {
        let color = colors[index % colors.len()];
        let bars = rows.iter().enumerate().filter_map(|(i, row)| {
            let value = relative(row, index)?;
            let left = i as f64 - 0.4 + index as f64 * 0.27;
            Some(Rectangle::new([(left, 0.0), (left + 0.25, value)], color.filled()))
        });
        chart
            .draw_series(bars)?
            .label(kind.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;
    root.present()?;
    Ok(())
}

fn table(kinds: &[Kind], rows: &[Row]) -> String {
    let mut out = String::from("| workload |");
    for kind in kinds {
        out.push_str(&format!(" {} |", kind.name()));
    }
    if kinds.len() > 1 {
        out.push_str(" skyshelve vs better anchor |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(kinds.len() + usize::from(kinds.len() > 1)));
    for row in rows {
        out.push_str(&format!("\n| {} |", row.label));
        for figure in &row.figures {
            match figure {
                Some(value) if row.unit == "ms" || row.unit == "MB/s" => {
                    out.push_str(&format!(" {value:.2} {} |", row.unit))
                }
                Some(value) => out.push_str(&format!(" {value:.0} |")),
                None => out.push_str(" – |"),
            }
        }
        if kinds.len() > 1 {
            let anchors = row.figures[1..].iter().flatten().copied();
            let better = if row.lower_is_better { anchors.reduce(f64::min) } else { anchors.reduce(f64::max) };
            match (row.figures[0], better) {
                (Some(ours), Some(theirs)) if row.lower_is_better => {
                    out.push_str(&format!(" {:.2}× faster |", theirs / ours))
                }
                (Some(ours), Some(theirs)) => out.push_str(&format!(" {:.2}× |", ours / theirs)),
                _ => out.push_str(" – |"),
            }
        }
    }
    out
}
