//! Each `image` node: its base (`ssm` parameter or pinned `ami`, its architecture, whether it is AL2023), whether
//! any fleet uses it, and what a built image installs before Nix: the RPM list with the packages bake adds, and
//! the AL2023 `-minimal` packages that listed RPMs replace. The build itself is checked in `build`.
//!
//! * Nix fetches `git+…` flakes by running the external `git` program (libfetchers' git fetcher), and AL2023 AMIs
//!   ship no git, so a `git+` flake adds `git`. `github:` flakes are fetched as tarballs over HTTPS and need none.
//!   (Inputs the flake's lock fetches with git are known only from the lock: `emit` adds `git` for those.)
//! * AL2023 preinstalls `curl-minimal`, `libcurl-minimal` and `gnupg2-minimal`; their full packages conflict with
//!   them, so a plain `dnf install curl-full` fails. The full packages are installed in a transaction of their own
//!   with `--allowerasing` (the command Amazon Linux's maintainers give in amazon-linux-2023#150), where the only
//!   conflicts are the `-minimal` packages; the user's other RPMs keep a plain `dnf install` that never removes
//!   anything.

use super::plan::{Arch, FleetPlan, ImagePlan, ImageSource, StackPlan};
use super::{arch, build, names};
use crate::diag::{Code, Diag, Diags};
use crate::source::Spanned;
use crate::spec::{Item, Tree};

/// The AL2023 public parameter tree.
pub const AL2023_PREFIX: &str = "/aws/service/ami-amazon-linux-latest/";

/// An image's name and, when it has no error, its plan.
pub(super) type NamedImage = (Option<Spanned<String>>, Option<ImagePlan>);

/// The RPM Nix needs to fetch `git+` flakes.
pub const GIT: &str = "git";

/// Whether Nix runs `git` to fetch this flake reference (`git+https:`, `git+ssh:`, `git+file:` ...).
pub fn fetches_with_git(url: &str) -> bool {
    url.starts_with("git+")
}

/// A built image whose base parameter does not say its architecture: bake cannot pick the Nix installer binary.
pub fn unknown_arch(param: &Spanned<String>) -> Diag {
    Diag::error(
        Code::ArchitectureUnknown,
        "bake cannot tell the base AMI's CPU architecture",
    )
    .label(
        param.span,
        "the parameter name does not end in -x86_64 or -arm64",
    )
    .help("add `arch=\"x86_64\"` or `arch=\"arm64\"` to `base`: the build downloads the Nix installer binary for that architecture and checks it against the lock")
}

/// A listed name that replaces preinstalled `-minimal` packages: the full packages to install instead, and
/// whether the name is the bare one (`curl`), which AL2023 already covers with the `-minimal` package.
fn replacement(name: &str) -> Option<(&'static [&'static str], &'static str, bool)> {
    // curl-full needs libcurl-full for its extra protocols: the maintainers install both.
    const CURL: &[&str] = &["curl-full", "libcurl-full"];
    const LIBCURL: &[&str] = &["libcurl-full"];
    const GNUPG: &[&str] = &["gnupg2-full"];
    match name {
        "curl" => Some((CURL, "curl-minimal", true)),
        "curl-full" => Some((CURL, "curl-minimal", false)),
        "libcurl" => Some((LIBCURL, "libcurl-minimal", true)),
        "libcurl-full" => Some((LIBCURL, "libcurl-minimal", false)),
        "gnupg2" => Some((GNUPG, "gnupg2-minimal", true)),
        "gnupg2-full" => Some((GNUPG, "gnupg2-minimal", false)),
        _ => None,
    }
}

