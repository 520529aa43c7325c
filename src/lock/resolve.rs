//! `bake lock`: which lock entries the spec needs, asking the outside world for them, and the new lock.
//!
//! The outside world sits behind [`Resolver`] (the live one is `lock::live`). Everything here is deterministic given
//! the resolver's answers and the time it is handed: lookups run concurrently, each under a timeout, and every
//! failure becomes a diagnostic at the spec node that asked. The new lock is only returned whole.
//!
//! Which entries are needed is in `needs`, the new lock's assembly in `update`, the diagnostics for failed lookups
//! in `lookup_diag`; this file holds the [`Resolver`] trait and the concurrent resolution loop.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use super::ami::ImageFacts;
pub use super::needs::{Need, Selection, Why, needs, pruned};
use super::nix::parse_metadata;
use super::time::parse_rfc3339;
pub use super::update::{ImageChange, short};
use super::{
    BaseLock, FlakeLock, InstallerLock, Lock, SecretLock, ami, installer_lock, lookup_diag,
    secrets, update,
};
use crate::check::credentials::SecretSource;
use crate::check::plan::{BuildPlan, ImageSource, Plan};
use crate::diag::{Code, Diag};
use crate::source::Span;
use crate::spec::grammar::Grammar;

/// An SSM parameter's value and history, as `GetParameter` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterValue {
    pub value: String,
    pub version: i64,
    /// RFC 3339, UTC.
    pub last_modified: String,
}

/// What Secrets Manager `DescribeSecret` says about a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    /// The full ARN, with the random 6-character suffix.
    pub arn: String,
    pub kms_key: Option<String>,
    /// Scheduled for deletion (`DeletedDate` set): the build could not read it.
    pub deleted: bool,
}

/// What SSM says about a parameter, without decrypting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterInfo {
    pub arn: String,
    /// `String`, `StringList` or `SecureString`.
    pub kind: String,
    pub kms_key: Option<String>,
}

/// Why a lookup failed. Each becomes one diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// SSM has no such parameter, or EC2 no such image.
    NotFound(String),
    AccessDenied(String),
    NoCredentials(String),
    /// Any other AWS failure (network, throttling, a bad endpoint ...), with the SDK's full message.
    Aws(String),
    CheckoutMissing(PathBuf),
    NixMissing,
    NixFailed {
        status: String,
        stderr: String,
    },
    /// The lookup did not answer within the timeout (seconds).
    Timeout(u64),
    /// Downloading a file failed: what the server or curl said.
    Download(String),
    /// `curl`, which downloads the installer, is not on PATH.
    CurlMissing,
}

