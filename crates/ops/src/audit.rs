//! The audit log: who did what to the repository, when, from where — stored in the repository
//! itself under `lifeboat/audit/`, one small object per event, encrypted with the master key.
//!
//! The log is a hash chain. Each record carries its position (`seq`) and the SHA-256 of the
//! previous record's plaintext (`prev`), and is named `audit/<seq, 12 digits>-<first 16 hex
//! digits of its own SHA-256>.json`, so deleting, editing, renaming or reordering a record breaks
//! a link that [`verify`] names. From time to time a record also carries an Ed25519 signature
//! over the head it extends (a *checkpoint*, made with the drill signing key when one is
//! configured), so the chain up to that point cannot be rewritten by someone who only holds the
//! repository password.
//!
//! Concurrent writers (the daemon and a CLI) never fork the chain silently: a writer saves its
//! record, lists the log again, and withdraws and retries when another record took the same
//! position (the one that saw no rival keeps it, so at most one does). Whatever a race could
//! still leave behind — two records at one position, a link to a withdrawn record — is reported
//! by [`verify`] as a fork, never hidden (docs/decisions.md).
//!
//! Records written before the chain existed (`audit/<time>-<random>.json`) still read: they are
//! a legacy prefix, and the first chained record's `prev` is a digest of them, so deleting or
//! editing one of them after the chain started is caught as well.
//!
//! Events carry ids and counts, never secrets: a key event names the key id, not the password.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, Verifier};
use lifeboat_backend::FileType;
use lifeboat_repository::{util, RepoError, Repository};
use serde::{Deserialize, Serialize};

use crate::drill::sign::{Signature, SigningKey, VerifyingKey};
use crate::OpsError;

/// Prefix of audit objects under `lifeboat/`.
const PREFIX: &str = "audit/";
/// A signing writer adds a checkpoint when this many records followed the last one.
pub const CHECKPOINT_EVERY: u64 = 32;
/// The action of a checkpoint record.
pub const CHECKPOINT: &str = "audit checkpoint";
/// How often a writer retries after losing a race for a position.
const ATTEMPTS: u32 = 12;

/// One audit event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Host it ran on.
    pub host: String,
    /// User it ran as.
    pub user: String,
    /// What was done (`backup`, `restore`, `verify`, `key add`, `forget`, …).
    pub action: String,
    /// The source it was about, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The snapshot it was about (full id), if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Details: ids, counts, targets — never secrets.
    #[serde(default)]
    pub details: serde_json::Value,
}

impl Event {
    /// An event stamped now, on this host, as this user.
    pub fn new(action: impl Into<String>, details: serde_json::Value) -> Event {
        Event {
            time: Utc::now(),
            host: util::hostname(),
            user: util::username(),
            action: action.into(),
            source: None,
            snapshot: None,
            details,
        }
    }

    /// The same event about `source` and `snapshot`.
    pub fn about(mut self, source: Option<&str>, snapshot: Option<String>) -> Event {
        self.source = source.map(String::from);
        self.snapshot = snapshot;
        self
    }
}

/// A chained record as stored: the event, its position and the link to the previous record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Hex SHA-256 of the previous record's plaintext; for record 1, the digest of the legacy
    /// (unchained) records that existed when the chain started.
    pub prev: String,
    /// Record 1 only: how many legacy records `prev` covers.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub legacy: u64,
    /// Position of the last checkpoint before this record (0: none yet).
    #[serde(default)]
    pub signed: u64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
    /// A checkpoint's Ed25519 signature over the head it extends (`seq - 1` and `prev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where an appended record landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Appended {
    /// Its position.
    pub seq: u64,
    /// Its hex SHA-256.
    pub hash: String,
}

fn invalid(e: impl std::fmt::Display) -> OpsError {
    OpsError::Repo(RepoError::Invalid(e.to_string()))
}

fn backend_err(e: lifeboat_backend::BackendError) -> OpsError {
    OpsError::Repo(RepoError::from(e))
}

/// `(seq, hash prefix)` of a chained record's object name.
fn chained_name(name: &str) -> Option<(u64, &str)> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(".json")?;
    let (seq, hash) = rest.split_once('-')?;
    let ok = seq.len() == 12
        && seq.bytes().all(|b| b.is_ascii_digit())
        && hash.len() == 16
        && hash.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| seq.parse().ok().map(|s| (s, hash))).flatten()
}

/// The object name of a chained record.
fn name_of(seq: u64, hash: &str) -> String {
    format!("{PREFIX}{seq:012}-{}.json", hash.get(..16).unwrap_or(hash))
}

/// Chained records as `(seq, object name)`.
type Chained = Vec<(u64, String)>;

