//! What the store says through `tracing` about what it does on its own and
//! about the operations it is asked for: silent unless the program
//! installs a subscriber; this test installs one that records every span
//! and event.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use skyshelve::Persistent;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[path = "common/engine.rs"]
mod engine;

/// Every event as "target: field=value ...".
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields(String::new());
        span.record(&mut fields);
        let mut events = self.0.lock().unwrap();
        events.push(format!("span {}:{}", span.metadata().target(), fields.0));
        Id::from_u64(events.len() as u64)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let (target, level) = (event.metadata().target(), event.metadata().level());
        self.0.lock().unwrap().push(format!("{target}:{} level={level}", fields.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Recorder {
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[derive(Persistent, Serialize, Deserialize)]
#[persistent(name = "diag_note")]
struct Note {
    #[persistent(key)]
    id: u32,
    text: String,
}

#[derive(Persistent, Serialize, Deserialize)]
#[persistent(name = "diag_note")]
struct IndexedNote {
    #[persistent(key)]
    id: u32,
    #[persistent(index)]
    text: String,
}

#[test]
fn a_map_growth_is_reported_with_its_sizes() {
    if engine::not_on_slatedb("LMDB's memory map and its growth") {
        return;
    }
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let store = engine::options().models([Note::INFO]).map_size(64 << 10).open_temporary().unwrap();
        store.write(|tx| (0..2000).try_for_each(|id| tx.save(&Note { id, text: "x".repeat(100) }))).unwrap();
    });
    let growth: Vec<String> = recorder.events().into_iter().filter(|e| e.contains("map grown")).collect();
    assert!(!growth.is_empty(), "events: {:?}", recorder.events());
    assert!(growth[0].starts_with("skyshelve::map:") && growth[0].contains(" from=") && growth[0].contains(" to="));
}

#[test]
fn an_index_build_at_open_is_reported_from_start_to_finish() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = engine::options().models([Note::INFO]).open(dir.path()).unwrap();
        store.write(|tx| (0..50).try_for_each(|id| tx.save(&Note { id, text: format!("t{id}") }))).unwrap();
    }
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let store = engine::options().models([IndexedNote::INFO]).take_over_indexes(true).open(dir.path()).unwrap();
        assert_eq!(IndexedNote::scan_index(&store, IndexedNote::TEXT, "t7").unwrap().len(), 1);
    });
    let events = recorder.events();
    let started = events.iter().position(|e| e.contains("index build started") && e.contains("records=50"));
    let finished = events.iter().position(|e| e.contains("index build finished"));
    assert!(matches!((started, finished), (Some(s), Some(f)) if s < f), "events: {events:?}");
}

#[test]
fn without_a_subscriber_the_same_work_runs_silently() {
    let store = engine::options().models([Note::INFO]).map_size(64 << 10).open_temporary().unwrap();
    store.write(|tx| (0..2000).try_for_each(|id| tx.save(&Note { id, text: "y".repeat(100) }))).unwrap();
    assert_eq!(Note::count(&store).unwrap(), 2000);
}

#[test]
fn stats_count_what_this_process_did() {
    let store = engine::options().models([Note::INFO]).map_size(64 << 10).open_temporary().unwrap();
    let before = store.stats().unwrap().activity;
    for id in 0..20 {
        Note { id, text: "z".repeat(500) }.save(&store).unwrap();
    }
    store.read(|tx| tx.count::<Note>()).unwrap();
    let after = store.stats().unwrap().activity;
    assert_eq!(after.commits - before.commits, 20, "one commit per save, none for the read");
    assert!(after.bytes_written - before.bytes_written >= 20 * 500);
    if !engine::on_slatedb() {
        assert!(after.map_growths >= 1, "10 KiB of records in a 64 KiB map grew it: {after:?}");
    }

    let guard = Note::lock(&store, &1).unwrap();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || Note { id: 1, text: "waited".into() }.save(&store))
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    drop(guard);
    writer.join().unwrap().unwrap();
    let waited = store.stats().unwrap().activity;
    assert_eq!(waited.lock_waits - after.lock_waits, 1, "{waited:?}");
    assert!(waited.reruns > after.reruns, "the blocked write ran again");
}

#[test]
fn operations_run_in_spans_named_after_their_model_and_errors_are_reported_by_severity() {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let store = engine::options().models([Note::INFO]).open_temporary().unwrap();
        Note { id: 1, text: "a".into() }.save(&store).unwrap();
        assert!(Note { id: 1, text: "b".into() }.insert(&store).is_err());
        // A model this store was not opened for: the program's mistake.
        assert!(IndexedNote::load(&store, &1).is_err());
    });
    let events = recorder.events();
    let position = |needle: &str| {
        events.iter().position(|e| e.contains(needle)).unwrap_or_else(|| panic!("{needle} not in {events:?}"))
    };
    assert!(events.contains(&r#"span skyshelve::op: model="diag_note" op="save""#.to_owned()), "{events:?}");
    let insert = position(r#"op="insert""#);
    let refused = position("operation refused");
    assert!(insert < refused, "the refusal comes inside the insert: {events:?}");
    assert!(events[refused].contains("already") && events[refused].ends_with("level=DEBUG"), "{}", events[refused]);
    let failed = position("operation failed");
    assert!(
        events[failed].contains("not among the models") && events[failed].ends_with("level=WARN"),
        "{}",
        events[failed]
    );
    assert!(position(r#"op="load""#) < failed);
}
