//! Reading the messages out of a JetStream stream snapshot while it streams past.
//!
//! A snapshot (`$JS.API.STREAM.SNAPSHOT`) is an S2-compressed tar of the stream's store
//! directory: `meta.inf`, and per message block `msgs/N.idx` (counts, first/last sequence,
//! deleted sequences, checksum of the last record) then `msgs/N.blk` (the records), then the
//! consumers. This module decodes that layout as NATS 2.9 writes it and decides, the way the
//! server's own recovery does, which records are live messages: that gives the exact count and
//! first/last sequence of what a restore of the snapshot will hold (the server's reported
//! state is taken before the blocks are read, so it can be lower while publishers publish),
//! and lets a snapshot be restored message by message (under a new name, or a time range).
//!
//! Record layout in a block: `len u32 | seq u64 | ts i64 | subject_len u16 | subject |
//! [hdr_len u32 | hdrs] | data | hash [8]` (little endian; bit 31 of `len` = has headers,
//! bit 63 of `seq` = erased).

use std::collections::{BTreeSet, HashMap};

/// Largest tar member kept in memory (message blocks are 8 MiB by default, 16 MiB at most).
const MAX_MEMBER: u64 = 64 << 20;
const HEADER_BIT: u32 = 1 << 31;
const ERASED_BIT: u64 = 1 << 63;
const RECORD_HEADER: usize = 22;
const HASH_LEN: usize = 8;

/// One live message record, borrowed from its block.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Stream sequence.
    pub seq: u64,
    /// Store time, ns since the epoch.
    pub ts: i64,
    /// Subject.
    pub subject: &'a [u8],
    /// Header block, if any.
    pub headers: Option<&'a [u8]>,
    /// Payload.
    pub data: &'a [u8],
    /// Record length as the server accounts it (its `bytes` state).
    pub size: u64,
}

/// What a snapshot holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    /// Live messages.
    pub messages: u64,
    /// Sequence and store time of the first live message.
    pub first: Option<(u64, i64)>,
    /// Sequence and store time of the last live message.
    pub last: Option<(u64, i64)>,
    /// Sum of record lengths of live messages (comparable with the stream state's `bytes`).
    pub bytes: u64,
    /// Message blocks read.
    pub blocks: u64,
    /// Whether the layout was the one this reader knows (NATS 2.9: an `.idx` before every
    /// `.blk`). When false the counts above are not trustworthy.
    pub understood: bool,
}

/// The `.idx` of a block (NATS 2.9 format: magic 22, version 1).
#[derive(Debug, Default, Clone)]
struct Index {
    first_seq: u64,
    last_seq: u64,
    /// Whether the whole index parsed and is consistent (then the server trusts it when its
    /// last-record checksum matches the block).
    complete: bool,
    msgs: u64,
    last_hash: [u8; 8],
    deleted: BTreeSet<u64>,
}

fn uvarint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let x = *b.get(*at + i)?;
        v |= u64::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            *at += i + 1;
            return Some(v);
        }
    }
    None
}

fn varint(b: &[u8], at: &mut usize) -> Option<i64> {
    let u = uvarint(b, at)?;
    Some(((u >> 1) as i64) ^ -((u & 1) as i64))
}

/// Parse an index file the way `readIndexInfo` does: on a bad header nothing is known; on a
/// short or inconsistent file the first sequence is known but not the deleted set.
fn parse_index(b: &[u8]) -> Index {
    let mut ix = Index::default();
    if b.len() < 2 || b[0] != 22 || b[1] != 1 {
        return ix;
    }
    let mut at = 2;
    let mut next = || uvarint(b, &mut at).map(|v| v & !ERASED_BIT);
    let (msgs, _bytes, first) = (next(), next(), next());
    ix.first_seq = first.unwrap_or(0);
    let mut at2 = at;
    let _first_ts = varint(b, &mut at2);
    let last = uvarint(b, &mut at2).map(|v| v & !ERASED_BIT);
    let _last_ts = varint(b, &mut at2);
    let dlen = uvarint(b, &mut at2);
    let (Some(msgs), Some(last), Some(dlen)) = (msgs, last, dlen) else { return ix };
    ix.last_seq = last;
    if at2 + HASH_LEN > b.len() || msgs != (last + 1).wrapping_sub(ix.first_seq).wrapping_sub(dlen) {
        return ix;
    }
    ix.last_hash.copy_from_slice(&b[at2..at2 + HASH_LEN]);
    at2 += HASH_LEN;
    for _ in 0..dlen {
        match uvarint(b, &mut at2) {
            Some(0) | None => break,
            Some(d) => {
                ix.deleted.insert(d + ix.first_seq);
            }
        }
    }
    (ix.msgs, ix.complete) = (msgs, true);
    ix
}

