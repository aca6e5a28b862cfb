//! A one-way byte pipe from a network thread to the archiver.
//!
//! The snapshot API stops sending (and after 2 s aborts) when flow-control acks do not come,
//! so the thread that reads the server must ack at the server's pace, not at the pace the
//! archiver happens to read (it may be busy compressing or writing packs). Bytes therefore wait
//! here: in memory up to a limit, beyond it in an unnamed temporary file, read back in order.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

#[derive(Default)]
struct State {
    mem: VecDeque<Vec<u8>>,
    mem_bytes: usize,
    spill: Option<File>,
    spill_written: u64,
    spill_read: u64,
    end: Option<Result<(), String>>,
    reader_gone: bool,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    // A panicking peer cannot leave the queue half-updated in a way that matters here.
    s.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// The sending half (owned by the network thread).
pub struct PipeWriter {
    shared: Shared,
    mem_limit: usize,
    closed: bool,
}

/// The receiving half: a [`Read`] for the archiver.
pub struct PipeReader {
    shared: Shared,
    cur: Vec<u8>,
    pos: usize,
}

/// A pipe holding up to `mem_limit` bytes in memory before spilling to a temporary file.
pub fn pipe(mem_limit: usize) -> (PipeWriter, PipeReader) {
    let shared: Shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
    (PipeWriter { shared: shared.clone(), mem_limit, closed: false }, PipeReader { shared, cur: Vec::new(), pos: 0 })
}

impl PipeWriter {
    /// Queue bytes; fails when the reader has gone away (the backup stopped).
    pub fn write(&mut self, data: &[u8]) -> Result<(), String> {
        if data.is_empty() {
            return Ok(());
        }
        let mut st = lock(&self.shared);
        if st.reader_gone {
            return Err("the backup stopped reading".into());
        }
        let spilling = st.spill_read < st.spill_written;
        if !spilling && st.mem_bytes + data.len() <= self.mem_limit {
            st.mem_bytes += data.len();
            st.mem.push_back(data.to_vec());
        } else {
            if st.spill.is_none() {
                st.spill = Some(tempfile::tempfile().map_err(|e| format!("cannot create a spill file: {e}"))?);
            }
            let at = st.spill_written;
            if let Some(f) = &st.spill {
                f.write_all_at(data, at).map_err(|e| format!("cannot write the spill file: {e}"))?;
            }
            st.spill_written += data.len() as u64;
        }
        self.shared.1.notify_all();
        Ok(())
    }

    /// End the stream: `Ok` for a clean end, `Err` makes the reader fail with that message.
    pub fn close(mut self, result: Result<(), String>) {
        self.finish(result);
    }

    fn finish(&mut self, result: Result<(), String>) {
        if !self.closed {
            self.closed = true;
            lock(&self.shared).end = Some(result);
            self.shared.1.notify_all();
        }
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.finish(Err("the network thread ended unexpectedly".into()));
    }
}

impl PipeReader {
    /// Next piece of data: `Ok(None)` at a clean end.
    fn next_piece(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut st = lock(&self.shared);
        loop {
            if let Some(piece) = st.mem.pop_front() {
                st.mem_bytes -= piece.len();
                return Ok(Some(piece));
            }
            if st.spill_read < st.spill_written {
                let n = (st.spill_written - st.spill_read).min(1 << 20) as usize;
                let mut buf = vec![0u8; n];
                if let Some(f) = &st.spill {
                    f.read_exact_at(&mut buf, st.spill_read)?;
                }
                st.spill_read += n as u64;
                if st.spill_read == st.spill_written {
                    // Drained: start over at the beginning so the file does not grow forever.
                    (st.spill_read, st.spill_written) = (0, 0);
                    if let Some(f) = &st.spill {
                        f.set_len(0)?;
                    }
                }
                return Ok(Some(buf));
            }
            match &st.end {
                Some(Ok(())) => return Ok(None),
                Some(Err(e)) => return Err(io::Error::other(e.clone())),
                None => st = self.shared.1.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.next_piece()? {
                Some(p) => (self.cur, self.pos) = (p, 0),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        lock(&self.shared).reader_gone = true;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn order_is_kept_across_memory_and_spill_file() {
        let (mut w, mut r) = pipe(10);
        let writer = std::thread::spawn(move || {
            for i in 0..2000u32 {
                w.write(format!("{i:05}|").as_bytes()).unwrap();
            }
            w.close(Ok(()));
        });
        // Read slowly at first so that the writer spills.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut all = String::new();
        r.read_to_string(&mut all).unwrap();
        writer.join().unwrap();
        let want: String = (0..2000u32).map(|i| format!("{i:05}|")).collect();
        assert_eq!(all, want);
    }

    #[test]
    fn errors_and_a_vanished_writer_reach_the_reader() {
        let (mut w, mut r) = pipe(1 << 20);
        w.write(b"abc").unwrap();
        w.close(Err("server said no".into()));
        let mut s = String::new();
        let e = r.read_to_string(&mut s).unwrap_err();
        assert!(e.to_string().contains("server said no"));
        let (w, mut r) = pipe(1 << 20);
        drop(w);
        assert!(r.read(&mut [0u8; 4]).is_err());
        let (mut w, r) = pipe(1 << 20);
        drop(r);
        assert!(w.write(b"x").is_err());
    }
}
