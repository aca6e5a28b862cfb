//! The RDB format, as far as Lifeboat needs it: walk a dump from any reader without decoding a
//! single value, counting keys (and keys with an expiry) per database, collecting the AUX fields
//! and RESIZEDB hints; and the CRC-64 that ends every RDB of version 5 or later.
//!
//! Counting by walking is exact: it counts the key/value pairs that are really in the file.
//! RESIZEDB hints (the sizes of the hash tables when the dump began) are kept as a cross-check
//! and as the fallback when a value type unknown to this walker (a newer Redis) stops the walk.
//! Types 0–21 (everything up to Redis 7.2) are known; later ones stop the walk cleanly.

use std::collections::BTreeMap;
use std::io::{self, Read};

/// What a walk found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// RDB format version (`REDIS0010` → 10).
    pub version: u32,
    /// AUX fields (`redis-ver`, `repl-id`, `repl-offset`, `ctime`…); binary values are hex.
    pub aux: BTreeMap<String, String>,
    /// Keys per database.
    pub keys: BTreeMap<u32, u64>,
    /// Keys with an expiry, per database.
    pub expires: BTreeMap<u32, u64>,
    /// Keys whose expiry is before the walk's reference time, per database (a master loading
    /// the file drops them).
    pub expired: BTreeMap<u32, u64>,
    /// RESIZEDB hints per database: (keys, keys with an expiry) when the dump began.
    pub hints: BTreeMap<u32, (u64, u64)>,
    /// Why the walk stopped before the end (a value type this walker does not know).
    pub stopped: Option<String>,
}

impl Summary {
    /// Keys per database: walked counts, or the RESIZEDB hints when the walk stopped early.
    pub fn key_counts(&self) -> BTreeMap<u32, u64> {
        if self.stopped.is_none() {
            return self.keys.clone();
        }
        self.hints.iter().map(|(db, (n, _))| (*db, *n)).collect()
    }
}

const OP_SLOT_INFO: u8 = 244;
const OP_FUNCTION2: u8 = 245;
const OP_MODULE_AUX: u8 = 247;
const OP_IDLE: u8 = 248;
const OP_FREQ: u8 = 249;
const OP_AUX: u8 = 250;
const OP_RESIZEDB: u8 = 251;
const OP_EXPIRETIME_MS: u8 = 252;
const OP_EXPIRETIME: u8 = 253;
const OP_SELECTDB: u8 = 254;
const OP_EOF: u8 = 255;

/// A length field: a plain length, or the special-encoding marker of a string.
enum Len {
    Plain(u64),
    Encoded(u8),
}

/// A byte source that knows its position (for messages).
struct In<'a> {
    r: io::BufReader<&'a mut dyn Read>,
    pos: u64,
}