/// The RPMs an image installs: (plain installs in spec order, deduplicated, plus `git` for a `git+` flake;
/// full packages that replace preinstalled `-minimal` ones).
pub fn rpms(item: &Item, flake_url: Option<&str>, diags: &mut Diags) -> (Vec<String>, Vec<String>) {
    let mut out: Vec<Spanned<String>> = Vec::new();
    let mut replacements: Vec<String> = Vec::new();
    for node in item.children_named("rpms") {
        for rpm in node.arg_strs() {
            if let Some(first) = out.iter().find(|r| r.value == rpm.value) {
                diags.push(
                    Diag::warning(
                        Code::Duplicate,
                        format!("RPM `{}` is listed twice", rpm.value),
                    )
                    .label(rpm.span, "listed again here")
                    .label(first.span, "first listed here"),
                );
                continue;
            }
            if let Some((full, minimal, bare)) = replacement(&rpm.value) {
                if bare {
                    diags.push(
                        Diag::warning(
                            Code::RpmConflict,
                            format!("`{}` replaces AL2023's preinstalled `{minimal}`", rpm.value),
                        )
                        .label(rpm.span, format!("bake installs {} with --allowerasing, which removes {minimal}", full.join(" ")))
                        .help(format!(
                            "AL2023's `{minimal}` already provides `{}` for the common cases; remove `{}` unless you need what only the full package has, and then write `{}` to say so",
                            rpm.value, rpm.value, full[0]
                        )),
                    );
                }
                for f in full {
                    if !replacements.iter().any(|r| r == f) {
                        replacements.push((*f).to_owned());
                    }
                }
                out.push(rpm);
                continue;
            }
            out.push(rpm);
        }
    }
    let mut plain: Vec<String> = out
        .into_iter()
        .filter(|r| replacement(&r.value).is_none())
        .map(|r| r.value)
        .collect();
    if flake_url.is_some_and(fetches_with_git) && !plain.iter().any(|r| r == GIT) {
        plain.push(GIT.to_owned());
    }
    (plain, replacements)
}

pub(super) fn images(tree: &Tree, stack: Option<&StackPlan>, diags: &mut Diags) -> Vec<NamedImage> {
    names::unique_names("image", tree.all("image"), diags);
    let stack_name = stack.map(|s| s.name.clone());
    tree.all("image")
        .map(|item| {
            let name = item.arg_str(0);
            if let (Some(name), Some(stack_name)) = (&name, &stack_name) {
                names::image_name_fits(name, stack_name, diags);
            }
            let plan = image_plan(item, name.clone(), diags);
            (name, plan)
        })
        .collect()
}

