//! The nodes of a NixOS image: `image > nixos` (the flake output that builds a raw disk image, and how the AMI is
//! registered) and `image > copy-to` (the other regions it is copied to). `bake image` builds and registers it;
//! `compile` and `deploy` take the AMI from the lock (src/nixos/, docs/nixos-images.md).

use super::{Node, Ty, many_args, node, one_arg, prop, required, with_default};
use crate::spec::grammar::Grammar;

pub(super) const NIXOS: Node = Node {
    args: one_arg(
        "url",
        Ty::Str(Grammar::FlakeUrl),
        "The flake's URL, recorded in the lock. Quote it: in KDL an unquoted `//` starts a comment.",
    ),
    props: &[
        prop(
            "ref",
            Ty::Str(Grammar::GitRef),
            "The branch or tag the built revision must be on. Without it the remote's default branch.",
        ),
        required(
            "output",
            Ty::Str(Grammar::FlakeAttr),
            "The flake output that builds the raw disk image and its `nix-support/image-info.json`, such as `nixosConfigurations.web.config.system.build.images.amazon`.",
        ),
        prop(
            "checkout",
            Ty::Str(Grammar::Text),
            "A local clean checkout of the flake, relative to the spec, that `bake image` builds. Without it `bake image` builds the URL.",
        ),
        prop(
            "volume-gib",
            Ty::Int { min: 1, max: 16384 },
            "The snapshot's (and the root volume's) size in GiB. Default: the image file's size rounded up to a GiB; the root partition grows to the volume on first boot.",
        ),
        with_default(
            "encrypted",
            Ty::Bool,
            "#false",
            "Encrypt the snapshot (and so the AMI's volumes) with `kms-key`, or the account's default EBS key.",
        ),
        prop(
            "kms-key",
            Ty::Str(Grammar::Text),
            "The KMS key ARN that encrypts the snapshot, such as `arn:aws:kms:us-east-1:111122223333:key/…`. Needs `encrypted=#true`.",
        ),
        with_default(
            "tpm",
            Ty::Bool,
            "#false",
            "Register the AMI with NitroTPM (`TpmSupport v2.0`).",
        ),
        with_default(
            "upload-parallelism",
            Ty::Int { min: 1, max: 64 },
            "16",
            "How many blocks are uploaded at once.",
        ),
    ],
    ..node(
        "nixos",
        "A NixOS image: `bake image` builds the flake output with `nix build`, uploads its raw disk image into an EBS snapshot through the EBS direct APIs and registers it as a UEFI AMI. No Image Builder and no `base`: fleets run the AMI the lock records. See docs/nixos-images.md.",
        "nixos \"git+https://github.com/acme/infra.git\" ref=\"main\" output=\"nixosConfigurations.web.config.system.build.images.amazon\" checkout=\"../infra\"",
    )
};

pub(super) const COPY_TO: Node = Node {
    args: many_args(
        "region",
        Ty::Str(Grammar::Region),
        1,
        "Regions besides the stack's.",
    ),
    ..node(
        "copy-to",
        "Other regions a NixOS image's AMI is copied to (`CopyImage`) by `bake image`. Only for `nixos` images.",
        "copy-to \"eu-west-1\" \"us-west-2\"",
    )
};
