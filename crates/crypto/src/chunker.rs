//! Content-defined chunking for the backup pipeline.
//!
//! Lifeboat splits file contents with FastCDC (the 2020 variant from the
//! `fastcdc` crate, normalisation level 1) using a gear table seeded per
//! repository, instead of restic's Rabin fingerprints. Boundaries therefore
//! depend only on the content, the sizes and the seed: inserting bytes into a
//! file only changes the chunks around the insertion.
//!
//! The seed is derived from the repository's `chunker_polynomial` (see
//! [`ChunkerParams::restic_sizes`]). That derivation and the chunking algorithm
//! are part of Lifeboat's on-disk behaviour: changing either does not break
//! repositories, but it stops new backups from deduplicating against old ones.

mod polynomial;

pub use polynomial::{is_irreducible, random_polynomial};

use fastcdc::v2020::{self, Normalization};
use std::io::{self, Read};
use std::iter::FusedIterator;

/// Chunk sizes (in bytes) and gear-table seed for a [`Chunker`].
///
/// Sizes outside what FastCDC supports are clamped when the chunker is created:
/// `min` to 64 B ..= 1 MiB, `avg` to 256 B ..= 4 MiB, `max` to 1 KiB ..= 16 MiB,
/// odd values are rounded down to even, and `min ≤ avg ≤ max` is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkerParams {
    /// Minimum chunk size; only the last chunk of a stream may be smaller.
    pub min: u32,
    /// Target average chunk size (FastCDC's normalisation point).
    pub avg: u32,
    /// Maximum chunk size.
    pub max: u32,
    /// Gear table seed; different seeds give unrelated boundaries.
    pub seed: u64,
}

/// Domain separator for deriving the gear seed from a chunker polynomial.
const SEED_DOMAIN: &[u8] = b"lifeboat/chunker/fastcdc2020-gear-seed/v1\0";

impl ChunkerParams {
    /// restic-like sizes (min 512 KiB, avg 1 MiB, max 8 MiB) with the seed
    /// derived from the repository's `chunker_polynomial`.
    ///
    /// The seed is the first 8 bytes (little endian) of
    /// `SHA-256("lifeboat/chunker/fastcdc2020-gear-seed/v1\0" || polynomial as 8 LE bytes)`,
    /// so each repository chunks differently (as with restic's per-repository
    /// polynomial) and boundaries are stable for the repository's lifetime.
    #[must_use]
    pub fn restic_sizes(polynomial: u64) -> Self {
        let mut input = Vec::with_capacity(SEED_DOMAIN.len() + 8);
        input.extend_from_slice(SEED_DOMAIN);
        input.extend_from_slice(&polynomial.to_le_bytes());
        let digest = crate::sha256(&input);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&digest[..8]);
        ChunkerParams { min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024, seed: u64::from_le_bytes(seed) }
    }
}

/// Bytes asked of the reader at a time once a chunk has its minimum size, at most: what is read
/// past a cut is copied to the next chunk's buffer, so this bounds the copying (an eighth of the
/// average chunk, at least 16 KiB).
fn read_step(avg: usize) -> usize {
    (avg / 8).max(16 * 1024)
}

/// Splits a reader into content-defined chunks.
///
/// An iterator of `io::Result<Vec<u8>>`: empty input yields nothing, input no
/// longer than `min` yields one chunk, and the concatenation of all chunks is
/// the input. Boundaries depend only on the data and the [`ChunkerParams`],
/// never on how the reader splits its reads. After an I/O error (other than
/// [`io::ErrorKind::Interrupted`], which is retried) the iterator ends.
///
/// Each chunk is read into a buffer of its own, which is handed out as the chunk: the data is
/// not copied, except the few bytes read past a cut (they begin the next chunk). The gear hash
/// is scanned as the bytes arrive and resumes where it stopped, with the same cut points as
/// FastCDC's `cut_gear` over the whole input (`tests::cuts_match_cut_gear_over_the_whole_input`).
pub struct Chunker<R: Read> {
    reader: R,
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    /// The gear tables as arrays: indexed by a byte, the lookups need no bounds check.
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    /// The chunk being read: the bytes since the last cut.
    cur: Vec<u8>,
    /// The next byte pair to scan is `cur[2 * pair..]` (0 until the scan starts at `min`), and
    /// `hash` is the gear hash of what was scanned.
    pair: usize,
    hash: u64,
    /// See [`read_step`].
    step: usize,
    /// Capacity of a new chunk's buffer.
    capacity: usize,
    /// Capacity of the first chunk's buffer (a size hint makes it the input's length).
    first: Option<usize>,
    eof: bool,
    done: bool,
}

