//! Signing drill reports and checking them (see [`super`] for the file's layout).
//!
//! Key files are one line of text: `lifeboat-ed25519-secret:<64 hex digits>` (the 32-byte
//! seed; the file is created with mode 0600) and `lifeboat-ed25519-public:<64 hex digits>`.
//! Canonical JSON (what hashes and signatures cover) is compact with object keys sorted at every
//! level, so it does not depend on how a file was formatted.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ed25519_dalek::{Signature as Ed, Signer, Verifier};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::OpsError;

const SECRET_PREFIX: &str = "lifeboat-ed25519-secret:";
const PUBLIC_PREFIX: &str = "lifeboat-ed25519-public:";

/// The signed file: the report, a hash per field, and a signature over the hashes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignedReport {
    /// The report (kept as JSON so that a tampered file still parses and can be compared).
    pub report: Value,
    /// A hash per field of the report.
    pub integrity: Integrity,
    /// Ed25519 signature over the canonical JSON of `integrity` (none for unsigned reports).
    pub signature: Option<Signature>,
}

/// Hashes of every field of a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Integrity {
    /// Report format ([`super::FORMAT`]).
    pub format: String,
    /// `sha256`: each hash is SHA-256 over `PATH`, a NUL byte, and the field's canonical JSON.
    pub algorithm: String,
    /// Field path (`report.outcome`, `sources[NAME].rto_seconds`) → hex hash.
    pub fields: BTreeMap<String, String>,
}

/// An Ed25519 signature and the key that made it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Signature {
    /// `ed25519`.
    pub algorithm: String,
    /// Public key, hex.
    pub public_key: String,
    /// Signature, hex.
    pub value: String,
}

fn bad(what: &'static str, text: impl Into<String>, hint: impl Into<String>) -> OpsError {
    OpsError::BadValue { what, text: text.into(), hint: hint.into() }
}

/// Compact JSON with sorted keys, at every level.
pub fn canonical(v: &Value) -> Vec<u8> {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let b: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, sorted(v))).collect();
                Value::Object(b.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            v => v.clone(),
        }
    }
    // Serializing a `Value` cannot fail; keys are inserted in sorted order above.
    serde_json::to_vec(&sorted(v)).unwrap_or_default()
}

fn field_hash(path: &str, v: &Value) -> String {
    let mut data = path.as_bytes().to_vec();
    data.push(0);
    data.extend(canonical(v));
    hex::encode(lifeboat_crypto::sha256(&data))
}

/// Every field of a report with its path: top-level fields as `report.NAME`, each source's as
/// `sources[SOURCE].NAME` (by source name, so reordering sources changes nothing).
pub fn fields(report: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let Some(top) = report.as_object() else {
        out.insert("report".into(), report.clone());
        return out;
    };
    for (k, v) in top {
        match (k.as_str(), v.as_array()) {
            ("sources", Some(list)) => {
                for (i, s) in list.iter().enumerate() {
                    let name = s["source"].as_str().map(String::from).unwrap_or_else(|| format!("#{i}"));
                    match s.as_object() {
                        Some(m) => out.extend(m.iter().map(|(f, v)| (format!("sources[{name}].{f}"), v.clone()))),
                        None => {
                            out.insert(format!("sources[{name}]"), s.clone());
                        }
                    }
                }
            }
            _ => {
                out.insert(format!("report.{k}"), v.clone());
            }
        }
    }
    out
}

/// The integrity section of a report.
pub fn integrity(report: &Value) -> Integrity {
    let fields = fields(report).iter().map(|(p, v)| (p.clone(), field_hash(p, v))).collect();
    Integrity { format: super::FORMAT.into(), algorithm: "sha256".into(), fields }
}

fn integrity_bytes(i: &Integrity) -> Vec<u8> {
    canonical(&serde_json::to_value(i).unwrap_or_default())
}

/// Sign a report (unsigned when `key` is `None`).
pub fn sign(report: &super::Report, key: Option<&SigningKey>) -> Result<SignedReport, OpsError> {
    let report = serde_json::to_value(report).map_err(|e| bad("report", e.to_string(), "internal error"))?;
    let integrity = integrity(&report);
    let signature = key.map(|k| Signature {
        algorithm: "ed25519".into(),
        public_key: hex::encode(k.verifying_key().to_bytes()),
        value: hex::encode(k.sign(&integrity_bytes(&integrity)).to_bytes()),
    });
    Ok(SignedReport { report, integrity, signature })
}

