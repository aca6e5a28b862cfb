//! Fuzzing the repository format parsers with arbitrary bytes (proptest): every parser returns
//! a value or an error for any input — damaged repository files must never panic a reader.
//! Each property runs 2,000 cases by default (`PROPTEST_CASES=100000` for a longer run).

#![allow(clippy::unwrap_used)]

use lifeboat_format::pack::decode_header;
use lifeboat_format::{parse_json, Config, IndexFile, KeyFile, Lock, Snapshot, Tree};
use proptest::prelude::*;

/// Valid documents of each kind, to mutate: the interesting inputs are near-valid ones.
const SEEDS: &[&str] = &[
    r#"{"packs":[{"id":"3ec79977ef0cf5de7b08cd12b874cd0f62bbaf7f07f3497a5b1bbcc8cb39b1ce","blobs":[{"id":"3ec79977ef0cf5de7b08cd12b874cd0f62bbaf7f07f3497a5b1bbcc8cb39b1ce","type":"data","offset":0,"length":40,"uncompressed_length":90}]}]}"#,
    r#"{"nodes":[{"name":"a.txt","type":"file","mode":420,"mtime":"2023-01-02T03:04:05.123456789+01:00","uid":1000,"gid":1000,"size":5,"content":["3ec79977ef0cf5de7b08cd12b874cd0f62bbaf7f07f3497a5b1bbcc8cb39b1ce"]},{"name":"d","type":"dir","mode":2147484141,"subtree":"3ec79977ef0cf5de7b08cd12b874cd0f62bbaf7f07f3497a5b1bbcc8cb39b1ce"}]}"#,
    r#"{"time":"2023-01-02T03:04:05.1+01:00","tree":"3ec79977ef0cf5de7b08cd12b874cd0f62bbaf7f07f3497a5b1bbcc8cb39b1ce","paths":["/a"],"hostname":"h","tags":["x"]}"#,
    r#"{"created":"2023-01-02T03:04:05Z","username":"u","hostname":"h","kdf":"scrypt","N":16384,"r":8,"p":1,"salt":"AAEC","data":"AwQF"}"#,
    r#"{"version":2,"id":"abc","chunker_polynomial":"3da3358b4dc173"}"#,
    r#"{"time":"2023-01-02T03:04:05Z","exclusive":false,"hostname":"h","username":"u","pid":1,"uid":0,"gid":0}"#,
];

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
        let mut b = SEEDS[i].as_bytes().to_vec();
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
    parse_json::<IndexFile>("index", SEEDS[0].as_bytes()).unwrap();
    parse_json::<Tree>("tree", SEEDS[1].as_bytes()).unwrap();
    parse_json::<Snapshot>("snapshot", SEEDS[2].as_bytes()).unwrap();
    parse_json::<KeyFile>("key", SEEDS[3].as_bytes()).unwrap();
    parse_json::<Config>("config", SEEDS[4].as_bytes()).unwrap();
    parse_json::<Lock>("lock", SEEDS[5].as_bytes()).unwrap();
}
