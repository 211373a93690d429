//! Applying NAV statistics and metadata uploads: one code path for `POST /v1/statistics` and
//! `ia-rct ingest`.
//!
//! A blocking task reads the upload (any `std::io::Read`: a file, or the request body bridged from
//! the async stream), parses it row by row and sends chunks over a bounded channel; the store
//! applies them in one transaction. Memory stays bounded by the channel and the chunk size,
//! whatever the size of the upload.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::statistics::{Rows, StatsFormat, read_metadata, read_stats, sniff};
use crate::storage::statistics::{
    IngestFailure, IngestMessage, NewStatisticsUpload, StatisticsReceipt, UploadKind,
};
use crate::storage::{Audited, NewAuditEntry, Store};

/// Rows per chunk sent to the store (below SQLite's limit of bound parameters per statement).
pub const CHUNK_ROWS: usize = 2_500;

/// Chunks in flight between the parser and the store.
const CHANNEL_CHUNKS: usize = 4;

/// Invalid rows are sent in batches of this size.
const PROBLEM_BATCH: usize = 100;

/// A reader that hashes everything read through it and refuses to read past a limit.
struct Hashing<R> {
    inner: R,
    hasher: Arc<Mutex<Sha256>>,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!(
                    "the upload is larger than the limit of {} bytes",
                    self.limit
                ),
            ));
        }
        if let Ok(mut hasher) = self.hasher.lock() {
            hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Parses `reader` and sends the store its rows, problems and, last, the content's SHA-256.
/// Statistics and metadata take the same path; the first bytes tell which the upload holds.
fn produce<R: Read>(reader: R, limit: u64, tx: &mpsc::Sender<IngestMessage>) -> Result<(), ()> {
    let hasher = Arc::new(Mutex::new(Sha256::new()));
    let mut hashing = Hashing {
        inner: reader,
        hasher: hasher.clone(),
        read: 0,
        limit,
    };
    let send = |m: IngestMessage| tx.blocking_send(m).map_err(|_| ());
    let (format, reader) = match sniff(&mut hashing) {
        Ok(sniffed) => sniffed,
        Err(e) => {
            return send(IngestMessage::Failed(format!(
                "the upload could not be read: {e}"
            )));
        }
    };
    let kind = if matches!(format, StatsFormat::MetadataCsv | StatsFormat::MetadataJson) {
        pump(
            read_metadata(reader, format),
            IngestMessage::Metadata,
            &send,
        )?;
        UploadKind::Metadata
    } else {
        pump(read_stats(reader, format), IngestMessage::Rows, &send)?;
        UploadKind::Statistics
    };
    // Hash whatever the parser did not need to read (trailing whitespace, say).
    if let Err(e) = io::copy(&mut hashing, &mut io::sink()) {
        return send(IngestMessage::Failed(format!(
            "the upload could not be read: {e}"
        )));
    }
    let sha256 = hasher
        .lock()
        .map(|h| hex::encode(h.clone().finalize()))
        .unwrap_or_default();
    send(IngestMessage::Done { sha256, kind })
}

/// Sends the rows of one upload in chunks (made into messages by `wrap`) and its problems in
/// batches. A reader that hit the size limit ends the upload with [`IngestMessage::Failed`].
fn pump<R: Read, T>(
    mut rows: Rows<R, T>,
    wrap: fn(Vec<(usize, T)>) -> IngestMessage,
    send: &dyn Fn(IngestMessage) -> Result<(), ()>,
) -> Result<(), ()> {
    let mut chunk = Vec::with_capacity(CHUNK_ROWS);
    let mut problems = Vec::new();
    while let Some(item) = rows.next() {
        match item {
            Ok(row) => chunk.push((rows.last_row(), row)),
            Err(e) if e.row == 0 && e.reason.contains("larger than the limit") => {
                return send(IngestMessage::Failed(e.reason)).and(Err(()));
            }
            Err(e) => problems.push(e),
        }
        if chunk.len() == CHUNK_ROWS {
            send(wrap(std::mem::replace(
                &mut chunk,
                Vec::with_capacity(CHUNK_ROWS),
            )))?;
        }
        if problems.len() == PROBLEM_BATCH {
            send(IngestMessage::Problems(std::mem::take(&mut problems)))?;
        }
    }
    if !chunk.is_empty() {
        send(wrap(chunk))?;
    }
    if !problems.is_empty() {
        send(IngestMessage::Problems(problems))?;
    }
    Ok(())
}

/// Applies one statistics or metadata upload read from `reader`, refusing more than `limit` bytes.
///
/// # Errors
/// [`IngestFailure::Invalid`] with the first 100 problems (row, field, value, reason) and their
/// total, nothing written; or a store error.
pub async fn ingest<R: Read + Send + 'static>(
    store: &dyn Store,
    reader: R,
    limit: u64,
    upload: &NewStatisticsUpload,
    audit: &NewAuditEntry,
) -> Result<Audited<StatisticsReceipt>, IngestFailure> {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let producer = tokio::task::spawn_blocking(move || {
        let _ = produce(reader, limit, &tx);
    });
    let result = store.ingest_statistics(rx, upload, audit).await;
    // If the store stopped early, the producer's next send fails and it ends.
    let _ = producer.await;
    result
}
