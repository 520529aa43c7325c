//! The table of diagnostic codes. Codes are stable: tools and users match on them, so a code is never reused
//! for another meaning. `bake explain <code>` prints the text here.

macro_rules! codes {
    ($($variant:ident => $code:literal, $doc:literal;)*) => {
        /// A stable diagnostic code, rendered as `bake::<stage>::<name>`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// What the code means and how to fix it.
            pub fn doc(self) -> &'static str {
                match self { $(Code::$variant => $doc,)* }
            }

            pub fn from_name(name: &str) -> Option<Code> {
                let name = name.strip_prefix("bake::").unwrap_or(name);
                Code::ALL.iter().copied().find(|c| c.as_str().strip_prefix("bake::") == Some(name))
            }
        }
    };
}

codes! {
    Syntax => "bake::spec::syntax",
        "The file is not valid KDL v2. Strings with `/`, `:` or spaces must be quoted, booleans are `#true`/`#false`.";
    UnknownNode => "bake::spec::unknown_node",
        "A node name that bake does not know at this place. The message lists the nodes that are allowed here.";
    UnknownProperty => "bake::spec::unknown_property",
        "A property that this node does not take. `bake lsp` completes the valid ones.";
    PropertyNotForStrategy => "bake::spec::property_not_for_strategy",
        "A rollout property that belongs to another rollout strategy (e.g. `min-healthy` on a rolling update).";
    Arguments => "bake::spec::arguments",
        "A node has too many or too few arguments.";
    WrongType => "bake::spec::wrong_type",
        "A value of the wrong type, such as a string where a number is expected.";
    InvalidValue => "bake::spec::invalid_value",
        "A value that does not follow the grammar AWS or Nix accepts for this field (ids, names, URLs, revisions ...).";
    UnsafeValue => "bake::spec::unsafe_value",
        "A value with characters that could change the meaning of a generated script or document: control characters or `{{`, which SSM and AWSTOE interpolate.";
    NotAllowed => "bake::spec::not_allowed",
        "A value outside the fixed set of choices for this field.";
    OutOfRange => "bake::spec::out_of_range",
        "A number outside the range AWS accepts for this field.";
    Duplicate => "bake::spec::duplicate",
        "A node, property or name given twice where it may appear only once.";
    Missing => "bake::spec::missing",
        "A required node or property is absent.";
    UnexpectedChildren => "bake::spec::unexpected_children",
        "A node has a `{ ... }` block but takes no children.";
    UnknownImage => "bake::check::unknown_image",
        "A fleet refers to an image that the spec does not define.";
    SizeOrder => "bake::check::size_order",
        "Group sizes must satisfy min <= desired <= max.";
    MinInService => "bake::check::min_in_service",
        "A rolling update's `min-in-service` must be below the group's `max` and at most its desired size, or the update cannot make progress.";
    Duration => "bake::check::duration",
        "A duration must be ISO-8601 (`PT10M`, `PT1H30M`) and within the limit CloudFormation sets for the field.";
    SignalsNeedPause => "bake::check::signals_need_pause",
        "With `wait-for-signals=#true` a rolling update needs an explicit `pause`: it is how long CloudFormation waits for each batch's signals.";
    SuccessPercentNeedsSignals => "bake::check::success_percent_needs_signals",
        "`min-success-percent` only has meaning when instances signal: it needs `wait-for-signals=#true` and a `pause`.";
    Checkpoints => "bake::check::checkpoints",
        "Instance refresh checkpoints must rise strictly, each between 1 and 100.";
    HealthyPercent => "bake::check::healthy_percent",
        "Instance refresh needs min-healthy < max-healthy, with max-healthy between 100 and 200.";
    Architecture => "bake::check::architecture",
        "The instance type's CPU architecture does not match the image's (arm64 Graviton types end in `g`, as in m7g).";
    NameCollision => "bake::check::name_collision",
        "Two names that AWS treats as the same (Image Builder lower-cases names; CloudFormation logical ids drop dashes).";
    NameTooLong => "bake::check::name_too_long",
        "A name that, combined with the stack name, exceeds the length AWS allows for the resource.";
    PinnedImageBuild => "bake::check::pinned_image_build",
        "An image pinned to an AMI id is used as is: it is not built, so it takes no flake, nix, rpms or build settings.";
    NotAl2023 => "bake::check::not_al2023",
        "The base parameter is not an Amazon Linux 2023 public parameter. bake's bootstrap needs AL2023 (dnf, systemd).";
    MovingLineage => "bake::check::moving_lineage",
        "The `kernel-default` AMI lineage changes kernels over time; pin a kernel version such as `kernel-6.12` for reproducible images.";
    RpmConflict => "bake::check::rpm_conflict",
        "An RPM that replaces a package AL2023 preinstalls in a `-minimal` variant (`curl`, `libcurl`, `gnupg2`). bake installs the full package (`curl-full libcurl-full`, `gnupg2-full`) in its own dnf transaction with `--allowerasing`, which removes the `-minimal` one; the warning is there because the `-minimal` package usually suffices.";
    ArchitectureUnknown => "bake::check::architecture_unknown",
        "A built image's base parameter does not name its CPU architecture (-x86_64 / -arm64); give `arch=` on `base` so bake can pin the Nix installer binary for it.";
    UnusedImage => "bake::check::unused_image",
        "An image that no fleet uses. It is still built on every deploy.";
    SubnetNeedsSecurityGroup => "bake::check::subnet_needs_security_group",
        "Image Builder requires security groups whenever a build subnet is given.";
    Internal => "bake::check::internal",
        "bake reached a state it should not: a bug. Please report it with the spec that caused it.";
    LockMissing => "bake::lock::missing",
        "The lock has no entry for something the spec needs. Run `bake lock <spec>` to resolve it.";
    LockStale => "bake::lock::stale",
        "The lock entry was resolved for different spec values than the spec now has. Run `bake lock <spec>` to re-resolve it.";
    LockInvalid => "bake::lock::invalid",
        "The lock file is not valid bake lock JSON, or has a format version this bake does not read.";
    LockNeedsCheckout => "bake::lock::needs_checkout",
        "`bake lock` reads a flake's revision from a local clean checkout: add `checkout=\"<path>\"` (relative to the spec) to the `flake` node.";
    LockParameter => "bake::lock::parameter",
        "The base SSM parameter does not hold an AMI id. AL2023 public parameters under /aws/service/ami-amazon-linux-latest/ do.";
    LockParameterNotFound => "bake::lock::parameter_not_found",
        "SSM `GetParameter` answered ParameterNotFound: the base parameter does not exist in the stack's region. Check its name and the region.";
    LockAws => "bake::lock::aws",
        "An AWS call of `bake lock` failed: no credentials, access denied (needs `ssm:GetParameter`), a network error or a timeout. `--profile` selects a profile; `AWS_ENDPOINT_URL` overrides the endpoint.";
    LockCheckout => "bake::lock::checkout",
        "The flake checkout named by `checkout=` does not exist. The path is relative to the spec file.";
    LockNixMissing => "bake::lock::nix_missing",
        "`nix` is not on PATH. bake locks flakes with `nix flake metadata`; install Nix (nixos.org/download, Debian `nix-bin`, or the Determinate installer).";
    LockNix => "bake::lock::nix",
        "`nix flake metadata` failed or printed something bake cannot read; the message carries nix's stderr.";
    LockDownload => "bake::lock::download",
        "`bake lock` could not download the Nix installer binary to record its SHA-256: the message says what the server or curl answered. `BAKE_NIX_INSTALLER_MIRROR` names a base URL (or `file://` directory) to read it from instead.";
    LockDirty => "bake::lock::dirty",
        "The flake checkout has uncommitted changes, so it has no revision the build instance could fetch. Commit (and push) or stash them.";
    LockCheckoutRef => "bake::lock::checkout_ref",
        "The flake checkout is on another branch than the spec's `ref`; the locked commit must be on the ref the build instance fetches.";
    LockCheckoutRemote => "bake::lock::checkout_remote",
        "No git remote of the flake checkout is the spec's flake URL: the locked commit may not exist where the build instance fetches it.";
    LockImage => "bake::lock::image",
        "EC2 `DescribeImages` could not describe the AMI the base parameter names: no such image in the region, access denied (needs `ec2:DescribeImages`), no credentials, a network error or a timeout.";
    LockNotAl2023 => "bake::lock::not_al2023",
        "The AMI the base parameter names is not an Amazon Linux 2023 AMI bake can build on: its name is not `al2023-ami-[minimal-]<release>.<n>-kernel-<version>-<arch>`, Amazon (owner alias `amazon`) does not own it, or it is for another CPU architecture than the image. The bootstrap pins dnf to the AL2023 release the name carries, so bake needs it.";
    LockAmiDeprecated => "bake::lock::ami_deprecated",
        "The locked base AMI is past the deprecation time AWS set for it. It still launches and builds by id, but AWS stops listing it; move to the AMI the parameter names now with `bake lock <spec> --update base`.";
    LockAmiAge => "bake::lock::ami_age",
        "The locked base AMI is older than the `max-age` of its `base` (default 90 days, AWS's usual deprecation horizon for AL2023 AMIs): its packages are those of an old AL2023 release. `bake lock <spec> --update base` moves to the current AMI.";
    ReservedTagKey => "bake::check::reserved_tag_key",
        "A stack tag key that bake or Image Builder sets itself: `bake:` keys are bake's (the stack, image, fleet and AMI lineage it tags), and with built images `CreatedBy` is Image Builder's, which the lifecycle policy that deletes old AMIs relies on. Rename the tag. (`aws:` keys are AWS's and rejected earlier.)";
    TagOverridden => "bake::check::tag_overridden",
        "A stack tag that bake replaces on some resources: bake names each fleet's auto-scaling group and its instances `<stack>-<fleet>` with its own `Name` tag, so the stack's `Name` applies to every other resource. Tags never appear twice on a resource.";
    ImageBuilderTagKey => "bake::check::image_builder_tag_key",
        "A tag key that Image Builder rejects: its tag keys may hold only letters, digits and `+ , - . / : ; < = _` (no spaces, no `@`). Stack tags are applied to the Image Builder resources of built images.";
    TooManyTags => "bake::check::too_many_tags",
        "More stack tags than AWS accepts on a resource once bake adds its own: at most 45 (EC2 and Auto Scaling take 50 tags; bake adds up to 5), and at most 30 when the spec builds images (Image Builder's build-instance `ResourceTags` take 30).";
    DefaultSecurityGroup => "bake::check::default_security_group",
        "A fleet without `security-groups`: EC2 gives its instances the VPC's default security group, which usually allows all traffic from other members of that group and is shared by anything else that falls back to it. Name the fleet's security groups.";
    RetentionWithoutDeletion => "bake::check::retention_without_deletion",
        "`delete-old-amis #false keep=N`: `keep` sets how many baked AMIs the retention policy keeps, and there is no retention policy when old AMIs are not deleted. Use `delete-old-amis #true keep=N`, or drop `keep`.";
    CachePlaintext => "bake::check::cache_plaintext",
        "An image's `closure` cache is an `http://` URL. Nix verifies each path's signature against `public-key`, so the build cannot be fed an unsigned path, but the traffic is readable and can be blocked; prefer `https://` or an `s3://` bucket.";
    CacheLocal => "bake::check::cache_local",
        "An image's `closure` cache is a `file://` directory. `bake build` can push to it, but the Image Builder instance only has it if something mounts or copies it there; images normally use an `s3://` bucket. See docs/binary-cache.md.";
    ClosureMissing => "bake::lock::closure_missing",
        "The image ships a prebuilt closure (`closure` node) and the lock records none. Run `bake build <spec> <image>` where the flake is reachable (CI or a laptop in the company network) with `--signing-key`; it builds, signs, pushes and records the store path.";
    ClosureStale => "bake::lock::closure_stale",
        "The lock's prebuilt closure was built for another flake revision, output, system-manager, cache or public key than the spec and lock now name. Run `bake build <spec> <image>` again.";
    ClosureNotCached => "bake::lock::closure_not_cached",
        "`bake lock --check` / `bake build --check` found that the binary cache lacks the store path the lock records (no `.narinfo`), so the image build would fail. Run `bake build <spec> <image>` to push it, or check the cache URL and the reader's access.";
    ClosureUnsigned => "bake::lock::closure_unsigned",
        "The binary cache holds the lock's store path (or a path of its closure) without a signature by the spec's `public-key`: the build instance trusts only that key and would refuse it. Run `bake build` with the secret key that belongs to `public-key`; after rotating keys, `bake build` signs again.";
    ClosureCredentials => "bake::check::closure_credentials",
        "An image with a prebuilt `closure` also names `fetch` tokens or ssh keys. The build instance substitutes the closure from the binary cache and never reads the flake's repository, so the build role would be allowed to read those secrets for nothing. Remove the `token` and `ssh-key` lines; a `proxy` may stay, since the cache is fetched through it.";
    FetchSource => "bake::check::fetch_source",
        "A `fetch` token names no source or two: give exactly one of `secret=\"<Secrets Manager secret name or ARN>\"` and `parameter=\"/<SSM SecureString parameter>\"`. The spec names where the build instance reads the token, never the token. See docs/private-flakes.md.";
    FetchKnownHost => "bake::check::fetch_known_host",
        "An ssh deploy key's pinned `known-host` line does not name the key's host. ssh runs with `StrictHostKeyChecking=yes` against exactly this line, so it must be the one `ssh-keyscan -t ed25519 HOST` prints (`[host]:port` for another port).";
    FetchUnused => "bake::check::fetch_unused",
        "A `fetch` token for a host that neither the flake nor any input in its lock fetches from over HTTPS, or an ssh deploy key for a host nothing fetches over `git+ssh://`. The build role may read every secret the spec names, so an unused one is access for nothing: remove it or correct its host.";
    PlaintextGit => "bake::check::plaintext_git",
        "A `git+http://` flake or input: the repository travels unencrypted (the lock's narHash still stops a changed tree). A warning, and an error when a `fetch` token is configured for that host, because bake gives git tokens only over HTTPS. Use `git+https://`.";
    SshWithoutKey => "bake::check::ssh_without_key",
        "A `git+ssh://` flake whose host has no `fetch { ssh-key ... }`: the build instance has no ssh key of its own, so the fetch fails. Add an ssh-key from Secrets Manager with the host's pinned key.";
    LockSecret => "bake::lock::secret",
        "`bake lock` could not resolve a secret the spec's `fetch` names: the Secrets Manager secret does not exist (or is scheduled for deletion), the SSM parameter does not exist or is not a SecureString, or the lock's recorded ARN is missing or malformed. The message says which; bake records ARNs, never values.";
    PinnedBaseAmi => "bake::check::pinned_base_ami",
        "An image pinned to the stock Amazon Linux base AMI that the lock records for a built image. That AMI has no Nix and no system-manager configuration: rolling a fleet back to it runs none of your services. Roll back to an AMI bake baked earlier: `bake status` prints the SSM parameter whose history lists them (`aws ssm get-parameter-history --name /bake/<stack>/<image>/ami`).";
    StackSetPermissions => "bake::stackset::permissions",
        "A `stack-set` setting that belongs to the other permission model. `SELF_MANAGED` names `accounts` and may name `administration-role` and `execution-role`, and calls as `SELF`; `SERVICE_MANAGED` names `organizational-units`, may set `auto-deployment` and `retain-stacks-on-account-removal`, and may call as `DELEGATED_ADMIN`. docs/stacksets.md lists the roles each needs.";
    StackSetTargets => "bake::stackset::targets",
        "A `stack-set` without its deployment targets, or with one given twice: `accounts` (self-managed) or `organizational-units` (service-managed), each id once, and each region of `regions` once.";
    StackSetRegion => "bake::stackset::region",
        "A region name that is not an AWS region bake knows, or one in another partition than the stack's region (a stack set deploys within one partition: aws, aws-cn, aws-us-gov ...). A `region` block must name a region of `regions` other than the stack's own.";
    StackSetPreferences => "bake::stackset::preferences",
        "Operation preferences that CloudFormation refuses or ignores: `max-concurrent-count` with `max-concurrent-percentage`, or `failure-tolerance-count` with `failure-tolerance-percentage` (one of each pair at most); with `STRICT_FAILURE_TOLERANCE` at most `failure-tolerance-count` + 1 accounts run at once, whatever `max-concurrent-count` says.";
    StackSetRegionValue => "bake::stackset::region_value",
        "A target region without a value the stack instance there needs: a pinned image's AMI id, a fleet's subnets or security groups. AMI, subnet and security group ids are regional, so each region other than the stack's gets its own in a `region \"NAME\" { image ...; subnets ...; security-groups ... }` block of the `stack-set`; the stack's region takes them from the `image` and `fleet` nodes. Also reported: a `region` block naming an image or fleet the spec lacks.";
    StackSetBuiltImage => "bake::stackset::built_image",
        "A stack set deploys pinned AMIs only: an image built by Image Builder would be rebuilt in every account and region, and production would not run the AMI that was tested. Bake and test the image in a single-region stack (staging), copy the AMI to each region (`aws ec2 copy-image`) and share it with the target accounts, then pin it: `base ami=...` for the stack's region and `region \"NAME\" { image \"NAME\" ami=... }` for the others.";
    EnvUnknown => "bake::env::unknown",
        "An environment name that the spec does not declare: in `--env NAME`, or in an environment's `images-from`. The message lists the environments there are.";
    EnvRequired => "bake::env::required",
        "The spec declares environments and none is marked `default=#true`, so a command must be told which one it is for: pass `--env NAME`. bake never guesses which environment to deploy.";
    EnvDefault => "bake::env::default",
        "More than one environment says `default=#true`. Keep it on one: the one commands use without `--env` (usually the one that is safe to deploy by mistake, such as staging).";
    EnvUnknownFleet => "bake::env::unknown_fleet",
        "An environment overrides a fleet that the spec does not define. Overrides change an existing fleet (instance type, sizes, subnets, security groups, rollout); they do not add one.";
    EnvSeveralTargets => "bake::env::several_targets",
        "An environment names several regions or accounts. A plain stack lives in exactly one account and one region; one stack per account and region is what a CloudFormation StackSet deploys (docs/environments.md). Keep one, or declare one environment each. Beside a `stack-set`, the environment's `region` and `account` are where the set is administered, one each, and the target accounts and regions go in the set's `accounts` and `regions`.";
    EnvPromotionCycle => "bake::env::promotion_cycle",
        "`images-from` chains that come back to where they started (or an environment that takes its images from itself): some environment must build the images the others promote.";
    EnvNotPromoted => "bake::env::not_promoted",
        "An environment with `images-from` runs the AMIs the lock records for it, and the lock has none for this image (or one promoted from another environment, region or account). Run `bake promote <spec> --from SOURCE --to ENV`: it reads the AMI the source environment runs and records it.";
    NixosImageBuild => "bake::check::nixos_image_build",
        "A NixOS image (`nixos`) is built by `bake image` with Nix from its own flake output: it has no `base`, and takes no `nix`, `flake`, `system-manager`, `rpms`, `build` or `image-tests` (those are for Image Builder images on Amazon Linux). Remove them, or remove `nixos`.";
    CopyToNotNixos => "bake::check::copy_to_not_nixos",
        "`copy-to` copies a NixOS image's AMI to other regions when `bake image` registers it; other images are not registered by bake. Remove it, or make the image a `nixos` image.";
    KmsKey => "bake::check::kms_key",
        "`kms-key` must be a KMS key ARN (`arn:<partition>:kms:<region>:<account>:key/<id>`) in the stack's region, and needs `encrypted=#true`: the EBS direct APIs take the key as an ARN when the snapshot is encrypted.";
    NixosReadyUnit => "bake::check::nixos_ready_unit",
        "A fleet of a NixOS image whose instances report readiness (signals, replacing, instance refresh) without a `ready-unit`: the default, `system-manager.target`, belongs to the AL2023 + system-manager path and does not exist on NixOS, so no instance would ever be ready. Name the unit your configuration starts, e.g. `ready-unit=\"multi-user.target\"`.";
    ImageNotRaw => "bake::image::not_raw",
        "The NixOS image output is not a raw disk image: its `nix-support/image-info.json` says another format (VHD, qcow2 ...), or the output has no image-info.json. The EBS direct APIs copy the bytes as they are, so any other format gives an AMI that does not boot. Build the raw repart image: `system.build.images.amazon` of NixOS 25.05 or later, or the NixOS/amis `amazon-image.nix` module.";
    ImageBuild => "bake::image::build",
        "`nix build` of a NixOS image's output failed, or its output is not what bake reads (an `image-info.json` with `boot_mode`, `format`, `system` and `file`). The message carries nix's stderr or what is missing.";
}

