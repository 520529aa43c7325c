//! `bake build`: builds, signs and pushes the prebuilt closures of a spec's images and records them in the lock;
//! with `--check`, only asks the caches whether the locked closures are there and signed.

use std::path::{Path, PathBuf};

use super::{Format, checked_spec, default_lock_path, eprint_error, exit, read_lock, report};
use crate::check::plan::{ClosurePlan, ImageSource};
use crate::closure::nix::Nix;
use crate::closure::push::{self, Options, Target};
use crate::diag::render::Style;
use crate::source::display_path;

/// The environment variable that names the secret signing key file when `--signing-key` is not given.
pub const SIGNING_KEY_ENV: &str = "BAKE_SIGNING_KEY_FILE";

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The spec file (KDL).
    spec: PathBuf,
    /// The images to build [default: every image with a `closure` node].
    images: Vec<String>,
    /// The lock file [default: the spec's path with `.lock.json` instead of `.kdl`].
    #[arg(long)]
    lock: Option<PathBuf>,
    /// The environment whose images to build, when the spec declares environments [default: the one marked
    /// `default=#true`].
    #[arg(long, value_name = "NAME")]
    env: Option<String>,
    /// The team's secret Nix signing key file (`nix key generate-secret`); never in the spec or the lock
    /// [default: $BAKE_SIGNING_KEY_FILE].
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// Build and push nothing: check that each locked closure is in its cache, signed by the spec's key.
    #[arg(long)]
    check: bool,
    /// Where S3 caches are staged as local `file://` caches between runs (keep it in CI's cache for speed)
    /// [default: $BAKE_CACHE_DIR, else $XDG_CACHE_HOME/bake/binary-cache].
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// The AWS profile for S3 caches [default: the standard AWS configuration chain].
    #[arg(long)]
    profile: Option<String>,
    /// Seconds each nix command or S3 call may take.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    timeout: u64,
}