/// Call `f` for every live record of a block, mirroring the server's recovery: records before
/// the index's first sequence, erased or listed as deleted are skipped; a malformed record ends
/// the block (the server truncates there).
fn walk_block(blk: &[u8], ix: &Index, f: &mut dyn FnMut(&Record<'_>) -> Result<(), String>) -> Result<(), String> {
    let trusted = ix.complete && ((blk.is_empty() && ix.msgs == 0) || blk.ends_with(&ix.last_hash));
    let mut at = 0usize;
    while at + RECORD_HEADER <= blk.len() {
        let h = &blk[at..at + RECORD_HEADER];
        let raw_len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let has_hdrs = raw_len & HEADER_BIT != 0;
        let rl = (raw_len & !HEADER_BIT) as usize;
        let seq = u64::from_le_bytes([h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11]]);
        let ts = i64::from_le_bytes([h[12], h[13], h[14], h[15], h[16], h[17], h[18], h[19]]);
        let slen = usize::from(u16::from_le_bytes([h[20], h[21]]));
        if !(RECORD_HEADER + HASH_LEN..=32 << 20).contains(&rl) || at + rl > blk.len() || slen > rl - RECORD_HEADER {
            return Ok(());
        }
        let body = &blk[at + RECORD_HEADER..at + rl - HASH_LEN];
        at += rl;
        let live = seq != 0
            && seq & ERASED_BIT == 0
            && seq >= ix.first_seq
            && !ix.deleted.contains(&seq)
            && (!trusted || seq <= ix.last_seq);
        if !live {
            continue;
        }
        let subject = body.get(..slen).ok_or("record shorter than its subject")?;
        let (headers, data) = if has_hdrs {
            let l = body.get(slen..slen + 4).ok_or("record shorter than its header length")?;
            let hl = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
            let hdrs = body.get(slen + 4..slen + 4 + hl).ok_or("record shorter than its headers")?;
            (Some(hdrs), &body[slen + 4 + hl..])
        } else {
            (None, &body[slen..])
        };
        f(&Record { seq, ts, subject, headers, data, size: rl as u64 })?;
    }
    Ok(())
}

/// Receives each kept tar member: name, type flag, content.
type OnFile<'a> = dyn FnMut(&str, u8, Vec<u8>) -> Result<(), String> + 'a;

/// A tar member being read.
struct Member {
    name: String,
    kind: u8,
    remaining: u64,
    padding: u64,
    keep: Option<Vec<u8>>,
}

/// Push-based reader of the tar inside the S2 stream.
#[derive(Default)]
struct Tar {
    header: Vec<u8>,
    member: Option<Member>,
    skip: u64,
    ended: bool,
    pax_path: Option<String>,
    pax_size: Option<u64>,
}

fn octal(field: &[u8]) -> Result<u64, String> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256 for large values.
        return Ok(field[1..].iter().fold(0u64, |a, b| a << 8 | u64::from(*b)));
    }
    let s: String = field.iter().take_while(|b| **b != 0).map(|b| *b as char).collect();
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| format!("bad tar number {s:?}"))
}

fn cstr(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.iter().position(|x| *x == 0).unwrap_or(b.len())]).into_owned()
}

