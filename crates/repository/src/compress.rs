//! Compression settings and the zstd calls of the engine.

use std::fmt;
use std::str::FromStr;

/// How blobs and unpacked files are compressed (repository version 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    /// Store uncompressed.
    Off,
    /// zstd at a fast default level (level 2; restic calls its default "auto").
    #[default]
    Auto,
    /// zstd at a high level (restic's "max").
    Max,
    /// zstd at an explicit level (1–22).
    Level(i32),
}

impl Compression {
    /// The zstd level, or `None` when compression is off.
    pub fn level(self) -> Option<i32> {
        match self {
            Compression::Off => None,
            Compression::Auto => Some(2),
            Compression::Max => Some(15),
            Compression::Level(n) => Some(n),
        }
    }
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let level = s.strip_prefix("zstd:").unwrap_or(&s);
        match level {
            "off" | "none" => Ok(Compression::Off),
            "auto" | "zstd" => Ok(Compression::Auto),
            "max" => Ok(Compression::Max),
            n => match n.parse::<i32>() {
                Ok(n) if (1..=22).contains(&n) => Ok(Compression::Level(n)),
                _ => Err(format!("invalid compression {s:?}: expected off, auto, max or a zstd level 1-22")),
            },
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Off => f.write_str("off"),
            Compression::Auto => f.write_str("auto"),
            Compression::Max => f.write_str("max"),
            Compression::Level(n) => write!(f, "zstd:{n}"),
        }
    }
}

thread_local! {
    // zstd contexts are expensive to create (hundreds of KiB of tables); reuse one per thread.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// The compressor in `slot`, made (again) when it is missing or for another level.
fn context<'s>(
    slot: &'s mut Option<(i32, zstd::bulk::Compressor<'static>)>,
    level: i32,
) -> Option<&'s mut zstd::bulk::Compressor<'static>> {
    if slot.as_ref().is_none_or(|(l, _)| *l != level) {
        *slot = Some((level, zstd::bulk::Compressor::new(level).ok()?));
    }
    slot.as_mut().map(|(_, c)| c)
}

/// Compress `data` at `level`; `None` when the result would not be smaller.
pub(crate) fn compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let out = context(&mut cell.borrow_mut(), level)?.compress(data).ok()?;
        (out.len() < data.len()).then_some(out)
    })
}

/// A zstd context and an output buffer, for compressing one blob after another (the backup's
/// storing threads share a few of these instead of holding one each).
#[derive(Default)]
pub(crate) struct Scratch {
    ctx: Option<(i32, zstd::bulk::Compressor<'static>)>,
    /// The last compressed blob.
    pub(crate) out: Vec<u8>,
}

impl Scratch {
    /// Compress `data` at `level` into `self.out` (cleared first); `false` when the result would
    /// not be smaller, in which case `out` holds nothing useful. Reuses `out`'s allocation.
    pub(crate) fn compress(&mut self, data: &[u8], level: i32) -> bool {
        let Some(c) = context(&mut self.ctx, level) else { return false };
        self.out.clear();
        self.out.reserve(zstd::zstd_safe::compress_bound(data.len()));
        matches!(c.compress_to_buffer(data, &mut self.out), Ok(n) if n < data.len())
    }

    /// Free an output buffer larger than `keep` bytes (a large chunk's), keeping the context.
    pub(crate) fn shrink(&mut self, keep: usize) {
        if self.out.capacity() > keep {
            self.out = Vec::new();
        }
    }
}

/// Decompress a zstd frame whose plaintext is `expected` bytes (when known).
pub(crate) fn decompress(data: &[u8], expected: Option<usize>) -> std::io::Result<Vec<u8>> {
    match expected {
        Some(n) => {
            let out = DECOMPRESSOR.with(|cell| -> std::io::Result<Vec<u8>> {
                let mut slot = cell.borrow_mut();
                if slot.is_none() {
                    *slot = Some(zstd::bulk::Decompressor::new()?);
                }
                match slot.as_mut() {
                    Some(d) => d.decompress(data, n),
                    None => zstd::bulk::decompress(data, n),
                }
            })?;
            if out.len() != n {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("decompressed {} bytes, expected {n}", out.len()),
                ));
            }
            Ok(out)
        }
        // An unpacked file (index, snapshot, tree listing) is one frame that records its size:
        // decompressed with this thread's context, not a new streaming decoder per file (at
        // 5,000 index files that was 14 % of an unchanged backup). Several frames (a large file
        // compressed in parallel) or no recorded size take the streaming path.
        None => match single_frame_size(data) {
            Some(n) => decompress(data, Some(n)),
            None => zstd::stream::decode_all(data),
        },
    }
}

/// The plaintext size of `data` when it is exactly one zstd frame that records it (and it is
/// below 1 GiB, the most an unpacked file is trusted to allocate up front).
fn single_frame_size(data: &[u8]) -> Option<usize> {
    let whole = zstd::zstd_safe::find_frame_compressed_size(data).ok()? == data.len();
    let size = zstd::zstd_safe::get_frame_content_size(data).ok()??;
    (whole && size < 1 << 30).then_some(size as usize)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unpacked_frames_decompress_alike_whether_one_frame_or_several() {
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        let one = zstd::bulk::compress(&text, 3).unwrap();
        assert_eq!(single_frame_size(&one), Some(text.len()));
        assert_eq!(decompress(&one, None).unwrap(), text);
        let mut two = zstd::bulk::compress(&text[..70_000], 3).unwrap();
        two.extend(zstd::bulk::compress(&text[70_000..], 3).unwrap());
        assert_eq!(single_frame_size(&two), None, "two frames");
        assert_eq!(decompress(&two, None).unwrap(), text);
        let mut streamed = Vec::new();
        let mut enc = zstd::stream::write::Encoder::new(&mut streamed, 3).unwrap();
        std::io::Write::write_all(&mut enc, &text).unwrap();
        enc.finish().unwrap();
        assert_eq!(single_frame_size(&streamed), None, "a streamed frame records no size");
        assert_eq!(decompress(&streamed, None).unwrap(), text);
        assert!(decompress(&one[..one.len() - 3], None).is_err(), "a cut frame is an error");
    }

    #[test]
    fn parses_settings() {
        assert_eq!("auto".parse::<Compression>(), Ok(Compression::Auto));
        assert_eq!("zstd:7".parse::<Compression>(), Ok(Compression::Level(7)));
        assert_eq!("OFF".parse::<Compression>(), Ok(Compression::Off));
        assert!("zstd:99".parse::<Compression>().is_err());
        assert!("fast".parse::<Compression>().is_err());
    }

    #[test]
    fn round_trip_and_incompressible() {
        let data = vec![7u8; 100_000];
        let c = compress(&data, 3).expect("compressible");
        assert_eq!(decompress(&c, Some(data.len())).expect("decompress"), data);
        assert_eq!(decompress(&c, None).expect("decompress"), data);
        assert!(decompress(&c, Some(5)).is_err());
        let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        assert!(compress(&noise, 3).is_none() || compress(&noise, 3).map(|c| c.len()) < Some(noise.len()));
    }
}
