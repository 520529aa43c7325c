//! The raw image into an EBS snapshot through the EBS direct APIs (aws-sdk-ebs): `StartSnapshot` (a client token
//! per run, so the SDK's own retries of it never start a second snapshot; encrypted with the spec's KMS key),
//! `PutSnapshotBlock` for every 512 KiB block that is not all zeros, with its base64 SHA-256, a bounded number at a
//! time, and `CompleteSnapshot` with the count of changed blocks and the linear SHA-256 of the block checksums.
//! Every call has the timeout of `crate::aws::config` (connect, read, attempt, operation).
//!
//! A failure after `StartSnapshot` returns the snapshot id, so the caller deletes it (nothing half-made stays).

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_ebs::Client;
use aws_sdk_ebs::primitives::ByteStream;
use aws_sdk_ebs::types::{ChecksumAggregationMethod, ChecksumAlgorithm, Tag};
use sha2::{Digest, Sha256};

use crate::aws::{self, Classified, Endpoint};

/// The block size of the EBS direct APIs (`StartSnapshot` answers it; this is what it always is).
pub const BLOCK: u64 = 512 * 1024;
const GIB: u64 = 1024 * 1024 * 1024;
/// An all-zero block to compare with (zero-initialised: it costs no space in the binary).
static ZEROS: [u8; 512 * 1024] = [0; 512 * 1024];

#[derive(Debug, Clone)]
pub struct UploadRequest<'a> {
    pub file: &'a Path,
    /// The snapshot size; at least the file's size rounded up to a GiB.
    pub volume_gib: u64,
    pub description: String,
    pub tags: Vec<(String, String)>,
    pub encrypted: bool,
    pub kms_key: Option<String>,
    pub parallelism: usize,
    /// Idempotency token of `StartSnapshot` (at most 64 characters).
    pub client_token: String,
    /// Minutes after which EBS errors a snapshot that was never completed (10 to 4320).
    pub snapshot_timeout_minutes: i32,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub snapshot: String,
    /// Blocks in the file.
    pub blocks: u64,
    /// Blocks written (the rest were all zeros).
    pub written: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// A failed upload: one sentence, and the snapshot it started, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFailed {
    pub sentence: String,
    pub detail: String,
    pub snapshot: Option<String>,
}

/// The smallest snapshot that holds `size` bytes, in GiB.
pub fn min_volume_gib(size: u64) -> u64 {
    size.div_ceil(GIB).max(1)
}

fn sentence<E>(
    call: &str,
    e: &aws_sdk_ebs::error::SdkError<E, aws_sdk_ebs::config::http::HttpResponse>,
    endpoint: &Endpoint,
) -> (String, String)
where
    E: aws_sdk_ebs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match aws::classify(e, endpoint) {
        Classified::Service { code, message } => (
            format!("{call} failed: {code}: {message}"),
            aws::short_chain(e),
        ),
        Classified::Failure(f) => (format!("{call}: {}", f.sentence), f.detail),
    }
}

/// Uploads the file into a new snapshot and completes it.
pub async fn upload(
    ebs: &Client,
    endpoint: &Endpoint,
    req: &UploadRequest<'_>,
) -> Result<Uploaded, UploadFailed> {
    let started = Instant::now();
    let fail = |sentence: String, detail: String, snapshot: Option<String>| UploadFailed {
        sentence,
        detail,
        snapshot,
    };
    let file = std::fs::File::open(req.file).map_err(|e| {
        fail(
            format!("cannot read the image {}: {e}", req.file.display()),
            String::new(),
            None,
        )
    })?;
    let size = file
        .metadata()
        .map_err(|e| {
            fail(
                format!("cannot read the image {}: {e}", req.file.display()),
                String::new(),
                None,
            )
        })?
        .len();
    let mut start = ebs
        .start_snapshot()
        .volume_size(i64::try_from(req.volume_gib).unwrap_or(i64::MAX))
        .description(&req.description)
        .client_token(&req.client_token)
        .timeout(req.snapshot_timeout_minutes)
        .set_tags(Some(
            req.tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ));
    if req.encrypted {
        start = start.encrypted(true);
        if let Some(key) = &req.kms_key {
            start = start.kms_key_arn(key);
        }
    }
    let started_snapshot = start.send().await.map_err(|e| {
        let (s, d) = sentence("EBS StartSnapshot", &e, endpoint);
        fail(s, d, None)
    })?;
    let snapshot = started_snapshot
        .snapshot_id()
        .unwrap_or_default()
        .to_owned();
    if snapshot.is_empty() {
        return Err(fail(
            "EBS StartSnapshot answered without a snapshot id".into(),
            String::new(),
            None,
        ));
    }
    // The EBS direct APIs' block is 512 KiB, always (EBS user guide, "EBS direct APIs"); the answer's
    // `BlockSize` is not read: moto 5.2.5 answers 512 there, and a smaller block would only multiply the calls.
    let blocks = size.div_ceil(BLOCK);
    let outcome = put_blocks(
        ebs,
        endpoint,
        &snapshot,
        Arc::new(file),
        size,
        req.parallelism,
    )
    .await;
    let digests = match outcome {
        Ok(d) => d,
        Err((s, d)) => return Err(fail(s, d, Some(snapshot))),
    };
    let written = digests.len() as u64;
    let mut linear = Sha256::new();
    for (_, digest) in &digests {
        linear.update(digest);
    }
    ebs.complete_snapshot()
        .snapshot_id(&snapshot)
        .changed_blocks_count(i32::try_from(written).unwrap_or(i32::MAX))
        .checksum(aws_smithy_types::base64::encode(linear.finalize()))
        .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
        .checksum_aggregation_method(ChecksumAggregationMethod::ChecksumAggregationLinear)
        .send()
        .await
        .map_err(|e| {
            let (s, d) = sentence("EBS CompleteSnapshot", &e, endpoint);
            fail(s, d, Some(snapshot.clone()))
        })?;
    Ok(Uploaded {
        snapshot,
        blocks,
        written,
        bytes: written * BLOCK,
        elapsed: started.elapsed(),
    })
}

