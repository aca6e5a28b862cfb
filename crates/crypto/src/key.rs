//! restic's master key, its authenticated encryption, and the scrypt key derivation.
//!
//! A restic ciphertext is `IV (16 random bytes) || AES-256-CTR(plaintext) || MAC (16 bytes)`
//! where the MAC is Poly1305-AES over the ciphertext only (not the IV): the
//! Poly1305 key is `r || AES-128_k(IV)` with `r` clamped as Poly1305 requires.
//!
//! The AEAD itself comes from the `aes256ctr_poly1305aes` crate. That crate
//! counts with a 64-bit big-endian counter in the low half of the IV, whereas
//! restic (Go's `cipher.NewCTR`) increments the whole 128-bit IV. The two only
//! differ when the low 64 bits of the IV overflow inside one message; this
//! module detects that (astronomically rare) case and corrects the affected
//! keystream so that the output is always byte-identical to restic's.

use crate::{random_bytes, CryptoError};
use aes256ctr_poly1305aes::aead::generic_array::GenericArray;
use aes256ctr_poly1305aes::aead::AeadInPlace;
use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use std::fmt;

/// Bytes a ciphertext is longer than its plaintext: the 16-byte IV plus the 16-byte MAC.
pub const OVERHEAD: usize = IV_LEN + MAC_LEN;

const IV_LEN: usize = 16;
const MAC_LEN: usize = 16;
const BLOCK_LEN: usize = 16;

/// restic's master key: an AES-256-CTR key plus a Poly1305-AES key (`k`, `r`).
///
/// In a restic key file it is the JSON object
/// `{"mac":{"k":"<base64>","r":"<base64>"},"encrypt":"<base64>"}`.
/// The [`Debug`](fmt::Debug) output never contains key material.
#[derive(Clone)]
pub struct Key {
    encrypt: [u8; 32],
    mac_k: [u8; 16],
    mac_r: [u8; 16],
    cipher: Aes256CtrPoly1305Aes,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key { <redacted> }")
    }
}

impl Key {
    /// A new random master key from the OS RNG.
    ///
    /// Like restic, the Poly1305 `r` is stored already clamped.
    #[must_use]
    pub fn random() -> Key {
        let mut mac_r: [u8; 16] = random_bytes();
        clamp_poly1305_r(&mut mac_r);
        Key::from_parts(random_bytes(), random_bytes(), mac_r)
    }

    /// Builds a key from its three parts as found in a restic key file.
    ///
    /// `mac_r` does not need to be clamped; Poly1305 clamps it when used.
    #[must_use]
    pub fn from_parts(encrypt: [u8; 32], mac_k: [u8; 16], mac_r: [u8; 16]) -> Key {
        let mut all = [0u8; 64];
        all[..32].copy_from_slice(&encrypt);
        all[32..48].copy_from_slice(&mac_k);
        all[48..].copy_from_slice(&mac_r);
        // The crate's 64-byte key layout is exactly restic's: encrypt || k || r.
        let cipher = Aes256CtrPoly1305Aes::new(GenericArray::from_slice(&all));
        all.fill(0);
        Key { encrypt, mac_k, mac_r, cipher }
    }

