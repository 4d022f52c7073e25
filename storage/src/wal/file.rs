//! The WAL's files: recovery and the writer thread that owns them.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc};

use super::{MAX_RECORD_BYTES, Recovery, Request, WalError, WalOptions, WalRecord, WalStats};

pub(super) const MAGIC: &[u8; 8] = b"FJWAL\0\0\x01";
pub(super) const RECORD_HEADER_LEN: usize = 16;
const TRUNCATED_FILE: &str = "truncated";

fn file_name(first_sequence: u64) -> String {
    format!("wal-{first_sequence:020}.log")
}

fn parse_file_name(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

fn record_crc(sequence: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&sequence.to_le_bytes()), payload)
}

pub(super) fn encode_record(out: &mut Vec<u8>, sequence: u64, payload: &[u8]) {
    // Callers reject payloads over MAX_RECORD_BYTES, so the length fits in u32.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&record_crc(sequence, payload).to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(payload);
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WalError::io(dir, e))
}

fn read_truncated(dir: &Path) -> Result<u64, WalError> {
    let path = dir.join(TRUNCATED_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(WalError::io(&path, e)),
    };
    // Written by rename, so it is whole or absent; a damaged one is treated as
    // absent (recovery then returns records the caller will find committed).
    let (Some(value), Some(crc)) = (bytes.get(..8), bytes.get(8..12)) else {
        return Ok(0);
    };
    let stored = u32::from_le_bytes(crc.try_into().unwrap_or_default());
    if crc32c::crc32c(value) != stored {
        return Ok(0);
    }
    Ok(u64::from_le_bytes(value.try_into().unwrap_or_default()))
}

fn write_truncated(dir: &Path, through: u64) -> Result<(), WalError> {
    let tmp = dir.join(format!("{TRUNCATED_FILE}.tmp"));
    let mut bytes = through.to_le_bytes().to_vec();
    bytes.extend_from_slice(&crc32c::crc32c(&through.to_le_bytes()).to_le_bytes());
    let mut file = File::create(&tmp).map_err(|e| WalError::io(&tmp, e))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| WalError::io(&tmp, e))?;
    let path = dir.join(TRUNCATED_FILE);
    std::fs::rename(&tmp, &path).map_err(|e| WalError::io(&path, e))?;
    sync_dir(dir)
}

#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    /// Sequence of its first record (or the next record, while empty).
    first_sequence: u64,
    /// Sequence of its last record; `first_sequence - 1` while empty.
    last_sequence: u64,
    bytes: u64,
}

/// Parses one file's records, appending intact ones after `expected` to `out`.
/// Returns the byte offset after the last intact record and the next expected
/// sequence; the file is damaged from that offset on if it is shorter than the file.
fn scan(bytes: &[u8], mut expected: Option<u64>, out: &mut Vec<WalRecord>) -> (usize, Option<u64>) {
    if bytes.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
        return (0, expected);
    }
    let mut at = MAGIC.len();
    loop {
        let Some(header) = bytes.get(at..at + RECORD_HEADER_LEN) else {
            return (at, expected);
        };
        let field = |range: std::ops::Range<usize>| header.get(range).unwrap_or_default();
        let len = u32::from_le_bytes(field(0..4).try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(field(4..8).try_into().unwrap_or_default());
        let sequence = u64::from_le_bytes(field(8..16).try_into().unwrap_or_default());
        if len > MAX_RECORD_BYTES || expected.is_some_and(|e| e != sequence) || sequence == 0 {
            return (at, expected);
        }
        let start = at + RECORD_HEADER_LEN;
        let Some(payload) = bytes.get(start..start + len) else {
            return (at, expected);
        };
        if record_crc(sequence, payload) != crc {
            return (at, expected);
        }
        out.push(WalRecord {
            sequence,
            payload: Bytes::copy_from_slice(payload),
        });
        expected = Some(sequence + 1);
        at = start + len;
    }
}

#[cfg(test)]
pub(super) fn scan_for_test(bytes: &[u8], out: &mut Vec<WalRecord>) -> usize {
    scan(bytes, None, out).0
}

/// Owns the files; runs on its own thread.
pub(super) struct Writer {
    dir: PathBuf,
    options: WalOptions,
    files: VecDeque<LogFile>,
    active: File,
    next_sequence: u64,
    truncated_through: u64,
    stats: WalStats,
    failed: Option<String>,
    #[cfg(test)]
    fail_next: Option<super::FailPoint>,
}

