//! Framed `lifeboat/` objects: records appended one after the other to one object instead of
//! one object each (continuous replication ships a segment every few hundred milliseconds; one
//! file and one `fdatasync` per shipment instead of a new file, a rename and two fsyncs).
//!
//! A framed object is a sequence of frames, each a little-endian `u32` length and that many
//! bytes of an unpacked file (compressed and encrypted on its own, as
//! [`Repository::encode_unpacked`] makes it). Names tell the two states apart:
//! * `….open` ([`OPEN_SUFFIX`]): being appended to. A crash may leave a torn last frame, which
//!   readers ignore ([`Tail::MayBeTorn`]): it was never reported durable.
//! * `….frames` ([`FRAMED_SUFFIX`]): finished (renamed from `.open`, or rewritten without the
//!   torn tail); every frame must decode ([`Tail::Strict`]).
//!
//! A frame that does not decode with valid frames after it is damage in either state, never a
//! torn tail.

use crate::{RepoError, Repository, Result};

/// Suffix of a framed object still being appended to.
pub const OPEN_SUFFIX: &str = ".open";
/// Suffix of a finished framed object.
pub const FRAMED_SUFFIX: &str = ".frames";

/// How the end of a framed object is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Every byte belongs to a valid frame (a finished object).
    Strict,
    /// The last frame may be torn by a crash during its append (an open object).
    MayBeTorn,
}

/// The frames of an object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Each frame's plaintext, in order.
    pub frames: Vec<Vec<u8>>,
    /// Bytes of the object the frames take (the object without its torn tail).
    pub valid: usize,
    /// Whether a torn tail was left out.
    pub torn: bool,
}

/// The frame holding `plaintext`, to append to a framed object.
pub fn encode(repo: &Repository, plaintext: &[u8]) -> Vec<u8> {
    let body = repo.encode_unpacked(plaintext);
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decode the frames of `data`, the bytes of the framed object `what` (for messages).
pub fn decode(repo: &Repository, what: &str, data: &[u8], tail: Tail) -> Result<Decoded> {
    let mut out = Decoded::default();
    let mut at = 0;
    while at < data.len() {
        let bad = |reason: String| RepoError::corrupt(format!("framed object {what}"), reason);
        // Where this frame says it ends, and its plaintext if it decodes.
        let len = data.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let end = len.map(|l| at + 4 + l);
        let plain = match end {
            Some(end) if end <= data.len() => repo.decode_unpacked(&data[at + 4..end]),
            _ => Err(format!("frame at byte {at} runs past the end ({} bytes)", data.len())),
        };
        match plain {
            Ok(p) => {
                out.frames.push(p);
                at = end.unwrap_or(data.len());
            }
            // A torn append: the frame reaches the end, or only zeros follow where it starts
            // (a file system that extended the file before writing the data).
            Err(_)
                if tail == Tail::MayBeTorn
                    && (end.is_none_or(|e| e >= data.len()) || data[at..].iter().all(|&b| b == 0)) =>
            {
                out.torn = true;
                break;
            }
            Err(e) => return Err(bad(format!("frame at byte {at}: {e}"))),
        }
    }
    out.valid = at;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use lifeboat_backend::LocalBackend;

    use super::*;
    use crate::InitOptions;

    fn repo(dir: &std::path::Path) -> Repository {
        let backend = Arc::new(LocalBackend::new(dir));
        let opts = InitOptions { kdf: lifeboat_crypto::KdfParams { n: 1024, r: 8, p: 1 }, chunker_polynomial: None };
        Repository::init(backend, b"pw", &opts).unwrap()
    }

    #[test]
    fn a_torn_tail_is_left_out_of_an_open_object_and_damage_is_never_a_tail() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let records: Vec<Vec<u8>> = (0..4).map(|i| format!("record {i} ").repeat(40 + i * 30).into_bytes()).collect();
        let frames: Vec<Vec<u8>> = records.iter().map(|r| encode(&repo, r)).collect();
        let whole: Vec<u8> = frames.concat();
        let all = decode(&repo, "x", &whole, Tail::Strict).unwrap();
        assert_eq!((all.frames.clone(), all.valid, all.torn), (records.clone(), whole.len(), false));
        // Cut anywhere: an open object yields the frames wholly before the cut; a finished one
        // is damaged unless the cut falls between frames.
        let ends: Vec<usize> = frames
            .iter()
            .scan(0, |n, f| {
                *n += f.len();
                Some(*n)
            })
            .collect();
        for cut in 0..whole.len() {
            let d = decode(&repo, "x", &whole[..cut], Tail::MayBeTorn).unwrap();
            let whole_frames = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(d.frames, records[..whole_frames].to_vec(), "cut at {cut}");
            assert_eq!(d.valid, if whole_frames == 0 { 0 } else { ends[whole_frames - 1] });
            assert_eq!(d.torn, cut != d.valid);
            assert_eq!(decode(&repo, "x", &whole[..cut], Tail::Strict).is_ok(), cut == d.valid, "cut at {cut}");
        }
        // Zeros where the next frame should be (a file extended before its data was written).
        let mut zeros = frames[0].clone();
        zeros.extend(std::iter::repeat_n(0u8, 500));
        let d = decode(&repo, "x", &zeros, Tail::MayBeTorn).unwrap();
        assert_eq!((d.frames.len(), d.valid, d.torn), (1, frames[0].len(), true));
        // A damaged frame with a good one after it is damage, open or not.
        let mut flipped = whole.clone();
        flipped[ends[0] + 20] ^= 1;
        for tail in [Tail::Strict, Tail::MayBeTorn] {
            let e = decode(&repo, "x", &flipped, tail).unwrap_err().to_string();
            assert!(e.contains(&format!("frame at byte {}", ends[0])), "{e}");
        }
    }
}
