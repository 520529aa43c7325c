//! `delete-old-amis` for NixOS images: bake deregisters its own AMIs of the image's lineage (named
//! `bake/<stack>/<image>/…`) beyond the newest `keep`, and deletes their snapshots — never one the lock records (old or
//! new entry), the one the stack's fleets run now (the SSM parameter `/bake/<stack>/<image>/ami` the template
//! writes), or one tagged `bake:keep=true`. The same rule as the Image Builder lifecycle policy of built images.

use super::Clients;
use super::register::{self, Owned};
use crate::check::plan::{ImagePlan, Plan};

/// Which AMIs go: all beyond the newest `keep`, except those in `protected` or tagged to keep.
pub fn doomed(mut owned: Vec<Owned>, keep: u32, protected: &[String]) -> Vec<Owned> {
    // Newest first (RFC 3339 times sort as text); the AMI id breaks ties so the order is stable.
    owned.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.ami.cmp(&b.ami)));
    owned
        .into_iter()
        .skip(usize::try_from(keep).unwrap_or(usize::MAX))
        .filter(|o| !o.keep && !protected.contains(&o.ami))
        .collect()
}

/// Deregisters the doomed AMIs in the stack's region and deletes their snapshots: (AMI, snapshots) of each.
pub(super) async fn prune(
    c: &Clients,
    plan: &Plan,
    image: &ImagePlan,
    keep: u32,
    lock_amis: &[String],
) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut protected = lock_amis.to_vec();
    let parameter = crate::emit::ami_parameter_name(plan, image);
    match c.ssm.get_parameter().name(&parameter).send().await {
        Ok(out) => {
            if let Some(v) = out.parameter().and_then(|p| p.value()) {
                protected.push(v.to_owned());
            }
        }
        Err(e) => match crate::aws::classify(&e, &c.ssm_endpoint) {
            crate::aws::Classified::Service { code, .. } if code == "ParameterNotFound" => {}
            crate::aws::Classified::Service { code, message } => {
                return Err(format!(
                    "SSM GetParameter {parameter} failed ({code}: {message}), so bake cannot tell which AMI the fleets run; no old AMI was deleted"
                ));
            }
            crate::aws::Classified::Failure(f) => {
                return Err(format!("{}; no old AMI was deleted", f.sentence));
            }
        },
    }
    let lineage = format!("{}/{}", plan.stack.name, image.name.value);
    let owned = register::lineage_images(&c.ec2, &c.ec2_endpoint, &lineage).await?;
    let mut removed = Vec::new();
    for o in doomed(owned, keep, &protected) {
        register::deregister(&c.ec2, &c.ec2_endpoint, &o.ami).await?;
        for s in &o.snapshots {
            register::delete_snapshot(&c.ec2, &c.ec2_endpoint, s).await?;
        }
        removed.push((o.ami, o.snapshots));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(ami: &str, created: &str, keep: bool) -> Owned {
        Owned {
            ami: ami.into(),
            created: created.into(),
            snapshots: vec![],
            keep,
        }
    }

    #[test]
    fn the_newest_the_protected_and_the_tagged_stay() {
        let owned = vec![
            o("ami-1", "2026-01-01T00:00:00Z", false),
            o("ami-2", "2026-02-01T00:00:00Z", false),
            o("ami-3", "2026-03-01T00:00:00Z", false),
            o("ami-4", "2026-04-01T00:00:00Z", false),
            o("ami-0", "2025-01-01T00:00:00Z", true),
        ];
        let gone: Vec<String> = doomed(owned, 2, &["ami-1".into()])
            .into_iter()
            .map(|o| o.ami)
            .collect();
        assert_eq!(gone, ["ami-2"]);
    }
}
