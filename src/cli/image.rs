//! `bake image`: build, upload and register the spec's NixOS images and record them in the lock (`crate::nixos`).
//! The only command that builds or uploads an image; `compile` and `deploy` read the AMI from the lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    Format, checked_spec, default_lock_path, eprint_error, exit, lock_now, read_lock, report,
};
use crate::diag::render::Style;
use crate::source::{SourceFile, display_path};

#[derive(Debug, clap::Args)]
pub(super) struct ImageArgs {
    /// The spec file (KDL).
    spec: PathBuf,
    /// Only these NixOS images [default: all of them].
    images: Vec<String>,
    /// The lock file [default: the spec's path with `.lock.json` instead of `.kdl`].
    #[arg(long)]
    lock: Option<PathBuf>,
    /// The environment whose images to build (its region and account), when the spec declares environments
    /// [default: the one marked `default=#true`].
    #[arg(long, value_name = "NAME")]
    env: Option<String>,
    /// Say which images would be built and why; build, upload and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Build even when the lock's AMI was built from the flake's current revision.
    #[arg(long)]
    rebuild: bool,
    /// The AWS profile [default: the standard AWS configuration chain].
    #[arg(long)]
    profile: Option<String>,
    /// Seconds one AWS call may take, the SDK's retries included.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Seconds `nix build` may take.
    #[arg(long, value_name = "SECS", default_value_t = 7200)]
    build_timeout: u64,
    /// Seconds to wait for a new AMI to become available.
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    wait: u64,
}

pub(super) fn image_command(args: &ImageArgs, style: Style) -> u8 {
    let (file, plan) = match checked_spec(&args.spec, args.env.as_deref(), Format::Human, style) {
        Ok((file, checked, _warnings)) => (file, checked.plan),
        Err(code) => return code,
    };
    let spec_name = file.name();
    let nixos: Vec<&str> = crate::lock::nixos::nixos_images(&plan)
        .map(|(_, i, _)| i.name.value.as_str())
        .collect();
    for name in &args.images {
        if !nixos.contains(&name.as_str()) {
            eprint_error(&format!(
                "{spec_name} has no NixOS image `{name}`; its NixOS images: {}",
                if nixos.is_empty() {
                    "(none)".to_owned()
                } else {
                    nixos.join(", ")
                }
            ));
            return exit::USAGE;
        }
    }
    if nixos.is_empty() {
        eprintln!("{spec_name}: no NixOS images; nothing to build");
        return exit::OK;
    }
    let lock_path = args
        .lock
        .clone()
        .unwrap_or_else(|| default_lock_path(&args.spec));
    let lock_name = display_path(&lock_path);
    let old = match read_lock(&lock_path, Format::Human, style) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let now = match lock_now() {
        Ok(n) => crate::lock::time::rfc3339(n),
        Err(e) => {
            eprint_error(&e);
            return exit::USAGE;
        }
    };
    let opts = crate::nixos::Options {
        profile: args.profile.clone(),
        timeout: Duration::from_secs(args.timeout),
        build_timeout: Duration::from_secs(args.build_timeout),
        wait: Duration::from_secs(args.wait),
        only: args.images.clone(),
        dry_run: args.dry_run,
        rebuild: args.rebuild,
        spec_dir: args
            .spec
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        now,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprint_error(&format!("cannot start the async runtime: {e}"));
            return exit::BUG;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = crate::nixos::run(&plan, &old, &opts) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let outcome = match outcome {
        None => {
            eprint_error(&format!(
                "interrupted; {lock_name} not written (a snapshot started by this run fails by itself after 60 minutes)"
            ));
            return exit::INTERRUPTED;
        }
        Some(Ok(o)) => o,
        Some(Err(crate::nixos::Failure::Spec(d))) => {
            report(&file, &[d], Format::Human, style);
            eprintln!("{lock_name}: not written");
            return exit::SPEC;
        }
        Some(Err(crate::nixos::Failure::World(sentence))) => {
            eprint_error(&sentence);
            eprintln!("{lock_name}: not written");
            return exit::ENV;
        }
    };
    for line in &outcome.lines {
        eprintln!("{line}");
    }
    if args.dry_run {
        return exit::OK;
    }
    write_lock(&lock_path, &old, &outcome.lock, &file)
}

fn write_lock(
    path: &Path,
    old: &crate::lock::Lock,
    new: &crate::lock::Lock,
    _file: &SourceFile,
) -> u8 {
    let name = display_path(path);
    if old == new {
        eprintln!("{name}: up to date");
        return exit::OK;
    }
    if let Err(e) = crate::fsio::write_atomic(path, &new.to_json()) {
        eprint_error(&format!("cannot write {name}: {e}"));
        return exit::ENV;
    }
    eprintln!("{name}: wrote {} NixOS image(s)", new.nixos.len());
    exit::OK
}