/// What a name typed after `bake explain` refers to.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(Code),
    /// A short name that more than one stage uses (`missing`): the codes it could be.
    Ambiguous(Vec<Code>),
    /// No code has this name; the closest one when it looks like a typo.
    Unknown(Option<Code>),
}

impl Code {
    /// The name without its stage: `unknown_property` for `bake::spec::unknown_property`.
    pub fn short_name(self) -> &'static str {
        self.as_str().rsplit("::").next().unwrap_or_default()
    }

    /// Finds a code by any of the forms a user types: `bake::spec::unknown_property`, `spec::unknown_property`,
    /// `bake::unknown_property`, `unknown_property` or `unknown-property` (any case).
    pub fn lookup(input: &str) -> Lookup {
        let typed = input.trim().to_ascii_lowercase().replace('-', "_");
        let name = typed.strip_prefix("bake::").unwrap_or(&typed);
        if let Some(code) = Code::from_name(name) {
            return Lookup::Found(code);
        }
        if !name.contains("::") {
            let mut by_short: Vec<Code> = Code::ALL
                .iter()
                .copied()
                .filter(|c| c.short_name() == name)
                .collect();
            match by_short.len() {
                0 => {}
                1 => return Lookup::Found(by_short.remove(0)),
                _ => return Lookup::Ambiguous(by_short),
            }
        }
        // A typo: compare with the form the user typed (with or without the stage).
        let form = |c: &Code| -> &'static str {
            if name.contains("::") {
                c.as_str().strip_prefix("bake::").unwrap_or_default()
            } else {
                c.short_name()
            }
        };
        let closest = crate::spec::suggest::closest(name, Code::ALL.iter().map(form));
        Lookup::Unknown(closest.and_then(|f| Code::ALL.iter().copied().find(|c| form(c) == f)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_accepts_every_form_a_user_types() {
        let want = Lookup::Found(Code::UnknownProperty);
        for typed in [
            "bake::spec::unknown_property",
            "spec::unknown_property",
            "bake::unknown_property",
            "unknown_property",
            "unknown-property",
            "Unknown-Property",
        ] {
            assert_eq!(Code::lookup(typed), want, "{typed}");
        }
        assert_eq!(
            Code::lookup("unknown_propery"),
            Lookup::Unknown(Some(Code::UnknownProperty))
        );
        assert_eq!(
            Code::lookup("spec::unknown_propety"),
            Lookup::Unknown(Some(Code::UnknownProperty))
        );
        assert_eq!(Code::lookup("frobnicate"), Lookup::Unknown(None));
        match Code::lookup("missing") {
            Lookup::Ambiguous(codes) => assert!(codes.len() >= 2, "{codes:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.starts_with("bake::"), "{s}");
            assert_eq!(s.matches("::").count(), 2, "{s}");
            assert_eq!(Code::from_name(s), Some(*code));
        }
    }
}