impl Writer {
    pub(super) fn recover(dir: &Path, options: WalOptions) -> Result<(Writer, Recovery), WalError> {
        std::fs::create_dir_all(dir).map_err(|e| WalError::io(dir, e))?;
        let truncated_through = read_truncated(dir)?;
        let mut names: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
            .map_err(|e| WalError::io(dir, e))?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let first = parse_file_name(entry.file_name().to_str()?)?;
                Some((first, entry.path()))
            })
            .collect();
        names.sort();

        let mut records = Vec::new();
        let mut files = VecDeque::new();
        let mut expected = None;
        let mut cut_bytes = 0;
        let mut dropped_files = 0;
        let mut damaged = false;
        for (first, path) in names {
            if damaged {
                let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                cut_bytes += len;
                dropped_files += 1;
                std::fs::remove_file(&path).map_err(|e| WalError::io(&path, e))?;
                continue;
            }
            let mut bytes = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| WalError::io(&path, e))?;
            let before = records.len();
            // A file's name says where it starts; it must continue the sequence.
            let expect_here = expected.or(Some(first));
            let (good, next) = scan(&bytes, expect_here, &mut records);
            if good < bytes.len() {
                damaged = true;
                cut_bytes += (bytes.len() - good) as u64;
                if good < MAGIC.len() {
                    dropped_files += 1;
                    std::fs::remove_file(&path).map_err(|e| WalError::io(&path, e))?;
                    continue;
                }
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| WalError::io(&path, e))?;
                file.set_len(good as u64)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| WalError::io(&path, e))?;
            }
            let count = (records.len() - before) as u64;
            expected = next.or(expect_here);
            files.push_back(LogFile {
                path,
                first_sequence: first,
                // An empty file ends just before where it starts.
                last_sequence: (first + count).saturating_sub(1),
                bytes: good as u64,
            });
        }
        if damaged {
            sync_dir(dir)?;
        }
        let next_sequence = expected.unwrap_or(1).max(truncated_through + 1);
        records.retain(|record| record.sequence > truncated_through);

        // Always start a fresh file: never append after bytes written before a crash.
        let path = dir.join(file_name(next_sequence));
        let mut active = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| WalError::io(&path, e))?;
        active
            .write_all(MAGIC)
            .and_then(|()| active.sync_all())
            .map_err(|e| WalError::io(&path, e))?;
        sync_dir(dir)?;
        if files.back().is_some_and(|f| f.path == path) {
            files.pop_back();
        }
        files.push_back(LogFile {
            path,
            first_sequence: next_sequence,
            last_sequence: next_sequence - 1,
            bytes: MAGIC.len() as u64,
        });
        let writer = Writer {
            dir: dir.to_path_buf(),
            options,
            files,
            active,
            next_sequence,
            truncated_through,
            stats: WalStats::default(),
            failed: None,
            #[cfg(test)]
            fail_next: None,
        };
        let recovery = Recovery {
            records,
            cut_bytes,
            dropped_files,
            next_sequence,
        };
        Ok((writer, recovery))
    }

    /// Bytes of records not yet truncated (what the budget must account for).
    pub(super) fn live_bytes(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.bytes.saturating_sub(MAGIC.len() as u64))
            .sum()
    }

    pub(super) fn run(
        mut self,
        mut queue: mpsc::UnboundedReceiver<Request>,
        budget: Arc<Semaphore>,
    ) {
        let mut buffer = Vec::new();
        let mut waiting = Vec::new();
        while let Some(first) = queue.blocking_recv() {
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Append {
                        sequence,
                        payload,
                        done,
                    } => {
                        if let Some(reason) = &self.failed {
                            let _ = done.send(Err(WalError::Failed {
                                reason: reason.clone(),
                            }));
                        } else {
                            // Numbered at enqueue, in queue order: the same
                            // contiguous numbering as counting here.
                            debug_assert_eq!(sequence, self.next_sequence);
                            self.next_sequence = sequence + 1;
                            encode_record(&mut buffer, sequence, &payload);
                            waiting.push((sequence, done));
                        }
                    }
                    Request::Truncate { through, done } => {
                        // Appends queued before the truncation are written first.
                        self.flush(&mut buffer, &mut waiting);
                        let _ = done.send(self.truncate(through, &budget));
                    }
                    Request::Stats { done } => {
                        self.flush(&mut buffer, &mut waiting);
                        let _ = done.send(self.stats.clone());
                    }
                    #[cfg(test)]
                    Request::Pause { resume } => {
                        // A send or a dropped sender both resume.
                        let _ = resume.recv();
                    }
                    #[cfg(test)]
                    Request::FailNext { at } => self.fail_next = Some(at),
                }
                if buffer.len() < self.options.max_group_bytes {
                    next = queue.try_recv().ok();
                }
            }
            self.flush(&mut buffer, &mut waiting);
        }
    }

    /// Writes and syncs the buffered records, then answers their appenders.
    fn flush(
        &mut self,
        buffer: &mut Vec<u8>,
        waiting: &mut Vec<(u64, tokio::sync::oneshot::Sender<Result<u64, WalError>>)>,
    ) {
        if waiting.is_empty() {
            return;
        }
        let result = self.write_group(buffer, waiting.len() as u64, waiting.first().map(|w| w.0));
        buffer.clear();
        for (sequence, done) in waiting.drain(..) {
            let answer = match &result {
                Ok(()) => Ok(sequence),
                Err(reason) => Err(WalError::Failed {
                    reason: reason.clone(),
                }),
            };
            let _ = done.send(answer);
        }
    }

    fn write_group(
        &mut self,
        buffer: &[u8],
        records: u64,
        first: Option<u64>,
    ) -> Result<(), String> {
        if let Some(reason) = &self.failed {
            return Err(reason.clone());
        }
        let result = (|| {
            let active_bytes = self.files.back().map_or(0, |f| f.bytes);
            if active_bytes > MAGIC.len() as u64
                && active_bytes + buffer.len() as u64 > self.options.file_bytes
            {
                self.roll(first.unwrap_or(self.next_sequence))?;
            }
            let path = self
                .files
                .back()
                .map(|f| f.path.clone())
                .unwrap_or_default();
            self.write_active(buffer)
                .and_then(|()| self.sync_active())
                .map_err(|e| WalError::io(&path, e))?;
            if let Some(active) = self.files.back_mut() {
                active.bytes += buffer.len() as u64;
                active.last_sequence = self.next_sequence - 1;
            }
            self.stats.records += records;
            self.stats.syncs += 1;
            self.stats.bytes_written += buffer.len() as u64;
            Ok::<(), WalError>(())
        })();
        result.map_err(|error| {
            // A failed write or fsync leaves the file in an unknown state (and
            // Linux may drop the dirty pages): accept nothing more.
            let reason = error.to_string();
            self.failed = Some(reason.clone());
            reason
        })
    }

    fn write_active(&mut self, buffer: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if self.fail_next == Some(super::FailPoint::Write) {
            self.fail_next = None;
            return Err(std::io::Error::other("injected write failure"));
        }
        self.active.write_all(buffer)
    }

    /// `fdatasync` of the active file, timed into the stats.
    fn sync_active(&mut self) -> std::io::Result<()> {
        #[cfg(test)]
        if self.fail_next == Some(super::FailPoint::Sync) {
            self.fail_next = None;
            return Err(std::io::Error::other("injected sync failure"));
        }
        // The writer thread is outside any runtime, so this reads the std
        // monotonic clock; it only measures, it decides nothing.
        let started = tokio::time::Instant::now();
        let result = self.active.sync_data();
        self.stats.sync_latency.record(started.elapsed());
        result
    }

    fn roll(&mut self, first_sequence: u64) -> Result<(), WalError> {
        let path = self.dir.join(file_name(first_sequence));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| WalError::io(&path, e))?;
        file.write_all(MAGIC)
            .and_then(|()| file.sync_all())
            .map_err(|e| WalError::io(&path, e))?;
        sync_dir(&self.dir)?;
        self.active = file;
        self.files.push_back(LogFile {
            path,
            first_sequence,
            last_sequence: first_sequence - 1,
            bytes: MAGIC.len() as u64,
        });
        Ok(())
    }

    fn truncate(&mut self, through: u64, budget: &Semaphore) -> Result<u64, WalError> {
        if through <= self.truncated_through {
            return Ok(0);
        }
        let through = through.min(self.next_sequence - 1);
        write_truncated(&self.dir, through)?;
        self.truncated_through = through;
        // Roll first if the active file is wholly truncated, so it can go too.
        let active_done = self
            .files
            .back()
            .is_some_and(|f| f.last_sequence <= through && f.last_sequence >= f.first_sequence);
        if active_done {
            self.roll(self.next_sequence)?;
        }
        let mut released = 0;
        while self.files.len() > 1 {
            let Some(oldest) = self.files.front() else {
                break;
            };
            if oldest.last_sequence > through {
                break;
            }
            std::fs::remove_file(&oldest.path).map_err(|e| WalError::io(&oldest.path, e))?;
            released += oldest.bytes.saturating_sub(MAGIC.len() as u64);
            self.files.pop_front();
        }
        budget.add_permits(usize::try_from(released).unwrap_or(usize::MAX));
        Ok(released)
    }
}