pub fn build(args: &BuildArgs, style: Style) -> u8 {
    let (file, plan) = match checked_spec(&args.spec, args.env.as_deref(), Format::Human, style) {
        Ok((file, checked, _warnings)) => (file, checked.plan),
        Err(code) => return code,
    };
    let spec_name = file.name();
    let lock_path = args
        .lock
        .clone()
        .unwrap_or_else(|| default_lock_path(&args.spec));
    let lock_name = display_path(&lock_path);
    let mut lock = match read_lock(&lock_path, Format::Human, style) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let resolved = if args.check {
        crate::lock::verify(&plan, &lock, &spec_name)
    } else {
        crate::lock::verify_without_closures(&plan, &lock, &spec_name)
    };
    let resolved = match resolved {
        Ok(r) => r,
        Err(diags) => {
            report(&file, &diags, Format::Human, style);
            return exit::SPEC;
        }
    };
    // The images with a closure, in spec order, narrowed to those named on the command line.
    let mut chosen: Vec<(usize, &ClosurePlan)> = Vec::new();
    for (i, image) in plan.images.iter().enumerate() {
        if let ImageSource::Built(b) = &image.source
            && let Some(c) = &b.closure
            && (args.images.is_empty() || args.images.contains(&image.name.value))
        {
            chosen.push((i, c));
        }
    }
    for name in &args.images {
        if !plan.images.iter().any(|i| &i.name.value == name) {
            eprint_error(&format!("{spec_name} has no image `{name}`"));
            return exit::USAGE;
        }
        if !chosen
            .iter()
            .any(|(i, _)| &plan.images[*i].name.value == name)
        {
            eprint_error(&format!(
                "image `{name}` has no `closure` node, so there is nothing to build for it; add `closure cache=\"…\" public-key=\"…\"` (docs/binary-cache.md)"
            ));
            return exit::USAGE;
        }
    }
    if chosen.is_empty() {
        eprint_error(&format!(
            "no image of {spec_name} has a `closure` node; add `closure cache=\"…\" public-key=\"…\"` to an image (docs/binary-cache.md)"
        ));
        return exit::USAGE;
    }
    let timeout = std::time::Duration::from_secs(args.timeout.max(1));
    let nix = Nix { timeout };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprint_error(&format!("cannot start the async runtime: {e}"));
            return exit::BUG;
        }
    };

    if args.check {
        let names: Vec<&str> = chosen
            .iter()
            .map(|(i, _)| plan.images[*i].name.value.as_str())
            .collect();
        let diags = match check_caches(
            &plan,
            &lock,
            &names,
            &spec_name,
            args.profile.as_deref(),
            timeout,
        ) {
            Ok(d) => d,
            Err(code) => return code,
        };
        report(&file, &diags, Format::Human, style);
        if diags.is_empty() {
            eprintln!("{lock_name}: every locked closure is in its cache, signed by its key");
            return exit::OK;
        }
        return exit::SPEC;
    }

    let key_file = args.signing_key.clone().or_else(|| {
        std::env::var_os(SIGNING_KEY_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let Some(key_file) = key_file else {
        eprint_error(&format!(
            "`bake build` signs closures with the team's Nix signing key: pass `--signing-key FILE` or set {SIGNING_KEY_ENV} (the key never goes in the spec or the lock)"
        ));
        return exit::USAGE;
    };
    let now = match super::lock_now() {
        Ok(n) => crate::lock::time::rfc3339(n),
        Err(e) => {
            eprint_error(&e);
            return exit::USAGE;
        }
    };
    let spec_dir = args
        .spec
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let opts = Options {
        key_file,
        work_dir: args
            .work_dir
            .clone()
            .or_else(|| {
                std::env::var_os("BAKE_CACHE_DIR")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(push::default_work_dir),
        profile: args.profile.clone(),
        timeout,
    };
    let mut code = exit::OK;
    let mut changed = false;
    for (i, c) in &chosen {
        let image = &plan.images[*i];
        let name = &image.name.value;
        let (ImageSource::Built(b), Some(r)) = (&image.source, &resolved[*i]) else {
            continue;
        };
        let Some(entry) = lock.images.get(name) else {
            continue; // verify reported it
        };
        let installable = installable(
            &spec_dir,
            b,
            &entry.flake.rev,
            &entry.flake.nar_hash,
            &r.flake_ref,
        );
        let target = Target {
            image: name,
            installable,
            system_manager: &r.system_manager_ref,
            closure: c,
            flake_rev: &entry.flake.rev,
            output: &b.flake.output,
        };
        let started = std::time::Instant::now();
        match runtime.block_on(push::push(&target, &nix, &opts, &now)) {
            Ok(pushed) => {
                let secs = started.elapsed().as_secs_f64();
                let what = match &c.cache_url {
                    crate::closure::url::CacheUrl::S3 { .. } => format!(
                        "uploaded {} file(s), {} already there",
                        pushed.uploaded, pushed.present
                    ),
                    _ => "copied".to_owned(),
                };
                eprintln!(
                    "{name}: {} -> {} ({what}, {secs:.1} s)",
                    pushed.lock.store_path, c.cache
                );
                let slot = lock.images.get_mut(name).map(|e| &mut e.closure);
                if let Some(slot) = slot {
                    // A rebuild of the same path keeps the entry (and its time): the lock does not churn.
                    let undated = |c: &crate::lock::ClosureLock| crate::lock::ClosureLock {
                        built_at: String::new(),
                        ..c.clone()
                    };
                    let same = slot
                        .as_ref()
                        .is_some_and(|old| undated(old) == undated(&pushed.lock));
                    if !same {
                        *slot = Some(pushed.lock);
                        changed = true;
                    }
                }
            }
            Err(e) => {
                eprint_error(&format!("image `{name}`: {e}"));
                code = exit::ENV;
            }
        }
    }
    if changed {
        if let Err(e) = crate::fsio::write_atomic(&lock_path, &lock.to_json()) {
            eprint_error(&format!("cannot write {lock_name}: {e}"));
            return exit::ENV;
        }
        eprintln!("{lock_name}: recorded the closure(s)");
    } else if code == exit::OK {
        eprintln!("{lock_name}: up to date");
    }
    code
}

/// What `nix build` builds: the locked revision from the local checkout when the spec names one (a CI runner
/// has it; no credentials needed), else the locked reference the spec's URL gives.
fn installable(
    spec_dir: &Path,
    build: &crate::check::plan::BuildPlan,
    rev: &str,
    nar_hash: &str,
    flake_ref: &str,
) -> String {
    if let Some(checkout) = &build.flake.checkout
        && let Ok(dir) = std::fs::canonicalize(spec_dir.join(checkout))
    {
        let url = format!("git+file://{}", dir.display());
        return crate::lock::locked_flake_ref(&url, None, rev, Some(nar_hash), &build.flake.output);
    }
    flake_ref.to_owned()
}

/// Asks each named image's cache whether its locked closure is there and signed: the diagnostics of what is not.
/// `Err` (with the message printed) when a cache cannot be asked at all.
pub(super) fn check_caches(
    plan: &crate::check::plan::Plan,
    lock: &crate::lock::Lock,
    images: &[&str],
    spec_name: &str,
    profile: Option<&str>,
    timeout: std::time::Duration,
) -> Result<Vec<crate::diag::Diag>, u8> {
    let nix = Nix { timeout };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprint_error(&format!("cannot start the async runtime: {e}"));
            exit::BUG
        })?;
    let mut diags = Vec::new();
    for image in &plan.images {
        let name = image.name.value.as_str();
        let ImageSource::Built(b) = &image.source else {
            continue;
        };
        let (Some(c), true) = (&b.closure, images.contains(&name)) else {
            continue;
        };
        let Some(entry) = lock.images.get(name).and_then(|e| e.closure.as_ref()) else {
            continue; // verify reported it
        };
        match runtime.block_on(crate::closure::check::check(
            entry, c, &nix, profile, timeout,
        )) {
            Ok(f) => diags.extend(f.diag(name, c, spec_name)),
            Err(e) => {
                eprint_error(&format!("image `{name}`: {e}"));
                return Err(exit::ENV);
            }
        }
    }
    Ok(diags)
}