/// A new key pair: `(secret key file text, public key file text)`.
pub fn generate() -> (String, String) {
    let seed: [u8; 32] = lifeboat_crypto::random_bytes();
    let k = SigningKey::from_bytes(&seed);
    (format!("{SECRET_PREFIX}{}\n", hex::encode(seed)), public_text(&k.verifying_key()))
}

/// The public key file text of a key.
pub fn public_text(k: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}\n", hex::encode(k.to_bytes()))
}

/// Write a new key pair: the secret key to `path` (created, never replaced, mode 0600) and the
/// public key to `path.pub`; returns the public key's text.
pub fn write_keypair(path: &Path) -> Result<String, OpsError> {
    let (secret, public) = generate();
    let io = |p: &Path, e: std::io::Error| bad("key file", p.display().to_string(), e.to_string());
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = std::path::PathBuf::from(pub_path);
    for p in [path, pub_path.as_path()] {
        if p.exists() {
            return Err(bad("key file", p.display().to_string(), "exists already; choose another --out"));
        }
    }
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| io(path, e))?;
    f.write_all(secret.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| io(path, e))?;
    std::fs::write(&pub_path, &public).map_err(|e| io(&pub_path, e))?;
    Ok(public)
}

fn hex32(text: &str, prefix: &str, what: &'static str, shown: &str) -> Result<[u8; 32], OpsError> {
    let t = text.trim();
    let h = t.strip_prefix(prefix).unwrap_or(t);
    let bytes =
        hex::decode(h.trim()).map_err(|_| bad(what, shown, format!("expected one line {prefix}<64 hex digits>")))?;
    bytes.try_into().map_err(|_| bad(what, shown, "the key must be 32 bytes (64 hex digits)"))
}

/// Read a secret key file (the file's content is never shown in errors).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, OpsError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| bad("signing key file", &shown, e.to_string()))?;
    Ok(SigningKey::from_bytes(&hex32(&text, SECRET_PREFIX, "signing key file", &shown)?))
}

/// Read a public key file (or a secret key file, whose public half is used).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, OpsError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| bad("public key file", &shown, e.to_string()))?;
    if text.trim().starts_with(SECRET_PREFIX) {
        return Ok(SigningKey::from_bytes(&hex32(&text, SECRET_PREFIX, "key file", &shown)?).verifying_key());
    }
    let b = hex32(&text, PUBLIC_PREFIX, "public key file", &shown)?;
    VerifyingKey::from_bytes(&b).map_err(|_| bad("public key file", shown, "not a valid Ed25519 public key"))
}

/// What checking a signed report found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Check {
    /// Signature valid, key trusted (when a trusted key was given), and no field changed.
    pub ok: bool,
    /// Whether the signature over the hash list is valid for the embedded key.
    pub signature_valid: bool,
    /// The embedded public key (hex).
    pub public_key: Option<String>,
    /// Whether the embedded key is the trusted one (`None`: no trusted key given).
    pub key_trusted: Option<bool>,
    /// Fields whose content differs from what was signed.
    pub changed: Vec<String>,
    /// Fields that were signed but are gone.
    pub removed: Vec<String>,
    /// Fields that were not signed.
    pub added: Vec<String>,
    /// Everything wrong, one line each, for people.
    pub problems: Vec<String>,
}

/// Check a signed report's bytes, optionally against a trusted public key.
pub fn check(data: &[u8], trusted: Option<&VerifyingKey>) -> Result<Check, OpsError> {
    let s: SignedReport = serde_json::from_slice(data)
        .map_err(|e| bad("drill report", e.to_string(), "expected the report.json a drill wrote"))?;
    let mut c = Check::default();
    compare_fields(&s, &mut c);
    match &s.signature {
        None => c.problems.push("the report is not signed (no signing key was configured for the drill)".into()),
        Some(sig) => check_signature(&s.integrity, sig, trusted, &mut c),
    }
    let diffs = [
        ("changed after signing", &c.changed),
        ("removed after signing", &c.removed),
        ("added after signing", &c.added),
    ];
    for (how, list) in diffs {
        for f in list {
            c.problems.push(format!("{} {how}", describe(f)));
        }
    }
    c.ok = c.problems.is_empty();
    Ok(c)
}

/// `sources[main-db].rto_seconds` → `source main-db: field rto_seconds`.
fn describe(path: &str) -> String {
    if let Some(rest) = path.strip_prefix("sources[") {
        if let Some((name, field)) = rest.split_once("].") {
            return format!("source {name}: field {field}");
        }
    }
    match path.strip_prefix("report.") {
        Some(f) => format!("report field {f}"),
        None => path.to_string(),
    }
}

