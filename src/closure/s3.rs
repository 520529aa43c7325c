//! A binary cache in S3, read and written by bake itself: Debian's (and many distributions') Nix is built without
//! its S3 store, so `bake build` fills a local `file://` cache with `nix copy` and uploads its files here.
//!
//! A binary cache is plain files: `nix-cache-info`, one `<hash>.narinfo` per store path and `nar/<filehash>.nar.xz`.
//! NAR files are named by their content's hash, so one that exists is the same file; `.narinfo` files change when
//! a path gets another signature, so they are compared by ETag (the MD5 S3 reports for a single-part upload).
//! Every call goes through the client configuration of `crate::aws` (timeouts, bounded retries).

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use md5::{Digest, Md5};

use crate::aws::{self, Classified, Endpoint};

/// At most this many list pages (1,000 keys each): a cache bucket with more than ten million files is not one
/// bake should walk.
const MAX_LIST_PAGES: usize = 10_000;
/// Uploads in flight at once.
const PARALLEL_UPLOADS: usize = 8;

pub struct Bucket {
    client: aws_sdk_s3::Client,
    pub bucket: String,
    endpoint: Endpoint,
}

/// An S3 failure, as one sentence with the next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error(pub String);

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Bucket {
    /// A client for the cache's bucket in its region, on the standard AWS chain (`AWS_ENDPOINT_URL` included).
    pub async fn new(
        bucket: &str,
        region: &str,
        profile: Option<&str>,
        timeout: std::time::Duration,
    ) -> Bucket {
        let settings = aws::Settings {
            profile: profile.map(str::to_owned),
            region: region.to_owned(),
            timeout,
        };
        let conf = aws::config(&settings).await;
        Bucket {
            client: aws_sdk_s3::Client::new(&conf),
            bucket: bucket.to_owned(),
            endpoint: Endpoint::new("S3", &conf, &settings),
        }
    }

    fn fail<E>(&self, what: &str, e: &SdkError<E, HttpResponse>) -> S3Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match aws::classify(e, &self.endpoint) {
            Classified::Failure(f) => {
                S3Error(format!("{what} in bucket {}: {}", self.bucket, f.sentence))
            }
            Classified::Service { code, message } => S3Error(format!(
                "{what} in bucket {}: S3 answered {code}{}; check that the bucket exists and that these credentials may use it (docs/binary-cache.md lists the permissions)",
                self.bucket,
                if message.is_empty() {
                    String::new()
                } else {
                    format!(" ({message})")
                }
            )),
        }
    }

    /// Every key in the bucket with its ETag (quotes removed).
    pub async fn list(&self) -> Result<BTreeMap<String, String>, S3Error> {
        let mut keys = BTreeMap::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.fail("cannot list the binary cache", &e))?;
            for o in out.contents() {
                if let Some(k) = o.key() {
                    keys.insert(
                        k.to_owned(),
                        o.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
                    );
                }
            }
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => return Ok(keys),
            }
        }
        Err(S3Error(format!(
            "bucket {} holds more than {} keys; give the binary cache a bucket of its own",
            self.bucket,
            MAX_LIST_PAGES * 1000
        )))
    }

    /// An object's bytes, or `None` when it does not exist (404, or 403 for a reader without s3:ListBucket).
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, S3Error> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let body = out.body.collect().await.map_err(|e| {
                    S3Error(format!(
                        "cannot read s3://{}/{key}: {e}; retry",
                        self.bucket
                    ))
                })?;
                Ok(Some(body.into_bytes().to_vec()))
            }
            Err(SdkError::ServiceError(se))
                if matches!(se.raw().status().as_u16(), 403 | 404)
                    && se.err().code() != Some("InvalidAccessKeyId")
                    && se.err().code() != Some("SignatureDoesNotMatch") =>
            {
                Ok(None)
            }
            Err(e) => Err(self.fail(&format!("cannot read {key}"), &e)),
        }
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), S3Error> {
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| S3Error(format!("cannot read {}: {e}", path.display())))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type(key))
            .body(body)
            .send()
            .await
            .map_err(|e| self.fail(&format!("cannot upload {key}"), &e))?;
        Ok(())
    }

    /// Uploads each `(key, file)` the bucket lacks, or holds with another content (by ETag), in the order given
    /// (NARs first, so a `.narinfo` never names a missing file), a few at a time. Returns how many it uploaded.
    pub async fn upload(
        &self,
        files: &[(String, std::path::PathBuf)],
        existing: &BTreeMap<String, String>,
    ) -> Result<usize, S3Error> {
        let mut todo = Vec::new();
        for (key, path) in files {
            let same = match existing.get(key) {
                None => false,
                // NARs are named by the hash of their content.
                Some(_) if key.starts_with("nar/") => true,
                Some(etag) => std::fs::read(path)
                    .map(|b| hex(&Md5::digest(&b)) == *etag)
                    .unwrap_or(false),
            };
            if !same {
                todo.push((key.clone(), path.clone()));
            }
        }
        // The files of one kind go up together; a kind starts once the one before is complete.
        let kinds: [fn(&str) -> bool; 3] = [
            |k| k.starts_with("nar/"),
            |k| k.ends_with(".narinfo"),
            |k| k == "nix-cache-info",
        ];
        let mut count = 0;
        for kind in kinds {
            let batch: Vec<_> = todo.iter().filter(|(k, _)| kind(k)).cloned().collect();
            for chunk in batch.chunks(PARALLEL_UPLOADS) {
                let mut set = tokio::task::JoinSet::new();
                for (key, path) in chunk {
                    let me = Bucket {
                        client: self.client.clone(),
                        bucket: self.bucket.clone(),
                        endpoint: self.endpoint.clone(),
                    };
                    let (key, path) = (key.clone(), path.clone());
                    set.spawn(async move { me.put_file(&key, &path).await });
                }
                while let Some(done) = set.join_next().await {
                    done.map_err(|e| S3Error(format!("an upload task failed: {e}")))??;
                    count += 1;
                }
            }
        }
        Ok(count)
    }
}

fn content_type(key: &str) -> &'static str {
    if key.ends_with(".narinfo") {
        "text/x-nix-narinfo"
    } else if key == "nix-cache-info" {
        "text/x-nix-cache-info"
    } else {
        "application/x-nix-nar"
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
