//! A backup that reads the database's pages once: one read transaction streams every page
//! (through SQLite's `sqlite_dbpage` table, so pages still in the write-ahead log come from
//! there) straight to the archiver, and the row counts of the manifest are taken from the
//! same pages as they go by (the cells of each table's b-tree), instead of copying the
//! database with `VACUUM INTO`, counting the rows in the copy and reading the copy again.
//!
//! What is stored is the database file as of that transaction, page for page. Where
//! `sqlite_dbpage` is not compiled in, [`start`] says so and the caller copies instead.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Utc;
use crossbeam_channel::Sender;
use lifeboat_format::mode::go_mode_from_unix;
use rusqlite::{Connection, OpenFlags};

use super::{err, Manifest};
use crate::artifact::Started;
use crate::SourceError;

/// Pages are handed to the archiver in buffers of about this size.
const BUFFER: usize = 1 << 20;

/// Start a backup of the database at `path` that streams its pages; `None` when this build
/// of SQLite has no `sqlite_dbpage` (the caller falls back to a copy).
pub fn start(path: &Path) -> Result<Option<Started>, SourceError> {
    let abs = std::path::absolute(path).map_err(|e| SourceError::Path { path: path.into(), source: e })?;
    let meta = std::fs::metadata(&abs).map_err(|e| SourceError::Path { path: abs.clone(), source: e })?;
    let conn = Connection::open_with_flags(&abs, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| err(&abs, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| err(&abs, e))?;
    if conn.prepare("SELECT pgno FROM sqlite_dbpage LIMIT 0").is_err() {
        return Ok(None);
    }
    // The transaction starts here and holds one state of the database to the end: the schema,
    // the counts of virtual tables and every page are read in it.
    conn.execute_batch("BEGIN").map_err(|e| err(&abs, e))?;
    let plan = Plan::read(&conn).map_err(|e| err(&abs, e))?;
    let file = abs.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "database.db".into());
    let mut node = crate::artifact::node(&file, 0o600, Utc::now());
    {
        use std::os::unix::fs::MetadataExt;
        node.mode = go_mode_from_unix(meta.mode());
        node.uid = meta.uid();
        node.gid = meta.gid();
    }
    node.size = plan.page_count * plan.page_size as u64;
    let (tx, rx) = crossbeam_channel::bounded(8);
    let manifest = Manifest {
        path: abs.to_string_lossy().into_owned(),
        file,
        tables: BTreeMap::new(),
        sqlite_version: rusqlite::version().to_string(),
        user_version: plan.user_version,
        bytes: node.size,
        replica: None,
    };
    let handle = std::thread::Builder::new()
        .name("sqlite-pages".into())
        .spawn(move || {
            let r = pump(&conn, plan, &tx);
            if let Err(e) = &r {
                let _ = tx.send(Err(e.clone()));
            }
            r
        })
        .map_err(|e| err(&abs, e))?;
    Ok(Some(crate::artifact::from_thread(
        manifest.path.clone(),
        node,
        rx,
        handle,
        "the thread reading the pages",
        abs.display().to_string(),
        move |tables| serde_json::to_value(Manifest { tables, ..manifest.clone() }).map_err(|e| e.to_string()),
    )))
}

/// What the transaction holds, read before the pages.
struct Plan {
    page_size: u32,
    page_count: u64,
    user_version: i64,
    /// Tables with a b-tree: name, root page.
    trees: Vec<(String, u32)>,
    /// Virtual tables, counted by SQLite (in the same transaction).
    counted: BTreeMap<String, u64>,
}

impl Plan {
    fn read(conn: &Connection) -> Result<Plan, String> {
        let pragma = |name: &str| conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0));
        let read = || -> rusqlite::Result<(u32, u64, i64)> {
            Ok((pragma("page_size")? as u32, pragma("page_count")?.max(0) as u64, pragma("user_version")?))
        };
        let (page_size, page_count, user_version) = read().map_err(|e| e.to_string())?;
        let mut trees = Vec::new();
        let mut counted = BTreeMap::new();
        for (name, root) in super::tables(conn).map_err(|e| e.to_string())? {
            if root == 0 {
                let n = super::count_rows(conn, &name)?;
                counted.insert(name, n);
            } else {
                trees.push((name, root));
            }
        }
        Ok(Plan { page_size, page_count, user_version, trees, counted })
    }
}