/// The outside world, as `bake lock` asks it.
pub trait Resolver {
    /// SSM `GetParameter` in the stack's region.
    fn parameter(&self, name: &str) -> impl Future<Output = Result<ParameterValue, LookupError>>;
    /// EC2 `DescribeImages` of one AMI in the stack's region (`NotFound` when EC2 has no such image).
    fn image(&self, ami: &str) -> impl Future<Output = Result<ImageFacts, LookupError>>;
    /// The stdout of `nix flake metadata --json <checkout>`.
    fn flake_metadata(&self, checkout: &Path) -> impl Future<Output = Result<String, LookupError>>;
    /// The SHA-256 (lower-case hex) of the file at `url`: the Nix installer binary the build will run.
    fn sha256(&self, url: &str) -> impl Future<Output = Result<String, LookupError>>;
    /// Secrets Manager `DescribeSecret` on a secret name or ARN, in the stack's region. A missing secret is
    /// `ParameterNotFound`.
    fn secret(&self, id: &str) -> impl Future<Output = Result<SecretInfo, LookupError>> {
        let _ = id;
        async {
            Err(LookupError::Aws(
                "this resolver does not look up secrets".to_owned(),
            ))
        }
    }
    /// SSM `DescribeParameters` on one parameter name (never `GetParameter` with decryption).
    fn secure_parameter(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<ParameterInfo, LookupError>> {
        let _ = name;
        async {
            Err(LookupError::Aws(
                "this resolver does not look up parameters".to_owned(),
            ))
        }
    }
    /// The fetch URLs of the checkout's git remotes, to compare with the spec's URL; empty when unknown.
    fn git_remotes(&self, checkout: &Path) -> impl Future<Output = Vec<String>> {
        let _ = checkout;
        async { Vec::new() }
    }
}

/// A repository's identity for comparing URLs: host and path, without scheme, user, `.git` or trailing slash.
/// `git+https://github.com/Acme/infra.git`, `git@github.com:Acme/infra` and `github:Acme/infra` all give
/// `github.com/Acme/infra`. `None` for local paths.
pub fn repo_key(url: &str) -> Option<String> {
    let url = url.strip_prefix("git+").unwrap_or(url);
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let (host, path) = if let Some(rest) = url.strip_prefix("github:") {
        ("github.com".to_owned(), rest.to_owned())
    } else if let Some(rest) = url.strip_prefix("gitlab:") {
        ("gitlab.com".to_owned(), rest.to_owned())
    } else if let Some((_, rest)) = url.split_once("://") {
        if url.starts_with("file://") {
            return None;
        }
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        let (host, path) = rest.split_once('/')?;
        let host = host.split(':').next().unwrap_or(host);
        (host.to_owned(), path.to_owned())
    } else if let Some((user_host, path)) = url.split_once(':') {
        // scp-like: git@github.com:acme/infra.git
        let host = user_host.rsplit_once('@').map_or(user_host, |(_, h)| h);
        (host.to_owned(), path.to_owned())
    } else {
        return None;
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    // `github:owner/repo/<ref>`: the shorthand's third part is a ref, not part of the repository.
    let shorthand = url.starts_with("github:") || url.starts_with("gitlab:");
    let path: Vec<&str> = path
        .split('/')
        .take(if shorthand { 2 } else { usize::MAX })
        .collect();
    (!host.is_empty() && path.len() >= 2)
        .then(|| format!("{}/{}", host.to_ascii_lowercase(), path.join("/")))
}

/// The answer to one secret lookup.
enum SecretAnswer {
    Secret(Result<SecretInfo, LookupError>),
    Parameter(Result<ParameterInfo, LookupError>),
}

/// How a failed `bake lock` should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The spec cannot be locked as written, or the result would not verify.
    Spec,
    /// AWS or nix failed.
    World,
}

#[derive(Debug)]
pub struct Outcome {
    /// The new lock; meaningful only without a failure.
    pub lock: Lock,
    pub changes: Vec<ImageChange>,
    pub pruned: Vec<String>,
    /// Errors and warnings, in source order.
    pub diags: Vec<Diag>,
    pub failure: Option<Failure>,
}

/// Everything `bake lock` needs besides the resolver.
pub struct Request<'a> {
    pub plan: &'a Plan,
    pub old: &'a Lock,
    pub selection: &'a Selection,
    /// The directory `checkout=` paths are relative to.
    pub spec_dir: &'a Path,
    /// The spec as the user named it, for help texts.
    pub spec_name: &'a str,
    /// RFC 3339 UTC, recorded as `resolved-at`.
    pub now: &'a str,
    pub timeout: Duration,
}