pub(super) fn image_plan(
    item: &Item,
    name: Option<Spanned<String>>,
    diags: &mut Diags,
) -> Option<ImagePlan> {
    if item.child("nixos").is_some() {
        return super::nixos::image_plan(item, name, diags);
    }
    super::nixos::copy_to_needs_nixos(item, diags);
    let Some(base) = item.child("base") else {
        diags.push(super::nixos::missing_base(item));
        return None;
    };
    let ssm = base.str("ssm");
    let ami = base.str("ami");
    let arch_prop = base.str("arch");
    let mut arch = arch_prop.as_ref().and_then(|a| Arch::parse(&a.value));
    let source = match (ssm, ami) {
        (Some(_), Some(ami)) => {
            diags.push(
                Diag::error(Code::NotAllowed, "`base` takes `ssm` or `ami`, not both")
                    .label(ami.span, "pinned AMI")
                    .label(base.str("ssm").map_or(base.name_span, |s| s.span), "SSM parameter")
                    .help("use `ssm` to build from the latest AL2023 AMI, or `ami` to run an existing AMI without a build"),
            );
            return None;
        }
        (None, None) => {
            diags.push(
                Diag::error(Code::Missing, "`base` needs `ssm` or `ami`")
                    .label(base.name_span, "no base AMI given")
                    .help(format!(
                        "for example:\n    base ssm=\"{AL2023_PREFIX}al2023-ami-kernel-6.12-x86_64\"\nor, to run an existing AMI without a build:\n    base ami=\"ami-0123456789abcdef0\" arch=\"x86_64\""
                    )),
            );
            return None;
        }
        (None, Some(ami)) => {
            for child in [
                "nix",
                "flake",
                "system-manager",
                "closure",
                "rpms",
                "build",
                "delete-old-amis",
                "image-tests",
                "fetch",
            ] {
                for c in item.children_named(child) {
                    diags.push(
                        Diag::error(
                            Code::PinnedImageBuild,
                            format!("`{child}` has no effect on a pinned AMI"),
                        )
                        .label(c.name_span, "this is for built images")
                        .label(
                            ami.span,
                            "the image is pinned to this AMI, so it is not built",
                        )
                        .help(format!(
                            "remove `{child}`, or build the image from `base ssm=...`"
                        )),
                    );
                }
            }
            if let Some(age) = base.str("max-age") {
                diags.push(
                    Diag::error(
                        Code::PinnedImageBuild,
                        "`max-age` has no effect on a pinned AMI",
                    )
                    .label(age.span, "this limits the age of a locked base AMI")
                    .label(ami.span, "a pinned AMI has no lock entry")
                    .help("remove `max-age`, or build the image from `base ssm=...`"),
                );
            }
            Some(ImageSource::Pinned { ami: ami.value })
        }
        (Some(param), None) => {
            if let Some(from_name) = parameter_arch(&param.value) {
                if let (Some(given), Some(span)) = (arch, arch_prop.as_ref().map(|a| a.span))
                    && given != from_name
                {
                    diags.push(
                        Diag::error(Code::Architecture, "`arch` contradicts the SSM parameter")
                            .label(span, format!("says {}", given.as_str()))
                            .label(param.span, format!("names an {} AMI", from_name.as_str()))
                            .help("remove `arch`: bake reads it from the parameter name"),
                    );
                }
                arch = Some(from_name);
            }
            check_parameter(&param, diags);
            build::build_plan(item, param, arch, arch_prop.is_some(), diags)
                .map(|b| ImageSource::Built(Box::new(b)))
        }
    };
    if let (Some(arch), Some(build)) = (arch, item.child("build")) {
        for t in build.arg_strs() {
            arch::check_arch(&t, arch, base.name_span, "the build instance", diags);
        }
    }
    Some(ImagePlan {
        name: name?,
        arch,
        source: source?,
        base_span: base.name_span,
        promoted: None,
    })
}

/// The architecture an AL2023 parameter name ends in.
fn parameter_arch(param: &str) -> Option<Arch> {
    if param.ends_with("-x86_64") {
        Some(Arch::X86_64)
    } else if param.ends_with("-arm64") {
        Some(Arch::Arm64)
    } else {
        None
    }
}

fn check_parameter(param: &Spanned<String>, diags: &mut Diags) {
    let Some(leaf) = param.value.strip_prefix(AL2023_PREFIX) else {
        diags.push(
            Diag::warning(Code::NotAl2023, "the base parameter is not an Amazon Linux 2023 public parameter")
                .label(param.span, "bake cannot tell what this AMI is")
                .help(format!("bake's bootstrap assumes AL2023 (dnf, systemd). The public parameters are under {AL2023_PREFIX}, e.g. al2023-ami-kernel-6.12-x86_64")),
        );
        return;
    };
    if !leaf.starts_with("al2023-ami-") {
        diags.push(
            Diag::error(Code::NotAl2023, "the base parameter names an AMI that is not Amazon Linux 2023")
                .label(param.span, "not an al2023-ami-* parameter")
                .help("bake bakes Amazon Linux 2023; use e.g. /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64"),
        );
        return;
    }
    if leaf.contains("kernel-default") {
        let pinned = leaf.replace("kernel-default", "kernel-6.12");
        diags.push(
            Diag::warning(
                Code::MovingLineage,
                "`kernel-default` moves to new kernels over time",
            )
            .label(
                param.span,
                "this lineage changes kernel when AL2023 updates its default",
            )
            .help(format!(
                "pin a kernel for reproducible images: {AL2023_PREFIX}{pinned}"
            )),
        );
    }
}

