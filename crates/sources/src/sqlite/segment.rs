//! A replication segment: the transactions one shipment of a continuous SQLite source carries,
//! each with its transaction id and the time it was seen committed, and the log position after
//! the last one (where the next segment, or a resumed replication, goes on).
//!
//! Layout (before the repository compresses and encrypts it): the magic `LBSQLSEG1`, a
//! little-endian `u32` length and that many bytes of JSON ([`Meta`]), then for each commit in
//! order its pages as a `u32` page number and `page_size` bytes.

use serde::{Deserialize, Serialize};

use super::walfile::{Commit, Position};

const MAGIC: &[u8] = b"LBSQLSEG1";

/// One transaction as shipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shipped {
    /// Transaction id: one more than the one before, across generations of a source.
    pub txid: u64,
    /// When replication saw it committed (at most one poll interval after the commit).
    pub time: chrono::DateTime<chrono::Utc>,
    /// Its pages and the database size after it.
    pub commit: Commit,
}

/// A segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The generation it belongs to.
    pub generation: String,
    /// The transactions, in commit order.
    pub commits: Vec<Shipped>,
    /// The log position after the last transaction.
    pub end: Position,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    generation: String,
    end: Position,
    commits: Vec<CommitMeta>,
}

#[derive(Serialize, Deserialize)]
struct CommitMeta {
    txid: u64,
    time: chrono::DateTime<chrono::Utc>,
    db_pages: u32,
    pages: u32,
}

impl Segment {
    /// The first and last transaction ids, `None` when empty.
    pub fn txids(&self) -> Option<(u64, u64)> {
        Some((self.commits.first()?.txid, self.commits.last()?.txid))
    }

    /// The bytes of the segment.
    pub fn encode(&self) -> Vec<u8> {
        let meta = Meta {
            generation: self.generation.clone(),
            end: self.end,
            commits: self
                .commits
                .iter()
                .map(|s| CommitMeta {
                    txid: s.txid,
                    time: s.time,
                    db_pages: s.commit.db_pages,
                    pages: s.commit.pages.len() as u32,
                })
                .collect(),
        };
        let json = serde_json::to_vec(&meta).unwrap_or_default();
        let ps = self.end.header.page_size as usize;
        let pages: usize = self.commits.iter().map(|c| c.commit.pages.len()).sum();
        let mut out = Vec::with_capacity(MAGIC.len() + 4 + json.len() + pages * (4 + ps));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        for s in &self.commits {
            for (pgno, page) in &s.commit.pages {
                out.extend_from_slice(&pgno.to_le_bytes());
                out.extend_from_slice(page);
            }
        }
        out
    }

    /// Parse a segment; the error says what is wrong with it.
    pub fn decode(b: &[u8]) -> Result<Segment, String> {
        let rest = b.strip_prefix(MAGIC).ok_or("not a replication segment (bad magic)")?;
        let (len, rest) = rest.split_at_checked(4).ok_or("truncated segment header")?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (json, mut rest) = rest.split_at_checked(len).ok_or("truncated segment metadata")?;
        let meta: Meta = serde_json::from_slice(json).map_err(|e| format!("bad segment metadata: {e}"))?;
        let ps = meta.end.header.page_size as usize;
        let mut commits = Vec::with_capacity(meta.commits.len());
        for c in meta.commits {
            let mut pages = Vec::with_capacity((c.pages as usize).min(rest.len() / (4 + ps).max(1)));
            for _ in 0..c.pages {
                let (head, tail) = rest.split_at_checked(4 + ps).ok_or("truncated segment pages")?;
                pages.push((u32::from_le_bytes([head[0], head[1], head[2], head[3]]), head[4..].to_vec()));
                rest = tail;
            }
            commits.push(Shipped { txid: c.txid, time: c.time, commit: Commit { pages, db_pages: c.db_pages } });
        }
        if !rest.is_empty() {
            return Err(format!("{} bytes after the last page of the segment", rest.len()));
        }
        Ok(Segment { generation: meta.generation, commits, end: meta.end })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sqlite::walfile::WalHeader;
    use proptest::prelude::*;

    fn header(page_size: u32) -> WalHeader {
        WalHeader { big_endian: false, page_size, checkpoint_seq: 3, salt1: 7, salt2: 9, checksum: [1, 2] }
    }

    proptest! {
        #[test]
        fn segments_round_trip(
            ps in prop::sample::select(vec![512u32, 1024, 4096]),
            commits in prop::collection::vec((1u32..5000, prop::collection::vec((1u32..100_000, any::<u8>()), 0..4)), 0..6),
            frames in any::<u32>(),
        ) {
            let t0 = chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
            let seg = Segment {
                generation: "0000018c2d0f1e2a".into(),
                commits: commits.iter().enumerate().map(|(i, (db, pages))| Shipped {
                    txid: 10 + i as u64,
                    time: t0 + chrono::Duration::milliseconds(i as i64 * 37),
                    commit: Commit { db_pages: *db, pages: pages.iter().map(|(p, fill)| (*p, vec![*fill; ps as usize])).collect() },
                }).collect(),
                end: Position { header: header(ps), frames, checksum: [frames, !frames] },
            };
            let bytes = seg.encode();
            prop_assert_eq!(Segment::decode(&bytes).unwrap(), seg);
        }

        #[test]
        fn damaged_segments_are_errors_not_panics(noise in prop::collection::vec(any::<u8>(), 0..300), cut in 0usize..400) {
            let _ = Segment::decode(&noise);
            let seg = Segment {
                generation: "g".into(),
                commits: vec![Shipped { txid: 1, time: chrono::Utc::now(), commit: Commit { db_pages: 2, pages: vec![(1, vec![5; 512])] } }],
                end: Position { header: header(512), frames: 1, checksum: [0, 0] },
            };
            let bytes = seg.encode();
            let cut = cut.min(bytes.len().saturating_sub(1));
            prop_assert!(Segment::decode(&bytes[..cut]).is_err());
        }
    }
}
