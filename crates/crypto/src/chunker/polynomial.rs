//! Polynomials over GF(2) packed into a `u64` (bit `i` is the coefficient of `x^i`).
//!
//! restic's `config` file stores a random irreducible polynomial of degree 53
//! (`"chunker_polynomial"`, hex) for its Rabin-fingerprint chunker, and checks
//! that it is irreducible when loading the config. Lifeboat chunks with FastCDC
//! instead, but must still write a valid polynomial; it also derives its FastCDC
//! seed from it (see [`ChunkerParams::restic_sizes`](super::ChunkerParams::restic_sizes)).

use crate::random_bytes;

/// Degree restic uses for its chunker polynomials.
pub(crate) const RESTIC_DEGREE: u32 = 53;

/// Degree of a polynomial, `None` for the zero polynomial.
fn degree(p: u128) -> Option<u32> {
    (p != 0).then(|| 127 - p.leading_zeros())
}

/// Carry-less product `a * b`; never overflows since both factors have degree ≤ 63.
fn clmul(a: u64, b: u64) -> u128 {
    let mut acc = 0u128;
    let mut shifted = u128::from(a);
    let mut rest = b;
    while rest != 0 {
        if rest & 1 == 1 {
            acc ^= shifted;
        }
        shifted <<= 1;
        rest >>= 1;
    }
    acc
}

/// Remainder of `a` divided by the non-zero polynomial `m`.
fn rem(mut a: u128, m: u64) -> u64 {
    let m = u128::from(m);
    let Some(dm) = degree(m) else {
        return 0;
    };
    while let Some(da) = degree(a) {
        if da < dm {
            break;
        }
        a ^= m << (da - dm);
    }
    // The remainder has degree < deg(m) ≤ 63, so it fits.
    a as u64
}

/// `a * b mod m`.
fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    rem(clmul(a, b), m)
}

/// Greatest common divisor (Euclid).
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let r = rem(u128::from(a), b);
        a = b;
        b = r;
    }
    a
}

/// Whether `p` is irreducible over GF(2), using Ben-Or's test.
///
/// `p` is irreducible iff `gcd(p, x^(2^i) - x mod p) = 1` for all
/// `1 ≤ i ≤ deg(p) / 2`. Constants (degree < 1) are not irreducible.
#[must_use]
pub fn is_irreducible(p: u64) -> bool {
    let Some(d) = degree(u128::from(p)) else {
        return false;
    };
    if d < 1 {
        return false;
    }
    let x = rem(0b10, p);
    // x^(2^i) mod p, by repeated squaring.
    let mut power = x;
    for _ in 0..d / 2 {
        power = mul_mod(power, power, p);
        if gcd(p, power ^ x) != 1 {
            return false;
        }
    }
    true
}

/// A random irreducible polynomial of degree exactly 53, as restic stores in
/// its `config` file (`"chunker_polynomial"`).
///
/// Candidates come from the OS RNG; about one in 27 of them is irreducible.
#[must_use]
pub fn random_polynomial() -> u64 {
    derive_polynomial(|| u64::from_le_bytes(random_bytes()))
}

