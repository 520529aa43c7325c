//! How many baked AMIs an image keeps: the `keep` of `delete-old-amis`, which the lifecycle policy enforces.

use crate::diag::{Code, Diag, Diags};
use crate::spec::Item;

/// The schema's default for `keep`, should a tree come without it.
const DEFAULT_KEEP: u32 = 3;

/// The number of baked AMIs to keep. Warns when `keep` is given but nothing is deleted.
pub(super) fn keep_amis(image: &Item, diags: &mut Diags) -> u32 {
    let Some(node) = image.child("delete-old-amis") else {
        return DEFAULT_KEEP;
    };
    let deletes = node.arg_bool(0).is_some_and(|b| b.value);
    if !deletes && let Some(keep) = node.int("keep") {
        diags.push(
            Diag::warning(
                Code::RetentionWithoutDeletion,
                "`keep` has no effect when old AMIs are not deleted",
            )
            .label(keep.span, "no AMI is ever deleted, so all are kept")
            .label(node.name_span, "deletion is off")
            .help("write `delete-old-amis #true keep=N` to keep the newest N baked AMIs, or drop `keep`"),
        );
    }
    node.int_or_default("keep")
        .and_then(|k| u32::try_from(k.value).ok())
        .unwrap_or(DEFAULT_KEEP)
}

#[cfg(test)]
mod tests {
    use crate::check::plan::{ImageSource, Plan};
    use crate::diag::{Code, Diag};
    use crate::source::SourceFile;

    fn check(delete: &str) -> (Option<Plan>, Vec<Diag>) {
        let text = format!(
            r#"stack "web" region="us-east-1"
image "web" {{
    base ssm="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64"
    nix version="3.1.1"
    flake "git+https://github.com/acme/infra.git" output="systemConfigs.web"
    {delete}
}}
"#
        );
        crate::check_source(&SourceFile::new("t.kdl", text))
    }

    fn kept(delete: &str) -> (bool, u32) {
        let (plan, diags) = check(delete);
        match &plan.unwrap_or_else(|| panic!("{diags:?}")).images[0].source {
            ImageSource::Built(b) => (b.delete_old_amis, b.keep_amis),
            _ => panic!("not built"),
        }
    }

    #[test]
    fn deletion_keeps_three_by_default_and_what_the_spec_says() {
        assert_eq!(kept("delete-old-amis #true"), (true, 3));
        assert_eq!(kept("delete-old-amis #true keep=5"), (true, 5));
        assert!(!kept("").0);
    }

    #[test]
    fn keeping_fewer_than_two_leaves_nothing_to_roll_back_to() {
        let (plan, diags) = check("delete-old-amis #true keep=1");
        assert!(plan.is_none());
        assert_eq!(diags[0].code, Code::OutOfRange);
    }

    #[test]
    fn keep_without_deletion_is_a_warning() {
        let (plan, diags) = check("delete-old-amis #false keep=4");
        assert!(plan.is_some());
        let codes: Vec<Code> = diags.iter().map(|d| d.code).collect();
        assert_eq!(codes, vec![Code::RetentionWithoutDeletion]);
    }
}
