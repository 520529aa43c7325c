//! What a base AMI is: the Amazon Linux 2023 release, variant, kernel lineage and architecture its name carries,
//! checked against what EC2 `DescribeImages` says about it, and the words people read about a base change.
//! Pure: the facts are handed in.
//!
//! AL2023 AMIs are named `al2023-ami-[minimal-]<release>.<n>-kernel-<K>-<arch>`, e.g.
//! `al2023-ami-2023.12.20260930.0-kernel-6.12-x86_64` or `al2023-ami-minimal-2023.9.20251014.0-kernel-6.1-arm64`
//! (owner alias `amazon`). `<release>` (`2023.12.20260930`) is what dnf calls the `releasever`: the versioned
//! repository the AMI is locked to (AL2023 user guide, "Deterministic upgrades through versioned repositories");
//! the last number counts AMI builds of that release.

use super::BaseLock;
use super::time::{date, parse_rfc3339};

/// What EC2 `DescribeImages` says about one AMI, in bake's terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageFacts {
    pub name: String,
    pub owner_id: String,
    /// `amazon` for AMIs Amazon publishes.
    pub owner_alias: Option<String>,
    /// `x86_64`, `arm64` ... (empty when EC2 gave none).
    pub architecture: String,
    /// RFC 3339, UTC.
    pub creation_date: Option<String>,
    /// RFC 3339, UTC; only when the AMI has (or had) a deprecation time.
    pub deprecation_time: Option<String>,
    /// `available`, `pending`, `disabled` ... (deprecation is a time, not a state).
    pub state: String,
}

/// The parts of an AL2023 AMI name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Al2023Name {
    /// `2023.12.20260930`: dnf's `releasever`.
    pub release: String,
    /// The AMI build of that release (the name's last release number).
    pub build: u32,
    pub minimal: bool,
    /// `6.12`.
    pub kernel: String,
    /// `x86_64` or `arm64`.
    pub arch: String,
}

