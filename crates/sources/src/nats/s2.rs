//! Decoding the S2 stream format (a Snappy-framing superset by Klaus Post) that NATS stream
//! snapshots are compressed with: framed chunks, each checked with a masked CRC-32C, holding
//! S2 blocks (Snappy's literal/copy elements plus S2's "repeat last offset" copies).
//!
//! Push-based, so a snapshot is decoded while it streams past on its way into the repository.

/// Largest chunk body accepted (S2 blocks are at most 4 MiB; framing allows 16 MiB).
const MAX_CHUNK: usize = 16 << 20;
/// Largest decoded block accepted.
const MAX_BLOCK: usize = 16 << 20;

/// Push-based decoder of an S2 (or Snappy-framed) stream.
#[derive(Default)]
pub struct Decoder {
    pending: Vec<u8>,
    started: bool,
    block: Vec<u8>,
}

impl Decoder {
    /// Feed compressed bytes; every decoded piece goes to `sink` in order.
    pub fn push(&mut self, data: &[u8], sink: &mut dyn FnMut(&[u8]) -> Result<(), String>) -> Result<(), String> {
        self.pending.extend_from_slice(data);
        let mut at = 0;
        while self.pending.len() - at >= 4 {
            let h = &self.pending[at..at + 4];
            let len = usize::from(h[1]) | usize::from(h[2]) << 8 | usize::from(h[3]) << 16;
            if len > MAX_CHUNK {
                return Err(format!("S2 chunk of {len} bytes is too large"));
            }
            if self.pending.len() - at < 4 + len {
                break;
            }
            let kind = h[0];
            let body = at + 4..at + 4 + len;
            at += 4 + len;
            // Borrow the body out of `pending` without copying: take the buffer for a moment.
            let pending = std::mem::take(&mut self.pending);
            let r = self.chunk(kind, &pending[body], sink);
            self.pending = pending;
            r?;
        }
        self.pending.drain(..at);
        Ok(())
    }

    /// The stream ended: fails when it stopped inside a chunk or never started.
    pub fn finish(&self) -> Result<(), String> {
        if !self.pending.is_empty() {
            return Err(format!("S2 stream truncated ({} bytes of an unfinished chunk)", self.pending.len()));
        }
        if !self.started {
            return Err("empty S2 stream".into());
        }
        Ok(())
    }

    fn chunk(
        &mut self,
        kind: u8,
        body: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        if kind == 0xff {
            if body != b"S2sTwO" && body != b"sNaPpY" {
                return Err("not an S2 stream (bad stream identifier)".into());
            }
            self.started = true;
            return Ok(());
        }
        if !self.started {
            return Err("not an S2 stream (no stream identifier)".into());
        }
        match kind {
            0x00 | 0x01 => {
                let crc = body.get(..4).ok_or("S2 chunk shorter than its checksum")?;
                let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
                let data = if kind == 0x00 {
                    decode_block(&body[4..], &mut self.block)?;
                    &self.block[..]
                } else {
                    &body[4..]
                };
                if masked_crc32c(data) != want {
                    return Err("S2 chunk checksum mismatch (corrupt snapshot data)".into());
                }
                sink(data)
            }
            0x02..=0x7f => Err(format!("unsupported S2 chunk type {kind:#x}")),
            _ => Ok(()), // skippable: padding, index
        }
    }
}

fn uvarint(src: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, b) in src.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn le(src: &[u8], at: usize, n: usize) -> Result<usize, String> {
    let b = src.get(at..at + n).ok_or("S2 block truncated")?;
    Ok(b.iter().rev().fold(0usize, |acc, x| acc << 8 | usize::from(*x)))
}

