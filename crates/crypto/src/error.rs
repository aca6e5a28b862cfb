//! The crate's error type.

/// Errors returned by Lifeboat's cryptographic primitives.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authentication failed: the Poly1305-AES MAC does not match.
    ///
    /// The data is corrupted, has been tampered with, or was encrypted with a
    /// different key (e.g. a wrong password was used to unlock a key file).
    #[error("ciphertext verification failed (MAC mismatch): wrong key or corrupted data")]
    Mac,
    /// The ciphertext is shorter than IV + MAC and cannot be valid.
    #[error("ciphertext too short: {len} bytes, need at least {} (IV + MAC)", crate::OVERHEAD)]
    TooShort {
        /// Length of the rejected ciphertext in bytes.
        len: usize,
    },
    /// The key derivation function failed, usually due to invalid parameters.
    #[error("key derivation (scrypt) failed: {0}")]
    Kdf(String),
    /// Key material has the wrong length or is otherwise unusable.
    #[error("invalid key material: a master key is 64 bytes (encrypt 32 || mac k 16 || mac r 16)")]
    InvalidKeyMaterial,
}