/// Resolves what the lock lacks (and what `--update` selects) and returns the new lock, or every failure.
pub async fn run<R: Resolver>(req: &Request<'_>, resolver: &R) -> Outcome {
    let plan = req.plan;
    let needs = needs(plan, req.old, req.selection);
    let mut diags = Vec::new();

    // Spec problems first: they need no lookup and are fixed in the spec.
    let mut checkouts: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
    for need in &needs {
        let ImageSource::Built(build) = &plan.images[need.image].source else {
            continue;
        };
        if need.flake.is_none() {
            continue;
        }
        match &build.flake.checkout {
            Some(c) => checkouts
                .entry(req.spec_dir.join(c))
                .or_default()
                .push(need.image),
            None => diags.push(
                Diag::error(
                    Code::LockNeedsCheckout,
                    format!(
                        "cannot lock the flake of image `{}`: the spec names no local checkout",
                        plan.images[need.image].name.value
                    ),
                )
                .label(build.flake.span, "`bake lock` reads the flake's revision from a local checkout")
                .help(format!(
                    "add `checkout=\"<path>\"` (relative to the spec) naming a clean git clone of {} on the commit to build",
                    build.flake.url
                )),
            ),
        }
    }
    if !diags.is_empty() {
        return failed(req.old, diags, Failure::Spec);
    }

    let mut parameters: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for need in needs
        .iter()
        .filter(|n| n.base.is_some_and(|w| w != Why::Undescribed))
    {
        if let ImageSource::Built(build) = &plan.images[need.image].source {
            parameters
                .entry(build.base_parameter.value.as_str())
                .or_default()
                .push(need.image);
        }
    }

    // Entries of older locks that do not say what their AMI is: EC2 is asked about the locked AMI, nothing moves.
    let mut undescribed: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for need in needs.iter().filter(|n| n.base == Some(Why::Undescribed)) {
        if let Some(entry) = req.old.images.get(&plan.images[need.image].name.value) {
            undescribed
                .entry(entry.base.ami.as_str())
                .or_default()
                .push(need.image);
        }
    }

    let mut downloads: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for need in needs.iter().filter(|n| n.installer.is_some()) {
        if let ImageSource::Built(build) = &plan.images[need.image].source {
            downloads
                .entry(build.installer.binary_url(build.arch))
                .or_default()
                .push(need.image);
        }
    }

    let timeout = req.timeout;
    let secs = timeout.as_secs();
    let download_lookups = downloads.keys().map(|url| async move {
        tokio::time::timeout(timeout, resolver.sha256(url))
            .await
            .unwrap_or(Err(LookupError::Timeout(secs)))
    });
    let describe = move |ami: String| async move {
        tokio::time::timeout(timeout, resolver.image(&ami))
            .await
            .unwrap_or(Err(LookupError::Timeout(secs)))
    };
    // Each parameter's AMI is described as soon as SSM names it.
    let param_lookups = parameters.keys().map(|name| async move {
        let p = tokio::time::timeout(timeout, resolver.parameter(name))
            .await
            .unwrap_or(Err(LookupError::Timeout(secs)));
        let facts = match &p {
            Ok(p) if Grammar::AmiId.check(&p.value).is_ok() => {
                Some(describe(p.value.clone()).await)
            }
            _ => None,
        };
        (p, facts)
    });
    let describe_lookups = undescribed.keys().map(|ami| describe((*ami).to_owned()));
    let flake_lookups = checkouts.keys().map(|path| async move {
        let metadata = async {
            tokio::time::timeout(timeout, resolver.flake_metadata(path))
                .await
                .unwrap_or(Err(LookupError::Timeout(secs)))
        };
        let remotes = async {
            tokio::time::timeout(timeout, resolver.git_remotes(path))
                .await
                .unwrap_or_default()
        };
        tokio::join!(metadata, remotes)
    });
    // The secrets `fetch` names: resolved to ARNs when the lock has none for them (or `--update` asks for all).
    let mut secrets: BTreeMap<SecretSource, Vec<(usize, Span)>> = BTreeMap::new();
    for (i, name, build) in super::needs::built(plan) {
        let old = req.old.images.get(name).map(|e| &e.credentials);
        for (source, span) in secrets::needed(build, old, &plan.stack, req.selection.all) {
            secrets.entry(source).or_default().push((i, span));
        }
    }
    let secret_lookups = secrets.keys().map(|source| async move {
        match source {
            SecretSource::SecretsManager(id) => SecretAnswer::Secret(
                tokio::time::timeout(timeout, resolver.secret(id))
                    .await
                    .unwrap_or(Err(LookupError::Timeout(secs))),
            ),
            SecretSource::Parameter(name) => SecretAnswer::Parameter(
                tokio::time::timeout(timeout, resolver.secure_parameter(name))
                    .await
                    .unwrap_or(Err(LookupError::Timeout(secs))),
            ),
        }
    });
    let (param_results, flake_results, download_results, describe_results, secret_results) = tokio::join!(
        join_all(param_lookups),
        join_all(flake_lookups),
        join_all(download_lookups),
        join_all(describe_lookups),
        join_all(secret_lookups)
    );

    // Turn answers into entries, and failures into diagnostics at every node that asked.
    let mut bases: BTreeMap<usize, BaseLock> = BTreeMap::new();
    let mut world_failed = false;
    let mut spec_failed = false;
    let now_secs = parse_rfc3339(req.now).unwrap_or(0);
    let mut described = |images: &[usize],
                         base: &dyn Fn(usize) -> Option<BaseLock>,
                         facts: Result<ImageFacts, LookupError>,
                         diags: &mut Vec<Diag>|
     -> (bool, bool) {
        let (mut spec, world) = (false, false);
        let spans: Vec<Span> = images
            .iter()
            .filter_map(|&i| build_of(plan, i).map(|b| b.base_parameter.span))
            .collect();
        let Some(first) = images.first().and_then(|&i| base(i)) else {
            return (spec, world);
        };
        let facts = match facts {
            Ok(f) => f,
            Err(e) => {
                diags.push(lookup_diag::image_diag(
                    &first.ami,
                    &first.parameter,
                    &plan.stack.region,
                    &e,
                    &spans,
                ));
                return (spec, true);
            }
        };
        for (&i, span) in images.iter().zip(&spans) {
            let (Some(build), Some(entry)) = (build_of(plan, i), base(i)) else {
                continue;
            };
            if let Some(d) = lookup_diag::not_al2023(&entry, &facts, build.arch.as_str(), *span) {
                spec = true;
                diags.push(d);
                continue;
            }
            let entry = ami::described(entry, &facts);
            if let Some(d) = lookup_diag::deprecated(&entry, now_secs, *span, req.spec_name) {
                diags.push(d);
            }
            bases.insert(i, entry);
        }
        (spec, world)
    };
    for ((ami, images), facts) in undescribed.iter().zip(describe_results) {
        let old_base = |i: usize| {
            req.old
                .images
                .get(&plan.images[i].name.value)
                .map(|e| e.base.clone())
                .filter(|b| b.ami == *ami)
        };
        let (spec, world) = described(images, &old_base, facts, &mut diags);
        spec_failed |= spec;
        world_failed |= world;
    }
    for ((name, images), (result, facts)) in parameters.iter().zip(param_results) {
        let spans: Vec<Span> = images
            .iter()
            .filter_map(|&i| build_of(plan, i).map(|b| b.base_parameter.span))
            .collect();
        match result {
            Ok(p) if Grammar::AmiId.check(&p.value).is_ok() => {
                let entry = |_: usize| {
                    Some(BaseLock {
                        parameter: (*name).to_owned(),
                        region: plan.stack.region.clone(),
                        account: plan.stack.account.clone(),
                        ami: p.value.clone(),
                        parameter_version: p.version,
                        parameter_modified: p.last_modified.clone(),
                        ami_name: None,
                        release: None,
                        kernel: None,
                        architecture: None,
                        ami_owner: None,
                        ami_created: None,
                        ami_deprecation: None,
                        resolved_at: req.now.to_owned(),
                    })
                };
                let facts = facts.unwrap_or(Err(LookupError::Aws(
                    "the AMI was not described".to_owned(),
                )));
                let (spec, world) = described(images, &entry, facts, &mut diags);
                spec_failed |= spec;
                world_failed |= world;
            }
            Ok(p) => {
                spec_failed = true;
                diags.push(lookup_diag::at_all(
                    Diag::error(
                        Code::LockParameter,
                        format!("the parameter {name} holds `{}`, not an AMI id", p.value),
                    ),
                    &spans,
                    "this parameter names no AMI",
                ));
            }
            Err(e) => {
                world_failed = true;
                diags.push(lookup_diag::parameter_diag(
                    name,
                    &plan.stack.region,
                    &e,
                    &spans,
                ));
            }
        }
    }

    let mut flakes: BTreeMap<usize, FlakeLock> = BTreeMap::new();
    for ((path, images), (result, remotes)) in checkouts.iter().zip(flake_results) {
        let builds: Vec<&BuildPlan> = images.iter().filter_map(|&i| build_of(plan, i)).collect();
        let spans: Vec<Span> = builds.iter().map(|b| b.flake.span).collect();
        let shown = crate::source::display_path(path);
        let meta = match result.map(|json| parse_metadata(&json)) {
            Ok(Ok(meta)) => meta,
            Ok(Err(msg)) => {
                world_failed = true;
                diags.push(lookup_diag::at_all(
                    Diag::error(
                        Code::LockNix,
                        format!("cannot read the flake metadata of {shown}: {msg}"),
                    ),
                    &spans,
                    "this flake",
                ));
                continue;
            }
            Err(e) => {
                world_failed = true;
                diags.push(lookup_diag::flake_diag(&shown, &e, &spans));
                continue;
            }
        };
        match update::flake_entry(&meta, req.now) {
            Err(diag) => {
                world_failed = true;
                diags.push(lookup_diag::at_all(
                    diag(&shown),
                    &spans,
                    "the flake to lock",
                ));
            }
            Ok(make) => {
                for (&i, build) in images.iter().zip(&builds) {
                    let want = repo_key(&build.flake.url);
                    let keys: Vec<Option<String>> = remotes.iter().map(|r| repo_key(r)).collect();
                    if want.is_some() && !keys.is_empty() && !keys.contains(&want) {
                        diags.push(
                            Diag::warning(
                                Code::LockCheckoutRemote,
                                format!("the checkout {shown} is not a clone of {}", build.flake.url),
                            )
                            .label(build.flake.span, "the build instance fetches this URL")
                            .help(format!(
                                "its remotes are: {}. The locked commit must exist at the spec's URL; point `checkout=` at a clone of it",
                                remotes.join(", ")
                            )),
                        );
                    }
                    if let (Some(want), Some(have)) = (&build.flake.git_ref, &meta.git_ref)
                        && want != have
                        && !want.ends_with(&format!("/{have}"))
                    {
                        diags.push(
                            Diag::warning(
                                Code::LockCheckoutRef,
                                format!("the checkout {shown} is on `{have}`, but the spec builds ref `{want}`"),
                            )
                            .label(build.flake.span, format!("locked revision {}", short(meta.revision.as_deref().unwrap_or_default())))
                            .help(format!("the build instance fetches `{want}`; the locked commit must be on it. Check out `{want}` and run `bake lock {} --update flake`", req.spec_name)),
                        );
                    }
                    flakes.insert(i, make(&build.flake.url, build.flake.git_ref.clone()));
                }
            }
        }
    }
    let mut installers: BTreeMap<usize, InstallerLock> = BTreeMap::new();
    for ((url, images), result) in downloads.iter().zip(download_results) {
        let builds: Vec<(usize, &BuildPlan)> = images
            .iter()
            .filter_map(|&i| build_of(plan, i).map(|b| (i, b)))
            .collect();
        match result {
            Ok(sha256) if crate::spec::grammar::is_sha256_hex(&sha256) => {
                for (i, build) in builds {
                    installers.insert(
                        i,
                        installer_lock(&build.installer, build.arch, sha256.clone()),
                    );
                }
            }
            Ok(other) => {
                world_failed = true;
                let spans: Vec<Span> = builds.iter().map(|(_, b)| b.installer_span).collect();
                diags.push(lookup_diag::at_all(
                    Diag::error(
                        Code::LockDownload,
                        format!("hashing {url} gave `{other}`, not a SHA-256"),
                    ),
                    &spans,
                    "the installer to pin",
                ));
            }
            Err(e) => {
                world_failed = true;
                let spans: Vec<Span> = builds.iter().map(|(_, b)| b.installer_span).collect();
                diags.push(lookup_diag::download_diag(url, &e, &spans));
            }
        }
    }
    let mut credentials: BTreeMap<(usize, String), SecretLock> = BTreeMap::new();
    for ((source, askers), answer) in secrets.iter().zip(secret_results) {
        let spans: Vec<Span> = askers.iter().map(|(_, s)| *s).collect();
        let entry = match (source, answer) {
            (SecretSource::SecretsManager(id), SecretAnswer::Secret(a)) => {
                secrets::secret_entry(id, a, &spans, req.now)
            }
            (SecretSource::Parameter(name), SecretAnswer::Parameter(a)) => {
                secrets::parameter_entry(name, a, &spans, req.now)
            }
            _ => continue, // each source is asked the matching question
        };
        match entry {
            Ok(e) => {
                for (i, _) in askers {
                    credentials.insert((*i, source.lock_key()), e.clone());
                }
            }
            Err((d, world)) => {
                if world {
                    world_failed = true;
                } else {
                    spec_failed = true;
                }
                diags.push(d);
            }
        }
    }
    if world_failed || spec_failed {
        let failure = if world_failed {
            Failure::World
        } else {
            Failure::Spec
        };
        return failed(req.old, diags, failure);
    }

    // Assemble: untouched entries stay byte for byte, resolved parts replace theirs, pruned entries go.
    let pruned = pruned(plan, req.old);
    let (mut lock, mut changes) = update::assemble(plan, req.old, &bases, &flakes, &installers);
    // Each image keeps exactly the secrets its `fetch` names: new answers replace old entries, others go.
    for (i, name, build) in super::needs::built(plan) {
        if let Some(entry) = lock.images.get_mut(name) {
            let old = std::mem::take(&mut entry.credentials);
            for (source, _) in build.fetch.sources() {
                let key = source.lock_key();
                if let Some(e) = credentials.get(&(i, key.clone())) {
                    if old.get(&key).map(|o| &o.arn) != Some(&e.arn) {
                        secret_change(&mut changes, name, &key, &e.arn);
                    }
                    entry.credentials.insert(key, e.clone());
                } else if let Some(e) = old.get(&key) {
                    entry.credentials.insert(key, e.clone());
                }
            }
        }
    }

    // The new lock must be one `bake compile` accepts (e.g. the flake has the system-manager input the spec names).
    // Prebuilt closures are `bake build`'s to record: a missing or stale one is reported by compile and --check.
    let failure = match super::verify_without_closures(plan, &lock, req.spec_name) {
        Ok(_) => None,
        Err(more) => {
            diags.extend(more);
            Some(Failure::Spec)
        }
    };
    crate::diag::sort(&mut diags);
    Outcome {
        lock,
        changes,
        pruned,
        diags,
        failure,
    }
}

