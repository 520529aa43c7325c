//! Rollback safety: going back means pinning an image to an AMI bake baked earlier, never to the stock base AMI.
//!
//! This rule compares the plan with the lock's recorded base AMIs, so it runs where the lock is at hand (the
//! compile pipeline), after `check`. It only reads values: no files, no network.

use crate::check::plan::{ImageSource, Plan};
use crate::diag::{Code, Diag};
use crate::lock::Lock;

/// Warns for every image pinned to an AMI that the lock records as the base of a built image: the stock
/// Amazon Linux AMI, which has no Nix and none of the flake's services.
pub fn pinned_base_warnings(plan: &Plan, lock: &Lock) -> Vec<Diag> {
    let mut out = Vec::new();
    for image in &plan.images {
        let ImageSource::Pinned { ami } = &image.source else {
            continue;
        };
        let Some((built, entry)) = lock.images.iter().find(|(_, e)| e.base.ami == *ami) else {
            continue;
        };
        out.push(
            Diag::warning(
                Code::PinnedBaseAmi,
                format!(
                    "image `{}` is pinned to the stock base AMI {ami}, not to an AMI bake baked",
                    image.name.value
                ),
            )
            .label(
                image.base_span,
                format!(
                    "the lock resolved `{}` to this AMI for image `{built}`: it has no Nix and no system-manager configuration",
                    entry.base.parameter
                ),
            )
            .help(format!(
                "pin a previously baked AMI instead: `aws ssm get-parameter-history --name /bake/{}/{}/ami` lists the AMI of every deploy",
                plan.stack.name, image.name.value
            )),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pinned_base_warnings;
    use crate::diag::Code;
    use crate::lock::Lock;
    use crate::source::SourceFile;

    const LOCK: &str = include_str!("../../specs/web.lock.json");
    const SPEC: &str = include_str!("../../specs/rollback.kdl");
    /// The base AMI specs/web.lock.json records for image `web`.
    const STOCK: &str = "ami-0ac48d91c7d16772c";

    fn warnings(spec: &str) -> Vec<Code> {
        let file = SourceFile::new("specs/rollback.kdl", spec);
        let (plan, diags) = crate::check_source(&file);
        let plan = plan.unwrap_or_else(|| panic!("{diags:?}"));
        let lock = Lock::from_json(LOCK).unwrap();
        pinned_base_warnings(&plan, &lock)
            .iter()
            .map(|d| d.code)
            .collect()
    }

    #[test]
    fn the_example_rolls_back_to_a_baked_ami() {
        assert!(LOCK.contains(STOCK));
        assert!(!SPEC.contains(STOCK));
        assert!(warnings(SPEC).is_empty());
    }

    #[test]
    fn pinning_the_stock_base_ami_is_warned_about() {
        let pinned = SPEC.replace("ami-0b7e3c9d1a2f45e68", STOCK);
        assert_ne!(pinned, SPEC);
        assert_eq!(warnings(&pinned), vec![Code::PinnedBaseAmi]);
    }
}