    /// Builds a key from 64 bytes laid out as `encrypt (32) || mac k (16) || mac r (16)`,
    /// the layout of restic's scrypt output.
    ///
    /// # Errors
    ///
    /// [`CryptoError::InvalidKeyMaterial`] if `bytes` is not exactly 64 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Key, CryptoError> {
        if bytes.len() != 64 {
            return Err(CryptoError::InvalidKeyMaterial);
        }
        let mut encrypt = [0u8; 32];
        let mut mac_k = [0u8; 16];
        let mut mac_r = [0u8; 16];
        encrypt.copy_from_slice(&bytes[..32]);
        mac_k.copy_from_slice(&bytes[32..48]);
        mac_r.copy_from_slice(&bytes[48..]);
        Ok(Key::from_parts(encrypt, mac_k, mac_r))
    }

    /// The AES-256-CTR key (restic key file: `"encrypt"`).
    #[must_use]
    pub fn encrypt_part(&self) -> &[u8; 32] {
        &self.encrypt
    }

    /// The AES-128 key `k` of Poly1305-AES (restic key file: `"mac"."k"`).
    #[must_use]
    pub fn mac_k(&self) -> &[u8; 16] {
        &self.mac_k
    }

    /// The Poly1305 `r` of Poly1305-AES (restic key file: `"mac"."r"`), as given.
    #[must_use]
    pub fn mac_r(&self) -> &[u8; 16] {
        &self.mac_r
    }

    /// Encrypts `plaintext` into restic's format:
    /// `IV (16 random bytes) || AES-256-CTR(plaintext) || Poly1305-AES MAC (16 bytes)`.
    #[must_use]
    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        self.encrypt_into(plaintext, &mut out);
        out
    }

    /// Like [`Key::encrypt`], but appends the ciphertext to `out`, avoiding an
    /// allocation when `out` is reused.
    pub fn encrypt_into(&self, plaintext: &[u8], out: &mut Vec<u8>) {
        self.encrypt_with_iv(&random_iv(), plaintext, out);
    }

    /// Verifies the MAC of a restic ciphertext, then decrypts it.
    ///
    /// # Errors
    ///
    /// - [`CryptoError::TooShort`] if `ciphertext` is shorter than [`OVERHEAD`].
    /// - [`CryptoError::Mac`] if authentication fails (wrong key or corrupted data).
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::new();
        self.decrypt_into(ciphertext, &mut out)?;
        Ok(out)
    }

    /// Like [`Key::decrypt`], but appends the plaintext to `out`.
    ///
    /// On error, `out` is left as it was.
    ///
    /// # Errors
    ///
    /// As [`Key::decrypt`].
    pub fn decrypt_into(&self, ciphertext: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        if ciphertext.len() < OVERHEAD {
            return Err(CryptoError::TooShort { len: ciphertext.len() });
        }
        let (iv, rest) = ciphertext.split_at(IV_LEN);
        let (body, mac) = rest.split_at(rest.len() - MAC_LEN);
        let mut iv_arr = [0u8; IV_LEN];
        iv_arr.copy_from_slice(iv);

        let start = out.len();
        out.extend_from_slice(body);
        let buf = &mut out[start..];
        if self
            .cipher
            .decrypt_in_place_detached(GenericArray::from_slice(iv), b"", buf, GenericArray::from_slice(mac))
            .is_err()
        {
            out.truncate(start);
            return Err(CryptoError::Mac);
        }
        self.fix_counter_wrap(&iv_arr, buf);
        Ok(())
    }

    /// Encrypts with a caller-chosen IV (only `encrypt_into` and tests use this).
    pub(crate) fn encrypt_with_iv(&self, iv: &[u8; IV_LEN], plaintext: &[u8], out: &mut Vec<u8>) {
        out.reserve(plaintext.len() + OVERHEAD);
        out.extend_from_slice(iv);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let buf = &mut out[start..];
        let mut tag = self.seal_detached(iv, buf);
        if counter_wrap_offset(iv, buf.len()).is_some() {
            // `buf` is P ^ KS64; turn it into restic's P ^ KS128, then recompute the
            // MAC over that: sealing applies KS64 before MACing, so pre-apply it.
            self.fix_counter_wrap(iv, buf);
            self.seal_detached(iv, buf);
            tag = self.seal_detached(iv, buf);
        }
        out.extend_from_slice(&tag);
    }

    /// XORs the crate's keystream (64-bit counter) into `buf` and returns the
    /// Poly1305-AES tag over the result.
    fn seal_detached(&self, iv: &[u8; IV_LEN], buf: &mut [u8]) -> [u8; MAC_LEN] {
        let tag = self
            .cipher
            .encrypt_in_place_detached(GenericArray::from_slice(iv), b"", buf)
            .expect("AES-256-CTR/Poly1305-AES only fails with associated data, and none is passed");
        tag.into()
    }

    /// Converts between the crate's 64-bit-counter CTR output and Go's 128-bit
    /// counter for the blocks after the low 64 bits of the counter overflow.
    ///
    /// Both directions are the same XOR, so this is an involution. A no-op
    /// unless the low 64 bits of `iv` overflow within `buf` (probability about
    /// `blocks / 2^64` for a random IV).
    fn fix_counter_wrap(&self, iv: &[u8; IV_LEN], buf: &mut [u8]) {
        let Some(offset) = counter_wrap_offset(iv, buf.len()) else {
            return;
        };
        let tail = &mut buf[offset..];
        let mut high = [0u8; 8];
        high.copy_from_slice(&iv[..8]);
        // The crate continued with counter high || 0, 1, 2, …
        let mut wrapped = [0u8; IV_LEN];
        wrapped[..8].copy_from_slice(&high);
        self.seal_detached(&wrapped, tail);
        // Go carries into the high half: (high + 1) || 0, 1, 2, … (mod 2^128).
        let mut carried = [0u8; IV_LEN];
        carried[..8].copy_from_slice(&u64::from_be_bytes(high).wrapping_add(1).to_be_bytes());
        self.seal_detached(&carried, tail);
    }
}