/// The audit objects: chained `(seq, name)` pairs and legacy names, each sorted.
fn names(repo: &Repository) -> Result<(Chained, Vec<String>), OpsError> {
    let mut chained = Vec::new();
    let mut legacy = Vec::new();
    for (name, _) in repo.backend().list_prefix(FileType::Lifeboat, PREFIX).map_err(backend_err)? {
        if let Some((seq, _)) = chained_name(&name) {
            chained.push((seq, name));
        } else if name.starts_with(PREFIX) {
            legacy.push(name);
        }
    }
    chained.sort();
    legacy.sort();
    Ok((chained, legacy))
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(lifeboat_crypto::sha256(data))
}

/// The digest of legacy records: SHA-256 over `name NUL sha256(plaintext) LF` per record, by name.
fn legacy_digest<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut text = String::new();
    for (name, hash) in items {
        text.push_str(name);
        text.push('\0');
        text.push_str(hash);
        text.push('\n');
    }
    hex_sha256(text.as_bytes())
}

/// What a checkpoint signs: the head it extends.
fn head_message(seq: u64, hash: &str) -> Vec<u8> {
    format!("lifeboat-audit-head\0{seq}\0{hash}").into_bytes()
}

/// Append an event to the repository's audit log (no checkpoint).
pub fn record(repo: &Repository, event: &Event) -> Result<Appended, OpsError> {
    append(repo, event, None, false)
}

/// Append an event; with `key`, add a signed checkpoint afterwards when one is due
/// ([`CHECKPOINT_EVERY`] records since the last) or when `checkpoint` asks for one.
pub fn append(
    repo: &Repository,
    event: &Event,
    key: Option<&SigningKey>,
    checkpoint: bool,
) -> Result<Appended, OpsError> {
    let (appended, signed) = append_record(repo, event, None)?;
    if let Some(key) = key {
        if checkpoint || appended.seq - signed >= CHECKPOINT_EVERY {
            let details = serde_json::json!({ "head_seq": appended.seq, "head": appended.hash });
            append_record(repo, &Event::new(CHECKPOINT, details), Some(key))?;
        }
    }
    Ok(appended)
}

/// Append one record (signed over the head it extends when `key` is given); returns where it
/// landed and the position of the last checkpoint before it.
fn append_record(repo: &Repository, event: &Event, key: Option<&SigningKey>) -> Result<(Appended, u64), OpsError> {
    let backend = repo.backend();
    for attempt in 0..ATTEMPTS {
        let (chained, legacy) = names(repo)?;
        let head_seq = chained.last().map(|(s, _)| *s).unwrap_or(0);
        let at_head: Vec<&String> = chained.iter().filter(|(s, _)| *s == head_seq).map(|(_, n)| n).collect();
        if at_head.len() > 1 && attempt + 1 < ATTEMPTS {
            // Another writer's race is still being settled.
            pause(attempt);
            continue;
        }
        let (prev, legacy_count, signed, head_name) = match at_head.first() {
            None => {
                let mut items = Vec::new();
                for name in &legacy {
                    items.push((name.clone(), hex_sha256(&repo.load_unpacked(FileType::Lifeboat, name)?)));
                }
                let digest = legacy_digest(items.iter().map(|(n, h)| (n.as_str(), h.as_str())));
                (digest, legacy.len() as u64, 0, None)
            }
            Some(name) => {
                let plain = repo.load_unpacked(FileType::Lifeboat, name)?;
                let head: Record = serde_json::from_slice(&plain).map_err(|e| invalid(format!("{name}: {e}")))?;
                let signed = if head.signature.is_some() { head.seq } else { head.signed };
                (hex_sha256(&plain), 0, signed, Some((*name).clone()))
            }
        };
        let seq = head_seq + 1;
        let signature = key.map(|k| Signature {
            algorithm: "ed25519".into(),
            public_key: hex::encode(k.verifying_key().to_bytes()),
            value: hex::encode(k.sign(&head_message(head_seq, &prev)).to_bytes()),
        });
        let rec = Record { seq, prev, legacy: legacy_count, signed, event: event.clone(), signature };
        let plain = serde_json::to_vec(&rec).map_err(invalid)?;
        let hash = hex_sha256(&plain);
        let name = name_of(seq, &hash);
        backend.save(FileType::Lifeboat, &name, &repo.encode_unpacked(&plain)).map_err(backend_err)?;
        // Did another writer take the same position, or withdraw the record this one links to?
        let (now, _) = names(repo)?;
        let rival = now.iter().any(|(s, n)| *s == seq && *n != name);
        let lost_head = head_name.is_some_and(|h| !now.iter().any(|(_, n)| *n == h));
        if !(rival || lost_head) {
            return Ok((Appended { seq, hash }, signed));
        }
        if attempt + 1 == ATTEMPTS {
            return Err(invalid(format!(
                "the audit log is busy: position {seq} is contested after {ATTEMPTS} attempts; `lifeboat audit verify` shows the fork"
            )));
        }
        backend.remove(FileType::Lifeboat, &name).map_err(backend_err)?;
        pause(attempt);
    }
    Err(invalid("the audit log is busy"))
}