/// Records a newly resolved secret ARN in the image's change (adding one for an image nothing else changed in).
fn secret_change(changes: &mut Vec<ImageChange>, image: &str, key: &str, arn: &str) {
    let at = match changes.iter().position(|c| c.image == image) {
        Some(at) => at,
        None => {
            changes.push(ImageChange {
                image: image.to_owned(),
                base: None,
                flake: None,
                installer: None,
                credentials: Vec::new(),
            });
            changes.len() - 1
        }
    };
    changes[at]
        .credentials
        .push((key.to_owned(), arn.to_owned()));
}

fn failed(old: &Lock, mut diags: Vec<Diag>, failure: Failure) -> Outcome {
    crate::diag::sort(&mut diags);
    Outcome {
        lock: old.clone(),
        changes: Vec::new(),
        pruned: Vec::new(),
        diags,
        failure: Some(failure),
    }
}

fn build_of(plan: &Plan, i: usize) -> Option<&BuildPlan> {
    match &plan.images.get(i)?.source {
        ImageSource::Built(b) => Some(b),
        ImageSource::Pinned { .. } | ImageSource::Nixos(_) => None,
    }
}

/// Polls every future until all are done, in one task (lookups are I/O bound; no spawning, no `'static`).
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futures.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    //! The orchestration alone, with an in-process resolver that counts calls and takes its time; the real SSM and
    //! nix paths are tested end to end in `tests/lock.rs`.
    use std::cell::Cell;

    use super::*;
    use crate::source::SourceFile;

    const REV: &str = "0123456789abcdef0123456789abcdef01234567";

    struct Slow {
        parameters: Cell<usize>,
        flakes: Cell<usize>,
        downloads: Cell<usize>,
    }

    impl Resolver for Slow {
        async fn parameter(&self, name: &str) -> Result<ParameterValue, LookupError> {
            self.parameters.set(self.parameters.get() + 1);
            tokio::time::sleep(Duration::from_millis(500)).await;
            if name.contains("arm64") {
                return Err(LookupError::NotFound("not found".into()));
            }
            Ok(ParameterValue {
                value: "ami-0123456789abcdef0".into(),
                version: 7,
                last_modified: "2026-01-01T00:00:00Z".into(),
            })
        }

        async fn image(&self, ami: &str) -> Result<ImageFacts, LookupError> {
            assert_eq!(ami, "ami-0123456789abcdef0");
            Ok(ImageFacts {
                name: "al2023-ami-2023.12.20260930.0-kernel-6.12-x86_64".into(),
                owner_id: "137112412989".into(),
                owner_alias: Some("amazon".into()),
                architecture: "x86_64".into(),
                creation_date: Some("2026-09-30T23:28:25Z".into()),
                deprecation_time: None,
                state: "available".into(),
            })
        }

        async fn sha256(&self, url: &str) -> Result<String, LookupError> {
            self.downloads.set(self.downloads.get() + 1);
            tokio::time::sleep(Duration::from_millis(500)).await;
            use sha2::Digest;
            Ok(format!("{:x}", sha2::Sha256::digest(url.as_bytes())))
        }

        async fn flake_metadata(&self, _: &Path) -> Result<String, LookupError> {
            self.flakes.set(self.flakes.get() + 1);
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(format!(
                r#"{{"revision":"{REV}","locked":{{"narHash":"sha256-q3Kx1mZ2s9Qm4a8b0Yc5d6E7f8G9h0I1j2K3l4M5n6o=","lastModified":5,"ref":"main"}},
                   "locks":{{"root":"root","nodes":{{"root":{{"inputs":{{"system-manager":"sm"}}}},
                   "sm":{{"locked":{{"type":"github","owner":"numtide","repo":"system-manager","rev":"{REV}"}}}}}}}}}}"#
            ))
        }
    }

    fn plan(images: &str) -> Plan {
        let text = format!("stack \"s\" region=\"us-east-1\"\n{images}");
        let (plan, diags) = crate::check_source(&SourceFile::new("t.kdl", text));
        plan.unwrap_or_else(|| panic!("{diags:?}"))
    }

    fn image(name: &str, param: &str) -> String {
        format!(
            "image \"{name}\" {{\n base ssm=\"/aws/service/ami-amazon-linux-latest/{param}\"\n nix installer=\"determinate\" version=\"3.1.1\"\n flake \"git+https://h/r.git\" output=\"systemConfigs.x\" checkout=\"c\"\n}}\n"
        )
    }

    async fn run_with(plan: &Plan, r: &Slow) -> Outcome {
        let req = Request {
            plan,
            old: &Lock::new(),
            selection: &Selection::default(),
            spec_dir: Path::new(""),
            spec_name: "t.kdl",
            now: "2026-11-27T08:00:00Z",
            timeout: Duration::from_secs(5),
        };
        run(&req, r).await
    }

    #[test]
    fn repo_keys() {
        let key = |u: &str| repo_key(u);
        let want = Some("github.com/acme/infra".to_owned());
        for u in [
            "git+https://github.com/acme/infra.git",
            "https://github.com/acme/infra",
            "https://token@GitHub.com/acme/infra.git/",
            "git@github.com:acme/infra.git",
            "ssh://git@github.com:22/acme/infra.git",
            "github:acme/infra",
            "git+ssh://git@github.com/acme/infra?ref=main",
        ] {
            assert_eq!(key(u), want, "{u}");
        }
        assert_eq!(
            key("https://github.com/other/infra.git"),
            Some("github.com/other/infra".into())
        );
        assert_eq!(key("github:acme/infra/main"), want);
        assert_eq!(
            key("https://gitlab.com/group/sub/repo.git"),
            Some("gitlab.com/group/sub/repo".into())
        );
        assert_eq!(key("file:///srv/infra"), None);
        assert_eq!(key("/srv/infra"), None);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn lookups_are_shared_and_concurrent() {
        let p = plan(&format!(
            "{}{}",
            image("a", "al2023-ami-kernel-6.12-x86_64"),
            image("b", "al2023-ami-kernel-6.12-x86_64")
        ));
        let r = Slow {
            parameters: Cell::new(0),
            flakes: Cell::new(0),
            downloads: Cell::new(0),
        };
        // The clock is paused and only moves when every task waits: elapsed time counts the sleeps exactly.
        let started = tokio::time::Instant::now();
        let out = run_with(&p, &r).await;
        assert!(out.failure.is_none(), "{:?}", out.diags);
        // One lookup per distinct parameter, checkout and installer binary, all at once.
        assert_eq!(
            (r.parameters.get(), r.flakes.get(), r.downloads.get()),
            (1, 1, 1)
        );
        let installer = &out.lock.images["a"].installer;
        assert_eq!(
            installer.url,
            "https://install.determinate.systems/nix/tag/v3.1.1/nix-installer-x86_64-linux"
        );
        assert_eq!(
            installer.sha256.as_deref(),
            Some(
                format!(
                    "{:x}",
                    <sha2::Sha256 as sha2::Digest>::digest(installer.url.as_bytes())
                )
                .as_str()
            )
        );
        // Each lookup sleeps 500 ms: sequential lookups would take a second.
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        assert_eq!(out.lock.images.len(), 2);
        let base = &out.lock.images["a"].base;
        assert_eq!(
            (
                base.release.as_deref(),
                base.kernel.as_deref(),
                base.architecture.as_deref()
            ),
            (Some("2023.12.20260930"), Some("6.12"), Some("x86_64"))
        );
        assert_eq!(out.lock.images["b"].flake.rev, REV);
        assert_eq!(
            out.lock.images["a"].flake.inputs["system-manager"].url,
            format!("github:numtide/system-manager/{REV}")
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failure_keeps_the_old_lock_and_labels_every_asker() {
        let p = plan(&format!(
            "{}{}",
            image("a", "al2023-ami-kernel-6.12-arm64"),
            image("b", "al2023-ami-kernel-6.12-arm64")
        ));
        let r = Slow {
            parameters: Cell::new(0),
            flakes: Cell::new(0),
            downloads: Cell::new(0),
        };
        let out = run_with(&p, &r).await;
        assert_eq!(out.failure, Some(Failure::World));
        assert_eq!(out.lock, Lock::new());
        assert_eq!(out.diags.len(), 1);
        assert_eq!(out.diags[0].code, Code::LockParameterNotFound);
        assert_eq!(out.diags[0].labels.len(), 2);
    }
}
