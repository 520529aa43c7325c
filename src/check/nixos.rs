//! A NixOS image (`image > nixos`): the flake output `bake image` builds, how its snapshot and AMI are made, and
//! the regions it is copied to. It excludes everything of the Image Builder path (`base`, `nix`, `flake`,
//! `system-manager`, `rpms`, `build`, `image-tests`): the disk image is the whole system.

use super::plan::{FlakePlan, ImagePlan, ImageSource, NixosPlan};
use super::retention;
use crate::diag::{Code, Diag, Diags};
use crate::source::Spanned;
use crate::spec::Item;

/// The children that belong to Image Builder images only.
const IMAGE_BUILDER_PARTS: &[&str] = &[
    "base",
    "nix",
    "flake",
    "system-manager",
    "rpms",
    "build",
    "image-tests",
];

/// The schema's default upload parallelism, should a tree come without it.
const DEFAULT_PARALLELISM: u32 = 16;

pub(super) fn image_plan(
    item: &Item,
    name: Option<Spanned<String>>,
    diags: &mut Diags,
) -> Option<ImagePlan> {
    let node = item.child("nixos")?;
    let mut ok = true;
    for part in IMAGE_BUILDER_PARTS {
        for c in item.children_named(part) {
            ok = false;
            diags.push(
                Diag::error(
                    Code::NixosImageBuild,
                    format!("a NixOS image takes no `{part}`"),
                )
                .label(c.name_span, "this is for Image Builder images")
                .label(
                    node.name_span,
                    "the NixOS image is built from this flake output by `bake image`",
                )
                .help(format!(
                    "remove `{part}`: the NixOS configuration holds the whole system; or remove `nixos` to build on Amazon Linux"
                )),
            );
        }
    }
    let encrypted = node.bool_or_default("encrypted").is_some_and(|b| b.value);
    let kms_key = node.str("kms-key");
    if let Some(key) = &kms_key {
        if !encrypted {
            ok = false;
            diags.push(
                Diag::error(Code::KmsKey, "`kms-key` needs `encrypted=#true`")
                    .label(key.span, "a key for a snapshot that is not encrypted")
                    .help("add `encrypted=#true`, or drop `kms-key`"),
            );
        } else if let Err(why) = kms_key_arn(&key.value) {
            ok = false;
            diags.push(
                Diag::error(Code::KmsKey, "`kms-key` is not a KMS key ARN")
                    .label(key.span, why)
                    .help("give the key's ARN, such as `arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab`: the EBS direct APIs take no key id or alias name"),
            );
        }
    }
    let mut copy_to: Vec<String> = Vec::new();
    for c in item.children_named("copy-to") {
        for region in c.arg_strs() {
            if copy_to.contains(&region.value) {
                diags.push(
                    Diag::warning(
                        Code::Duplicate,
                        format!("region `{}` is listed twice", region.value),
                    )
                    .label(region.span, "listed again here"),
                );
                continue;
            }
            copy_to.push(region.value);
        }
    }
    let url = node.arg_str(0)?;
    let output = node.str("output")?;
    let plan = NixosPlan {
        flake: FlakePlan {
            url: url.value,
            git_ref: node.str("ref").map(|r| r.value),
            output: output.value,
            checkout: node.str("checkout").map(|c| c.value),
            span: node.name_span,
        },
        volume_gib: node
            .int("volume-gib")
            .and_then(|v| u32::try_from(v.value).ok()),
        encrypted,
        kms_key: kms_key.map(|k| k.value),
        tpm: node.bool_or_default("tpm").is_some_and(|b| b.value),
        parallelism: node
            .int_or_default("upload-parallelism")
            .and_then(|v| u32::try_from(v.value).ok())
            .unwrap_or(DEFAULT_PARALLELISM),
        copy_to,
        delete_old_amis: item
            .child("delete-old-amis")
            .and_then(|d| d.arg_bool(0))
            .is_some_and(|b| b.value),
        keep_amis: retention::keep_amis(item, diags),
    };
    if !ok {
        return None;
    }
    Some(ImagePlan {
        name: name?,
        arch: None,
        source: ImageSource::Nixos(Box::new(plan)),
        base_span: node.name_span,
        promoted: None,
    })
}

/// `arn:<partition>:kms:<region>:<12 digits>:key/<id>`.
fn kms_key_arn(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return Err("not of the form arn:aws:kms:REGION:ACCOUNT:key/ID".into());
    };
    if *arn != "arn" || !partition.starts_with("aws") || *service != "kms" {
        return Err("does not start with `arn:aws:kms:`".into());
    }
    if crate::spec::grammar::Grammar::Region.check(region).is_err() {
        return Err(format!("`{region}` is not a region"));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{account}` is not a 12-digit account id"));
    }
    match resource.strip_prefix("key/") {
        Some(id)
            if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            Ok(())
        }
        _ => Err("names no `key/<id>` (aliases are not accepted)".into()),
    }
}

/// `copy-to` on an image that is not a NixOS image.
pub(super) fn copy_to_needs_nixos(item: &Item, diags: &mut Diags) {
    for c in item.children_named("copy-to") {
        diags.push(
            Diag::error(
                Code::CopyToNotNixos,
                "`copy-to` is only for NixOS images",
            )
            .label(c.name_span, "bake registers and copies only the AMIs of `nixos` images")
            .help("remove `copy-to`, or build the image with `nixos \"<flake>\" output=\"…\"` instead of `base`"),
        );
    }
}