/// A random pause that grows with the attempt (so racing writers fall apart).
fn pause(attempt: u32) {
    let r = u64::from(u16::from_le_bytes(lifeboat_crypto::random_bytes::<2>()));
    let ms = 5 + r % (20 * u64::from(attempt + 1));
    std::thread::sleep(Duration::from_millis(ms));
}

/// Audit objects that could not be read: (object name, why).
pub type Unreadable = Vec<(String, String)>;

/// Every event at or after `since` (all when `None`): legacy records by time, then the chain
/// in order. Unreadable records are returned as `(name, reason)` so a listing can flag
/// tampering instead of hiding it.
pub fn list(repo: &Repository, since: Option<DateTime<Utc>>) -> Result<(Vec<Event>, Unreadable), OpsError> {
    let (chained, legacy) = names(repo)?;
    let mut bad = Vec::new();
    let mut old = Vec::new();
    for name in legacy {
        match repo.load_json::<Event>(FileType::Lifeboat, &name) {
            Ok(e) => old.push(e),
            Err(e) => bad.push((name, e.to_string())),
        }
    }
    old.sort_by_key(|e| e.time);
    let mut events = old;
    for (_, name) in chained {
        match repo.load_json::<Record>(FileType::Lifeboat, &name) {
            Ok(r) => events.push(r.event),
            Err(e) => bad.push((name, e.to_string())),
        }
    }
    events.retain(|e| since.is_none_or(|s| e.time >= s));
    Ok((events, bad))
}

/// A broken link of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The position where the chain breaks (0: the legacy prefix).
    pub seq: u64,
    /// The object concerned, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What is wrong, in words.
    pub problem: String,
}

/// A checkpoint found in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// The checkpoint record's position (it signs the head `seq - 1`).
    pub seq: u64,
    /// When it was made.
    pub time: DateTime<Utc>,
    /// The signing key (hex).
    pub public_key: String,
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChainReport {
    /// Legacy (unchained) records the chain's first record covers.
    pub legacy: u64,
    /// Legacy records written after the chain started (by an older Lifeboat): not covered.
    pub legacy_after: Vec<String>,
    /// Chained records found.
    pub records: u64,
    /// The last position and its hash.
    pub head: Option<Appended>,
    /// Checkpoints, oldest first.
    pub checkpoints: Vec<Checkpoint>,
    /// Broken links, first first. Empty: the chain is intact.
    pub broken: Vec<Break>,
}

/// One chained object as read back.
struct Found {
    name: String,
    hash_in_name: String,
    read: Result<(String, Record), String>,
}

