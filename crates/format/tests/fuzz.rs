//! Fuzzing the repository format parsers with arbitrary bytes (proptest): every parser returns
//! a value or an error for any input — damaged repository files must never panic a reader.
//! Each property runs 2,000 cases by default (`PROPTEST_CASES=100000` for a longer run).

#![allow(clippy::unwrap_used)]

use lifeboat_format::pack::decode_header;
use lifeboat_format::{parse_json, Config, IndexFile, KeyFile, Lock, Snapshot, Tree};
use proptest::prelude::*;

/// The corpus (`tests/corpus/`, kept in the repository): valid documents of each kind to
/// mutate — the interesting inputs are near-valid ones — and inputs that once broke a parser.
/// Add a file there for every crash a run finds.
static SEEDS: std::sync::LazyLock<Vec<Vec<u8>>> = std::sync::LazyLock::new(|| {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
});

fn parse_all(bytes: &[u8]) {
    let _ = parse_json::<IndexFile>("index", bytes);
    let _ = parse_json::<Tree>("tree", bytes);
    let _ = parse_json::<Snapshot>("snapshot", bytes);
    let _ = parse_json::<KeyFile>("key", bytes);
    let _ = parse_json::<Config>("config", bytes);
    let _ = parse_json::<Lock>("lock", bytes);
    let _ = decode_header(bytes);
}

/// A seed with a few bytes replaced, inserted or cut.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (0..SEEDS.len(), proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6)).prop_map(|(i, edits)| {
        let mut b = SEEDS[i].clone();
        for (at, byte, op) in edits {
            if b.is_empty() {
                break;
            }
            let at = at % b.len();
            match op {
                0 => b[at] = byte,
                1 => b.insert(at, byte),
                _ => b.truncate(at),
            }
        }
        b
    })
}

#[test]
fn every_corpus_file_parses_without_panic_and_the_valid_ones_parse() {
    assert!(SEEDS.len() >= 6, "the corpus lost files");
    for b in SEEDS.iter() {
        parse_all(b);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsers_never_panic_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse_all(&bytes);
    }

    #[test]
    fn parsers_never_panic_on_damaged_documents(bytes in mutated()) {
        parse_all(&bytes);
    }

    #[test]
    fn pack_header_never_panics(
        bytes in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(2), Just(3), any::<u8>()], 0..400)
    ) {
        let _ = decode_header(&bytes);
    }
}

#[test]
fn seeds_parse() {
    let seed = |name: &str| {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(name)).unwrap()
    };
    parse_json::<IndexFile>("index", &seed("index.json")).unwrap();
    parse_json::<Tree>("tree", &seed("tree.json")).unwrap();
    parse_json::<Snapshot>("snapshot", &seed("snapshot.json")).unwrap();
    parse_json::<KeyFile>("key", &seed("key.json")).unwrap();
    parse_json::<Config>("config", &seed("config.json")).unwrap();
    parse_json::<Lock>("lock", &seed("lock.json")).unwrap();
}