/// A NixOS image's fleet that reports readiness must name its `ready-unit`: the default is system-manager's.
pub(super) fn fleet_readiness(fleet: &Item, image: &ImagePlan, diags: &mut Diags) {
    if !matches!(image.source, ImageSource::Nixos(_)) {
        return;
    }
    let Some(rollout) = fleet.child("rollout") else {
        return;
    };
    let ready = match rollout.arg_str(0).as_ref().map(|s| s.value.as_str()) {
        Some("replacing" | "instance-refresh") => true,
        Some("rolling") => rollout.bool("wait-for-signals").is_some_and(|b| b.value),
        _ => false,
    };
    if ready && !rollout.has("ready-unit") {
        diags.push(
            Diag::error(
                Code::NixosReadyUnit,
                format!(
                    "fleet `{}` runs a NixOS image and needs a `ready-unit`",
                    fleet.arg_str(0).map(|n| n.value).unwrap_or_default()
                ),
            )
            .label(
                rollout.name_span,
                "its instances wait for `system-manager.target`, which NixOS does not have",
            )
            .label(image.name.span, "a NixOS image")
            .help(
                "add `ready-unit=\"multi-user.target\"` (or the unit of your service) to `rollout`",
            ),
        );
    }
}

/// An image with neither `base` nor `nixos`.
pub(super) fn missing_base(item: &Item) -> Diag {
    Diag::error(Code::Missing, "`image` needs a `base` or a `nixos`")
        .label(item.name_span, "this image says nothing about where its AMI comes from")
        .help("add one, for example:\n    base ssm=\"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64\"\nor, for a NixOS disk image built by `bake image`:\n    nixos \"git+https://github.com/acme/infra.git\" output=\"nixosConfigurations.web.config.system.build.images.amazon\" checkout=\"../infra\"")
}

#[cfg(test)]
mod tests {
    use crate::check::plan::{ImageSource, Plan};
    use crate::diag::{Code, Diag};
    use crate::source::SourceFile;

    fn check(body: &str) -> (Option<Plan>, Vec<Diag>) {
        let text = format!(
            "stack \"s\" region=\"us-east-1\"\nimage \"web\" {{\n{body}\n}}\nfleet \"web\" image=\"web\" instance-type=\"m7i.large\" {{\n subnets \"subnet-0123456789abcdef0\"\n security-groups \"sg-0123456789abcdef0\"\n size min=1 max=2\n rollout \"rolling\"\n}}\n"
        );
        crate::check_source(&SourceFile::new("t.kdl", text))
    }

    const NIXOS: &str = "nixos \"git+https://github.com/acme/infra.git\" output=\"nixosConfigurations.web.config.system.build.images.amazon\"";

    #[test]
    fn a_nixos_image_plans_its_upload_and_regions() {
        let (plan, diags) = check(&format!(
            "{NIXOS} encrypted=#true kms-key=\"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab\" tpm=#true\n copy-to \"eu-west-1\" \"us-west-2\"\n delete-old-amis #true keep=4"
        ));
        let plan = plan.unwrap_or_else(|| panic!("{diags:?}"));
        let ImageSource::Nixos(n) = &plan.images[0].source else {
            panic!("not nixos");
        };
        assert!(n.encrypted && n.tpm && n.delete_old_amis);
        assert_eq!(n.keep_amis, 4);
        assert_eq!(n.copy_to, ["eu-west-1", "us-west-2"]);
        assert_eq!(n.parallelism, 16);
        assert_eq!(n.flake.git_ref, None);
    }

    #[test]
    fn image_builder_parts_are_refused_on_a_nixos_image() {
        let (plan, diags) = check(&format!(
            "{NIXOS}\n base ssm=\"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64\"\n rpms \"jq\""
        ));
        assert!(plan.is_none());
        let codes: Vec<Code> = diags.iter().map(|d| d.code).collect();
        assert_eq!(codes, [Code::NixosImageBuild, Code::NixosImageBuild]);
    }

    #[test]
    fn kms_key_must_be_an_arn_and_needs_encryption() {
        let (_, diags) = check(&format!(
            "{NIXOS} kms-key=\"arn:aws:kms:us-east-1:111122223333:key/k\""
        ));
        assert_eq!(diags[0].code, Code::KmsKey);
        assert!(
            diags[0].message.contains("encrypted"),
            "{}",
            diags[0].message
        );
        let (_, diags) = check(&format!("{NIXOS} encrypted=#true kms-key=\"alias/ebs\""));
        assert_eq!(diags[0].code, Code::KmsKey);
        let (plan, diags) = check(&format!("{NIXOS} encrypted=#true"));
        assert!(plan.is_some(), "{diags:?}");
    }

    #[test]
    fn an_image_needs_base_or_nixos_and_copy_to_needs_nixos() {
        let (_, diags) = check(" copy-to \"eu-west-1\"");
        let codes: Vec<Code> = diags.iter().map(|d| d.code).collect();
        assert!(codes.contains(&Code::Missing), "{codes:?}");
        assert!(codes.contains(&Code::CopyToNotNixos), "{codes:?}");
    }
}
