//! `bake promote`: argument parsing, reading the spec and lock, writing the lock (`crate::promote` does the AWS part).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::deploy::Output;
use super::{Format, checked_spec, default_lock_path, exit, lock_now, read_lock};
use crate::environments::Checked;
use crate::promote::{Place, promote as run_promote};
use crate::source::display_path;

#[derive(Debug, clap::Args)]
pub(super) struct PromoteArgs {
    /// The spec file (KDL).
    spec: PathBuf,
    /// The environment whose running AMIs move forward.
    #[arg(long, value_name = "ENV")]
    from: String,
    /// The environment that takes them (its `images-from` must name `--from`).
    #[arg(long, value_name = "ENV")]
    to: String,
    /// The lock file [default: the spec's path with `.lock.json` instead of `.kdl`].
    #[arg(long)]
    lock: Option<PathBuf>,
    /// The AWS profile for the source environment's account [default: the standard chain].
    #[arg(long)]
    from_profile: Option<String>,
    /// The AWS profile for the target environment's account (copies run there) [default: the standard chain].
    #[arg(long)]
    to_profile: Option<String>,
    /// Seconds one AWS call may take, retries included.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Seconds to wait for a copy into another region to become available.
    #[arg(long, value_name = "SECS", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..=86400))]
    copy_wait: u64,
    /// The AMIs' snapshots are encrypted and their KMS key already lets the target account use it (bake does not
    /// edit key policies).
    #[arg(long)]
    kms_key_shared: bool,
}

fn place(checked: &Checked, profile: Option<&String>) -> Place {
    Place {
        env: checked
            .env
            .as_ref()
            .map_or_else(String::new, |e| e.name.clone()),
        stack: checked.plan.stack.name.clone(),
        region: checked.plan.stack.region.clone(),
        account: checked.plan.stack.account.clone(),
        profile: profile.cloned(),
    }
}

pub(super) fn promote(args: &PromoteArgs, output: Output) -> u8 {
    let style = output.style;
    let path: &Path = &args.spec;
    let (_, to, _) = match checked_spec(path, Some(&args.to), Format::Human, style) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (_, from, _) = match checked_spec(path, Some(&args.from), Format::Human, style) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let spec = display_path(path);
    match to.env.as_ref().and_then(|e| e.images_from.as_ref()) {
        None => {
            eprintln!(
                "error: environment `{}` builds its own images; add `images-from \"{}\"` to it in {spec} to run the AMIs `{}` tested",
                args.to, args.from, args.from
            );
            return exit::USAGE;
        }
        Some(src) if src.value != args.from => {
            eprintln!(
                "error: environment `{}` takes its images from `{}`, not `{}`; run `bake promote {spec} --from {} --to {}`",
                args.to, src.value, args.from, src.value, args.to
            );
            return exit::USAGE;
        }
        Some(_) => {}
    }
    let lock_path = args.lock.clone().unwrap_or_else(|| default_lock_path(path));
    let lock_name = display_path(&lock_path);
    let mut lock = match read_lock(&lock_path, Format::Human, style) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let now = match lock_now() {
        Ok(n) => crate::lock::time::rfc3339(n),
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let images: Vec<String> = crate::environments::promotion::promoted_images(&to.plan)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let (from_place, to_place) = (
        place(&from, args.from_profile.as_ref()),
        place(&to, args.to_profile.as_ref()),
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::BUG;
        }
    };
    let moved = runtime.block_on(run_promote(
        &from_place,
        &to_place,
        &images,
        Duration::from_secs(args.timeout),
        Duration::from_secs(args.copy_wait),
        args.kms_key_shared,
        &now,
    ));
    let moved = match moved {
        Ok(m) => m,
        Err(f) => {
            eprintln!("error: {}", f.sentence);
            if output.verbose && f.detail != f.sentence {
                eprintln!("{}", f.detail);
            }
            eprintln!("{lock_name}: not written");
            return exit::ENV;
        }
    };
    // Exactly the promoted images of the target environment change; the rest of the lock stays as it is.
    let entry = lock.environments.entry(args.to.clone()).or_default();
    entry.images.clear();
    for m in &moved {
        entry.images.insert(m.image.clone(), m.entry.clone());
    }
    if let Err(e) = crate::fsio::write_atomic(&lock_path, &lock.to_json()) {
        eprintln!("error: cannot write {lock_name}: {e}");
        return exit::ENV;
    }
    for m in &moved {
        let how = match m.entry.delivery.as_str() {
            "shared" => format!(
                ", shared with account {}",
                m.entry.account.as_deref().unwrap_or("?")
            ),
            "copied" => format!(
                " (copied from {} in {})",
                m.entry.source_ami, m.entry.source_region
            ),
            _ => String::new(),
        };
        eprintln!(
            "{}: image \"{}\" runs {}{how}, which `{}` has run since {}",
            args.to, m.image, m.entry.ami, args.from, m.entry.tested_since
        );
    }
    eprintln!(
        "{lock_name}: promoted {} image(s) from `{}` to `{}`; `bake plan {spec} --env {}` shows the change",
        moved.len(),
        args.from,
        args.to,
        args.to
    );
    exit::OK
}
