//! Object types and their place in the restic repository layout.

use std::fmt;
use std::str::FromStr;

/// The kind of an object, which decides where it lives in the repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// The repository `config` file (a single object; its name is ignored).
    Config,
    /// A key file under `keys/`.
    Key,
    /// A snapshot under `snapshots/`.
    Snapshot,
    /// An index file under `index/`.
    Index,
    /// A pack file under `data/<first two chars>/`.
    Pack,
    /// A lock file under `locks/`.
    Lock,
    /// Lifeboat's own metadata under `lifeboat/`; names may contain `/`.
    Lifeboat,
}

/// Restic's directories created by [`crate::Backend::create`] (besides `data/00..ff`).
pub(crate) const LAYOUT_DIRS: [&str; 5] = ["keys", "snapshots", "index", "locks", "data"];

impl FileType {
    /// Every file type, in a fixed order.
    pub const ALL: [FileType; 7] = [
        FileType::Config,
        FileType::Key,
        FileType::Snapshot,
        FileType::Index,
        FileType::Pack,
        FileType::Lock,
        FileType::Lifeboat,
    ];

    /// Short lowercase name: `config`, `key`, `snapshot`, `index`, `pack`,
    /// `lock` or `lifeboat` (also accepted by [`FromStr`]).
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::Config => "config",
            FileType::Key => "key",
            FileType::Snapshot => "snapshot",
            FileType::Index => "index",
            FileType::Pack => "pack",
            FileType::Lock => "lock",
            FileType::Lifeboat => "lifeboat",
        }
    }

    /// Top-level directory holding objects of this type, or `None` for
    /// [`FileType::Config`], which is the single file `config`.
    pub fn dir(self) -> Option<&'static str> {
        match self {
            FileType::Config => None,
            FileType::Key => Some("keys"),
            FileType::Snapshot => Some("snapshots"),
            FileType::Index => Some("index"),
            FileType::Pack => Some("data"),
            FileType::Lock => Some("locks"),
            FileType::Lifeboat => Some("lifeboat"),
        }
    }

    /// Checks that `name` is a valid object name for this type.
    ///
    /// Names must be non-empty, must not start with `.` (reserved for temporary
    /// files), and must not contain `/`, `\` or NUL; [`FileType::Lifeboat`] names
    /// may contain `/` between such components. [`FileType::Pack`] names need at
    /// least two characters. Any name is accepted for [`FileType::Config`].
    pub fn validate_name(self, name: &str) -> std::result::Result<(), String> {
        match self {
            FileType::Config => Ok(()),
            FileType::Lifeboat => {
                if name.is_empty() {
                    return Err("empty name".to_owned());
                }
                name.split('/').try_for_each(validate_component)
            }
            FileType::Pack => {
                validate_component(name)?;
                if pack_prefix(name).is_none() {
                    return Err("pack names need at least two characters".to_owned());
                }
                Ok(())
            }
            _ => validate_component(name),
        }
    }

    /// The folder of a [`Backend::list_prefix`](crate::Backend::list_prefix) prefix of
    /// this type: what precedes its last `/`, with the `/` (`"runs/"` of `"runs/2026"`,
    /// `""` of `"audit"`). `None` when the type has no folders below its own or a
    /// component of the folder is not a valid name (then the whole type is listed).
    pub fn prefix_folder(self, prefix: &str) -> Option<&str> {
        if self != FileType::Lifeboat {
            return None;
        }
        let folder = prefix.rfind('/').map_or("", |i| &prefix[..=i]);
        match folder.strip_suffix('/') {
            None => Some(folder),
            Some(path) => path.split('/').try_for_each(validate_component).ok().map(|()| folder),
        }
    }

    /// Returns the object's key: its `/`-separated path relative to the
    /// repository root (e.g. `data/ab/abcdef…`, `lifeboat/verifications/x`),
    /// the same for every backend. Fails (with a reason) if the name is invalid.
    pub fn object_key(self, name: &str) -> std::result::Result<String, String> {
        self.validate_name(name)?;
        Ok(match self {
            FileType::Config => "config".to_owned(),
            FileType::Pack => match pack_prefix(name) {
                Some(prefix) => format!("data/{prefix}/{name}"),
                None => return Err("pack names need at least two characters".to_owned()),
            },
            other => match other.dir() {
                Some(dir) => format!("{dir}/{name}"),
                None => name.to_owned(),
            },
        })
    }
}

/// The first two characters of a pack name (its `data/` subdirectory).
fn pack_prefix(name: &str) -> Option<&str> {
    let mut chars = name.char_indices();
    chars.next()?;
    let (second, c) = chars.next()?;
    name.get(..second + c.len_utf8())
}

fn validate_component(part: &str) -> std::result::Result<(), String> {
    if part.is_empty() {
        return Err("empty name or path component".to_owned());
    }
    if part.starts_with('.') {
        return Err("names must not start with '.'".to_owned());
    }
    if part.contains(['/', '\\', '\0']) {
        return Err("names must not contain '/', '\\' or NUL".to_owned());
    }
    if part.len() > 255 {
        return Err("name component longer than 255 bytes".to_owned());
    }
    Ok(())
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FileType {
    type Err = String;

    /// Parses the short name ([`FileType::as_str`]) or the directory name
    /// (`keys`, `snapshots`, `data`, `locks`), case-insensitively.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let ft = match lower.as_str() {
            "config" => FileType::Config,
            "key" | "keys" => FileType::Key,
            "snapshot" | "snapshots" => FileType::Snapshot,
            "index" => FileType::Index,
            "pack" | "packs" | "data" => FileType::Pack,
            "lock" | "locks" => FileType::Lock,
            "lifeboat" => FileType::Lifeboat,
            _ => return Err(format!("unknown file type {s:?}")),
        };
        Ok(ft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_restic_layout() {
        assert_eq!(FileType::Config.object_key("whatever").as_deref(), Ok("config"));
        assert_eq!(FileType::Key.object_key("k1").as_deref(), Ok("keys/k1"));
        assert_eq!(FileType::Snapshot.object_key("s").as_deref(), Ok("snapshots/s"));
        assert_eq!(FileType::Index.object_key("i").as_deref(), Ok("index/i"));
        assert_eq!(FileType::Lock.object_key("l").as_deref(), Ok("locks/l"));
        assert_eq!(FileType::Pack.object_key("abcd").as_deref(), Ok("data/ab/abcd"));
        assert_eq!(FileType::Lifeboat.object_key("verifications/abcd").as_deref(), Ok("lifeboat/verifications/abcd"));
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", ".", "..", ".tmp-1", "a/b", "a\\b", "a\0b"] {
            assert!(FileType::Index.validate_name(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "/a", "a/", "a//b", "a/../b", "a/.tmp", "../x"] {
            assert!(FileType::Lifeboat.validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(FileType::Pack.validate_name("a").is_err());
        assert!(FileType::Pack.validate_name("é").is_err());
        assert_eq!(FileType::Pack.object_key("éàx").as_deref(), Ok("data/éà/éàx"));
        assert!(FileType::Lifeboat.validate_name("a/b/c").is_ok());
    }

    #[test]
    fn parses_names() {
        for ft in FileType::ALL {
            assert_eq!(ft.as_str().parse::<FileType>(), Ok(ft));
            assert_eq!(ft.to_string(), ft.as_str());
        }
        assert_eq!("data".parse::<FileType>(), Ok(FileType::Pack));
        assert!("any".parse::<FileType>().is_err());
    }
}
