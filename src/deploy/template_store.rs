//! What `plan` and `deploy` send CloudFormation: the template compact, inline when it fits, and otherwise from an
//! S3 bucket — bake's own per account and region (rain's `rain-artifacts-<account>-<region>`, CDK's bootstrap
//! bucket), or one the user names with `--template-bucket`.
//!
//! ```text
//! compact template ─▶ ≤ 51,200 bytes ─▶ TemplateBody
//!   ─▶ ≤ 1 MiB ─▶ STS account ─▶ bucket exists? (else create: owner enforced, public access blocked, SSE-S3,
//!      expiry) ─▶ object bake/<stack>/<sha256>.json exists and fresh? (else PutObject) ─▶ TemplateURL
//! ```
//!
//! Only templates over the inline limit touch S3 (rain's rule, not CDK's "always upload"): a small spec deploys
//! with CloudFormation permissions alone and no bucket appears in the account for it. This is the only file that
//! names S3 and STS SDK types.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    ChecksumAlgorithm, ChecksumMode, CreateBucketConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration,
    ObjectOwnership, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::cfn::AwsOptions;
use crate::check::plan::{ImageSource, Plan};

/// CloudFormation's limit for an inline `TemplateBody`, in bytes.
pub const INLINE_MAX: usize = 51_200;

/// CloudFormation's limit for a template read from S3 (`TemplateURL`): "1 MB", in the same KiB units as the
/// inline limit (50 KiB) and the former S3 limit (450 KiB).
pub const URL_MAX: usize = 1024 * 1024;

/// Days after which bake's bucket deletes a template. CloudFormation reads the object once, when the change set is
/// created, so a week is room for a `plan` now and a `deploy` later.
pub const EXPIRY_DAYS: i32 = 7;

/// Where the objects go inside a bucket: a prefix a shared bucket's own lifecycle rules can name.
pub const KEY_PREFIX: &str = "bake/";

/// How CloudFormation gets the template of a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    /// Sent in the request.
    Body(String),
    /// Read by CloudFormation from S3.
    Url(String),
}

/// The template as it is sent: compact JSON. The artifact `bake compile` writes stays pretty; CloudFormation
/// parses either, and what it stores (and `GetTemplate` returns) is compared as parsed JSON.
pub fn compact(template: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(template) {
        Ok(v) => serde_json::to_string(&v).unwrap_or_else(|_| template.to_owned()),
        Err(_) => template.to_owned(),
    }
}

/// Where templates over the inline limit go.
#[derive(Debug)]
pub enum TemplateStore {
    /// Nowhere: a template over the inline limit is refused (library callers without AWS access).
    InlineOnly,
    S3(S3Store),
}

impl TemplateStore {
    /// bake's own bucket (`bucket: None`) or the named one, reached with `options` when first needed.
    pub fn s3(options: &AwsOptions, bucket: Option<String>) -> TemplateStore {
        TemplateStore::S3(S3Store {
            options: options.clone(),
            bucket,
            clients: OnceCell::new(),
        })
    }

    /// Why `body` (compact) cannot be sent at all, as the lines to print; `None` when it can.
    pub fn refusal(&self, body: &str, plan: &Plan) -> Option<String> {
        let size = body.len();
        let limit = match self {
            _ if size <= INLINE_MAX => return None,
            TemplateStore::InlineOnly => INLINE_MAX,
            TemplateStore::S3(_) if size <= URL_MAX => return None,
            TemplateStore::S3(_) => URL_MAX,
        };
        let built = plan
            .images
            .iter()
            .filter(|i| matches!(i.source, ImageSource::Built(_)))
            .count();
        let how = if limit == INLINE_MAX {
            format!("CloudFormation takes at most {INLINE_MAX} bytes inline")
        } else {
            format!("CloudFormation takes at most {URL_MAX} bytes even from S3")
        };
        let help = if built > 0 {
            format!(
                "each of the {built} built image(s) embeds its bootstrap script twice (SSM document and Image Builder \
                 component); split images and fleets into several specs (one stack each)"
            )
        } else {
            "split the fleets into several specs (one stack each)".to_owned()
        };
        Some(format!(
            "error: the template is {size} bytes as sent (compact JSON); {how}.\n  help: {help}"
        ))
    }

