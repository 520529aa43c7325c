//! A promoted environment's images: the AMIs the lock records for it replace the builds, so its template has no
//! Image Builder resources and its fleets run exactly what the source environment ran.

use super::Selected;
use crate::check::plan::{ImageSource, Plan, Promotion};
use crate::diag::{Code, Diag};
use crate::lock::{Lock, PromotedLock};
use crate::spec::grammar::{Grammar, check_safe};

/// Whether a lock entry was promoted from `from` for this plan's region and account.
pub fn entry_matches(entry: &PromotedLock, from: &str, plan: &Plan) -> bool {
    entry.from == from
        && entry.region == plan.stack.region
        && (plan.stack.account.is_none() || entry.account == plan.stack.account)
}

/// The images a promoted environment takes from its source: those a fleet runs (an image no fleet runs has no
/// AMI record in the source's stack, and is left out of a promoted environment).
pub fn promoted_images(plan: &Plan) -> Vec<&str> {
    plan.images
        .iter()
        .enumerate()
        .filter(|(i, _)| plan.fleets.iter().any(|f| f.image == *i))
        .map(|(_, image)| image.name.value.as_str())
        .collect()
}

/// Replaces each image of a promoted environment's plan with the AMI the lock records for it. Without
/// `images-from`, the plan is left as it is. A missing or stale entry is a diagnostic at `images-from`.
pub fn apply(
    plan: &mut Plan,
    env: Option<&Selected>,
    lock: &Lock,
    lock_name: &str,
) -> Result<(), Vec<Diag>> {
    let Some(env) = env else { return Ok(()) };
    let Some(from) = &env.images_from else {
        return Ok(());
    };
    // Unused images are dropped, and the fleets' indices follow.
    let used: Vec<bool> = (0..plan.images.len())
        .map(|i| plan.fleets.iter().any(|f| f.image == i))
        .collect();
    let mut new_index = Vec::with_capacity(used.len());
    let mut next = 0;
    for &u in &used {
        new_index.push(next);
        next += usize::from(u);
    }
    let mut keep = used.iter();
    plan.images.retain(|_| *keep.next().unwrap_or(&false));
    for fleet in &mut plan.fleets {
        fleet.image = new_index[fleet.image];
    }
    let entries = lock.environments.get(&env.name);
    let mut diags = Vec::new();
    let (region, account) = (plan.stack.region.clone(), plan.stack.account.clone());
    for image in &mut plan.images {
        let name = &image.name.value;
        let entry = entries.and_then(|e| e.images.get(name));
        let command = format!(
            "bake promote <spec> --from {} --to {}",
            from.value, env.name
        );
        let problem = match entry {
            None => Some((
                Code::EnvNotPromoted,
                format!(
                    "environment `{}` takes image `{name}` from `{}`, but {lock_name} records no AMI promoted into it",
                    env.name, from.value
                ),
                "nothing promoted yet".to_owned(),
            )),
            Some(e) if e.from != from.value => Some((
                Code::EnvNotPromoted,
                format!(
                    "{lock_name} records image `{name}` of environment `{}` as promoted from `{}`, but the spec takes it from `{}`",
                    env.name, e.from, from.value
                ),
                format!("the lock says from `{}`", e.from),
            )),
            Some(e)
                if e.region != region || (account.is_some() && e.account != account) =>
            {
                Some((
                    Code::EnvNotPromoted,
                    format!(
                        "{lock_name} records image `{name}` of environment `{}` for {}, but the environment deploys to {}",
                        env.name,
                        place(&e.region, e.account.as_deref()),
                        place(&region, account.as_deref())
                    ),
                    "promoted for another region or account".to_owned(),
                ))
            }
            Some(e) => Grammar::AmiId
                .check(&e.ami)
                .and_then(|()| check_safe(&e.tested_since))
                .err()
                .map(|why| {
                    (
                        Code::LockInvalid,
                        format!(
                            "{lock_name}: the AMI promoted into environment `{}` for image `{name}` is not valid: {why}",
                            env.name
                        ),
                        "the lock's entry".to_owned(),
                    )
                }),
        };
        if let Some((code, message, label)) = problem {
            diags.push(
                Diag::error(code, message)
                    .label(from.span, label)
                    .help(format!(
                        "run `{command}`: it reads the AMI `{}` runs and records it for `{}`",
                        from.value, env.name
                    )),
            );
            continue;
        }
        let Some(entry) = entry else { continue };
        let arch = image.arch.or(match &image.source {
            ImageSource::Built(b) => Some(b.arch),
            // A NixOS image's architecture is the lock's (`lock::nixos`), not the plan's.
            ImageSource::Pinned { .. } | ImageSource::Nixos(_) => None,
        });
        image.arch = arch;
        image.source = ImageSource::Pinned {
            ami: entry.ami.clone(),
        };
        // A stack set's own region runs the promoted AMI; its other regions' come from their `region` blocks.
        if let Some(set) = &mut plan.stack_set
            && let Some(home) = set.values.iter_mut().find(|v| v.region == region)
        {
            home.amis.insert(name.clone(), entry.ami.clone());
        }
        image.promoted = Some(Box::new(Promotion {
            environment: env.name.clone(),
            from: entry.from.clone(),
            tested_since: entry.tested_since.clone(),
        }));
    }
    if diags.is_empty() { Ok(()) } else { Err(diags) }
}

fn place(region: &str, account: Option<&str>) -> String {
    match account {
        Some(a) => format!("{region} (account {a})"),
        None => region.to_owned(),
    }
}
