//! Tree blobs: the JSON listing of one directory.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Id;

/// A directory listing; nodes sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Entries of the directory.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Serialize as restic does (JSON followed by a newline); the blob id is the SHA-256 of this.
    pub fn to_blob(&self) -> Vec<u8> {
        // Serializing plain data structs cannot fail.
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Find a node by name (nodes are sorted, but trees written by others may not be).
    pub fn find(&self, name: &str) -> Option<&Node> {
        match self.nodes.binary_search_by(|n| n.name.as_str().cmp(name)) {
            Ok(i) => Some(&self.nodes[i]),
            Err(_) => self.nodes.iter().find(|n| n.name == name),
        }
    }
}

/// Kind of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Block device.
    Dev,
    /// Character device.
    Chardev,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

/// An extended attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendedAttribute {
    /// Attribute name, e.g. `user.comment`.
    pub name: String,
    /// Raw value, base64 in JSON.
    #[serde(with = "crate::key::b64")]
    pub value: Vec<u8>,
}

/// One entry of a tree: restic's `Node`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name (one path component), escaped as restic stores it (see [`crate::name`]); use
    /// [`Node::name_bytes`] for the real bytes.
    #[serde(deserialize_with = "canonical_name")]
    pub name: String,
    /// Kind.
    #[serde(rename = "type")]
    pub node_type: NodeType,
    /// Go `os.FileMode` (see [`crate::mode`]).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
    /// Modification time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<DateTime<Utc>>,
    /// Access time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atime: Option<DateTime<Utc>>,
    /// Inode change time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctime: Option<DateTime<Utc>>,
    /// Owner uid.
    #[serde(default)]
    pub uid: u32,
    /// Owner gid.
    #[serde(default)]
    pub gid: u32,
    /// Owner name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Group name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Inode number.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub inode: u64,
    /// Device of the file system holding the file (`st_dev`).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub device_id: u64,
    /// Size in bytes (files).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub size: u64,
    /// Hard link count.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub links: u64,
    /// Symlink target.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub linktarget: String,
    /// Extended attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_attributes: Option<Vec<ExtendedAttribute>>,
    /// Device number for device nodes (`st_rdev`).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub device: u64,
    /// Data blobs of a file, in order. restic's checker requires a list (not null) for files.
    #[serde(default)]
    pub content: Option<Vec<Id>>,
    /// Tree blob of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
}

fn canonical_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
    Ok(crate::name::canonical(&s))
}

impl Node {
    /// The raw bytes of the file name.
    pub fn name_bytes(&self) -> Vec<u8> {
        crate::name::unquote(&self.name).unwrap_or_else(|| self.name.as_bytes().to_vec())
    }

    /// A node named by raw file-name bytes.
    pub fn from_raw_name(raw: &[u8], node_type: NodeType) -> Self {
        Node::new(crate::name::quote(raw), node_type)
    }

    /// A node of the given type and name (already escaped) with every other field empty.
    pub fn new(name: impl Into<String>, node_type: NodeType) -> Self {
        Node {
            name: name.into(),
            node_type,
            mode: 0,
            mtime: None,
            atime: None,
            ctime: None,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            inode: 0,
            device_id: 0,
            size: 0,
            links: 0,
            linktarget: String::new(),
            extended_attributes: None,
            device: 0,
            content: if node_type == NodeType::File { Some(Vec::new()) } else { None },
            subtree: None,
        }
    }
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_restic_tree_and_round_trips() {
        let text = r#"{"nodes":[{"name":"a.txt","type":"file","mode":420,"mtime":"2023-01-02T03:04:05.123456789+01:00","atime":"2023-01-02T03:04:05.123456789+01:00","ctime":"2023-01-02T03:04:05.123456789+01:00","uid":1000,"gid":1000,"user":"u","group":"g","inode":42,"device_id":2049,"size":5,"links":1,"content":["3ec79977ef0cf5de7b08cd12b874cd0f62bbaf7f07f3497a5b1bbcc8cb39b1ce"]},{"name":"d","type":"dir","mode":2147484141,"uid":0,"gid":0,"content":null,"subtree":"3ec79977ef0cf5de7b08cd12b874cd0f62bbaf7f07f3497a5b1bbcc8cb39b1ce"}]}"#;
        let tree: Tree = serde_json::from_str(text).expect("parse");
        assert_eq!(tree.nodes[0].size, 5);
        assert_eq!(tree.nodes[0].mtime.expect("mtime").timestamp_subsec_nanos(), 123456789);
        assert!(tree.nodes[1].content.is_none());
        let back: Tree = serde_json::from_slice(&tree.to_blob()).expect("reparse");
        assert_eq!(back, tree);
        assert!(tree.find("d").is_some());
        assert!(tree.find("zz").is_none());
    }

    #[test]
    fn empty_file_writes_an_empty_content_list() {
        let n = Node::new("e", NodeType::File);
        let json = serde_json::to_string(&n).expect("json");
        assert!(json.contains(r#""content":[]"#), "{json}");
    }
}