impl Tar {
    /// Feed decoded tar bytes; complete members we keep go to `on_file`.
    fn push(&mut self, mut data: &[u8], on_file: &mut OnFile<'_>) -> Result<(), String> {
        while !data.is_empty() && !self.ended {
            if self.skip > 0 {
                let n = (self.skip as usize).min(data.len());
                (self.skip, data) = (self.skip - n as u64, &data[n..]);
            } else if let Some(m) = &mut self.member {
                let n = (m.remaining as usize).min(data.len());
                if let Some(k) = &mut m.keep {
                    k.extend_from_slice(&data[..n]);
                }
                (m.remaining, data) = (m.remaining - n as u64, &data[n..]);
                if m.remaining == 0 {
                    if let Some(m) = self.member.take() {
                        self.skip = m.padding;
                        self.member_done(m, on_file)?;
                    }
                }
            } else {
                let n = (512 - self.header.len()).min(data.len());
                self.header.extend_from_slice(&data[..n]);
                data = &data[n..];
                if self.header.len() < 512 {
                    continue;
                }
                let h = std::mem::take(&mut self.header);
                if h.iter().all(|b| *b == 0) {
                    self.ended = true; // end-of-archive marker
                    continue;
                }
                let m = self.start_member(&h)?;
                if m.remaining > 0 {
                    self.member = Some(m);
                } else {
                    self.skip = m.padding;
                    self.member_done(m, on_file)?;
                }
            }
        }
        Ok(())
    }