impl<R: Read> std::fmt::Debug for Chunker<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker")
            .field("min", &self.min)
            .field("avg", &self.avg)
            .field("max", &self.max)
            .field("buffered", &self.cur.len())
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

/// A gear table as an array (`fastcdc` makes them 256 entries long; a shorter one would be
/// padded with zeros, a longer one cut).
fn table(t: &[u64]) -> Box<[u64; 256]> {
    let mut a = Box::new([0u64; 256]);
    for (d, s) in a.iter_mut().zip(t) {
        *d = *s;
    }
    a
}

/// FastCDC's gear loop over the byte pairs `from.0 .. to` of `src`, `from.1` the hash so far:
/// `Ok(chunk length)` at the first cut point (`mask` tests the pair's second byte, `mask << 1` its
/// first), else `Err((to, hash))` to resume from.
#[inline(always)]
fn scan_pairs(
    src: &[u8],
    gear: &[u64; 256],
    gear_ls: &[u64; 256],
    (mut index, mut hash): (usize, u64),
    to: usize,
    mask: u64,
) -> Result<usize, (usize, u64)> {
    let mask_ls = mask << 1;
    while index < to {
        let a = index * 2;
        hash = (hash << 2).wrapping_add(gear_ls[src[a] as usize]);
        if hash & mask_ls == 0 {
            return Ok(a);
        }
        hash = hash.wrapping_add(gear[src[a + 1] as usize]);
        if hash & mask == 0 {
            return Ok(a + 1);
        }
        index += 1;
    }
    Err((index, hash))
}

/// Rounds down to an even number (FastCDC scans byte pairs).
fn even(n: usize) -> usize {
    n & !1
}

impl<R: Read> Chunker<R> {
    /// A chunker over `reader` with the given sizes and seed.
    pub fn new(reader: R, params: ChunkerParams) -> Self {
        let to_usize = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
        let max = even(to_usize(params.max).clamp(v2020::MAXIMUM_MIN, v2020::MAXIMUM_MAX));
        let min = even(to_usize(params.min).clamp(v2020::MINIMUM_MIN, v2020::MINIMUM_MAX).min(max));
        let avg = even(to_usize(params.avg).clamp(v2020::AVERAGE_MIN, v2020::AVERAGE_MAX).clamp(min, max));
        let (mask_s, mask_l) = v2020::select_masks(avg, Normalization::Level1);
        let (gear, gear_ls) = v2020::get_gear_with_seed(params.seed);
        let (gear, gear_ls) = (table(&gear), table(&gear_ls));
        let step = read_step(avg);
        Chunker {
            reader,
            min,
            avg,
            max,
            mask_s,
            mask_l,
            gear,
            gear_ls,
            cur: Vec::new(),
            pair: 0,
            hash: 0,
            step,
            // Most chunks end before twice the average; a longer one grows its buffer.
            capacity: (2 * avg).max(min + step).min(max),
            first: None,
            eof: false,
            done: false,
        }
    }

    /// Tell the chunker how long the input probably is (e.g. a file's size): an input shorter
    /// than a chunk buffer is then read into one allocation of exactly its size. A wrong hint
    /// only costs a reallocation.
    #[must_use]
    pub fn with_size_hint(mut self, len: u64) -> Self {
        let want = usize::try_from(len).unwrap_or(usize::MAX).saturating_add(1);
        self.first = Some(want.min(self.capacity));
        self
    }

    /// Scan the unscanned byte pairs of `cur` (up to `max`); the length of the chunk when a cut
    /// point is among them. The same tests in the same order as `v2020::cut_gear`: pairs from
    /// `min`, the small masks below `avg` and the large ones from there.
    fn scan(&mut self) -> Option<usize> {
        let limit = self.cur.len().min(self.max);
        let src = &self.cur[..limit];
        let (gear, gear_ls) = (&*self.gear, &*self.gear_ls);
        let end = limit / 2;
        let mut at = (self.pair.max(self.min / 2), self.hash);
        for (to, mask) in [(end.min(self.avg / 2), self.mask_s), (end, self.mask_l)] {
            at = match scan_pairs(src, gear, gear_ls, at, to, mask) {
                Ok(cut) => return Some(cut),
                Err(at) => at,
            };
        }
        (self.pair, self.hash) = at;
        None
    }

