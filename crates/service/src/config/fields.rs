//! Field lists of the kinds' settings structs (read from their serde derive, so the list can
//! never drift from the struct) and the message for a field a kind does not have.

use std::fmt;

use serde::de::{self, Visitor};

use crate::kinds::{self, Kind};

/// The field names of a `#[derive(Deserialize)]` struct.
pub fn of<'de, T: de::Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Grab(&mut fields));
    fields
}

/// A deserializer that only records the field list serde hands it, then stops.
struct Grab<'a>(&'a mut &'static [&'static str]);

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field list read")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Stop {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for Grab<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = fields;
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

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