    fn start_member(&mut self, h: &[u8]) -> Result<Member, String> {
        let mut name = cstr(&h[..100]);
        if &h[257..262] == b"ustar" {
            let prefix = cstr(&h[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        let name = self.pax_path.take().unwrap_or(name);
        let size = match self.pax_size.take() {
            Some(s) => s,
            None => octal(&h[124..136])?,
        };
        let kind = h[156];
        let wanted = kind == b'x' || name == "errors.txt" || is_block_file(&name);
        if wanted && size > MAX_MEMBER {
            return Err(format!("snapshot member {name} is too large ({size} bytes)"));
        }
        let keep = wanted.then(|| Vec::with_capacity(size as usize));
        Ok(Member { name, kind, remaining: size, padding: (512 - size % 512) % 512, keep })
    }

    fn member_done(&mut self, m: Member, on_file: &mut OnFile<'_>) -> Result<(), String> {
        let Some(content) = m.keep else { return Ok(()) };
        if m.kind == b'x' {
            self.pax(&content);
            return Ok(());
        }
        on_file(&m.name, m.kind, content)
    }

    /// PAX records `LEN key=value\n`: only `path` and `size` matter here.
    fn pax(&mut self, content: &[u8]) {
        for rec in String::from_utf8_lossy(content).split('\n') {
            let Some((_, kv)) = rec.split_once(' ') else { continue };
            match kv.split_once('=') {
                Some(("path", v)) => self.pax_path = Some(v.to_string()),
                Some(("size", v)) => self.pax_size = v.parse().ok(),
                _ => {}
            }
        }
    }
}

fn is_block_file(name: &str) -> bool {
    name.strip_prefix("msgs/").is_some_and(|f| f.ends_with(".idx") || f.ends_with(".blk"))
}

fn block_index(name: &str) -> Option<u32> {
    name.strip_prefix("msgs/")?.split('.').next()?.parse().ok()
}

/// The block-level state: index files waiting for their block, and the counts.
#[derive(Default)]
struct Blocks {
    indexes: HashMap<u32, Index>,
    contents: Contents,
}

impl Blocks {
    fn file(
        &mut self,
        name: &str,
        content: &[u8],
        f: &mut dyn FnMut(&Record<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        if name == "errors.txt" {
            return Err(format!(
                "the server could not complete the snapshot: {}",
                String::from_utf8_lossy(content).trim()
            ));
        }
        let Some(n) = block_index(name) else { return Ok(()) };
        if name.ends_with(".idx") {
            self.indexes.insert(n, parse_index(content));
            return Ok(());
        }
        // NATS 2.9 writes each block's index just before the block; without it (other
        // versions' layouts) the counts cannot be trusted.
        let ix = self.indexes.remove(&n).unwrap_or_else(|| {
            self.contents.understood = false;
            Index::default()
        });
        self.contents.blocks += 1;
        let c = &mut self.contents;
        walk_block(content, &ix, &mut |r| {
            c.messages += 1;
            c.bytes += r.size;
            c.first.get_or_insert((r.seq, r.ts));
            c.last = Some((r.seq, r.ts));
            f(r)
        })
    }
}

/// Reads a snapshot's tar (already S2-decoded): feed it with [`SnapshotReader::push`], end with
/// [`SnapshotReader::finish`]; every live message goes to the callback given to `push`.
pub struct SnapshotReader {
    tar: Tar,
    blocks: Blocks,
}

impl Default for SnapshotReader {
    fn default() -> Self {
        let blocks = Blocks { contents: Contents { understood: true, ..Contents::default() }, ..Blocks::default() };
        SnapshotReader { tar: Tar::default(), blocks }
    }
}

impl SnapshotReader {
    /// Feed tar bytes.
    pub fn push(&mut self, data: &[u8], f: &mut dyn FnMut(&Record<'_>) -> Result<(), String>) -> Result<(), String> {
        let SnapshotReader { tar, blocks } = self;
        tar.push(data, &mut |name, _kind, content| blocks.file(name, &content, f))
    }

    /// The stream ended: the counts, or why the snapshot is incomplete.
    pub fn finish(self) -> Result<Contents, String> {
        if self.tar.member.is_some() || !self.tar.header.is_empty() || !self.tar.ended {
            return Err("snapshot ends inside a file (truncated)".into());
        }
        Ok(self.blocks.contents)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A record as NATS 2.9 writes it (hash: any 8 bytes; the reader does not check it).
    pub fn record(seq: u64, ts: i64, subject: &str, hdrs: Option<&[u8]>, data: &[u8], hash: [u8; 8]) -> Vec<u8> {
        let hl = hdrs.map_or(0, |h| h.len() + 4);
        let rl = (RECORD_HEADER + subject.len() + hl + data.len() + HASH_LEN) as u32;
        let mut r = (if hdrs.is_some() { rl | HEADER_BIT } else { rl }).to_le_bytes().to_vec();
        r.extend_from_slice(&seq.to_le_bytes());
        r.extend_from_slice(&ts.to_le_bytes());
        r.extend_from_slice(&(subject.len() as u16).to_le_bytes());
        r.extend_from_slice(subject.as_bytes());
        if let Some(h) = hdrs {
            r.extend_from_slice(&(h.len() as u32).to_le_bytes());
            r.extend_from_slice(h);
        }
        r.extend_from_slice(data);
        r.extend_from_slice(&hash);
        r
    }

    pub fn index(msgs: u64, first: u64, last: u64, deleted: &[u64], last_hash: [u8; 8]) -> Vec<u8> {
        let mut b = vec![22, 1];
        for v in [msgs, 0, first] {
            put_uvarint(&mut b, v);
        }
        put_uvarint(&mut b, 0); // first ts (zig-zag 0)
        put_uvarint(&mut b, last);
        put_uvarint(&mut b, 0);
        put_uvarint(&mut b, deleted.len() as u64);
        b.extend_from_slice(&last_hash);
        for d in deleted {
            put_uvarint(&mut b, d - first);
        }
        b
    }

    fn tar_header(name: &str, size: usize, kind: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h
    }

    /// A tar with a PAX header before every member, like Go's `tar.FormatPAX`.
    pub fn tar(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut t = Vec::new();
        for (name, content) in files {
            // "LEN path=NAME\n", LEN counting the whole record (two digits here).
            let pax = format!("30 mtime=1700000000.123456789\n{} path={name}\n", 9 + name.len());
            for (body, h) in [
                (pax.as_bytes(), tar_header("PaxHeaders/x", pax.len(), b'x')),
                (&content[..], tar_header("ignored", content.len(), b'0')),
            ] {
                t.extend_from_slice(&h);
                t.extend_from_slice(body);
                t.resize(t.len().div_ceil(512) * 512, 0);
            }
        }
        t.extend_from_slice(&[0u8; 1024]);
        t
    }

    type Seen = Vec<(u64, String, Option<Vec<u8>>, Vec<u8>)>;

    fn read(stream: &[u8], piece: usize) -> Result<(Contents, Seen), String> {
        let mut r = SnapshotReader::default();
        let mut seen = Vec::new();
        for p in stream.chunks(piece) {
            r.push(p, &mut |rec| {
                let s = String::from_utf8_lossy(rec.subject).into_owned();
                seen.push((rec.seq, s, rec.headers.map(<[u8]>::to_vec), rec.data.to_vec()));
                Ok(())
            })?;
        }
        Ok((r.finish()?, seen))
    }

    #[test]
    fn live_messages_follow_the_servers_recovery_rules() {
        let h = b"NATS/1.0\r\nA: 1\r\n\r\n";
        // Block 1 (index trusted: its last hash matches): seq 1 below first (purged), 2 live,
        // 3 deleted in the index, 4 erased, 5 live with headers.
        let mut b1 = record(1, 10, "a", None, b"gone", [1; 8]);
        b1.extend(record(2, 20, "a.b", None, b"two", [2; 8]));
        b1.extend(record(3, 30, "a", None, b"deleted", [3; 8]));
        b1.extend(record(4 | ERASED_BIT, 40, "", None, b"", [4; 8]));
        b1.extend(record(5, 50, "a.c", Some(h), b"five", [5; 8]));
        let i1 = index(2, 2, 5, &[3, 4], [5; 8]);
        // Block 2: the index is stale (a record was appended after it was written), so the
        // block is rebuilt from its records: 6 and 7 are live, 8 is erased.
        let mut b2 = record(6, 60, "a", None, b"six", [6; 8]);
        let i2 = index(1, 6, 6, &[], [6; 8]);
        b2.extend(record(7, 70, "a", None, b"seven", [7; 8]));
        b2.extend(record(8 | ERASED_BIT, 80, "", None, b"", [8; 8]));
        let t = tar(&[
            ("meta.inf", b"{}".to_vec()),
            ("msgs/1.idx", i1),
            ("msgs/1.blk", b1),
            ("msgs/2.idx", i2),
            ("msgs/2.blk", b2),
            ("obs/c1/o.dat", vec![1, 2, 3]),
        ]);
        for piece in [1, 700, 1 << 20] {
            let (c, seen) = read(&t, piece).unwrap();
            let seqs: Vec<u64> = seen.iter().map(|s| s.0).collect();
            assert_eq!(seqs, [2, 5, 6, 7]);
            assert_eq!(
                (c.messages, c.first, c.last, c.blocks, c.understood),
                (4, Some((2, 20)), Some((7, 70)), 2, true)
            );
            assert_eq!(seen[1], (5, "a.c".to_string(), Some(h.to_vec()), b"five".to_vec()));
        }
    }

    #[test]
    fn server_errors_and_truncation_fail_the_snapshot() {
        let t = tar(&[("meta.inf", b"{}".to_vec()), ("errors.txt", b"Could not read message block [1]".to_vec())]);
        let e = read(&t, 100).unwrap_err();
        assert!(e.contains("Could not read message block"), "{e}");
        let t =
            tar(&[("msgs/1.idx", index(1, 1, 1, &[], [9; 8])), ("msgs/1.blk", record(1, 1, "a", None, b"x", [9; 8]))]);
        assert!(read(&t[..700], 100).unwrap_err().contains("truncated"));
        assert!(read(&t[..t.len() - 1024], 100).unwrap_err().contains("truncated"), "no end-of-archive marker");
    }

    #[test]
    fn a_block_without_index_is_flagged_as_unknown_layout() {
        let t = tar(&[("msgs/1.blk", record(1, 1, "a", None, b"x", [9; 8]))]);
        let (c, _) = read(&t, 512).unwrap();
        assert!(!c.understood);
        let (c, _) = read(&tar(&[("meta.inf", b"{}".to_vec())]), 512).unwrap();
        assert!(c.understood && c.messages == 0);
    }
}
