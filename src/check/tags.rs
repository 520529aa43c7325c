//! How the stack's tags and bake's own tags combine.
//!
//! The rule: bake's tags win, and no resource ever carries a key twice. bake sets `bake:` keys (stack, image,
//! fleet, lineage, base AMI, flake revision) and, on each fleet's group and instances, `Name`. So `bake:` is
//! reserved (an error: the user's value could never apply and would hide bake's), `aws:` is AWS's (rejected by
//! the tag-key grammar), `CreatedBy` is Image Builder's on the AMIs it builds (the lifecycle policy that deletes
//! old AMIs selects on it), and a stack `Name` is replaced by bake's on fleets (a warning). Stack tags also reach
//! Image Builder, whose tag keys have a narrower alphabet and whose build-instance tags are limited to 30.

use crate::diag::{Code, Diag, Diags};
use crate::spec::Tree;

/// The prefix of the tags bake sets itself.
pub const BAKE_PREFIX: &str = "bake:";
/// The most tags bake adds to one resource (an AMI: stack, image, lineage, base AMI, flake revision).
const BAKE_TAGS_MAX: usize = 5;
/// EC2, Auto Scaling, IAM and Image Builder accept 50 tags on a resource.
const TAGS_MAX: usize = 50;
/// Image Builder's `ResourceTags` (the build instance's tags) take 30.
const IMAGE_BUILDER_RESOURCE_TAGS_MAX: usize = 30;

/// Image Builder's tag-key alphabet: `^(?!aws:)[a-zA-Z+-=._:/]+$` (botocore), where `+-=` is the range from `+`
/// to `=`, i.e. `+ , - . / 0-9 : ; < =`.
fn image_builder_key_char(c: char) -> bool {
    c.is_ascii_alphabetic() || ('+'..='=').contains(&c) || matches!(c, '.' | '_' | ':' | '/')
}

