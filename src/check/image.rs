//! What a built image installs before Nix: the RPM list with the packages bake adds, and the AL2023 `-minimal`
//! packages that listed RPMs replace.
//!
//! * Nix fetches `git+…` flakes by running the external `git` program (libfetchers' git fetcher), and AL2023 AMIs
//!   ship no git, so a `git+` flake adds `git`. `github:` flakes are fetched as tarballs over HTTPS and need none.
//!   (Inputs the flake's lock fetches with git are known only from the lock: `emit` adds `git` for those.)
//! * AL2023 preinstalls `curl-minimal`, `libcurl-minimal` and `gnupg2-minimal`; their full packages conflict with
//!   them, so a plain `dnf install curl-full` fails. The full packages are installed in a transaction of their own
//!   with `--allowerasing` (the command Amazon Linux's maintainers give in amazon-linux-2023#150), where the only
//!   conflicts are the `-minimal` packages; the user's other RPMs keep a plain `dnf install` that never removes
//!   anything.

use crate::diag::{Code, Diag, Diags};
use crate::source::Spanned;
use crate::spec::Item;

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