    /// Where CloudFormation gets `body` from, and a line for the user when it went through S3.
    pub async fn place(
        &self,
        body: String,
        stack: &str,
    ) -> Result<(TemplateSource, Option<String>), StoreError> {
        match self {
            _ if body.len() <= INLINE_MAX => Ok((TemplateSource::Body(body), None)),
            TemplateStore::InlineOnly => Err(StoreError(format!(
                "the template is {} bytes, over CloudFormation's {INLINE_MAX}-byte inline limit, and no template \
                 bucket is configured",
                body.len()
            ))),
            TemplateStore::S3(s3) => {
                let placed = s3.put(&body, stack).await?;
                let verb = if placed.uploaded {
                    "uploaded to"
                } else {
                    "already in"
                };
                let mut note = String::new();
                if placed.created_bucket {
                    note.push_str(&format!(
                        "Created the template bucket {} (owner-enforced, public access blocked, SSE-S3; templates \
                         expire after {EXPIRY_DAYS} days).\n",
                        placed.bucket
                    ));
                }
                note.push_str(&format!(
                    "The template is {} bytes, over CloudFormation's {INLINE_MAX}-byte inline limit: {verb} \
                     s3://{}/{}.",
                    body.len(),
                    placed.bucket,
                    placed.key
                ));
                Ok((TemplateSource::Url(placed.url), Some(note)))
            }
        }
    }
}

/// A failure to store the template: one sentence with the next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The template bucket over aws-sdk-s3 (and aws-sdk-sts for the account id).
#[derive(Debug)]
pub struct S3Store {
    options: AwsOptions,
    /// `--template-bucket`: used as it is, never created or configured.
    bucket: Option<String>,
    clients: OnceCell<(aws_sdk_s3::Client, aws_sdk_sts::Client)>,
}

/// Where a template was put.
#[derive(Debug, Clone)]
struct Placed {
    bucket: String,
    key: String,
    url: String,
    /// `false`: the same content was already there.
    uploaded: bool,
    created_bucket: bool,
}

/// bake's bucket for an account and region.
pub fn bucket_name(account: &str, region: &str) -> String {
    format!("bake-templates-{account}-{region}")
}

/// The object key of a template: content-addressed, so the same template is stored once.
pub fn object_key(stack: &str, body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{KEY_PREFIX}{stack}/{hex}.json")
}

/// The `https://` URL CloudFormation reads the object from (virtual-hosted style; path style for names with
/// dots, which a virtual-hosted TLS certificate does not cover).
pub fn object_url(bucket: &str, region: &str, key: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    if bucket.contains('.') {
        format!("https://s3.{region}.{suffix}/{bucket}/{key}")
    } else {
        format!("https://{bucket}.s3.{region}.{suffix}/{key}")
    }
}

/// S3's rules for a bucket name (general purpose buckets), for `--template-bucket`.
pub fn valid_bucket_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&name.len())
        || !ok_chars
        || !edge_ok(name.chars().next())
        || !edge_ok(name.chars().last())
        || name.contains("..")
    {
        return Err(format!(
            "`{name}` is not an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and \
             ending with a letter or digit"
        ));
    }
    Ok(())
}

/// One failed call, as far as bake needs to tell them apart.
#[derive(Debug)]
struct CallError {
    /// The HTTP status of a service answer (`None`: no answer).
    status: Option<u16>,
    code: String,
    /// What to print: the service's code and message, or why there was no answer.
    text: String,
}

impl CallError {
    fn denied(&self) -> bool {
        self.status == Some(403) || self.code == "AccessDenied"
    }
}