/// Byte offset within a message of `len` bytes at which the low 64 bits of the
/// CTR counter starting at `iv` overflow, if that happens inside the message.
fn counter_wrap_offset(iv: &[u8; IV_LEN], len: usize) -> Option<usize> {
    let mut low = [0u8; 8];
    low.copy_from_slice(&iv[8..]);
    let blocks_before_wrap = (1u128 << 64) - u128::from(u64::from_be_bytes(low));
    let offset = blocks_before_wrap * BLOCK_LEN as u128;
    if offset < len as u128 {
        usize::try_from(offset).ok()
    } else {
        None
    }
}

/// Clamps a Poly1305 `r` as restic does for new keys (and Poly1305 does on use).
fn clamp_poly1305_r(r: &mut [u8; 16]) {
    for i in [3, 7, 11, 15] {
        r[i] &= 0x0f;
    }
    for i in [4, 8, 12] {
        r[i] &= 0xfc;
    }
}

/// scrypt parameters of a restic key file (`"N"`, `"r"`, `"p"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// CPU/memory cost; must be a power of two greater than 1.
    pub n: u32,
    /// Block size.
    pub r: u32,
    /// Parallelisation.
    pub p: u32,
}

impl KdfParams {
    /// restic's default parameters: N = 32768, r = 8, p = 1.
    ///
    /// (restic itself calibrates upwards from these to take about half a second.)
    #[must_use]
    pub fn default_restic() -> Self {
        KdfParams { n: 32768, r: 8, p: 1 }
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::default_restic()
    }
}

/// restic's user-key derivation: `scrypt(password, salt, N, r, p)` to 64 bytes,
/// split as `encrypt key (32) || mac k (16) || mac r (16)`.
///
/// The resulting key decrypts the `"data"` field of a restic key file, which
/// holds the JSON of the repository's master key.
///
/// # Errors
///
/// [`CryptoError::Kdf`] if the parameters are invalid (N not a power of two
/// greater than 1, r or p zero, or too large).
pub fn derive_key(password: &[u8], salt: &[u8], params: KdfParams) -> Result<Key, CryptoError> {
    if params.n < 2 || !params.n.is_power_of_two() {
        return Err(CryptoError::Kdf(format!("N must be a power of two greater than 1, got {}", params.n)));
    }
    let log_n =
        u8::try_from(params.n.trailing_zeros()).map_err(|_| CryptoError::Kdf(format!("N too large: {}", params.n)))?;
    let scrypt_params = scrypt::Params::new(log_n, params.r, params.p, 64).map_err(|e| {
        CryptoError::Kdf(format!("invalid scrypt parameters N={} r={} p={}: {e}", params.n, params.r, params.p))
    })?;
    let mut out = [0u8; 64];
    scrypt::scrypt(password, salt, &scrypt_params, &mut out).map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let key = Key::from_slice(&out);
    out.fill(0);
    key
}