pub(super) fn check(tree: &Tree, diags: &mut Diags) {
    let Some(tags) = tree.first("stack").and_then(|s| s.child("tags")) else {
        return;
    };
    let builds = tree
        .all("image")
        .any(|i| i.child("base").is_some_and(|b| b.has("ssm")));
    let has_fleets = tree.all("fleet").next().is_some();
    for (key, _) in &tags.free_props {
        if key.value.to_ascii_lowercase().starts_with(BAKE_PREFIX) {
            diags.push(
                Diag::error(
                    Code::ReservedTagKey,
                    format!("tag key `{}` is reserved for bake's own tags", key.value),
                )
                .label(key.span, "bake sets `bake:` tags itself")
                .help("bake tags its resources with `bake:stack`, `bake:image`, `bake:fleet`, `bake:lineage`, `bake:base-ami` and `bake:flake-rev`; give your tag another prefix, e.g. `team:...`"),
            );
        } else if builds && key.value == "CreatedBy" {
            diags.push(
                Diag::error(
                    Code::ReservedTagKey,
                    "tag key `CreatedBy` is Image Builder's on the AMIs it builds",
                )
                .label(key.span, "Image Builder tags its AMIs and snapshots `CreatedBy=EC2 Image Builder`")
                .help("the lifecycle policy that deletes old AMIs only touches resources with Image Builder's `CreatedBy` tag; name your tag differently, e.g. `created-by`"),
            );
        } else if builds && !key.value.chars().all(image_builder_key_char) {
            diags.push(
                Diag::error(
                    Code::ImageBuilderTagKey,
                    format!("Image Builder rejects the tag key `{}`", key.value),
                )
                .label(key.span, "stack tags also go on the Image Builder resources")
                .help("Image Builder tag keys hold only letters, digits and `+ , - . / : ; < = _`: no spaces and no `@`"),
            );
        } else if has_fleets && key.value == "Name" {
            diags.push(
                Diag::warning(
                    Code::TagOverridden,
                    "bake's own `Name` replaces this tag on each fleet's group and instances",
                )
                .label(key.span, "applies to every other resource")
                .help("bake names a fleet's auto-scaling group and its instances `<stack>-<fleet>`; remove this tag to silence the warning"),
            );
        }
    }
    let count = tags.free_props.len();
    let (max, why) = if builds {
        (
            IMAGE_BUILDER_RESOURCE_TAGS_MAX,
            "Image Builder tags a build instance with at most 30",
        )
    } else {
        (
            TAGS_MAX - BAKE_TAGS_MAX,
            "AWS takes 50 tags on a resource and bake adds up to 5",
        )
    };
    if count > max {
        diags.push(
            Diag::error(
                Code::TooManyTags,
                format!("{count} stack tags are too many"),
            )
            .label(tags.name_span, format!("at most {max} here"))
            .help(format!("{why}; drop some tags")),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::check::plan::Plan;
    use crate::diag::{Code, Diag};
    use crate::source::SourceFile;

    fn check(text: &str) -> (Option<Plan>, Vec<Diag>) {
        crate::check_source(&SourceFile::new("t.kdl", text))
    }

    fn spec(tags: &str, base: &str) -> String {
        format!(
            r#"stack "web" region="us-east-1" {{
    tags {tags}
}}
image "web" {{
    {base}
}}
fleet "web" image="web" instance-type="m7i.large" {{
    subnets "subnet-0a1b2c3d4e5f60718"
    security-groups "sg-0123456789abcdef0"
    size min=1 max=2
    rollout "rolling"
}}
"#
        )
    }

    const PINNED: &str = r#"base ami="ami-0123456789abcdef0" arch="x86_64""#;
    const BUILT: &str = r#"base ssm="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64"
    nix version="3.1.1"
    flake "git+https://github.com/acme/infra.git" output="systemConfigs.web""#;

    fn codes(diags: &[Diag]) -> Vec<(Code, bool)> {
        diags.iter().map(|d| (d.code, d.is_error())).collect()
    }

    #[test]
    fn bake_keys_are_reserved_with_a_span_on_the_key() {
        let text = spec(r#"team="a" "bake:fleet"="x""#, PINNED);
        let (plan, diags) = check(&text);
        assert!(plan.is_none());
        assert_eq!(codes(&diags), vec![(Code::ReservedTagKey, true)]);
        let span = diags[0].labels[0].span;
        assert_eq!(
            &text[span.offset()..span.offset() + span.len()],
            r#""bake:fleet""#
        );
    }

    #[test]
    fn name_is_a_warning_and_the_plan_stands() {
        let (plan, diags) = check(&spec(r#"Name="web""#, PINNED));
        assert!(plan.is_some());
        assert_eq!(codes(&diags), vec![(Code::TagOverridden, false)]);
    }

    #[test]
    fn image_builder_rules_apply_only_to_specs_that_build() {
        let tags = r#"CreatedBy="terraform" "cost center"="42""#;
        let (plan, diags) = check(&spec(tags, PINNED));
        assert!(plan.is_some(), "{diags:?}");
        assert!(diags.is_empty(), "{diags:?}");
        let (plan, diags) = check(&spec(tags, BUILT));
        assert!(plan.is_none());
        assert_eq!(
            codes(&diags),
            vec![
                (Code::ReservedTagKey, true),
                (Code::ImageBuilderTagKey, true)
            ]
        );
    }

    #[test]
    fn tag_counts_leave_room_for_bakes_own() {
        let many = |n: usize| {
            (0..n)
                .map(|i| format!("t{i}=\"v\""))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(check(&spec(&many(45), PINNED)).0.is_some());
        let (_, diags) = check(&spec(&many(46), PINNED));
        assert_eq!(codes(&diags), vec![(Code::TooManyTags, true)]);
        let (_, diags) = check(&spec(&many(30), BUILT));
        assert!(!diags.iter().any(|d| d.code == Code::TooManyTags));
        let (_, diags) = check(&spec(&many(31), BUILT));
        assert!(diags.iter().any(|d| d.code == Code::TooManyTags));
    }
}