fn call_error<E>(e: SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = e.code().unwrap_or_default().to_owned();
            let message = e.message().unwrap_or_default();
            let text = match (code.is_empty(), message.is_empty()) {
                (true, _) => format!("HTTP {status}"),
                (false, true) => code.clone(),
                (false, false) => format!("{code}: {message}"),
            };
            CallError {
                status: Some(status),
                code,
                text,
            }
        }
        SdkError::TimeoutError(_) => CallError {
            status: None,
            code: String::new(),
            text: "no answer within the timeout".to_owned(),
        },
        _ => CallError {
            status: None,
            code: String::new(),
            text: format!("no answer: {}", DisplayErrorContext(&e)),
        },
    }
}

impl S3Store {
    async fn clients(&self) -> &(aws_sdk_s3::Client, aws_sdk_sts::Client) {
        self.clients
            .get_or_init(|| async {
                // The configuration every bake client shares: `--timeout` per call, retries with backoff.
                let config = crate::aws::config(&self.options).await;
                (
                    aws_sdk_s3::Client::new(&config),
                    aws_sdk_sts::Client::new(&config),
                )
            })
            .await
    }

    async fn put(&self, body: &str, stack: &str) -> Result<Placed, StoreError> {
        let region = self.options.region.as_str();
        let (s3, sts) = self.clients().await;
        let key = object_key(stack, body);
        // bake's own bucket: every call names the expected owner, so a bucket of that name in another account (S3
        // names are global) is never written to.
        let (bucket, owner, created_bucket) = match &self.bucket {
            Some(b) => (b.clone(), None, false),
            None => {
                let account = account_id(sts).await?;
                let bucket = bucket_name(&account, region);
                let created = self.ensure_bucket(s3, &bucket, &account).await?;
                (bucket, Some(account), created)
            }
        };
        let fresh_after = now_secs() - i64::from(EXPIRY_DAYS - 1) * 86_400;
        let existing = s3
            .head_object()
            .bucket(&bucket)
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .set_expected_bucket_owner(owner.clone())
            .send()
            .await;
        // Re-used only when S3's own SHA-256 of it is the template's (the key is only a name), and while it is at
        // least a day from expiry, so it cannot expire before CloudFormation reads it.
        let digest = base64(&Sha256::digest(body.as_bytes()));
        let reuse = match existing {
            Ok(out) => {
                out.checksum_sha256() == Some(digest.as_str())
                    && out.last_modified().is_some_and(|t| t.secs() > fresh_after)
            }
            Err(e) => {
                let e = call_error(e);
                if e.status.is_none() {
                    return Err(StoreError(format!(
                        "cannot reach S3 in {region} to look for the template in bucket {bucket}: {}; check the \
                         network and retry",
                        e.text
                    )));
                }
                // 404, or 403 without s3:ListBucket (which S3 needs to say 404): upload.
                false
            }
        };
        if !reuse {
            s3.put_object()
                .bucket(&bucket)
                .key(&key)
                .content_type("application/json")
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .body(ByteStream::from(body.as_bytes().to_vec()))
                .set_expected_bucket_owner(owner.clone())
                .send()
                .await
                .map_err(|e| {
                    let e = call_error(e);
                    if e.status == Some(301) {
                        return StoreError(format!(
                            "the template bucket {bucket} is not in {region}, the stack's region: name a bucket in \
                             {region} with `--template-bucket`"
                        ));
                    }
                    let next = if e.denied() {
                        format!(
                            "bake needs s3:PutObject on arn:aws:s3:::{bucket}/{KEY_PREFIX}* (and s3:GetObject, which \
                             CloudFormation uses with your credentials to read it)"
                        )
                    } else {
                        "retry; `--template-bucket` names another bucket".to_owned()
                    };
                    StoreError(format!(
                        "cannot upload the template to bucket {bucket} in {region}: {}; {next}",
                        e.text
                    ))
                })?;
        }
        Ok(Placed {
            url: object_url(&bucket, region, &key),
            bucket,
            key,
            uploaded: !reuse,
            created_bucket,
        })
    }

