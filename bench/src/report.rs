//! Medians over repeated runs, the table and the chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::systems::System;
use crate::workloads::{Figure, WORKLOADS};

/// Every figure of every run: (workload, system) → one figure per run.
#[derive(Default)]
pub struct Results {
    pub runs: BTreeMap<(&'static str, &'static str), Vec<Figure>>,
}

/// Median, minimum and maximum of one cell.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

fn summarise(mut values: Vec<f64>) -> Option<Cell> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(Cell { median: values[values.len() / 2], min: values[0], max: values[values.len() - 1] })
}

impl Results {
    pub fn add(&mut self, workload: &'static str, system: System, figure: Figure) {
        self.runs.entry((workload, system.name())).or_default().push(figure);
    }

    pub fn rate(&self, workload: &str, system: System) -> Option<Cell> {
        let figures = self.runs.get(&(workload, system.name()))?;
        summarise(
            figures
                .iter()
                .filter_map(|f| match f {
                    Figure::OpsPerSec(v) | Figure::Stream { per_sec: v, .. } => Some(*v),
                    Figure::Unsupported(_) => None,
                })
                .collect(),
        )
    }

    pub fn peak_heap(&self, system: System) -> Option<Cell> {
        let figures = self.runs.get(&("stream_scan", system.name()))?;
        summarise(
            figures
                .iter()
                .filter_map(|f| match f {
                    Figure::Stream { peak_heap, .. } => Some(*peak_heap as f64),
                    _ => None,
                })
                .collect(),
        )
    }

    fn unsupported(&self, workload: &str, system: System) -> Option<&'static str> {
        self.runs.get(&(workload, system.name()))?.iter().find_map(|f| match f {
            Figure::Unsupported(why) => Some(*why),
            _ => None,
        })
    }

    /// The Markdown table: ops/s as median (min–max), then ratios of medians.
    pub fn table(&self, runs: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "ops/s, median of {runs} run(s) (min–max); ratios of medians\n");
        let _ = writeln!(
            out,
            "| workload | skyshelve | heed_raw | native_db | sqlite | ÷ heed_raw | ÷ native_db | ÷ sqlite |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for workload in WORKLOADS {
            let mut row = format!("| {workload} |");
            for system in System::ALL {
                let cell = match (self.rate(workload, system), self.unsupported(workload, system)) {
                    (Some(c), _) if runs > 1 => {
                        format!(" {} ({}–{}) |", fmt_rate(c.median), fmt_rate(c.min), fmt_rate(c.max))
                    }
                    (Some(c), _) => format!(" {} |", fmt_rate(c.median)),
                    (None, Some(why)) => format!(" {why} |"),
                    (None, None) => " – |".to_string(),
                };
                row.push_str(&cell);
            }
            let ours = self.rate(workload, System::Skyshelve).map(|c| c.median);
            for other in [System::HeedRaw, System::NativeDb, System::Sqlite] {
                let ratio = ours.zip(self.rate(workload, other)).map(|(a, b)| a / b.median);
                row.push_str(&ratio.map_or(" – |".to_string(), |r| format!(" {r:.2} |")));
            }
            let _ = writeln!(out, "{row}");
        }
        let mut heap = "| stream_scan peak heap |".to_string();
        for system in System::ALL {
            heap.push_str(
                &self.peak_heap(system).map_or(" – |".to_string(), |c| format!(" {} |", fmt_bytes(c.median))),
            );
        }
        let _ = writeln!(out, "{heap} | | |");
        for system in System::ALL.into_iter().filter(|s| !s.has_relaxed_mode()) {
            let _ = writeln!(
                out,
                "\n{} has no relaxed-durability mode: its update_nosync fsyncs every commit.",
                system.name()
            );
        }
        out
    }
}

impl Results {
    /// skyshelve beside another configuration of it (`--history`,
    /// `--slatedb`), as rates and ratios from the same runs.
    pub fn beside_skyshelve(&self, other: System, label: &str) -> String {
        self.compared((other, label), (System::Skyshelve, "skyshelve"))
    }

    /// A table of one system's figures alone: for a system outside the
    /// main table named by `--system` without its partners.
    pub fn alone(&self, system: System) -> String {
        let name = system.name();
        let mut out = format!("\n| workload | {name} |\n|---|---:|\n");
        for workload in WORKLOADS {
            let cell = match (self.rate(workload, system), self.unsupported(workload, system)) {
                (Some(c), _) => fmt_rate(c.median),
                (None, Some(why)) => why.to_string(),
                (None, None) => continue,
            };
            let _ = writeln!(out, "| {workload} | {cell} |");
        }
        out
    }

    /// A table of `first` beside `second`, with first ÷ second.
    pub fn compared(&self, (first, first_label): (System, &str), (second, second_label): (System, &str)) -> String {
        let mut out =
            format!("\n| workload | {second_label} | {first_label} | ÷ {second_label} |\n|---|---:|---:|---:|\n");
        for workload in WORKLOADS {
            let (Some(base), Some(beside)) = (self.rate(workload, second), self.rate(workload, first)) else {
                continue;
            };
            let ratio = beside.median / base.median;
            let _ =
                writeln!(out, "| {workload} | {} | {} | {ratio:.2} |", fmt_rate(base.median), fmt_rate(beside.median));
        }
        out
    }
}

fn fmt_rate(value: f64) -> String {
    let whole = value.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn fmt_bytes(bytes: f64) -> String {
    match bytes {
        b if b >= (1 << 20) as f64 => format!("{:.1} MiB", b / (1 << 20) as f64),
        b if b >= 1024.0 => format!("{:.1} KiB", b / 1024.0),
        b => format!("{b:.0} B"),
    }
}

/// A grouped bar chart of each system's median relative to heed_raw.
pub fn chart(results: &Results, path: &std::path::Path, caption: &str) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (1100, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let colors = [RGBColor(31, 119, 180), RGBColor(127, 127, 127), RGBColor(255, 127, 14), RGBColor(44, 160, 44)];
    let max_ratio =
        WORKLOADS.iter().flat_map(|w| System::ALL.map(|s| relative(results, w, s))).flatten().fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..WORKLOADS.len() as f64 - 0.5, 0.0..max_ratio * 1.3)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .y_desc("ops/s relative to heed_raw (median)")
        .draw()?;
    // Each workload's bars are centred on its integer x; its name goes below.
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let below = TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, workload) in WORKLOADS.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64, 0.0));
        root.draw(&Text::new(*workload, (x, y + 8), below.clone()))?;
    }
    for (index, system) in System::ALL.into_iter().enumerate() {
        let color = colors[index];
        let bars = WORKLOADS.iter().enumerate().filter_map(|(w, workload)| {
            let value = relative(results, workload, system)?;
            let left = w as f64 - 0.4 + index as f64 * 0.2;
            Some(Rectangle::new([(left, 0.0), (left + 0.18, value)], color.filled()))
        });
        chart
            .draw_series(bars)?
            .label(system.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperMiddle)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;
    root.present()?;
    Ok(())
}

fn relative(results: &Results, workload: &str, system: System) -> Option<f64> {
    Some(results.rate(workload, system)?.median / results.rate(workload, System::HeedRaw)?.median)
}