/// Stream every page to `tx`, then count the rows; ends the transaction.
fn pump(conn: &Connection, plan: Plan, tx: &Sender<Result<Vec<u8>, String>>) -> Result<BTreeMap<String, u64>, String> {
    let size = plan.page_size as usize;
    let mut map = PageMap::default();
    let mut buf = Vec::with_capacity(BUFFER);
    let mut next: u64 = 1;
    {
        let mut st = conn.prepare("SELECT pgno, data FROM sqlite_dbpage").map_err(|e| e.to_string())?;
        let mut rows = st.query([]).map_err(|e| e.to_string())?;
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            let pgno = row.get::<_, i64>(0).map_err(|e| e.to_string())?.max(0) as u64;
            let data = row.get_ref(1).map_err(|e| e.to_string())?.as_blob().map_err(|e| e.to_string())?;
            if pgno < next || pgno > plan.page_count || data.len() != size {
                return Err(format!("sqlite_dbpage returned page {pgno} of {} bytes out of order", data.len()));
            }
            // A page SQLite never uses (the lock-byte page of a database over 1 GiB) may be
            // left out: it is zeros in the file.
            while next < pgno {
                buf.resize(buf.len() + size, 0);
                next += 1;
            }
            map.note(pgno as u32, data);
            buf.extend_from_slice(data);
            next += 1;
            if buf.len() >= BUFFER {
                let full = std::mem::replace(&mut buf, Vec::with_capacity(BUFFER));
                if tx.send(Ok(full)).is_err() {
                    return Err("the backup stopped reading".into());
                }
            }
        }
    }
    while next <= plan.page_count {
        buf.resize(buf.len() + size, 0);
        next += 1;
    }
    if !buf.is_empty() && tx.send(Ok(buf)).is_err() {
        return Err("the backup stopped reading".into());
    }
    let mut tables = plan.counted;
    for (name, root) in plan.trees {
        let n = match map.rows(root) {
            Ok(n) => n,
            // Pages this reading does not understand: SQLite counts, still in the transaction.
            Err(_) => super::count_rows(conn, &name)?,
        };
        tables.insert(name, n);
    }
    conn.execute_batch("COMMIT").map_err(|e| e.to_string())?;
    Ok(tables)
}

/// What the row counts need of each b-tree page: its type, its cells and, for an interior
/// page, its children.
#[derive(Default)]
struct PageMap {
    /// By page number: (type, cells, start of the children in `children`).
    pages: Vec<(u8, u16, u32)>,
    children: Vec<u32>,
}

const INTERIOR_INDEX: u8 = 2;
const INTERIOR_TABLE: u8 = 5;
const LEAF_INDEX: u8 = 10;
const LEAF_TABLE: u8 = 13;

