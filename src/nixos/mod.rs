//! `bake image`: NixOS images from a flake to an AMI, with no Image Builder and no S3 bucket.
//!
//! For each NixOS image of the spec: read the flake's revision; if the lock already has an AMI built from that
//! revision with the spec's settings in every region, do nothing. Otherwise `nix build` the output (`build`), find
//! an AMI already registered under the name its store path gives (`register::find`) or upload the raw image into a
//! snapshot through the EBS direct APIs (`upload`) and register it (`register`), copy it to the `copy-to` regions,
//! delete old AMIs under `delete-old-amis` (`retention`), and record everything in the lock (`lock::nixos`).
//!
//! `compile` and `deploy` never come here: they read the AMI from the lock, like every other lock value.

pub mod build;
pub mod register;
mod retention;
pub mod upload;

use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::aws::{self, Endpoint, Settings};
use crate::check::plan::{ImagePlan, NixosPlan, Plan};
use crate::diag::{Code, Diag};
use crate::lock::Lock;
use crate::lock::nixos::{self as entries, NixosLock};
use build::BuildError;

/// How `bake image` runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub profile: Option<String>,
    /// Each AWS call's timeout.
    pub timeout: Duration,
    /// How long `nix build` (and each other nix command) may take.
    pub build_timeout: Duration,
    /// How long to wait for a new AMI to become available.
    pub wait: Duration,
    /// Only these images (all NixOS images when empty).
    pub only: Vec<String>,
    /// Say what would be built, build nothing.
    pub dry_run: bool,
    /// Rebuild even when the lock is up to date.
    pub rebuild: bool,
    /// Directory the spec's relative paths start from.
    pub spec_dir: PathBuf,
    /// RFC 3339, recorded as `built-at`.
    pub now: String,
}

/// Why `bake image` stopped.
#[derive(Debug)]
pub enum Failure {
    /// Something the spec must change (a non-raw image, a volume too small): a diagnostic at the `nixos` node.
    Spec(Diag),
    /// The world failed (nix, AWS): one sentence with the next step.
    World(String),
}

/// What `bake image` did: the new lock and one line per image.
#[derive(Debug)]
pub struct Outcome {
    pub lock: Lock,
    pub lines: Vec<String>,
}

/// Whether an image needs building: `None` when the lock is up to date with the flake's revision.
pub fn rebuild_reason(
    plan: &Plan,
    n: &NixosPlan,
    old: Option<&NixosLock>,
    rev: &str,
) -> Option<String> {
    let Some(e) = old else {
        return Some("not built yet".to_owned());
    };
    if let Some(why) = entries::stale_reason(plan, e, n) {
        return Some(format!("the lock's entry {why}"));
    }
    if e.rev != rev {
        return Some(format!(
            "the flake moved from {} to {}",
            crate::lock::update::short(&e.rev),
            crate::lock::update::short(rev)
        ));
    }
    None
}

fn spec_failure(code: Code, n: &NixosPlan, message: String, label: &str) -> Failure {
    Failure::Spec(
        Diag::error(code, message)
            .label(n.flake.span, label)
            .help("`bake explain ".to_owned() + code.as_str() + "` says what bake needs"),
    )
}

fn build_failure(e: BuildError, n: &NixosPlan) -> Failure {
    match e {
        BuildError::NotRaw(m) => spec_failure(Code::ImageNotRaw, n, m, "this output"),
        BuildError::BadOutput(m) => spec_failure(Code::ImageBuild, n, m, "this output"),
        other => Failure::World(other.to_string()),
    }
}