/// Check the whole chain: every record present once, unchanged, in its place and linked to
/// the previous one; every checkpoint's signature valid (and made by `trusted` when given).
pub fn verify(repo: &Repository, trusted: Option<&VerifyingKey>) -> Result<ChainReport, OpsError> {
    let (chained, legacy) = names(repo)?;
    let mut report = ChainReport::default();
    let mut at: BTreeMap<u64, Vec<Found>> = BTreeMap::new();
    for (seq, name) in chained {
        let hash_in_name = chained_name(&name).map(|(_, h)| h.to_string()).unwrap_or_default();
        let read = match repo.load_unpacked(FileType::Lifeboat, &name) {
            Ok(plain) => serde_json::from_slice::<Record>(&plain)
                .map(|r| (hex_sha256(&plain), r))
                .map_err(|e| format!("is not an audit record ({e})")),
            Err(e) => Err(format!("cannot be decrypted or read (edited without the key, or damaged): {e}")),
        };
        at.entry(seq).or_default().push(Found { name, hash_in_name, read });
    }
    report.records = at.values().map(|v| v.len() as u64).sum();
    let mut broken: Vec<Break> = Vec::new();
    let mut brk = |seq: u64, name: Option<&str>, problem: String| {
        if broken.last().is_none_or(|b| b.seq != seq) {
            broken.push(Break { seq, name: name.map(String::from), problem });
        }
    };
    // Where each record says it belongs, to tell a moved record from a deleted one.
    let mut claimed: BTreeMap<u64, String> = BTreeMap::new();
    for f in at.values().flatten() {
        if let Ok((_, r)) = &f.read {
            claimed.insert(r.seq, f.name.clone());
        }
    }
    let genesis_time = at.get(&1).and_then(|v| v.first()).and_then(|f| f.read.as_ref().ok()).map(|(_, r)| r.event.time);
    // The legacy prefix: the records older than the chain's first record.
    let stamp = genesis_time.map(|t| format!("{PREFIX}{}", t.format("%Y%m%dT%H%M%S%.6fZ")));
    let mut legacy_hashes = Vec::new();
    for name in &legacy {
        if stamp.as_ref().is_some_and(|s| name > s) {
            report.legacy_after.push(name.clone());
            continue;
        }
        match repo.load_unpacked(FileType::Lifeboat, name) {
            Ok(p) => legacy_hashes.push((name.clone(), hex_sha256(&p))),
            Err(e) => brk(0, Some(name), format!("legacy record {name} cannot be decrypted or read: {e}")),
        }
    }
    report.legacy = legacy_hashes.len() as u64;
    let last = at.keys().last().copied().unwrap_or(0);
    let mut expected = Some(legacy_digest(legacy_hashes.iter().map(|(n, h)| (n.as_str(), h.as_str()))));
    for seq in 1..=last {
        let found = at.get(&seq).map(Vec::as_slice).unwrap_or(&[]);
        let prev_known = expected.take();
        match found {
            [] => {
                let hint = match claimed.get(&seq) {
                    Some(n) => format!("it was moved: {n} holds it"),
                    None => "deleted".to_string(),
                };
                brk(seq, None, format!("record {seq} is missing ({hint})"));
            }
            [f] => match &f.read {
                Err(e) => brk(seq, Some(&f.name), format!("record {seq} {e}")),
                Ok((hash, r)) => {
                    if !hash.starts_with(&f.hash_in_name) {
                        brk(seq, Some(&f.name), format!("record {seq} was changed after it was written (its content no longer matches its name)"));
                    } else if r.seq != seq {
                        brk(seq, Some(&f.name), format!("record {} was moved to position {seq}", r.seq));
                    } else if prev_known.as_ref().is_some_and(|p| *p != r.prev) {
                        let what = if seq == 1 {
                            "the legacy records before the chain were changed, added or deleted".to_string()
                        } else {
                            format!("record {} was edited, replaced or moved", seq - 1)
                        };
                        brk(seq, Some(&f.name), format!("record {seq} does not link to the record before it: {what}"));
                    } else if let Some(sig) = &r.signature {
                        match check_signature(sig, seq - 1, &r.prev, trusted) {
                            Ok(()) => report.checkpoints.push(Checkpoint {
                                seq,
                                time: r.event.time,
                                public_key: sig.public_key.clone(),
                            }),
                            Err(why) => brk(seq, Some(&f.name), format!("checkpoint {seq}: {why}")),
                        }
                    }
                    expected = Some(hash.clone());
                    if seq == last {
                        report.head = Some(Appended { seq, hash: hash.clone() });
                    }
                }
            },
            many => {
                let list: Vec<&str> = many.iter().map(|f| f.name.as_str()).collect();
                brk(
                    seq,
                    None,
                    format!(
                        "{} records claim position {seq} (a fork: a race of writers or an inserted record): {}",
                        many.len(),
                        list.join(", ")
                    ),
                );
            }
        }
    }
    report.broken = broken;
    Ok(report)
}

fn check_signature(sig: &Signature, head_seq: u64, head: &str, trusted: Option<&VerifyingKey>) -> Result<(), String> {
    let key = hex::decode(&sig.public_key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or("its public key is not a valid Ed25519 key")?;
    let value = hex::decode(&sig.value)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| ed25519_dalek::Signature::from_bytes(&b))
        .ok_or("its signature is malformed")?;
    key.verify(&head_message(head_seq, head), &value).map_err(|_| "its signature is not valid".to_string())?;
    match trusted {
        Some(t) if *t != key => Err(format!("signed by {}, not by the trusted key", sig.public_key)),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chained_names_are_told_from_legacy_ones() {
        assert_eq!(chained_name("audit/000000000042-0123456789abcdef.json"), Some((42, "0123456789abcdef")));
        assert_eq!(chained_name("audit/20261120T103000.123456Z-abcd1234.json"), None);
        assert_eq!(chained_name("audit/00000000004-0123456789abcdef.json"), None);
        assert_eq!(name_of(7, &"ab".repeat(32)), "audit/000000000007-abababababababab.json");
    }

    #[test]
    fn a_signature_covers_the_head_it_extends() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let sig = Signature {
            algorithm: "ed25519".into(),
            public_key: hex::encode(k.verifying_key().to_bytes()),
            value: hex::encode(k.sign(&head_message(3, "aa")).to_bytes()),
        };
        assert!(check_signature(&sig, 3, "aa", None).is_ok());
        assert!(check_signature(&sig, 3, "ab", None).is_err());
        assert!(check_signature(&sig, 4, "aa", None).is_err());
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(check_signature(&sig, 3, "aa", Some(&other)).is_err());
        assert!(check_signature(&sig, 3, "aa", Some(&k.verifying_key())).is_ok());
    }
}