    /// Creates bake's bucket unless it exists; `true` when it was created here.
    async fn ensure_bucket(
        &self,
        s3: &aws_sdk_s3::Client,
        bucket: &str,
        account: &str,
    ) -> Result<bool, StoreError> {
        let region = self.options.region.as_str();
        let own_bucket_hint =
            "or name an existing bucket of yours in that region with `--template-bucket`";
        match s3
            .head_bucket()
            .bucket(bucket)
            .expected_bucket_owner(account)
            .send()
            .await
        {
            Ok(_) => return Ok(false),
            Err(e) => {
                let e = call_error(e);
                match e.status {
                    Some(404) => {}
                    Some(403) => {
                        return Err(StoreError(format!(
                            "access to the template bucket {bucket} was denied: bake needs s3:ListBucket on it, and \
                             it must belong to account {account}; grant that, {own_bucket_hint}"
                        )));
                    }
                    Some(301) => {
                        return Err(StoreError(format!(
                            "the template bucket {bucket} exists in another region than {region}; {own_bucket_hint}"
                        )));
                    }
                    _ => {
                        return Err(StoreError(format!(
                            "cannot look up the template bucket {bucket} in {region}: {}; retry, {own_bucket_hint}",
                            e.text
                        )));
                    }
                }
            }
        }
        let mut create = s3
            .create_bucket()
            .bucket(bucket)
            .object_ownership(ObjectOwnership::BucketOwnerEnforced);
        // us-east-1 is the one region that takes no location constraint.
        if region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        if let Err(e) = create.send().await {
            let e = call_error(e);
            return match e.code.as_str() {
                // Another bake run created it a moment ago; it configures it.
                "BucketAlreadyOwnedByYou" => Ok(false),
                "BucketAlreadyExists" => Err(StoreError(format!(
                    "the template bucket name {bucket} is taken by another AWS account; name an existing bucket of \
                     yours in {region} with `--template-bucket`"
                ))),
                _ if e.denied() => Err(StoreError(format!(
                    "bake may not create its template bucket {bucket} (the template is over CloudFormation's \
                     {INLINE_MAX}-byte inline limit): it needs s3:CreateBucket, s3:PutBucketOwnershipControls, \
                     s3:PutBucketPublicAccessBlock, s3:PutEncryptionConfiguration and s3:PutLifecycleConfiguration \
                     in {region}, {own_bucket_hint}"
                ))),
                _ => Err(StoreError(format!(
                    "cannot create the template bucket {bucket} in {region}: {}; retry, {own_bucket_hint}",
                    e.text
                ))),
            };
        }
        if let Err((permission, e)) = configure(s3, bucket, account).await {
            // Leave no half-configured bucket behind: it is empty, so the next run starts over.
            let deleted = s3
                .delete_bucket()
                .bucket(bucket)
                .expected_bucket_owner(account)
                .send()
                .await
                .is_ok();
            let left = if deleted {
                "the new bucket was deleted again".to_owned()
            } else {
                format!("the new bucket could not be deleted: delete {bucket} by hand")
            };
            let next = if e.denied() {
                format!("bake needs {permission}")
            } else {
                "retry".to_owned()
            };
            return Err(StoreError(format!(
                "cannot configure the template bucket {bucket}: {} ({left}); {next}, {own_bucket_hint}",
                e.text
            )));
        }
        Ok(true)
    }
}