impl In<'_> {
    fn fail<T>(&self, what: impl std::fmt::Display) -> Result<T, String> {
        Err(format!("RDB at byte {}: {what}", self.pos))
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), String> {
        match self.r.read_exact(buf) {
            Ok(()) => {
                self.pos += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => self.fail("unexpected end of data"),
            Err(e) => self.fail(e),
        }
    }

    fn u8(&mut self) -> Result<u8, String> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        let copied = io::copy(&mut (&mut self.r).take(n), &mut io::sink());
        let copied = copied.or_else(|e| self.fail(e))?;
        self.pos += copied;
        if copied < n {
            return self.fail("unexpected end of data");
        }
        Ok(())
    }

    fn len(&mut self) -> Result<Len, String> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => Len::Plain(u64::from(b & 0x3f)),
            1 => Len::Plain(u64::from(b & 0x3f) << 8 | u64::from(self.u8()?)),
            2 if b == 0x80 => {
                let mut v = [0u8; 4];
                self.exact(&mut v)?;
                Len::Plain(u64::from(u32::from_be_bytes(v)))
            }
            2 if b == 0x81 => {
                let mut v = [0u8; 8];
                self.exact(&mut v)?;
                Len::Plain(u64::from_be_bytes(v))
            }
            2 => return self.fail(format!("bad length byte {b:#04x}")),
            _ => Len::Encoded(b & 0x3f),
        })
    }

    fn length(&mut self) -> Result<u64, String> {
        match self.len()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(e) => self.fail(format!("encoded value {e} where a length was expected")),
        }
    }

    /// Skip a string, or read it when `keep` (then returned as text; binary as hex).
    fn string(&mut self, keep: bool) -> Result<String, String> {
        let int = |this: &mut Self, n: usize| -> Result<String, String> {
            let mut b = [0u8; 4];
            this.exact(&mut b[..n])?;
            Ok(match n {
                1 => i64::from(b[0] as i8),
                2 => i64::from(i16::from_le_bytes([b[0], b[1]])),
                _ => i64::from(i32::from_le_bytes(b)),
            }
            .to_string())
        };
        match self.len()? {
            Len::Plain(n) if keep && n <= 4096 => {
                let mut v = vec![0u8; n as usize];
                self.exact(&mut v)?;
                Ok(String::from_utf8(v).unwrap_or_else(|e| hex(e.as_bytes())))
            }
            Len::Plain(n) => self.skip(n).map(|_| String::new()),
            Len::Encoded(0) => int(self, 1),
            Len::Encoded(1) => int(self, 2),
            Len::Encoded(2) => int(self, 4),
            Len::Encoded(3) => {
                let compressed = self.length()?;
                let _plain = self.length()?;
                self.skip(compressed).map(|_| "(compressed)".into())
            }
            Len::Encoded(e) => self.fail(format!("unknown string encoding {e}")),
        }
    }

    fn strings(&mut self, n: u64) -> Result<(), String> {
        (0..n).try_for_each(|_| self.string(false).map(|_| ()))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Where the walk is: the database keys belong to, and the expiry announced for the next key.
struct Cursor {
    db: u32,
    expiry: Option<i64>,
}

/// Walk an RDB stream up to its EOF opcode (the checksum after it is not read). `now_ms` is
/// the reference time for [`Summary::expired`].
pub fn walk(r: &mut dyn Read, now_ms: i64) -> Result<Summary, String> {
    let mut inp = In { r: io::BufReader::with_capacity(1 << 16, r), pos: 0 };
    let mut magic = [0u8; 9];
    inp.exact(&mut magic)?;
    let version = match (magic.strip_prefix(b"REDIS"), std::str::from_utf8(&magic[5..])) {
        (Some(_), Ok(v)) => v.parse().map_err(|_| "not an RDB file (bad version)".to_string())?,
        _ => return Err("not an RDB file (no REDIS header)".into()),
    };
    let mut s = Summary { version, ..Summary::default() };
    let mut at = Cursor { db: 0, expiry: None };
    loop {
        match inp.u8()? {
            OP_EOF => return Ok(s),
            op if op >= OP_SLOT_INFO && opcode(&mut inp, op, &mut s, &mut at)? => {}
            t if t < OP_SLOT_INFO && value(&mut inp, t)? => {
                *s.keys.entry(at.db).or_default() += 1;
                if let Some(when) = at.expiry.take() {
                    *s.expires.entry(at.db).or_default() += 1;
                    if when < now_ms {
                        *s.expired.entry(at.db).or_default() += 1;
                    }
                }
            }
            t => {
                s.stopped = Some(format!("type or opcode {t} at byte {} is unknown to this version", inp.pos - 1));
                return Ok(s);
            }
        }
    }
}

/// Read the operands of a special opcode (everything but a key/value record and EOF); `false`
/// for an opcode this walker does not know.
fn opcode(inp: &mut In<'_>, op: u8, s: &mut Summary, at: &mut Cursor) -> Result<bool, String> {
    match op {
        OP_SELECTDB => at.db = u32::try_from(inp.length()?).or_else(|_| inp.fail("database index too large"))?,
        OP_RESIZEDB => {
            let (keys, expires) = (inp.length()?, inp.length()?);
            s.hints.insert(at.db, (keys, expires));
        }
        OP_AUX => {
            let (k, v) = (inp.string(true)?, inp.string(true)?);
            s.aux.insert(k, v);
        }
        OP_EXPIRETIME_MS => {
            let mut b = [0u8; 8];
            inp.exact(&mut b)?;
            at.expiry = Some(i64::from_le_bytes(b));
        }
        OP_EXPIRETIME => {
            let mut b = [0u8; 4];
            inp.exact(&mut b)?;
            at.expiry = Some(i64::from(i32::from_le_bytes(b)) * 1000);
        }
        OP_IDLE => {
            inp.length()?;
        }
        OP_FREQ => {
            inp.u8()?;
        }
        OP_MODULE_AUX => {
            inp.length()?; // module id
            inp.length()?; // "when" opcode
            inp.length()?; // when
            module_value(inp)?;
        }
        OP_FUNCTION2 => {
            inp.string(false)?;
        }
        OP_SLOT_INFO => (0..3).try_for_each(|_| inp.length().map(|_| ()))?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Skip a key and its value of type `t`; `false` for a type this walker does not know.
fn value(inp: &mut In<'_>, t: u8) -> Result<bool, String> {
    inp.string(false)?; // the key
    match t {
        // string; and the single-blob encodings (zipmap, ziplist, intset, listpack)
        0 | 9..=13 | 16 | 17 | 20 => {
            inp.string(false)?;
        }
        1 | 2 | 14 => {
            let n = inp.length()?;
            inp.strings(n)?;
        }
        3 => {
            for _ in 0..inp.length()? {
                inp.string(false)?;
                let l = inp.u8()?;
                if l < 253 {
                    inp.skip(u64::from(l))?;
                }
            }
        }
        4 => {
            let n = inp.length()?;
            inp.strings(n.saturating_mul(2))?;
        }
        5 => {
            for _ in 0..inp.length()? {
                inp.string(false)?;
                inp.skip(8)?;
            }
        }
        7 => {
            inp.length()?; // module type id
            module_value(inp)?;
        }
        18 => {
            for _ in 0..inp.length()? {
                inp.length()?; // container kind
                inp.string(false)?;
            }
        }
        15 | 19 | 21 => stream(inp, t)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// A module value in the self-describing v2 encoding: typed fields up to an EOF marker.
fn module_value(inp: &mut In<'_>) -> Result<(), String> {
    loop {
        match inp.length()? {
            0 => return Ok(()),
            1 | 2 => {
                inp.length()?;
            }
            3 => inp.skip(4)?,
            4 => inp.skip(8)?,
            5 => {
                inp.string(false)?;
            }
            op => return inp.fail(format!("unknown module field {op}")),
        }
    }
}

/// A stream (types 15, 19 and 21 differ in a few fields).
fn stream(inp: &mut In<'_>, t: u8) -> Result<(), String> {
    let nodes = inp.length()?;
    inp.strings(nodes.saturating_mul(2))?;
    let header = if t >= 19 { 3 + 5 } else { 3 }; // length, last id; first id, max deleted, added
    (0..header).try_for_each(|_| inp.length().map(|_| ()))?;
    for _ in 0..inp.length()? {
        inp.string(false)?; // group name
        let fields = if t >= 19 { 3 } else { 2 }; // last id (ms, seq), entries read
        (0..fields).try_for_each(|_| inp.length().map(|_| ()))?;
        for _ in 0..inp.length()? {
            inp.skip(16 + 8)?; // id, delivery time
            inp.length()?; // delivery count
        }
        for _ in 0..inp.length()? {
            inp.string(false)?; // consumer name
            inp.skip(if t >= 21 { 16 } else { 8 })?; // seen time (and active time)
            let pending = inp.length()?;
            inp.skip(pending.saturating_mul(16))?;
        }
    }
    Ok(())
}

/// The CRC-64 Redis uses (Jones polynomial, reflected, initial value 0).
pub struct Crc64(u64);

const CRC_TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u64;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ 0x95ac_9329_ac4b_c9b5 } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

impl Crc64 {
    /// A fresh checksum.
    pub fn new() -> Crc64 {
        Crc64(0)
    }

    /// Add bytes.
    pub fn update(&mut self, data: &[u8]) {
        for b in data {
            self.0 = CRC_TABLE[((self.0 ^ u64::from(*b)) & 0xff) as usize] ^ (self.0 >> 8);
        }
    }

    /// The checksum so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

impl Default for Crc64 {
    fn default() -> Self {
        Crc64::new()
    }
}

/// Checksums a stream whose last 8 bytes are the little-endian CRC-64 of everything before
/// them: bytes are added 8 behind, so the trailer is known once the stream ends.
#[derive(Default)]
pub struct TrailerCheck {
    crc: Crc64,
    tail: Vec<u8>,
    bytes: u64,
}

/// The outcome of [`TrailerCheck::result`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// The trailer matches.
    Ok,
    /// The trailer is zero: the server runs with `rdbchecksum no`.
    Disabled,
    /// The trailer does not match: the data is damaged.
    Mismatch {
        /// Trailer found.
        stored: u64,
        /// Checksum computed.
        computed: u64,
    },
}

impl TrailerCheck {
    /// Add bytes of the stream.
    pub fn update(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        self.tail.extend_from_slice(data);
        if self.tail.len() > 8 {
            let cut = self.tail.len() - 8;
            self.crc.update(&self.tail[..cut]);
            self.tail.drain(..cut);
        }
    }

    /// Bytes seen.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Compare the trailer with the checksum of everything before it.
    pub fn result(&self) -> Checksum {
        let mut t = [0u8; 8];
        t[8 - self.tail.len()..].copy_from_slice(&self.tail);
        let stored = u64::from_le_bytes(t);
        match stored {
            0 => Checksum::Disabled,
            s if s == self.crc.value() => Checksum::Ok,
            s => Checksum::Mismatch { stored: s, computed: self.crc.value() },
        }
    }
}

/// A reader that feeds everything read through it into a [`TrailerCheck`].
pub struct Checked<R> {
    /// The wrapped reader.
    pub inner: R,
    /// The running check.
    pub check: TrailerCheck,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.check.update(&buf[..n]);
        Ok(n)
    }
}

/// Walk a complete RDB (a file) and check its trailer.
pub fn check(r: impl Read, now_ms: i64) -> Result<(Summary, Checksum, u64), String> {
    let mut c = Checked { inner: r, check: TrailerCheck::default() };
    let summary = walk(&mut c, now_ms)?;
    io::copy(&mut c, &mut io::sink()).map_err(|e| e.to_string())?;
    Ok((summary, c.check.result(), c.check.bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// A small RDB: db0 with a string, an expiring hash; db3 with a zset.
    pub(crate) fn sample(expire_at: i64) -> Vec<u8> {
        let mut v = b"REDIS0010".to_vec();
        v.extend([OP_AUX, 9]);
        v.extend(b"redis-ver");
        v.extend([6]);
        v.extend(b"7.0.15");
        v.extend([OP_AUX, 10]);
        v.extend(b"redis-bits");
        v.extend([0xc0, 64]); // int8 encoded
        v.extend([OP_SELECTDB, 0, OP_RESIZEDB, 2, 1]);
        v.extend([0, 1, b'a', 1, b'x']); // string a = x
        v.push(OP_EXPIRETIME_MS);
        v.extend(expire_at.to_le_bytes());
        v.extend([4, 1, b'h', 1, 1, b'f', 0xc1, 0x10, 0x27]); // hash h {f: 10000}
        v.extend([OP_SELECTDB, 3, OP_RESIZEDB, 1, 0]);
        v.extend([5, 1, b'z', 1, 1, b'm']); // zset z {m: 1.0}
        v.extend(1.0f64.to_le_bytes());
        v.push(OP_EOF);
        let mut crc = Crc64::new();
        crc.update(&v);
        v.extend(crc.value().to_le_bytes());
        v
    }

    #[test]
    fn crc64_known_answer() {
        let mut c = Crc64::new();
        c.update(b"123456789");
        assert_eq!(c.value(), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn walk_counts_keys_per_db_and_checks_the_trailer() {
        let data = sample(1_000);
        let (s, sum, bytes) = check(&data[..], 2_000).unwrap();
        assert_eq!(sum, Checksum::Ok);
        assert_eq!(bytes, data.len() as u64);
        assert_eq!(s.version, 10);
        assert_eq!(s.aux["redis-ver"], "7.0.15");
        assert_eq!(s.aux["redis-bits"], "64");
        assert_eq!(s.keys, [(0, 2), (3, 1)].into());
        assert_eq!(s.expires, [(0, 1)].into());
        assert_eq!(s.expired, [(0, 1)].into());
        assert_eq!(s.hints, [(0, (2, 1)), (3, (1, 0))].into());
        let (s, _, _) = check(&sample(5_000)[..], 2_000).unwrap();
        assert!(s.expired.is_empty());

        let mut bad = data.clone();
        bad[22] ^= 1; // inside the redis-ver value: structure intact, checksum wrong
        assert!(matches!(check(&bad[..], 0).unwrap().1, Checksum::Mismatch { .. }));
        let e = check(&data[..data.len() - 20], 0).unwrap_err();
        assert!(e.contains("unexpected end"), "{e}");
        assert!(check(&b"NOTREDIS0010"[..], 0).unwrap_err().contains("not an RDB"));
    }

    #[test]
    fn unknown_types_stop_the_walk_and_fall_back_to_hints() {
        let mut v = b"REDIS0012".to_vec();
        v.extend([OP_SELECTDB, 0, OP_RESIZEDB, 7, 0, 0, 1, b'a', 1, b'x', 25, 1, b'b']);
        let s = walk(&mut &v[..], 0).unwrap();
        assert!(s.stopped.as_deref().unwrap_or_default().contains("opcode 25 at byte 21"), "{s:?}");
        assert_eq!(s.key_counts(), [(0, 7)].into());
        let old_functions = b"REDIS0010\xf6\x01f";
        let s = walk(&mut &old_functions[..], 0).unwrap();
        assert!(s.stopped.as_deref().unwrap_or_default().contains("opcode 246"), "{s:?}");
    }
}

/// Fuzzing with arbitrary bytes (proptest): walking and checking an RDB stream returns an error
/// or a summary for any input, never panics.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn rdb_walk_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512), v in 1u32..12) {
            let mut bytes = format!("REDIS{v:04}").into_bytes();
            bytes.extend_from_slice(&body);
            let _ = walk(&mut bytes.as_slice(), 0);
            let _ = check(bytes.as_slice(), 0);
        }

        #[test]
        fn rdb_noise_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = check(bytes.as_slice(), 0);
        }
    }
}