/// A fresh IV from the thread-local CSPRNG (ChaCha, seeded and periodically reseeded from the
/// OS). IVs only need to be unique and unpredictable; asking the kernel for every blob cost one
/// `getrandom` syscall per blob on the backup hot path.
fn random_iv() -> [u8; 16] {
    use rand::RngCore;
    let mut iv = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut iv);
    iv
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn test_key() -> Key {
        let mut encrypt = [0u8; 32];
        let mut mac_k = [0u8; 16];
        let mut mac_r = [0u8; 16];
        for (i, b) in encrypt.iter_mut().enumerate() {
            *b = i as u8;
        }
        for (i, b) in mac_k.iter_mut().enumerate() {
            *b = 0x20 + i as u8;
        }
        for (i, b) in mac_r.iter_mut().enumerate() {
            *b = 0x30 + i as u8;
        }
        Key::from_parts(encrypt, mac_k, mac_r)
    }

    fn test_plaintext() -> Vec<u8> {
        (0..100u32).map(|i| ((i * 7 + 1) % 256) as u8).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn iv_of(v: &[u8]) -> [u8; 16] {
        v[..16].try_into().unwrap()
    }

    // Produced by tests/fixtures/gen_ctr_vectors.py (Python `cryptography`/OpenSSL,
    // 128-bit CTR counter like Go, Poly1305 with key r || AES-128_k(IV)).
    const VEC_PLAIN: &str = "000102030405060708090a0b0c0d0e0f5b660b4115df5aa4c96e1273579fc5f8118b6f534e11c3fffca64cefb729f315fd8d98adc7c1c7b6a2c12c8bd02d84d8c793581445e4dc6de0d0ca8e5cc85ee7cf83edf825a9e2d835adc37781dba114de4abd454e9a3e209d7e238d0dd5c78ac0b3c23386817bb2bf29f989d701462ef81ed48e";
    const VEC_WRAP: &str = "0123456789abcdeffffffffffffffffe280059f511b56d429ddc26ff6bdd104ea87661c06ebc97c3b256f463ce72ff63038ce57ff619ea0c0bfc083b00e735ff5a1fb3cd272f4c97d2594d60ff4304515464b05db4db4dee83958bfe54ff82aec6f794d4456c29c8fe5598314d4ab6dc0237115581a2cc2d3b06792dc181bcf7c4f2b0a8";
    const VEC_WRAP128: &str = "ffffffffffffffffffffffffffffffffe891eb0b51835be86ac7563508d3348483e87f30a7dd047200432dd418e2a45a11b59958b7bd94f7bfd6bc1f7dfe75775fe4eab8d858f83f81383eabbd802223138b9985f5658bdd799eb48dd0e37e7c7f67d9fa67a6e3645ab3068b4442fad408afee50bf2505f4e8352c9d34f81e84951306d2";

    #[test]
    fn reference_vectors_encrypt_and_decrypt() {
        let key = test_key();
        for vector in [VEC_PLAIN, VEC_WRAP, VEC_WRAP128] {
            let expected = unhex(vector);
            let mut out = Vec::new();
            key.encrypt_with_iv(&iv_of(&expected), &test_plaintext(), &mut out);
            assert_eq!(out, expected, "encryption differs for {vector}");
            assert_eq!(key.decrypt(&expected).unwrap(), test_plaintext());
        }
    }

    #[test]
    fn counter_wrap_offsets() {
        let mut iv = [0u8; 16];
        assert_eq!(counter_wrap_offset(&iv, usize::MAX), None);
        iv[8..].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(counter_wrap_offset(&iv, 16), None);
        assert_eq!(counter_wrap_offset(&iv, 17), Some(16));
        iv[8..].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
        assert_eq!(counter_wrap_offset(&iv, 32), None);
        assert_eq!(counter_wrap_offset(&iv, 33), Some(32));
    }

    #[test]
    fn empty_plaintext_round_trip() {
        let key = Key::random();
        let ct = key.encrypt(b"");
        assert_eq!(ct.len(), OVERHEAD);
        assert_eq!(key.decrypt(&ct).unwrap(), b"");
    }

    #[test]
    fn random_ivs_differ() {
        let key = Key::random();
        let a = key.encrypt(b"same plaintext");
        let b = key.encrypt(b"same plaintext");
        assert_ne!(a[..16], b[..16]);
        assert_ne!(a, b);
        assert_eq!(key.decrypt(&a).unwrap(), key.decrypt(&b).unwrap());
    }

    #[test]
    fn encrypt_into_appends() {
        let key = Key::random();
        let mut out = b"prefix".to_vec();
        key.encrypt_into(b"hello", &mut out);
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(out.len(), 6 + 5 + OVERHEAD);
        assert_eq!(key.decrypt(&out[6..]).unwrap(), b"hello");

        let mut plain = b"x".to_vec();
        key.decrypt_into(&out[6..], &mut plain).unwrap();
        assert_eq!(plain, b"xhello");
        // On failure the output buffer is untouched.
        assert!(matches!(key.decrypt_into(&out[..out.len() - 1], &mut plain), Err(CryptoError::Mac)));
        assert_eq!(plain, b"xhello");
    }

    #[test]
    fn every_flipped_byte_fails_mac() {
        let key = Key::random();
        let ct = key.encrypt(b"authenticated encryption, please");
        for i in 0..ct.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = ct.clone();
                bad[i] ^= bit;
                assert!(matches!(key.decrypt(&bad), Err(CryptoError::Mac)), "flip at byte {i} not detected");
            }
        }
    }

    #[test]
    fn wrong_key_fails_mac() {
        let ct = Key::random().encrypt(b"secret");
        assert!(matches!(Key::random().decrypt(&ct), Err(CryptoError::Mac)));
    }

    #[test]
    fn too_short() {
        let key = Key::random();
        for len in 0..OVERHEAD {
            match key.decrypt(&vec![0u8; len]) {
                Err(CryptoError::TooShort { len: l }) => assert_eq!(l, len),
                other => panic!("unexpected {other:?}"),
            }
        }
        // Exactly OVERHEAD bytes is a well-formed (empty) message; zeros fail the MAC.
        assert!(matches!(key.decrypt(&[0u8; OVERHEAD]), Err(CryptoError::Mac)));
    }

    #[test]
    fn debug_is_redacted() {
        let key = test_key();
        let s = format!("{key:?}");
        assert_eq!(s, "Key { <redacted> }");
    }

    #[test]
    fn parts_and_slices() {
        let key = test_key();
        assert_eq!(key.encrypt_part()[31], 31);
        assert_eq!(key.mac_k()[0], 0x20);
        assert_eq!(key.mac_r()[15], 0x3f);
        let mut all = Vec::new();
        all.extend_from_slice(key.encrypt_part());
        all.extend_from_slice(key.mac_k());
        all.extend_from_slice(key.mac_r());
        let again = Key::from_slice(&all).unwrap();
        let ct = key.encrypt(b"x");
        assert_eq!(again.decrypt(&ct).unwrap(), b"x");
        assert!(matches!(Key::from_slice(&all[..63]), Err(CryptoError::InvalidKeyMaterial)));
    }

    #[test]
    fn random_key_r_is_clamped() {
        for _ in 0..32 {
            let key = Key::random();
            let mut clamped = *key.mac_r();
            clamp_poly1305_r(&mut clamped);
            assert_eq!(&clamped, key.mac_r());
        }
    }

    #[test]
    fn kdf_small_params_and_errors() {
        let params = KdfParams { n: 16, r: 1, p: 1 };
        let a = derive_key(b"pw", b"salt", params).unwrap();
        let b = derive_key(b"pw", b"salt", params).unwrap();
        assert_eq!(a.encrypt_part(), b.encrypt_part());
        let c = derive_key(b"pw2", b"salt", params).unwrap();
        assert_ne!(a.encrypt_part(), c.encrypt_part());
        for bad in [
            KdfParams { n: 0, r: 1, p: 1 },
            KdfParams { n: 1, r: 1, p: 1 },
            KdfParams { n: 24, r: 1, p: 1 },
            KdfParams { n: 16, r: 0, p: 1 },
            KdfParams { n: 16, r: 1, p: 0 },
        ] {
            assert!(matches!(derive_key(b"pw", b"salt", bad), Err(CryptoError::Kdf(_))), "{bad:?} accepted");
        }
        assert_eq!(KdfParams::default(), KdfParams::default_restic());
    }

    #[test]
    fn scrypt_rfc7914_vector() {
        // RFC 7914 section 12: scrypt("password", "NaCl", N=1024, r=8, p=16, 64).
        let key = derive_key(b"password", b"NaCl", KdfParams { n: 1024, r: 8, p: 16 }).unwrap();
        let expected = unhex(
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162\
             2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640",
        );
        assert_eq!(&key.encrypt_part()[..], &expected[..32]);
        assert_eq!(&key.mac_k()[..], &expected[32..48]);
        assert_eq!(&key.mac_r()[..], &expected[48..]);
    }

    proptest! {
        #[test]
        fn round_trip(plaintext in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let key = test_key();
            let ct = key.encrypt(&plaintext);
            prop_assert_eq!(ct.len(), plaintext.len() + OVERHEAD);
            prop_assert_eq!(key.decrypt(&ct).unwrap(), plaintext);
        }

        #[test]
        fn wrapping_ivs_round_trip(
            plaintext in proptest::collection::vec(any::<u8>(), 0..200),
            high in any::<u64>(),
            blocks_left in 1u64..8,
        ) {
            let key = test_key();
            let mut iv = [0u8; 16];
            iv[..8].copy_from_slice(&high.to_be_bytes());
            iv[8..].copy_from_slice(&(u64::MAX - blocks_left + 1).to_be_bytes());
            let mut ct = Vec::new();
            key.encrypt_with_iv(&iv, &plaintext, &mut ct);
            prop_assert_eq!(key.decrypt(&ct).unwrap(), plaintext);
        }
    }
}