    /// Hand out the first `len` bytes of `cur` as a chunk; the rest begins the next one.
    fn cut(&mut self, len: usize) -> Vec<u8> {
        let mut next = Vec::new();
        if len < self.cur.len() {
            next = Vec::with_capacity(self.capacity.max(self.cur.len() - len));
            next.extend_from_slice(&self.cur[len..]);
        }
        let mut chunk = std::mem::replace(&mut self.cur, next);
        chunk.truncate(len);
        // A chunk buffer much larger than its chunk gives the rest back (in place).
        if chunk.capacity() - len > len / 8 {
            chunk.shrink_to_fit();
        }
        (self.pair, self.hash) = (0, 0);
        chunk
    }

    /// Read up to the next scan point (`min` plus a step, then a step at a time, never past
    /// `max`); at the end of the input, sets `eof`.
    fn read_some(&mut self) -> io::Result<()> {
        let len = self.cur.len();
        let want = if len < self.min { self.min - len + self.step } else { self.step }.min(self.max - len);
        if self.cur.capacity() == 0 {
            let first = self.first.take().unwrap_or(self.capacity);
            self.cur.reserve_exact(first);
        } else if self.cur.capacity() == len {
            // A long chunk: double the buffer (up to `max`) rather than grow it a step at a time.
            let grown = (self.cur.capacity() * 2).clamp(len + want, self.max);
            self.cur.reserve_exact(grown - len);
        }
        // What fits: a buffer sized by a hint is filled before it grows.
        let ask = want.min(self.cur.capacity() - len);
        // `read_to_end` reads into the spare capacity without zeroing it first (where the
        // reader can: files) and retries `Interrupted`.
        let n = (&mut self.reader).take(ask as u64).read_to_end(&mut self.cur)?;
        if n < ask {
            self.eof = true;
        }
        Ok(())
    }
}

impl<R: Read> Iterator for Chunker<R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            if self.cur.len() > self.min {
                if let Some(len) = self.scan() {
                    return Some(Ok(self.cut(len)));
                }
            }
            if self.cur.len() >= self.max {
                return Some(Ok(self.cut(self.max)));
            }
            if self.eof {
                self.done = self.cur.is_empty();
                if self.done {
                    // Release the buffer early; the iterator is finished.
                    self.cur = Vec::new();
                    return None;
                }
                let len = self.cur.len();
                return Some(Ok(self.cut(len)));
            }
            if let Err(e) = self.read_some() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

impl<R: Read> FusedIterator for Chunker<R> {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sha256;
    use std::collections::HashSet;

    const RESTIC_TEST_POL: u64 = 0x3DA3358B4DC173;

    /// Deterministic pseudo-random bytes (SplitMix64).
    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            out.extend_from_slice(&z.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn chunk_all(data: &[u8], params: ChunkerParams) -> Vec<Vec<u8>> {
        Chunker::new(data, params).collect::<io::Result<Vec<_>>>().unwrap()
    }

    /// The chunks FastCDC's `cut_gear` makes of the whole input in memory (what the chunker did
    /// before it scanned as it read).
    fn reference_chunks(data: &[u8], params: ChunkerParams) -> Vec<usize> {
        let c = Chunker::new(&[][..], params);
        let mut out = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let (_, len) = v2020::cut_gear(
                &data[at..],
                c.min,
                c.avg,
                c.max,
                c.mask_s,
                c.mask_l,
                c.mask_s << 1,
                c.mask_l << 1,
                &c.gear[..],
                &c.gear_ls[..],
            );
            out.push(len);
            at += len;
        }
        out
    }