/// Public access blocked, SSE-S3, templates and noncurrent versions expiring. Ownership is enforced at creation.
/// On failure: the permission the failed call needs, and its error.
///
/// No TLS-only bucket policy (CDK's bootstrap bucket has one): bake and CloudFormation only ever use HTTPS, and
/// moto evaluates any conditional `Deny` as a denial, so a bucket with that policy could not be tested offline.
async fn configure(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    account: &str,
) -> Result<(), (&'static str, CallError)> {
    s3.put_public_access_block()
        .bucket(bucket)
        .expected_bucket_owner(account)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| ("s3:PutBucketPublicAccessBlock", call_error(e)))?;
    let bug = |what: &str, e: aws_sdk_s3::error::BuildError| {
        (
            "nothing more (this is a bake bug)",
            CallError {
                status: None,
                code: String::new(),
                text: format!("{what}: {e}"),
            },
        )
    };
    let encryption = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()
                        .map_err(|e| bug("encryption", e))?,
                )
                .build(),
        )
        .build()
        .map_err(|e| bug("encryption", e))?;
    s3.put_bucket_encryption()
        .bucket(bucket)
        .expected_bucket_owner(account)
        .server_side_encryption_configuration(encryption)
        .send()
        .await
        .map_err(|e| ("s3:PutEncryptionConfiguration", call_error(e)))?;
    let lifecycle = BucketLifecycleConfiguration::builder()
        .rules(
            LifecycleRule::builder()
                .id("bake-expire-templates")
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .expiration(LifecycleExpiration::builder().days(EXPIRY_DAYS).build())
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(1)
                        .build(),
                )
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder()
                        .days_after_initiation(1)
                        .build(),
                )
                .build()
                .map_err(|e| bug("lifecycle", e))?,
        )
        .build()
        .map_err(|e| bug("lifecycle", e))?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .expected_bucket_owner(account)
        .lifecycle_configuration(lifecycle)
        .send()
        .await
        .map_err(|e| ("s3:PutLifecycleConfiguration", call_error(e)))?;
    Ok(())
}

/// The caller's account id (STS `GetCallerIdentity`, which needs no permission).
async fn account_id(sts: &aws_sdk_sts::Client) -> Result<String, StoreError> {
    let out = sts.get_caller_identity().send().await.map_err(|e| {
        let e = call_error(e);
        StoreError(format!(
            "cannot find the AWS account for the template bucket (STS GetCallerIdentity): {}; check the credentials, \
             or name a bucket with `--template-bucket`",
            e.text
        ))
    })?;
    match out.account() {
        Some(a) if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => Ok(a.to_owned()),
        other => Err(StoreError(format!(
            "STS GetCallerIdentity answered with no usable account id ({other:?}); name a bucket with \
             `--template-bucket`"
        ))),
    }
}

/// Standard base64 with padding, as S3 reports checksums.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_keeps_the_content_and_its_order() {
        let pretty = "{\n  \"b\": 1,\n  \"a\": [\n    \"x y\"\n  ]\n}\n";
        assert_eq!(compact(pretty), "{\"b\":1,\"a\":[\"x y\"]}");
        assert_eq!(compact("not json"), "not json");
    }

    #[test]
    fn keys_follow_the_content() {
        let a = object_key("web", "{}");
        assert_eq!(a, object_key("web", "{}"));
        assert_ne!(a, object_key("web", "{ }"));
        assert!(a.starts_with("bake/web/") && a.ends_with(".json"), "{a}");
        assert_eq!(a.len(), "bake/web/".len() + 64 + ".json".len());
    }

    #[test]
    fn base64_is_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
        // S3's checksum of an empty object.
        assert_eq!(
            base64(&Sha256::digest(b"")),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn urls_are_https_and_regional() {
        assert_eq!(
            object_url(
                "bake-templates-123456789012-eu-west-1",
                "eu-west-1",
                "bake/k.json"
            ),
            "https://bake-templates-123456789012-eu-west-1.s3.eu-west-1.amazonaws.com/bake/k.json"
        );
        assert_eq!(
            object_url("my.bucket", "cn-north-1", "k"),
            "https://s3.cn-north-1.amazonaws.com.cn/my.bucket/k"
        );
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert!(valid_bucket_name("team-templates.prod").is_ok());
        for bad in [
            "ab",
            "Upper",
            "-dash",
            "dot.",
            "a..b",
            "under_score",
            &"a".repeat(64),
        ] {
            assert!(valid_bucket_name(bad).is_err(), "{bad}");
        }
        // bake's own name is valid for the longest region names.
        assert!(valid_bucket_name(&bucket_name("123456789012", "ap-southeast-5")).is_ok());
    }
}