/// A token for a call that must happen once per run: the SDK's retries of it are then idempotent.
fn run_token(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    format!(
        "bake-{}",
        d[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

struct Clients {
    ebs: aws_sdk_ebs::Client,
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    ebs_endpoint: Endpoint,
    ec2_endpoint: Endpoint,
    ssm_endpoint: Endpoint,
}

async fn clients(region: &str, opts: &Options) -> Clients {
    let settings = Settings {
        profile: opts.profile.clone(),
        region: region.to_owned(),
        timeout: opts.timeout,
    };
    let config = aws::config(&settings).await;
    Clients {
        ebs: aws_sdk_ebs::Client::new(&config),
        ec2: aws_sdk_ec2::Client::new(&config),
        ssm: aws_sdk_ssm::Client::new(&config),
        ebs_endpoint: Endpoint::new("EBS", &config, &settings),
        ec2_endpoint: Endpoint::new("EC2", &config, &settings),
        ssm_endpoint: Endpoint::new("SSM", &config, &settings),
    }
}

/// Runs `bake image` for the plan's NixOS images.
pub async fn run(plan: &Plan, old: &Lock, opts: &Options) -> Result<Outcome, Failure> {
    let mut lock = old.clone();
    lock.nixos = entries::kept(plan, old);
    let mut lines = Vec::new();
    let selected: Vec<(&ImagePlan, &NixosPlan)> = entries::nixos_images(plan)
        .filter(|(_, image, _)| opts.only.is_empty() || opts.only.contains(&image.name.value))
        .map(|(_, i, n)| (i, n))
        .collect();
    let mut home: Option<Clients> = None;
    for (image, n) in selected {
        let name = &image.name.value;
        let checkout = match &n.flake.checkout {
            Some(c) => {
                let dir = opts.spec_dir.join(c);
                match std::fs::canonicalize(&dir) {
                    Ok(d) if d.is_dir() => Some(d),
                    _ => {
                        return Err(Failure::World(format!(
                            "the flake checkout {} of image `{name}` does not exist; clone the flake there or fix `checkout=` (relative to the spec)",
                            dir.display()
                        )));
                    }
                }
            }
            None => None,
        };
        let flake = build::flake_ref(
            &n.flake.url,
            n.flake.git_ref.as_deref(),
            checkout.as_deref(),
        );
        let rev = build::flake_rev(&flake, opts.build_timeout)
            .await
            .map_err(|e| build_failure(e, n))?;
        let old_entry = old.nixos.get(name);
        let mut reason = match (rebuild_reason(plan, n, old_entry, &rev), opts.rebuild) {
            (Some(r), _) => Some(r),
            (None, true) => Some("--rebuild".to_owned()),
            (None, false) => None,
        };
        if let (None, Some(e)) = (&reason, old_entry) {
            // The lock says up to date: the AMI must still be there (someone may have deregistered it).
            let c = match home.take() {
                Some(c) => c,
                None => clients(&plan.stack.region, opts).await,
            };
            let found = register::find(&c.ec2, &c.ec2_endpoint, &e.ami_name)
                .await
                .map_err(Failure::World)?;
            let locked = e.amis.get(&plan.stack.region);
            if found.as_ref() != locked {
                reason = Some(format!(
                    "the lock's AMI {} is no longer registered in {}",
                    locked.map_or("(none)", String::as_str),
                    plan.stack.region
                ));
            }
            home = Some(c);
        }
        let Some(reason) = reason else {
            lines.push(format!(
                "image {name}: up to date ({})",
                entries::status_line(old, name)
            ));
            continue;
        };
        if opts.dry_run {
            lines.push(format!("image {name}: would build: {reason}"));
            continue;
        }
        let built = build::build(&flake, &n.flake.output, opts.build_timeout)
            .await
            .map_err(|e| build_failure(e, n))?;
        let min_gib = upload::min_volume_gib(built.size);
        let volume_gib = u64::from(n.volume_gib.unwrap_or(0)).max(min_gib);
        if n.volume_gib.is_some_and(|v| u64::from(v) < min_gib) {
            return Err(spec_failure(
                Code::ImageBuild,
                n,
                format!(
                    "`volume-gib={}` is smaller than the image ({} bytes needs {min_gib} GiB)",
                    n.volume_gib.unwrap_or(0),
                    built.size
                ),
                "this image's volume",
            ));
        }
        let settings = entries::registration_key(n);
        let ami_name = entries::ami_name(&plan.stack.name, name, &built.store_path, &settings);
        let c = match home.take() {
            Some(c) => c,
            None => clients(&plan.stack.region, opts).await,
        };
        let tags = vec![
            ("Name".to_owned(), format!("{}-{name}", plan.stack.name)),
            (
                "bake:lineage".to_owned(),
                format!("{}/{name}", plan.stack.name),
            ),
            ("bake:store-path".to_owned(), built.store_path.clone()),
            ("bake:flake-rev".to_owned(), rev.clone()),
        ];
        let existing = register::find(&c.ec2, &c.ec2_endpoint, &ami_name)
            .await
            .map_err(Failure::World)?;
        let (ami, snapshot) = match existing {
            Some(ami) => {
                let snapshot = old_entry
                    .filter(|e| e.ami_name == ami_name)
                    .map(|e| e.snapshot.clone())
                    .unwrap_or_default();
                lines.push(format!(
                    "image {name}: {ami} is already registered for {} ({reason}); nothing uploaded",
                    built.store_path
                ));
                (ami, snapshot)
            }
            None => {
                let req = upload::UploadRequest {
                    file: &built.info.file,
                    volume_gib,
                    description: format!("bake {}/{name}: {}", plan.stack.name, built.store_path),
                    tags: tags.clone(),
                    encrypted: n.encrypted,
                    kms_key: n.kms_key.clone(),
                    parallelism: usize::try_from(n.parallelism).unwrap_or(1),
                    client_token: run_token(&[
                        &ami_name,
                        &opts.now,
                        &std::process::id().to_string(),
                    ]),
                    snapshot_timeout_minutes: 60,
                };
                let up = match upload::upload(&c.ebs, &c.ebs_endpoint, &req).await {
                    Ok(up) => up,
                    Err(f) => {
                        let cleanup = match &f.snapshot {
                            Some(s) => cleanup(&c, s).await,
                            None => String::new(),
                        };
                        return Err(Failure::World(format!("{}{cleanup}", f.sentence)));
                    }
                };
                lines.push(upload_line(name, &up));
                let registration = register::Registration {
                    name: ami_name.clone(),
                    description: format!(
                        "NixOS image {name} of bake stack {}, {}",
                        plan.stack.name, built.store_path
                    ),
                    arch: built.arch,
                    snapshot: up.snapshot.clone(),
                    volume_gib: i32::try_from(volume_gib).unwrap_or(i32::MAX),
                    tpm: n.tpm,
                    tags: tags.clone(),
                };
                match register::register(&c.ec2, &c.ec2_endpoint, &registration).await {
                    Ok(ami) => (ami, up.snapshot),
                    Err(e) => {
                        let cleanup = cleanup(&c, &up.snapshot).await;
                        return Err(Failure::World(format!("{e}{cleanup}")));
                    }
                }
            }
        };
        register::wait_available(&c.ec2, &c.ec2_endpoint, &ami, opts.wait)
            .await
            .map_err(Failure::World)?;
        let mut amis = std::collections::BTreeMap::new();
        amis.insert(plan.stack.region.clone(), ami.clone());
        for region in &n.copy_to {
            if *region == plan.stack.region {
                continue;
            }
            let rc = clients(region, opts).await;
            let copied = match register::find(&rc.ec2, &rc.ec2_endpoint, &ami_name)
                .await
                .map_err(Failure::World)?
            {
                Some(a) => a,
                None => register::copy(
                    &rc.ec2,
                    &rc.ec2_endpoint,
                    &plan.stack.region,
                    &ami,
                    &ami_name,
                    &run_token(&[&ami, region]),
                    &tags,
                )
                .await
                .map_err(|e| {
                    Failure::World(format!(
                        "{e}; {ami} is registered in {} and recorded nowhere yet: run `bake image` again to copy it",
                        plan.stack.region
                    ))
                })?,
            };
            lines.push(format!("image {name}: {copied} in {region}"));
            amis.insert(region.clone(), copied);
        }
        let entry = NixosLock {
            url: n.flake.url.clone(),
            git_ref: n.flake.git_ref.clone(),
            output: n.flake.output.clone(),
            rev: rev.clone(),
            store_path: built.store_path.clone(),
            nar_hash: built.nar_hash.clone(),
            architecture: built.arch.as_str().to_owned(),
            volume_gib: u32::try_from(volume_gib).unwrap_or(u32::MAX),
            settings,
            ami_name,
            snapshot,
            amis,
            built_at: opts.now.clone(),
        };
        if n.delete_old_amis {
            let keep_ids: Vec<String> = entry
                .amis
                .values()
                .chain(old_entry.iter().flat_map(|e| e.amis.values()))
                .cloned()
                .collect();
            let removed = retention::prune(&c, plan, image, n.keep_amis, &keep_ids)
                .await
                .map_err(Failure::World)?;
            for (ami, snaps) in removed {
                lines.push(format!(
                    "image {name}: deregistered old AMI {ami} and deleted {}",
                    if snaps.is_empty() {
                        "no snapshot".to_owned()
                    } else {
                        snaps.join(", ")
                    }
                ));
            }
        }
        lines.push(format!(
            "image {name}: {} in {} ({reason})",
            ami, plan.stack.region
        ));
        lock.nixos.insert(name.clone(), entry);
        home = Some(c);
    }
    Ok(Outcome { lock, lines })
}

/// Deletes a snapshot that did not become an AMI; the words to add to the error.
async fn cleanup(c: &Clients, snapshot: &str) -> String {
    match register::delete_snapshot(&c.ec2, &c.ec2_endpoint, snapshot).await {
        Ok(()) => format!("; bake deleted the unfinished snapshot {snapshot}"),
        Err(e) => format!(
            "; the unfinished snapshot {snapshot} could not be deleted ({e}): delete it with `aws ec2 delete-snapshot --snapshot-id {snapshot}` (EBS also fails it after 60 minutes)"
        ),
    }
}

fn upload_line(name: &str, up: &upload::Uploaded) -> String {
    let secs = up.elapsed.as_secs_f64().max(0.001);
    let skipped = up.blocks - up.written;
    format!(
        "image {name}: uploaded {} of {} blocks into {} ({:.0}% all zeros, skipped) in {secs:.1} s, {:.1} MiB/s of image",
        up.written,
        up.blocks,
        up.snapshot,
        if up.blocks == 0 {
            0.0
        } else {
            100.0 * skipped as f64 / up.blocks as f64
        },
        (up.blocks * upload::BLOCK) as f64 / 1_048_576.0 / secs
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_tokens_are_short_and_depend_on_every_part() {
        let a = super::run_token(&["a", "b"]);
        assert!(a.len() <= 64, "{a}");
        assert_ne!(a, super::run_token(&["ab", ""]));
    }
}