fn compare_fields(s: &SignedReport, c: &mut Check) {
    let now = integrity(&s.report).fields;
    for (path, hash) in &s.integrity.fields {
        match now.get(path) {
            None => c.removed.push(path.clone()),
            Some(h) if h != hash => c.changed.push(path.clone()),
            Some(_) => {}
        }
    }
    c.added = now.keys().filter(|p| !s.integrity.fields.contains_key(*p)).cloned().collect();
}

fn check_signature(i: &Integrity, sig: &Signature, trusted: Option<&VerifyingKey>, c: &mut Check) {
    c.public_key = Some(sig.public_key.clone());
    let key = hex::decode(&sig.public_key).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
    let key = key.and_then(|b| VerifyingKey::from_bytes(&b).ok());
    let value = hex::decode(&sig.value).ok().and_then(|b| <[u8; 64]>::try_from(b).ok()).map(|b| Ed::from_bytes(&b));
    c.signature_valid = match (key, value) {
        (Some(k), Some(v)) if sig.algorithm == "ed25519" => k.verify(&integrity_bytes(i), &v).is_ok(),
        _ => false,
    };
    if !c.signature_valid {
        c.problems.push(
            "the signature is invalid: the signature or the list of field hashes was altered (or made with another key)"
                .into(),
        );
    }
    if let Some(t) = trusted {
        let same = key.is_some_and(|k| k == *t);
        c.key_trusted = Some(same);
        if !same {
            c.problems.push(format!(
                "the report was signed with key {}, not with the trusted key {}",
                sig.public_key,
                hex::encode(t.to_bytes())
            ));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> Value {
        json!({"format": super::super::FORMAT, "outcome": "ok", "sources": [
            {"source": "db", "rto_seconds": 1.5, "outcome": "ok"},
            {"source": "files", "rto_seconds": 0.2, "outcome": "ok"}]})
    }

    fn signed(key: &SigningKey) -> SignedReport {
        let report = report();
        let integrity = integrity(&report);
        let value = hex::encode(key.sign(&integrity_bytes(&integrity)).to_bytes());
        let signature = Some(Signature {
            algorithm: "ed25519".into(),
            public_key: hex::encode(key.verifying_key().to_bytes()),
            value,
        });
        SignedReport { report, integrity, signature }
    }

    #[test]
    fn canonical_json_ignores_key_order_and_spacing() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&a), br#"{"a":{"x":null,"y":[1,2]},"b":1}"#);
    }

    #[test]
    fn tampering_is_named_and_a_foreign_key_is_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let s = signed(&key);
        let ok = check(&serde_json::to_vec(&s).unwrap(), Some(&key.verifying_key())).unwrap();
        assert!(ok.ok, "{ok:?}");

        let mut t = s.clone();
        t.report["sources"][0]["rto_seconds"] = json!(0.5);
        t.report["sources"][1]["extra"] = json!(1);
        let c = check(&serde_json::to_vec(&t).unwrap(), None).unwrap();
        assert!(!c.ok && c.signature_valid);
        assert_eq!(c.changed, ["sources[db].rto_seconds"]);
        assert_eq!(c.added, ["sources[files].extra"]);
        assert!(c.problems.iter().any(|p| p == "source db: field rto_seconds changed after signing"), "{c:?}");

        let mut t = s.clone();
        t.integrity.fields.insert("report.outcome".into(), "00".into());
        let c = check(&serde_json::to_vec(&t).unwrap(), None).unwrap();
        assert!(!c.signature_valid && c.problems[0].starts_with("the signature is invalid"), "{c:?}");

        let other = SigningKey::from_bytes(&[8; 32]);
        let c = check(&serde_json::to_vec(&s).unwrap(), Some(&other.verifying_key())).unwrap();
        assert!(!c.ok && c.signature_valid && c.key_trusted == Some(false), "{c:?}");
    }

    #[test]
    fn key_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drill.key");
        let public = write_keypair(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let k = read_signing_key(&path).unwrap();
        assert_eq!(public_text(&k.verifying_key()), public);
        assert_eq!(read_public_key(&dir.path().join("drill.key.pub")).unwrap(), k.verifying_key());
        assert!(write_keypair(&path).is_err(), "an existing key is never replaced");
        std::fs::write(&path, "lifeboat-ed25519-secret:zz").unwrap();
        let e = read_signing_key(&path).unwrap_err().to_string();
        assert!(!e.contains("zz"), "{e}");
    }
}