/// Decode one S2 block (varint length, then literal and copy elements) into `dst`.
pub fn decode_block(src: &[u8], dst: &mut Vec<u8>) -> Result<(), String> {
    let (n, mut s) = uvarint(src).ok_or("S2 block has no length")?;
    let n = usize::try_from(n).map_err(|_| "S2 block length out of range")?;
    if n > MAX_BLOCK {
        return Err(format!("S2 block of {n} bytes is too large"));
    }
    dst.clear();
    dst.reserve(n);
    let mut offset = 0usize;
    while s < src.len() {
        let tag = src[s];
        let length;
        match tag & 3 {
            0 => {
                let x = usize::from(tag >> 2);
                let (len, skip) = match x {
                    0..=59 => (x + 1, 1),
                    _ => (le(src, s + 1, x - 59)? + 1, 1 + x - 59),
                };
                s += skip;
                let lit = src.get(s..s + len).ok_or("S2 literal runs past the block")?;
                if dst.len() + len > n {
                    return Err("S2 literal runs past the decoded length".into());
                }
                dst.extend_from_slice(lit);
                s += len;
                continue;
            }
            1 => {
                let b1 = usize::from(*src.get(s + 1).ok_or("S2 block truncated")?);
                let toffset = (usize::from(tag) & 0xe0) << 3 | b1;
                let code = usize::from(tag >> 2) & 7;
                s += 2;
                let mut len = code;
                if toffset == 0 {
                    // S2 "repeat": copy again from the last offset, with a longer length.
                    match code {
                        5 => (len, s) = (le(src, s, 1)? + 4, s + 1),
                        6 => (len, s) = (le(src, s, 2)? + (1 << 8), s + 2),
                        7 => (len, s) = (le(src, s, 3)? + (1 << 16), s + 3),
                        _ => {}
                    }
                } else {
                    offset = toffset;
                }
                length = len + 4;
            }
            2 => {
                offset = le(src, s + 1, 2)?;
                length = 1 + usize::from(tag >> 2);
                s += 3;
            }
            _ => {
                offset = le(src, s + 1, 4)?;
                length = 1 + usize::from(tag >> 2);
                s += 5;
            }
        }
        if offset == 0 || offset > dst.len() || dst.len() + length > n {
            return Err("S2 copy out of range (corrupt block)".into());
        }
        let start = dst.len() - offset;
        // Overlapping copies repeat the pattern, so copy forward byte by byte when they overlap.
        if offset >= length {
            dst.extend_from_within(start..start + length);
        } else {
            for i in 0..length {
                let b = dst[start + i];
                dst.push(b);
            }
        }
    }
    if dst.len() != n {
        return Err(format!("S2 block decoded to {} bytes, expected {n}", dst.len()));
    }
    Ok(())
}

/// CRC-32C (Castagnoli), with the CPU's CRC32 instruction where it has one (the `crc32c`
/// crate): a table lookup per byte held a 200 MB stream snapshot for 0.3 s on each of backup
/// and restore.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// The masked CRC-32C Snappy framing stores.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// The stream identifier chunk every S2 stream starts with.
pub const STREAM_HEADER: &[u8] = b"\xff\x06\x00\x00S2sTwO";

/// Largest piece [`frame_chunk`] should be given (readers accept blocks up to 4 MiB).
pub const FRAME_PIECE: usize = 64 << 10;

/// Append `piece` to `out` as an uncompressed S2 chunk (valid S2 that any reader accepts).
/// Restores send snapshots this way: Lifeboat stores them decoded, zstd compresses better.
pub fn frame_chunk(piece: &[u8], out: &mut Vec<u8>) {
    let len = piece.len() + 4;
    out.extend_from_slice(&[0x01, len as u8, (len >> 8) as u8, (len >> 16) as u8]);
    out.extend_from_slice(&masked_crc32c(piece).to_le_bytes());
    out.extend_from_slice(piece);
}