fn digits(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` is an AL2023 release such as `2023.12.20260930` (major 2023, minor, a valid calendar date).
pub fn is_release(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts[0] == "2023"
        && digits(parts[1], 4)
        && parts[2].len() == 8
        && release_day(s).is_some()
}

/// Whether `s` is a kernel lineage such as `6.12`.
pub fn is_kernel(s: &str) -> bool {
    s.split_once('.')
        .is_some_and(|(a, b)| digits(a, 3) && digits(b, 3))
}

/// Parses an AL2023 AMI name; `None` for anything else (AL2, ECS-optimized, a renamed copy ...).
pub fn parse_name(name: &str) -> Option<Al2023Name> {
    let rest = name.strip_prefix("al2023-ami-")?;
    let (minimal, rest) = match rest.strip_prefix("minimal-") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let (version, rest) = rest.split_once("-kernel-")?;
    let (kernel, arch) = rest.split_once('-')?;
    if !is_kernel(kernel) || !matches!(arch, "x86_64" | "arm64") {
        return None;
    }
    let (release, build) = version.rsplit_once('.')?;
    if !is_release(release) || !digits(build, 4) {
        return None;
    }
    Some(Al2023Name {
        release: release.to_owned(),
        build: build.parse().ok()?,
        minimal,
        kernel: kernel.to_owned(),
        arch: arch.to_owned(),
    })
}

/// The release's date as days since the Unix epoch: `2023.9.20251014` → the day 2025-10-14.
pub fn release_day(release: &str) -> Option<i64> {
    let ymd = release.rsplit('.').next()?;
    if ymd.len() != 8 || !ymd.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = ymd[..4].parse().ok()?;
    let m: i64 = ymd[4..6].parse().ok()?;
    let d: i64 = ymd[6..].parse().ok()?;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[usize::try_from(m - 1).ok()?] {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Why an AMI is not one bake can build on, in words for a diagnostic; `None` when it is an AL2023 AMI that
/// Amazon publishes for the architecture the spec builds.
pub fn not_al2023(facts: &ImageFacts, want_arch: &str) -> Option<(NotAl2023, String)> {
    let Some(name) = parse_name(&facts.name) else {
        return Some((
            NotAl2023::Name,
            format!(
                "its name `{}` is not an AL2023 AMI name (al2023-ami-[minimal-]2023.<minor>.<date>.<n>-kernel-<version>-<arch>)",
                facts.name
            ),
        ));
    };
    if facts.owner_alias.as_deref() != Some("amazon") {
        return Some((
            NotAl2023::Owner,
            format!(
                "it is owned by account {}{}, not by Amazon (owner alias `amazon`)",
                facts.owner_id,
                facts
                    .owner_alias
                    .as_deref()
                    .map_or(String::new(), |a| format!(" (alias `{a}`)"))
            ),
        ));
    }
    let described = if facts.architecture.is_empty() {
        name.arch.as_str()
    } else {
        facts.architecture.as_str()
    };
    if described != name.arch || name.arch != want_arch {
        return Some((
            NotAl2023::Architecture,
            format!(
                "it is an {described} AMI (its name says {}), but the image is built for {want_arch}",
                name.arch
            ),
        ));
    }
    None
}

/// Which check [`not_al2023`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAl2023 {
    Name,
    Owner,
    Architecture,
}

/// The base entry with what EC2 said about its AMI (the caller checked it with [`not_al2023`]).
pub fn described(mut base: BaseLock, facts: &ImageFacts) -> BaseLock {
    let name = parse_name(&facts.name);
    base.ami_name = Some(facts.name.clone());
    base.release = name.as_ref().map(|n| n.release.clone());
    base.kernel = name.as_ref().map(|n| n.kernel.clone());
    base.architecture = name.map(|n| n.arch);
    base.ami_owner = Some(facts.owner_id.clone()).filter(|o| !o.is_empty());
    base.ami_created = facts.creation_date.clone();
    base.ami_deprecation = facts.deprecation_time.clone();
    base
}

/// Whether the entry says which AL2023 release its AMI is (version-1 and -2 locks do not).
pub fn is_described(base: &BaseLock) -> bool {
    base.release.as_deref().is_some_and(is_release)
        && base.kernel.as_deref().is_some_and(is_kernel)
        && base.architecture.is_some()
}

fn variant(base: &BaseLock) -> &'static str {
    match &base.ami_name {
        Some(n) if n.starts_with("al2023-ami-minimal-") => "minimal ",
        _ => "",
    }
}

/// `AL2023 2023.12.20260930 (kernel 6.12, x86_64)`; `(minimal, kernel …)` for the minimal AMIs.
pub fn describe(base: &BaseLock) -> Option<String> {
    Some(format!(
        "AL2023 {} ({}kernel {}, {})",
        base.release.as_deref()?,
        match variant(base) {
            "" => "",
            _ => "minimal, ",
        },
        base.kernel.as_deref()?,
        base.architecture.as_deref()?
    ))
}

/// A release change in words: `AL2023 2023.9.20251014 → 2023.9.20251110 (kernel 6.12, x86_64), 27 days newer`.
/// The days are between the releases' dates.
pub fn describe_change(old: &Release<'_>, new: &Release<'_>) -> String {
    let both = |a: &str, b: &str| {
        if a == b {
            b.to_owned()
        } else {
            format!("{a} → {b}")
        }
    };
    let variant = match (old.minimal, new.minimal) {
        (false, false) => String::new(),
        (true, true) => "minimal, ".to_owned(),
        (a, b) => format!(
            "{} → {}, ",
            if a { "minimal" } else { "standard" },
            if b { "minimal" } else { "standard" }
        ),
    };
    let releases = if old.release == new.release {
        format!("{} (same release)", new.release)
    } else {
        format!("{} → {}", old.release, new.release)
    };
    let days = match (release_day(old.release), release_day(new.release)) {
        (Some(a), Some(b)) if b > a => format!(", {} days newer", b - a),
        (Some(a), Some(b)) if b < a => format!(", {} days OLDER", a - b),
        _ => String::new(),
    };
    format!(
        "AL2023 {releases} ({variant}kernel {}, {}){days}",
        both(old.kernel, new.kernel),
        both(old.arch, new.arch)
    )
}

/// An AL2023 release as [`describe_change`] compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release<'a> {
    pub release: &'a str,
    pub kernel: &'a str,
    pub arch: &'a str,
    pub minimal: bool,
}

impl<'a> Release<'a> {
    pub fn from_name(n: &'a Al2023Name) -> Release<'a> {
        Release {
            release: &n.release,
            kernel: &n.kernel,
            arch: &n.arch,
            minimal: n.minimal,
        }
    }

    pub fn of(base: &'a BaseLock) -> Option<Release<'a>> {
        Some(Release {
            release: base.release.as_deref()?,
            kernel: base.kernel.as_deref()?,
            arch: base.architecture.as_deref()?,
            minimal: variant(base) == "minimal ",
        })
    }
}

/// How old the locked AMI is at `now` (whole days): from its creation date, or else from its release's date.
pub fn age_days(base: &BaseLock, now: i64) -> Option<i64> {
    let then = base
        .ami_created
        .as_deref()
        .and_then(parse_rfc3339)
        .or_else(|| Some(release_day(base.release.as_deref()?)? * 86_400))?;
    Some(super::time::age_days(then, now))
}

/// The deprecation time when it is at or before `now`.
pub fn deprecated_at(base: &BaseLock, now: i64) -> Option<&str> {
    let t = base.ami_deprecation.as_deref()?;
    parse_rfc3339(t).filter(|&d| d <= now).map(|_| date(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_every_al2023_variant_parse() {
        let n = parse_name("al2023-ami-2023.12.20260930.0-kernel-6.12-x86_64").unwrap();
        assert_eq!(
            n,
            Al2023Name {
                release: "2023.12.20260930".into(),
                build: 0,
                minimal: false,
                kernel: "6.12".into(),
                arch: "x86_64".into()
            }
        );
        let n = parse_name("al2023-ami-minimal-2023.5.20240722.1-kernel-6.1-arm64").unwrap();
        assert_eq!(
            (
                n.release.as_str(),
                n.build,
                n.minimal,
                n.kernel.as_str(),
                n.arch.as_str()
            ),
            ("2023.5.20240722", 1, true, "6.1", "arm64")
        );
        for bad in [
            "amzn2-ami-kernel-5.10-hvm-2.0.20260930.0-x86_64-gp2",
            "al2023-ami-ecs-hvm-2023.0.20240905-kernel-6.1-arm64",
            "al2023-ami-2023.12.20260931.0-kernel-6.12-x86_64", // no 31 September
            "al2023-ami-2023.12.20260930-kernel-6.12-x86_64",   // no build number
            "al2023-ami-2023.12.20260930.0-kernel-6.12-riscv64",
            "al2023-ami-2023.12.20260930.0-kernel-default-x86_64",
            "al2023-ami-2024.1.20260930.0-kernel-6.12-x86_64",
            "al2023-ami-2023.12.20260930.0-kernel-6.12-x86_64-copy",
            "",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn release_days_and_changes() {
        assert_eq!(release_day("2023.0.19700101"), Some(0));
        assert_eq!(release_day("2023.9.20000301"), Some(11_017));
        assert_eq!(release_day("2023.9.20240229"), Some(19_782));
        assert_eq!(release_day("2023.9.20230229"), None);
        let old = Release {
            release: "2023.9.20251014",
            kernel: "6.12",
            arch: "x86_64",
            minimal: false,
        };
        let new = Release {
            release: "2023.9.20251110",
            ..old
        };
        assert_eq!(
            describe_change(&old, &new),
            "AL2023 2023.9.20251014 → 2023.9.20251110 (kernel 6.12, x86_64), 27 days newer"
        );
        assert_eq!(
            describe_change(
                &new,
                &Release {
                    kernel: "6.18",
                    minimal: true,
                    ..old
                }
            ),
            "AL2023 2023.9.20251110 → 2023.9.20251014 (standard → minimal, kernel 6.12 → 6.18, x86_64), 27 days OLDER"
        );
        assert_eq!(
            describe_change(
                &old,
                &Release {
                    kernel: "6.1",
                    ..old
                }
            ),
            "AL2023 2023.9.20251014 (same release) (kernel 6.12 → 6.1, x86_64)"
        );
    }

    fn facts(name: &str, alias: Option<&str>, arch: &str) -> ImageFacts {
        ImageFacts {
            name: name.into(),
            owner_id: "137112412989".into(),
            owner_alias: alias.map(str::to_owned),
            architecture: arch.into(),
            ..ImageFacts::default()
        }
    }

    #[test]
    fn only_amazon_al2023_amis_of_the_right_architecture_pass() {
        let name = "al2023-ami-2023.12.20260930.0-kernel-6.12-x86_64";
        assert_eq!(
            not_al2023(&facts(name, Some("amazon"), "x86_64"), "x86_64"),
            None
        );
        let why = |f: ImageFacts, arch: &str| not_al2023(&f, arch).map(|(w, _)| w);
        assert_eq!(
            why(facts(name, None, "x86_64"), "x86_64"),
            Some(NotAl2023::Owner)
        );
        assert_eq!(
            why(facts(name, Some("amazon"), "arm64"), "x86_64"),
            Some(NotAl2023::Architecture)
        );
        assert_eq!(
            why(facts(name, Some("amazon"), "x86_64"), "arm64"),
            Some(NotAl2023::Architecture)
        );
        assert_eq!(
            why(
                facts(
                    "amzn-ami-hvm-2018.03.0.20231218.0-x86_64-gp2",
                    Some("amazon"),
                    "x86_64"
                ),
                "x86_64"
            ),
            Some(NotAl2023::Name)
        );
    }
}