/// Reads one block (the last one padded with zeros); `None` when it is all zeros.
fn read_block(file: &std::fs::File, size: u64, index: u64) -> std::io::Result<Option<Vec<u8>>> {
    let offset = index * BLOCK;
    let len = usize::try_from(BLOCK.min(size - offset)).unwrap_or(0);
    let mut buf = vec![0u8; usize::try_from(BLOCK).unwrap_or(0)];
    file.read_exact_at(&mut buf[..len], offset)?;
    // A slice comparison is a memcmp: fast even in unoptimized builds, where a byte loop is not.
    if buf[..] == ZEROS[..] {
        return Ok(None);
    }
    Ok(Some(buf))
}

/// Puts every non-zero block, `parallelism` at a time; the first failure stops the others. Returns the SHA-256 of
/// each block written, by index.
async fn put_blocks(
    ebs: &Client,
    endpoint: &Endpoint,
    snapshot: &str,
    file: Arc<std::fs::File>,
    size: u64,
    parallelism: usize,
) -> Result<Vec<(u64, [u8; 32])>, (String, String)> {
    let blocks = size.div_ceil(BLOCK);
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..parallelism.max(1) {
        let (ebs, endpoint, snapshot, file, next, stop) = (
            ebs.clone(),
            endpoint.clone(),
            snapshot.to_owned(),
            Arc::clone(&file),
            Arc::clone(&next),
            Arc::clone(&stop),
        );
        workers.spawn(async move {
            let mut done: Vec<(u64, [u8; 32])> = Vec::new();
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(done);
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= blocks {
                    return Ok(done);
                }
                let f = Arc::clone(&file);
                let data = tokio::task::spawn_blocking(move || read_block(&f, size, index))
                    .await
                    .map_err(|e| (format!("reading the image failed: {e}"), String::new()))?
                    .map_err(|e| {
                        (
                            format!("cannot read the image at block {index}: {e}"),
                            String::new(),
                        )
                    })?;
                let Some(data) = data else { continue };
                let digest: [u8; 32] = Sha256::digest(&data).into();
                let put = ebs
                    .put_snapshot_block()
                    .snapshot_id(&snapshot)
                    .block_index(i32::try_from(index).unwrap_or(i32::MAX))
                    .data_length(i32::try_from(BLOCK).unwrap_or(i32::MAX))
                    .checksum(aws_smithy_types::base64::encode(digest))
                    .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
                    .block_data(ByteStream::from(data))
                    .send()
                    .await;
                if let Err(e) = put {
                    stop.store(true, Ordering::Relaxed);
                    return Err(sentence(
                        &format!("EBS PutSnapshotBlock (block {index} of snapshot {snapshot})"),
                        &e,
                        &endpoint,
                    ));
                }
                done.push((index, digest));
            }
        });
    }
    let mut all = Vec::new();
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(Ok(done)) => all.extend(done),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert((format!("an upload worker failed: {e}"), String::new()));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_round_up_to_a_gib() {
        assert_eq!(min_volume_gib(1), 1);
        assert_eq!(min_volume_gib(GIB), 1);
        assert_eq!(min_volume_gib(GIB + 1), 2);
    }

    #[test]
    fn zero_blocks_are_skipped_and_the_last_is_padded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let mut data = vec![0u8; usize::try_from(BLOCK * 2 + 10).unwrap()];
        data[usize::try_from(BLOCK * 2 + 3).unwrap()] = 7;
        std::fs::write(&path, &data).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let size = data.len() as u64;
        assert_eq!(read_block(&f, size, 0).unwrap(), None);
        let last = read_block(&f, size, 2).unwrap().unwrap();
        assert_eq!(last.len() as u64, BLOCK);
        assert_eq!(last[3], 7);
    }
}
