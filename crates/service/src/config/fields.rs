//! The message for a field a kind does not have: another kind's field, or an unknown one with
//! the closest field as a suggestion, and the kind's own field list.

use crate::kinds::{self, Kind};

/// Why `key` is not a field of `kind`: another kind's field, or unknown with the closest field
/// of this kind as a suggestion; then this kind's own fields.
pub fn unknown(kind: &dyn Kind, key: &str) -> String {
    let own = kind.fields();
    let list = if own.is_empty() { "none of its own".to_string() } else { own.join(", ") };
    let others: Vec<&str> = kinds::all().iter().filter(|k| k.fields().contains(&key)).map(|k| k.name()).collect();
    let head = if others.is_empty() {
        let candidates = own.iter().chain(super::COMMON_FIELDS.iter());
        let best = candidates
            .map(|c| (strsim::jaro_winkler(key, c), *c))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        match best {
            Some((_, c)) => format!("unknown field `{key}` for a {} source; did you mean `{c}`?", kind.name()),
            None => format!("unknown field `{key}` for a {} source", kind.name()),
        }
    } else {
        format!("`{key}` does not apply to a {} source (it is a setting of {} sources)", kind.name(), others.join(", "))
    };
    format!("{head} ({} fields: {list}; every source: {})", kind.name(), super::COMMON_FIELDS.join(", "))
}