impl PageMap {
    /// Note page `pgno` if it looks like a b-tree page (an overflow or free page may look like
    /// one too: only pages reached from a table's root are ever counted).
    fn note(&mut self, pgno: u32, data: &[u8]) {
        let h = if pgno == 1 { 100 } else { 0 };
        let (Some(&kind), Some(cells)) = (data.get(h), data.get(h + 3..h + 5)) else { return };
        let cells = u16::from_be_bytes([cells[0], cells[1]]);
        let start = self.children.len() as u32;
        match kind {
            LEAF_INDEX | LEAF_TABLE => {}
            INTERIOR_INDEX | INTERIOR_TABLE => {
                let mut kids = Vec::with_capacity(cells as usize + 1);
                for i in 0..cells as usize {
                    let Some(p) = data.get(h + 12 + 2 * i..h + 14 + 2 * i) else { return };
                    let off = u16::from_be_bytes([p[0], p[1]]) as usize;
                    let Some(c) = data.get(off..off + 4) else { return };
                    kids.push(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                }
                let Some(r) = data.get(h + 8..h + 12) else { return };
                kids.push(u32::from_be_bytes([r[0], r[1], r[2], r[3]]));
                self.children.extend(kids);
            }
            _ => return,
        }
        let i = pgno as usize;
        if self.pages.len() <= i {
            self.pages.resize(i + 1, (0, 0, 0));
        }
        self.pages[i] = (kind, cells, start);
    }

    /// Rows of the b-tree rooted at `root`: the cells of its leaves (and, in an index b-tree,
    /// which is what a `WITHOUT ROWID` table is, of its interior pages too).
    fn rows(&self, root: u32) -> Result<u64, String> {
        let index = match self.pages.get(root as usize) {
            Some((LEAF_INDEX | INTERIOR_INDEX, _, _)) => true,
            Some((LEAF_TABLE | INTERIOR_TABLE, _, _)) => false,
            _ => return Err(format!("page {root} is not the root of a b-tree")),
        };
        let (leaf, interior) = if index { (LEAF_INDEX, INTERIOR_INDEX) } else { (LEAF_TABLE, INTERIOR_TABLE) };
        let mut n = 0u64;
        let mut stack = vec![root];
        let mut visited = 0usize;
        while let Some(p) = stack.pop() {
            visited += 1;
            if visited > self.pages.len() {
                return Err(format!("the b-tree at page {root} loops"));
            }
            let &(kind, cells, start) =
                self.pages.get(p as usize).ok_or_else(|| format!("page {p} is not a b-tree page"))?;
            if kind == leaf {
                n += u64::from(cells);
            } else if kind == interior {
                if index {
                    n += u64::from(cells);
                }
                let s = start as usize;
                stack.extend_from_slice(&self.children[s..s + cells as usize + 1]);
            } else {
                return Err(format!("page {p} (type {kind}) is not part of the b-tree at page {root}"));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lifeboat_repository::archiver::{Content, Entry};

    /// A database of several shapes: a rowid table deep enough for interior pages, rows with
    /// overflow pages, a `WITHOUT ROWID` table, an index, an empty table, a virtual table, and
    /// free pages left by a delete.
    fn shaped(db: &Path) -> Connection {
        let c = Connection::open(db).unwrap();
        c.pragma_update(None, "journal_mode", "wal").unwrap();
        c.execute_batch(
            "CREATE TABLE ledger(id INTEGER PRIMARY KEY, account TEXT, amount INTEGER, memo TEXT);
             CREATE INDEX ledger_account ON ledger(account);
             CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB);
             CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
             CREATE TABLE empty(x);
             CREATE VIRTUAL TABLE notes USING fts5(body);
             BEGIN;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000)
               INSERT INTO ledger(account, amount, memo) SELECT 'acct' || (i % 97), i, printf('%.*c', i % 200, 'm') FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
               INSERT INTO blobs(b) SELECT randomblob(9000 + i) FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
               INSERT INTO kv SELECT printf('key-%08d', i), printf('%.*c', i % 50, 'v') FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
               INSERT INTO notes SELECT 'note ' || i FROM n;
             COMMIT;
             DELETE FROM ledger WHERE id % 3 = 0;
             DELETE FROM kv WHERE k < 'key-00005000';",
        )
        .unwrap();
        c
    }

    fn backup(db: &Path) -> (Vec<u8>, serde_json::Value) {
        let s = start(db).unwrap().expect("sqlite_dbpage is compiled in (.cargo/config.toml)");
        let mut entries = s.entries;
        let Some(Entry::File { node, content: Content::Reader(mut r) }) = entries.next() else { panic!("one file") };
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes).unwrap();
        assert_eq!(node.size, bytes.len() as u64);
        (bytes, (s.finish)().unwrap().unwrap())
    }

    #[test]
    fn the_streamed_pages_are_the_database_and_the_counts_are_sqlites() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let c = shaped(&db);
        // Some of it only in the write-ahead log.
        c.execute("INSERT INTO ledger(account, amount, memo) VALUES ('late', 1, 'in the log')", []).unwrap();
        let (bytes, manifest) = backup(&db);
        let copy = dir.path().join("copy.db");
        std::fs::write(&copy, &bytes).unwrap();
        let (want, uv) = crate::sqlite::describe(&db).unwrap();
        let m: Manifest = serde_json::from_value(manifest).unwrap();
        assert_eq!(m.tables, want, "counts from the pages");
        assert_eq!(m.user_version, uv);
        assert_eq!(crate::sqlite::describe(&copy).unwrap().0, want, "the copy holds the same rows");
        let ok: String =
            Connection::open(&copy).unwrap().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok");
        assert_eq!(m.tables["ledger"], 20001);
        assert_eq!(m.tables["kv"], 15001);
        assert_eq!(m.tables["empty"], 0);
        assert_eq!(m.tables["notes"], 300);
    }

    #[test]
    fn a_writer_during_the_backup_does_not_change_what_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let c = shaped(&db);
        let s = start(&db).unwrap().unwrap();
        // Committed after the transaction began: not in the backup.
        c.execute("INSERT INTO ledger(account, amount, memo) VALUES ('after', 1, 'x')", []).unwrap();
        c.execute("DELETE FROM kv", []).unwrap();
        let Some(Entry::File { content: Content::Reader(mut r), .. }) = { s.entries }.next() else {
            panic!("one file")
        };
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes).unwrap();
        let m: Manifest = serde_json::from_value((s.finish)().unwrap().unwrap()).unwrap();
        let copy = dir.path().join("copy.db");
        std::fs::write(&copy, &bytes).unwrap();
        assert_eq!(m.tables["ledger"], 20000);
        assert_eq!(m.tables["kv"], 15001);
        assert_eq!(crate::sqlite::describe(&copy).unwrap().0, m.tables);
    }

    #[test]
    fn a_tree_the_page_map_does_not_understand_is_an_error_not_a_count() {
        let mut map = PageMap::default();
        let mut leaf = vec![0u8; 512];
        leaf[0] = LEAF_TABLE;
        leaf[4] = 7;
        map.note(2, &leaf);
        assert_eq!(map.rows(2), Ok(7));
        let mut interior = vec![0u8; 512];
        interior[0] = INTERIOR_INDEX;
        interior[4] = 1;
        interior[13] = 100; // the one cell at offset 100: left child 2 (a table leaf)
        interior[103] = 2;
        interior[11] = 2; // right-most child 2
        map.note(3, &interior);
        assert!(map.rows(3).is_err(), "a table leaf in an index tree");
        assert!(map.rows(4).is_err(), "a page never seen");
    }
}