/// Warns about images no fleet names. Reads the fleets' `image=` from the tree, so a fleet with other errors
/// still counts as a user.
pub(super) fn warn_unused_images(tree: &Tree, images: &[NamedImage], diags: &mut Diags) {
    let used: Vec<String> = tree
        .all("fleet")
        .filter_map(|f| f.str("image"))
        .map(|s| s.value)
        .collect();
    if tree.all("fleet").next().is_none() {
        return;
    }
    for (name, plan) in images {
        let Some(name) = name else { continue };
        if !used.contains(&name.value) {
            let nixos = plan
                .as_ref()
                .is_some_and(|p| matches!(p.source, ImageSource::Nixos(_)));
            diags.push(
                Diag::warning(
                    Code::UnusedImage,
                    format!("no fleet uses image `{}`", name.value),
                )
                .label(
                    name.span,
                    if nixos {
                        "built and registered by `bake image`, but nothing runs it"
                    } else {
                        "built on every deploy, but nothing runs it"
                    },
                )
                .help("remove the image, or point a fleet's `image=` at it"),
            );
        }
    }
}

/// Images whose fleets signal CloudFormation need cfn-signal, which AL2023 ships in `aws-cfn-bootstrap`.
pub(super) fn add_signal_rpms(
    mut images: Vec<NamedImage>,
    fleets: &[Option<FleetPlan>],
) -> Vec<NamedImage> {
    for fleet in fleets.iter().flatten() {
        if fleet.rollout.signals().is_none() {
            continue;
        }
        if let Some((
            _,
            Some(ImagePlan {
                source: ImageSource::Built(build),
                ..
            }),
        )) = images.get_mut(fleet.image)
            && !build.rpms.iter().any(|r| r == "aws-cfn-bootstrap")
        {
            build.rpms.push("aws-cfn-bootstrap".to_owned());
        }
    }
    images
}

#[cfg(test)]
mod tests {
    use crate::source::SourceFile;

    const REV: &str = "0123456789abcdef0123456789abcdef01234567";

    fn build(flake: &str, rpms: &str) -> (Vec<String>, Vec<String>, Vec<crate::diag::Diag>) {
        let text = format!(
            "stack \"s\" region=\"us-east-1\"\nimage \"a\" {{\n base ssm=\"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-arm64\"\n nix version=\"3.1.1\"\n flake \"{flake}\" output=\"systemConfigs.a\"\n system-manager rev=\"{REV}\"\n {rpms}\n}}\n"
        );
        let (plan, diags) = crate::check_source(&SourceFile::new("t.kdl", text));
        let plan = plan.unwrap_or_else(|| panic!("{diags:?}"));
        let crate::check::plan::ImageSource::Built(b) = &plan.images[0].source else {
            panic!("built");
        };
        (b.rpms.clone(), b.minimal_replacements.clone(), diags)
    }

    #[test]
    fn a_git_flake_installs_git_and_a_github_flake_does_not() {
        let (rpms, _, _) = build("git+https://github.com/acme/infra.git", "");
        assert_eq!(rpms, ["git"]);
        let (rpms, _, _) = build("git+ssh://git@github.com/acme/infra.git", "rpms \"jq\"");
        assert_eq!(rpms, ["jq", "git"]);
        // Listed already: not twice.
        let (rpms, _, _) = build("git+https://h/r.git", "rpms \"git\" \"jq\"");
        assert_eq!(rpms, ["git", "jq"]);
        let (rpms, _, _) = build("github:acme/infra", "rpms \"jq\"");
        assert_eq!(rpms, ["jq"]);
    }

    #[test]
    fn full_packages_replace_minimal_ones_in_their_own_transaction() {
        let (rpms, full, diags) = build(
            "github:acme/infra",
            "rpms \"jq\" \"curl-full\" \"gnupg2-full\"",
        );
        assert_eq!(rpms, ["jq"]);
        assert_eq!(full, ["curl-full", "libcurl-full", "gnupg2-full"]);
        assert!(diags.is_empty(), "{diags:?}");
        // The bare name works too, with a warning that says what it replaces.
        let (rpms, full, diags) = build("github:acme/infra", "rpms \"curl\"");
        assert!(rpms.is_empty());
        assert_eq!(full, ["curl-full", "libcurl-full"]);
        assert_eq!(diags.len(), 1);
        assert!(!diags[0].is_error());
        assert!(
            diags[0].message.contains("curl-minimal"),
            "{}",
            diags[0].message
        );
    }
}
