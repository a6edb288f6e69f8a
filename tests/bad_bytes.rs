//! Stored bytes damaged behind skyshelve's back (written here with raw
//! heed): flipped bits, truncations, extensions and huge length prefixes
//! give typed decode errors on load, scan and update, never a panic or a
//! large allocation; neighbours still load and the store still writes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use heed::types::Bytes;
use heed::{CommitOrAbort, EnvOpenOptions};
use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent, Problem};

#[path = "common/engine.rs"]
mod engine;

/// Records the largest single allocation of the test binary.
struct CountingAllocator;

static LARGEST_ALLOCATION: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Note {
    #[persistent(key)]
    id: u32,
    #[persistent(index)]
    tag: String,
    body: String,
    numbers: Vec<u64>,
}

fn note(id: u32) -> Note {
    Note { id, tag: format!("t{}", id % 3), body: "hello".into(), numbers: vec![1, 2, 300] }
}

/// The big-endian key encoding of a u32 key.
fn key(id: u32) -> [u8; 4] {
    id.to_be_bytes()
}

/// Runs `f` on the raw table of model `note` with every skyshelve handle closed.
fn with_raw_table(path: &Path, f: impl FnOnce(&heed::Env, heed::Database<'static, Bytes, Bytes>)) {
    // SAFETY: no skyshelve handle on this folder is open in this process,
    // and no other process uses it.
    let env = unsafe { EnvOpenOptions::new().max_dbs(64).map_size(64 << 20).open(path) }.unwrap();
    let rtxn = env.read_txn().unwrap();
    let table = env
        .open_databases_and_commit(rtxn, |opener, rtxn| {
            opener.open_database::<Bytes, Bytes>(rtxn, Some("note")).map(CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
        .unwrap_commit()
        .expect("the note table exists");
    f(&env, table);
}

fn write_raw(path: &Path, entries: &[(Vec<u8>, Vec<u8>)]) {
    with_raw_table(path, |env, table| {
        let mut wtxn = env.write_txn().unwrap();
        for (key, value) in entries {
            table.put(&mut wtxn, key, value).unwrap();
        }
        wtxn.commit().unwrap();
    });
}

fn read_raw(path: &Path, id: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    with_raw_table(path, |env, table| {
        let rtxn = env.read_txn().unwrap();
        bytes = table.get(&rtxn, &key(id)).unwrap().unwrap().to_vec();
    });
    bytes
}

/// Every single-bit flip of `good`: each may decode to another valid record.
fn bit_flips(good: &[u8]) -> Vec<Vec<u8>> {
    (0..good.len() * 8)
        .map(|bit| {
            let mut flipped = good.to_vec();
            flipped[bit / 8] ^= 1 << (bit % 8);
            flipped
        })
        .collect()
}

/// Every truncation and some extensions of `good`: none may decode.
fn truncations_and_extensions(good: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..good.len()).map(|len| good[..len].to_vec()).collect();
    for extra in [&[0u8][..], &[0xFF; 7], b"trailing garbage"] {
        out.push([good, extra].concat());
    }
    out
}

/// Records whose length prefixes claim up to u64::MAX elements or bytes.
fn huge_prefixes() -> Vec<Vec<u8>> {
    let header = [1u8, 0, 1];
    let id = [5u8];
    let huge_len = [0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
    vec![
        [&header[..], &id, &huge_len].concat(),
        [&header[..], &id, &[2, b't', b'1'], &huge_len].concat(),
        [&header[..], &id, &[2, b't', b'1'], &[0], &huge_len, &[1, 2, 3]].concat(),
        [&header[..], &id, &[0xFC, 0xFF, 0xFF, 0xFF, 0x0F]].concat(),
    ]
}

#[test]
fn damaged_records_give_typed_errors_and_leave_the_rest_usable() {
    if engine::not_on_slatedb("reads or damages LMDB's files directly") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let store = engine::open(dir.path()).unwrap();
        store.write(|tx| (0..10).try_for_each(|id| tx.save(&note(id)))).unwrap();
    }
    let good = read_raw(dir.path(), 1);
    let must_fail: Vec<Vec<u8>> = truncations_and_extensions(&good).into_iter().chain(huge_prefixes()).collect();
    let damaged: Vec<Vec<u8>> = must_fail.iter().cloned().chain(bit_flips(&good)).collect();
    let first_damaged = 1000u32;
    let entries: Vec<(Vec<u8>, Vec<u8>)> =
        damaged.iter().enumerate().map(|(i, bytes)| (key(first_damaged + i as u32).to_vec(), bytes.clone())).collect();
    write_raw(dir.path(), &entries);

    let before = LARGEST_ALLOCATION.load(Ordering::Relaxed);
    let store = engine::open(dir.path()).unwrap();
    for i in 0..damaged.len() as u32 {
        match Note::load(&store, &(first_damaged + i)) {
            // A flipped header can claim a newer model version.
            Err(Error::Decode { .. } | Error::NewerVersion { .. }) => {}
            Ok(Some(_)) if i as usize >= must_fail.len() => {} // a flip can make another valid record
            other => panic!("damaged record {i} ({:?}): {other:?}", damaged[i as usize]),
        }
    }
    assert!(matches!(Note::all(&store), Err(Error::Decode { .. })), "a collected scan reports the damage");
    let streamed = store.read(|tx| Ok(tx.iter::<Note>()?.map(|r| r.is_ok()).filter(|ok| *ok).count())).unwrap();
    assert!(streamed >= 10, "the streaming scan goes past damaged records");
    let largest = LARGEST_ALLOCATION.load(Ordering::Relaxed);
    assert!(largest < (8 << 20).max(before), "an allocation of {largest} bytes");

    // Neighbours still load, and the store still writes.
    for id in 0..10 {
        assert_eq!(Note::load(&store, &id).unwrap().unwrap(), note(id));
    }
    note(20).save(&store).unwrap();
    let undecodable = (0..damaged.len() as u32)
        .map(|i| first_damaged + i)
        .find(|id| matches!(Note::load(&store, id), Err(Error::Decode { .. })))
        .unwrap();
    assert!(matches!(Note::update(&store, &undecodable, |n| n.body.clear()), Err(Error::Decode { .. })));

    let report = store.verify().unwrap();
    let notes = report.models.iter().find(|m| m.model == "note").unwrap();
    assert!(notes.problems.iter().any(|p| matches!(p, Problem::Undecodable { .. })), "{report}");

    // A record that does not decode can still be replaced, and deleted;
    // one that claims a newer model version is never overwritten by this
    // code, and verify reports exactly those.
    let mut claim_newer = 0;
    for id in (0..damaged.len() as u32).map(|i| first_damaged + i) {
        match Note::load(&store, &id) {
            Err(Error::NewerVersion { .. }) => {
                assert!(matches!(note(id).save(&store), Err(Error::NewerVersion { .. })));
                claim_newer += 1;
                continue;
            }
            Err(Error::Decode { .. }) => {
                note(id).save(&store).unwrap();
                assert_eq!(Note::load(&store, &id).unwrap().unwrap(), note(id));
            }
            _ => {}
        }
        assert!(Note::delete(&store, &id).unwrap());
    }
    let report = store.verify().unwrap();
    let notes = report.models.iter().find(|m| m.model == "note").unwrap();
    assert!(claim_newer > 0, "flips of the version bytes claim newer versions");
    assert_eq!(notes.problem_count, claim_newer, "{report}");
    assert!(
        notes.problems.iter().all(|p| matches!(p, Problem::Undecodable { reason, .. } if reason.contains("version")))
    );
}

#[test]
fn verify_finds_missing_and_extra_index_entries() {
    if engine::not_on_slatedb("reads or damages LMDB's files directly") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let store = engine::open(dir.path()).unwrap();
        note(1).save(&store).unwrap();
        note(2).save(&store).unwrap();
        assert!(store.verify().unwrap().is_clean());
    }
    // Rewrite record 1 with another tag behind skyshelve's back: its stored
    // index entry is now extra, and the entry it calls for is missing.
    let mut changed = note(1);
    changed.tag = "moved".into();
    let mut bytes = vec![1, 0, 1];
    bytes.extend(bincode::serde::encode_to_vec(&changed, bincode::config::standard()).unwrap());
    write_raw(dir.path(), &[(key(1).to_vec(), bytes)]);
    let store = engine::open(dir.path()).unwrap();
    let report = Note::verify(&store).unwrap();
    assert_eq!(report.problem_count, 2, "{report}");
    assert!(report.problems.iter().any(|p| matches!(p, Problem::MissingEntry { index: "tag", .. })));
    assert!(report.problems.iter().any(|p| matches!(p, Problem::ExtraEntry { index: "tag", .. })));
}

#[test]
fn random_mutations_of_a_large_record_never_panic() {
    if engine::not_on_slatedb("reads or damages LMDB's files directly") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut big = note(1);
    big.body = "lorem ipsum ".repeat(300);
    big.numbers = (0..200).map(|i| i * 7919).collect();
    {
        let store = engine::open(dir.path()).unwrap();
        big.save(&store).unwrap();
    }
    let good = read_raw(dir.path(), 1);
    // splitmix64, seeded: the same mutations every run.
    let mut state = 0x5EED_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as usize
    };
    let mutated: Vec<(Vec<u8>, Vec<u8>)> = (0..500u32)
        .map(|i| {
            let mut bytes = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = next() % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = next() as u8,
                    1 => bytes.truncate(at.max(1)),
                    _ => bytes.splice(at..at, (0..next() % 16).map(|_| next() as u8)).for_each(drop),
                }
            }
            (key(2000 + i).to_vec(), bytes)
        })
        .collect();
    write_raw(dir.path(), &mutated);
    let store = engine::open(dir.path()).unwrap();
    for i in 0..500u32 {
        match Note::load(&store, &(2000 + i)) {
            Ok(Some(_)) | Err(Error::Decode { .. } | Error::NewerVersion { .. }) => {}
            other => panic!("mutation {i}: {other:?}"),
        }
    }
    assert_eq!(Note::load(&store, &1).unwrap().unwrap(), big, "the original still loads");
    assert!(LARGEST_ALLOCATION.load(Ordering::Relaxed) < 8 << 20);
}