/// `data` as a whole S2 stream of uncompressed chunks.
#[cfg(test)]
pub fn frame_uncompressed(data: &[u8]) -> Vec<u8> {
    let mut out = STREAM_HEADER.to_vec();
    for piece in data.chunks(FRAME_PIECE) {
        frame_chunk(piece, &mut out);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const fn crc_table() -> [u32; 256] {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0x82f6_3b78 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    }

    static CRC_TABLE: [u32; 256] = crc_table();

    /// The byte-at-a-time definition, to check the fast one against.
    fn crc32c_bytewise(data: &[u8]) -> u32 {
        !data.iter().fold(!0u32, |c, b| CRC_TABLE[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8))
    }

    #[test]
    fn crc32c_matches_the_bytewise_definition_at_every_length_and_alignment() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        for start in 0..9 {
            for len in [0, 1, 7, 8, 9, 63, 64, 65, 1000, 4096, 4990] {
                let piece = &data[start..start + len];
                assert_eq!(crc32c(piece), crc32c_bytewise(piece), "start {start} len {len}");
            }
        }
    }

    fn decode_all(stream: &[u8], piece: usize) -> Result<Vec<u8>, String> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for p in stream.chunks(piece.max(1)) {
            d.push(p, &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            })?;
        }
        d.finish()?;
        Ok(out)
    }

    #[test]
    fn crc32c_known_answers() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
    }

    #[test]
    fn uncompressed_chunks_round_trip_whatever_the_push_sizes() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let s = frame_uncompressed(&data);
        for piece in [1, 3, 4096, 1 << 20] {
            assert_eq!(decode_all(&s, piece).unwrap(), data);
        }
    }

    /// A compressed chunk around a hand-made block.
    fn compressed_stream(block: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut out = vec![0xff, 6, 0, 0];
        out.extend_from_slice(b"S2sTwO");
        let len = block.len() + 4;
        out.extend_from_slice(&[0x00, len as u8, (len >> 8) as u8, (len >> 16) as u8]);
        out.extend_from_slice(&masked_crc32c(plain).to_le_bytes());
        out.extend_from_slice(block);
        out
    }

    #[test]
    fn literal_copy_and_repeat_elements_decode() {
        // "abcd" literal; copy1 offset 4 len 4 -> "abcdabcd"; repeat (offset 0) len 4+1=5 ->
        // "abcdabcdabcda"; copy2 offset 2 len 3 -> overlapping "dad"; long literal (tag 60).
        let long: Vec<u8> = (0..100u8).collect();
        let mut plain = b"abcdabcdabcda".to_vec();
        plain.extend_from_slice(b"dad");
        plain.extend_from_slice(&long);
        let mut block = vec![plain.len() as u8];
        block.extend_from_slice(&[3 << 2, b'a', b'b', b'c', b'd']);
        block.extend_from_slice(&[0b0000_0001, 4]); // copy1: len 0+4, offset 4
        block.extend_from_slice(&[0b0000_0101, 0]); // repeat: code 1 -> len 5
        block.extend_from_slice(&[(2 << 2) | 2, 2, 0]); // copy2: len 3, offset 2
        block.extend_from_slice(&[60 << 2, 99]);
        block.extend_from_slice(&long);
        assert_eq!(decode_all(&compressed_stream(&block, &plain), 5).unwrap(), plain);
    }

    #[test]
    fn corruption_is_reported_not_panicked() {
        let data = b"hello snapshot".repeat(100);
        let mut s = frame_uncompressed(&data);
        let last = s.len() - 1;
        s[last] ^= 1;
        assert!(decode_all(&s, 7).unwrap_err().contains("checksum"));
        let s = frame_uncompressed(&data);
        assert!(decode_all(&s[..s.len() - 3], 7).unwrap_err().contains("truncated"));
        assert!(decode_all(b"\x00\x01\x00\x00x", 7).unwrap_err().contains("stream identifier"));
        assert!(decode_all(b"", 7).is_err());
        for block in [&[5u8, 0b0000_0001, 9][..], &[3, 12 << 2, 1], &[200], &[2, 0b0010_0001, 0], &[]] {
            let s = compressed_stream(block, b"");
            assert!(decode_all(&s, 64).is_err(), "{block:?}");
        }
    }
}