/// The first irreducible degree-53 polynomial built from the candidates `next` yields.
pub(crate) fn derive_polynomial(mut next: impl FnMut() -> u64) -> u64 {
    loop {
        // Keep the coefficients below x^53, then set x^53 (exact degree) and 1
        // (otherwise x divides it).
        let candidate = (next() & ((1 << RESTIC_DEGREE) - 1)) | (1 << RESTIC_DEGREE) | 1;
        if is_irreducible(candidate) {
            return candidate;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_basics() {
        assert_eq!(clmul(0b1101, 0b11), 0b10111);
        assert_eq!(clmul(0b10011, 0b110101), 0b1100001111);
        assert_eq!(clmul(0x4000_0000, 0x4000_0000), 0x1000_0000_0000_0000);
        assert_eq!(clmul(u64::MAX, 0), 0);
        assert_eq!(rem(0b101101001, 0b1010), 1);
        assert_eq!(rem(0b1100001111, 0b10011), 0);
        assert_eq!(rem(10, 50), 10);
        assert_eq!(gcd(10, 50), 2);
        assert_eq!(gcd(0b1100, 0b101), 0b11);
        assert_eq!(gcd(0x230d2259defd, 0x51b492b3eff2), 0b10011);
        assert_eq!(gcd(0x3DA3358B4DC173, 0x230d2259defd), 1);
        assert_eq!(mul_mod(0x1230, 0x230, 0x55), 0x22);
        assert_eq!(mul_mod(0x0eae8c07dbbb3026, 0xd5d6db9de04771de, 0xdd2bda3b77c9), 0x425ae8595b7a);
    }

    #[test]
    fn restic_irreducibility_table() {
        // The table from restic's chunker package (polynomials_test.go).
        let table: &[(u64, bool)] = &[
            (0x38f1e565e288df, false),
            (0x3DA3358B4DC173, true),
            (0x30a8295b9d5c91, false),
            (0x255f4350b962cb, false),
            (0x267f776110a235, false),
            (0x2f4dae10d41227, false),
            (0x2482734cacca49, true),
            (0x312daf4b284899, false),
            (0x29dfb6553d01d1, false),
            (0x3548245eb26257, false),
            (0x3199e7ef4211b3, false),
            (0x362f39017dae8b, false),
            (0x200d57aa6fdacb, false),
            (0x35e0a4efa1d275, false),
            (0x2ced55b026577f, false),
            (0x260b012010893d, false),
            (0x2df29cbcd59e9d, false),
            (0x3f2ac7488bd429, false),
            (0x3e5cb1711669fb, false),
            (0x226d8de57a9959, false),
            (0x3c8de80aaf5835, false),
            (0x2026a59efb219b, false),
            (0x39dfa4d13fb231, false),
            (0x3143d0464b3299, false),
        ];
        for &(p, expected) in table {
            assert_eq!(is_irreducible(p), expected, "{p:#x}");
        }
    }

    #[test]
    fn small_reducible_and_irreducible() {
        assert!(!is_irreducible(0));
        assert!(!is_irreducible(1));
        assert!(is_irreducible(0b10)); // x
        assert!(is_irreducible(0b11)); // x + 1
        assert!(!is_irreducible(0b100)); // x^2
        assert!(!is_irreducible(0b101)); // (x + 1)^2
        assert!(is_irreducible(0b111)); // x^2 + x + 1
        assert!(!is_irreducible(0b1001)); // (x + 1)(x^2 + x + 1)
        assert!(is_irreducible(0b1011)); // x^3 + x + 1
                                         // A product of two irreducible polynomials of degrees 27 and 26.
        let a = derive_small_irreducible(27);
        let b = derive_small_irreducible(26);
        let product = u64::try_from(clmul(a, b)).unwrap();
        assert_eq!(degree(u128::from(product)), Some(53));
        assert!(!is_irreducible(product));
        // The square of an irreducible polynomial.
        let square = u64::try_from(clmul(a, a)).unwrap();
        assert!(!is_irreducible(square));
        // Degree-63 inputs don't overflow the arithmetic.
        assert!(!is_irreducible(u64::MAX ^ 1));
        assert!(!is_irreducible(1 << 63));
    }

    fn derive_small_irreducible(deg: u32) -> u64 {
        (0u64..).map(|low| (1 << deg) | (low << 1) | 1).find(|&p| is_irreducible(p)).unwrap()
    }

    /// Irreducibility by trial division, for cross-checking small degrees.
    fn irreducible_by_trial_division(p: u64) -> bool {
        let Some(d) = degree(u128::from(p)) else {
            return false;
        };
        if d < 1 {
            return false;
        }
        (2u64..(1 << (d / 2 + 1))).all(|q| rem(u128::from(p), q) != 0)
    }

    #[test]
    fn matches_trial_division_and_known_counts() {
        // Number of irreducible polynomials of degree n over GF(2) (OEIS A001037).
        let counts = [0usize, 2, 1, 2, 3, 6, 9, 18, 30, 56, 99, 186, 335];
        for (deg, &count) in counts.iter().enumerate().skip(1) {
            let lo = 1u64 << deg;
            let found = (lo..lo << 1)
                .filter(|&p| {
                    let fast = is_irreducible(p);
                    assert_eq!(fast, irreducible_by_trial_division(p), "{p:#b}");
                    fast
                })
                .count();
            assert_eq!(found, count, "degree {deg}");
        }
    }

    #[test]
    fn random_polynomials_are_irreducible_of_degree_53() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let p = random_polynomial();
            assert_eq!(degree(u128::from(p)), Some(53), "{p:#x}");
            assert!(is_irreducible(p), "{p:#x}");
            seen.insert(p);
        }
        assert!(seen.len() > 1);
    }

    #[test]
    fn derive_polynomial_is_deterministic() {
        let mut state = 0u64;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            state
        };
        let p = derive_polynomial(&mut next);
        assert!(is_irreducible(p));
        assert_eq!(p >> 53, 1);
        let mut state2 = 0u64;
        let q = derive_polynomial(|| {
            state2 = state2.wrapping_add(0x9E37_79B9_7F4A_7C15);
            state2
        });
        assert_eq!(p, q);
    }
}