    /// A reader handing out the sizes of `steps` in turn.
    struct Steps<'a> {
        data: &'a [u8],
        steps: Vec<usize>,
        at: usize,
    }

    impl Read for Steps<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let step = self.steps[self.at % self.steps.len()];
            self.at += 1;
            let n = step.max(1).min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn cuts_match_cut_gear_over_the_whole_input(
            len in 0usize..400_000,
            seed in proptest::prelude::any::<u64>(),
            min in 64u32..20_000,
            avg in 256u32..40_000,
            max in 1024u32..80_000,
            zeros in proptest::prelude::any::<bool>(),
            hint in proptest::option::of(0u64..500_000),
            steps in proptest::collection::vec(1usize..70_000, 1..6),
        ) {
            let mut data = pseudo_random(len, seed);
            if zeros {
                // Long runs without a cut point: chunks at the maximum.
                let mid = len / 3;
                data[mid..(mid + len / 3).min(len)].fill(0);
            }
            let params = ChunkerParams { min, avg, max, seed };
            let want = reference_chunks(&data, params);
            let mut chunker = Chunker::new(Steps { data: &data, steps, at: 0 }, params);
            if let Some(h) = hint {
                chunker = chunker.with_size_hint(h);
            }
            let got: Vec<Vec<u8>> = chunker.collect::<io::Result<_>>().unwrap();
            proptest::prop_assert_eq!(lengths(&got), want);
            proptest::prop_assert!(got.concat() == data);
        }
    }

    #[test]
    fn a_size_hint_with_chunks_smaller_than_the_first_buffer_is_taken() {
        let data = pseudo_random(100_000, 3);
        let params = ChunkerParams { min: 4096, avg: 8192, max: 16384, ..ChunkerParams::restic_sizes(0) };
        let plain = chunk_all(&data, params);
        for hint in [0, 1000, 100_000, 1 << 30] {
            let hinted: Vec<Vec<u8>> =
                Chunker::new(&data[..], params).with_size_hint(hint).map(|c| c.unwrap()).collect();
            assert_eq!(hinted, plain, "hint {hint}");
        }
    }

    #[test]
    fn size_hint_never_changes_boundaries() {
        let data = pseudo_random(6 << 20, 11);
        let params = ChunkerParams::restic_sizes(RESTIC_TEST_POL);
        let plain = chunk_all(&data, params);
        for hint in [0u64, 1000, (6 << 20) - 1, 6 << 20, 40 << 20] {
            let hinted: Vec<Vec<u8>> =
                Chunker::new(&data[..], params).with_size_hint(hint).collect::<io::Result<_>>().unwrap();
            assert_eq!(lengths(&hinted), lengths(&plain), "hint {hint}");
        }
    }

    fn lengths(chunks: &[Vec<u8>]) -> Vec<usize> {
        chunks.iter().map(Vec::len).collect()
    }

    fn small_params(seed: u64) -> ChunkerParams {
        ChunkerParams { min: 2 * 1024, avg: 8 * 1024, max: 32 * 1024, seed }
    }

    /// A reader that returns at most a varying, small number of bytes per read
    /// and sometimes fails with `Interrupted`.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.step = self.step.wrapping_mul(31).wrapping_add(17) % 5003;
            if self.step % 7 == 0 {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "again"));
            }
            let n = (self.step + 1).min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn restic_sizes_and_seed() {
        let p = ChunkerParams::restic_sizes(RESTIC_TEST_POL);
        assert_eq!((p.min, p.avg, p.max), (512 << 10, 1 << 20, 8 << 20));
        assert_eq!(p, ChunkerParams::restic_sizes(RESTIC_TEST_POL));
        assert_ne!(p.seed, ChunkerParams::restic_sizes(0x2482734cacca49).seed);
        // Pinned: changing the derivation would break deduplication with
        // existing repositories.
        assert_eq!(p.seed, 0xa797_a4ea_598b_1572, "seed is {:#x}", p.seed);
    }

    #[test]
    fn empty_input_yields_nothing() {
        let params = ChunkerParams::restic_sizes(RESTIC_TEST_POL);
        assert_eq!(Chunker::new(&[][..], params).count(), 0);
        let mut chunker = Chunker::new(&[][..], params);
        assert!(chunker.next().is_none());
        assert!(chunker.next().is_none());
    }

    #[test]
    fn small_inputs_are_one_chunk() {
        let params = ChunkerParams::restic_sizes(RESTIC_TEST_POL);
        for len in [1, 2, 1000, 512 * 1024 - 1, 512 * 1024] {
            let data = pseudo_random(len, len as u64);
            let chunks = chunk_all(&data, params);
            assert_eq!(chunks.len(), 1, "len {len}");
            assert_eq!(chunks[0], data);
        }
    }

    #[test]
    fn zeros_are_cut_at_max() {
        let params = small_params(1);
        let data = vec![0u8; 100 * 1024];
        let chunks = chunk_all(&data, params);
        assert_eq!(lengths(&chunks), [32768, 32768, 32768, 4096]);
    }

    #[test]
    fn restic_sizes_on_20_mb() {
        let data = pseudo_random(20 << 20, 42);
        let params = ChunkerParams::restic_sizes(RESTIC_TEST_POL);
        let chunks = chunk_all(&data, params);
        assert_eq!(chunks.concat(), data);
        let (last, rest) = chunks.split_last().unwrap();
        for c in rest {
            assert!((params.min as usize..=params.max as usize).contains(&c.len()), "{}", c.len());
        }
        assert!(!last.is_empty() && last.len() <= params.max as usize);

        // Deterministic, also when the reader trickles.
        assert_eq!(chunk_all(&data, params), chunks);
        let trickled: Vec<Vec<u8>> =
            Chunker::new(Trickle { data: &data, step: 1 }, params).collect::<io::Result<_>>().unwrap();
        assert_eq!(lengths(&trickled), lengths(&chunks));

        // Pinned boundaries: the chunker is part of Lifeboat's on-disk behaviour.
        assert_eq!(lengths(&chunks), PINNED_20MB_LENGTHS, "boundaries changed: {:?}", lengths(&chunks));

        // A different seed gives different boundaries.
        let other = ChunkerParams::restic_sizes(0x2482734cacca49);
        let other_chunks = chunk_all(&data, other);
        assert_eq!(other_chunks.concat(), data);
        let cuts = |c: &[Vec<u8>]| -> HashSet<usize> {
            c.iter()
                .scan(0, |off, c| {
                    *off += c.len();
                    Some(*off)
                })
                .collect()
        };
        let common = cuts(&chunks).intersection(&cuts(&other_chunks)).count();
        assert!(common <= 1, "{common} common boundaries"); // only the end
    }

    const PINNED_20MB_LENGTHS: [usize; 15] = [
        1059507, 1084235, 1796055, 1304935, 1400699, 1058852, 3052381, 1548005, 1723154, 1946173, 1225387, 1177925,
        797317, 830754, 966141,
    ];

    #[test]
    fn reads_do_not_affect_boundaries() {
        let data = pseudo_random(1 << 20, 7);
        for seed in [0, 1, u64::MAX] {
            let params = small_params(seed);
            let direct = chunk_all(&data, params);
            let trickled: Vec<Vec<u8>> =
                Chunker::new(Trickle { data: &data, step: seed as usize }, params).collect::<io::Result<_>>().unwrap();
            assert_eq!(direct, trickled);
            assert_eq!(direct.concat(), data);
            let (_, rest) = direct.split_last().unwrap();
            assert!(rest.iter().all(|c| (2048..=32768).contains(&c.len())));
        }
    }

    #[test]
    fn insertion_only_changes_nearby_chunks() {
        let data = pseudo_random(20 << 20, 99);
        let params = ChunkerParams::restic_sizes(RESTIC_TEST_POL);
        let before: HashSet<[u8; 32]> = chunk_all(&data, params).iter().map(|c| sha256(c)).collect();
        let mut shifted = b"a few new bytes".to_vec();
        shifted.extend_from_slice(&data);
        let after_chunks = chunk_all(&shifted, params);
        let changed = after_chunks.iter().filter(|c| !before.contains(&sha256(c))).count();
        assert!(after_chunks.len() > 8);
        assert!((1..=2).contains(&changed), "{changed} chunks changed");
    }

    #[test]
    fn small_chunks_insertion_in_the_middle() {
        let data = pseudo_random(2 << 20, 5);
        let params = small_params(77);
        let before: HashSet<[u8; 32]> = chunk_all(&data, params).iter().map(|c| sha256(c)).collect();
        let mut edited = data[..1 << 20].to_vec();
        edited.extend_from_slice(b"inserted");
        edited.extend_from_slice(&data[1 << 20..]);
        let after = chunk_all(&edited, params);
        let changed = after.iter().filter(|c| !before.contains(&sha256(c))).count();
        assert!(after.len() > 100);
        assert!((1..=3).contains(&changed), "{changed} chunks changed");
    }

    #[test]
    fn io_errors_end_the_iteration() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = self.0.min(buf.len());
                buf[..n].fill(1);
                self.0 -= n;
                Ok(n)
            }
        }
        let mut chunker = Chunker::new(Failing(1000), small_params(0));
        let err = chunker.next().unwrap().unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
        assert!(chunker.next().is_none());
    }

    #[test]
    fn out_of_range_params_are_clamped() {
        let data = pseudo_random(300_000, 3);
        let params = ChunkerParams { min: 1, avg: 3, max: 5, seed: 9 };
        let chunks = chunk_all(&data, params);
        assert_eq!(chunks.concat(), data);
        assert!(chunks.iter().all(|c| c.len() <= 1024));
        let inverted = ChunkerParams { min: 1 << 20, avg: 1000, max: 4096, seed: 9 };
        let chunks = chunk_all(&data, inverted);
        assert_eq!(chunks.concat(), data);
        assert!(chunks.iter().all(|c| c.len() <= 4096));
    }
}
