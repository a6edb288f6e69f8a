//! The streams benchmark (`--streams`): skyshelve-streams against the two
//! anchors of the Durable Streams world, the same Rust client for all,
//! in one run on one machine.
//!
//! ```text
//! cargo run --release -p skyshelve-bench -- --streams [--quick] [--anchors]
//! ```
//!
//! Without `--anchors` only skyshelve-streams runs (as CI does); with it,
//! the anchors are installed under `target/streams-anchors/` first.

mod client;
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

pub fn run(quick: bool, anchors: bool) -> Result<String> {
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
    Ok(table(&kinds, &rows))
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
