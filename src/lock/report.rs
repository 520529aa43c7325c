//! What `bake lock` tells people: the diff of what moved, and `--status`. Pure text from locks and plans.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::ami::{self, Release, describe_change};
use super::time::{age_days, date, date_of_secs, parse_rfc3339};
use super::update::{ImageChange, short};
use super::{
    BaseLock, FlakeLock, InputLock, Lock, base_is_valid, base_matches, flake_is_valid,
    flake_matches, installer_matches,
};
use crate::check::plan::{ImageSource, Plan};

/// The human diff of a `bake lock` run: one block per changed image, then pruned entries.
pub fn changes(changes: &[ImageChange], pruned: &[String]) -> String {
    let mut out = String::new();
    for c in changes {
        let _ = writeln!(out, "image {}", c.image);
        if let Some((old, new)) = &c.base {
            base_change(&mut out, old.as_ref(), new);
        }
        if let Some((old, new)) = &c.flake {
            flake_change(&mut out, old.as_ref(), new);
        }
        if let Some((old, new)) = &c.installer {
            match old {
                Some(o) => writeln!(
                    out,
                    "  installer: {} {} → {} {}",
                    o.kind, o.version, new.kind, new.version
                ),
                None => writeln!(out, "  installer: {} {} (new)", new.kind, new.version),
            }
            .ok();
        }
        for (key, arn) in &c.credentials {
            let _ = writeln!(out, "  secret {key}: {arn}");
        }
    }
    for name in pruned {
        let _ = writeln!(
            out,
            "image {name}: entry removed (the spec no longer builds it)"
        );
    }
    out
}

fn base_version(b: &BaseLock) -> String {
    format!(
        "version {} ({})",
        b.parameter_version,
        date(&b.parameter_modified)
    )
}

/// The release line under a base change: what moved in AL2023 terms, or what the AMI is.
fn release_line(out: &mut String, old: Option<&BaseLock>, new: &BaseLock) {
    let line = match (old.and_then(Release::of), Release::of(new)) {
        (Some(o), Some(n)) if old.is_some_and(|o| o.ami != new.ami) => describe_change(&o, &n),
        (None, Some(_)) if old.is_some_and(|o| o.ami == new.ami) => {
            format!("now described: {}", ami::describe(new).unwrap_or_default())
        }
        (_, Some(_)) => ami::describe(new).unwrap_or_default(),
        (_, None) => return,
    };
    let _ = writeln!(out, "        {line}");
}

fn base_change(out: &mut String, old: Option<&BaseLock>, new: &BaseLock) {
    base_ami_change(out, old, new);
    release_line(out, old, new);
}

fn base_ami_change(out: &mut String, old: Option<&BaseLock>, new: &BaseLock) {
    match old {
        Some(o) if o.ami == new.ami && o.parameter == new.parameter && o.region == new.region => {
            let _ = writeln!(out, "  base: {} unchanged, {}", new.ami, base_version(new));
        }
        Some(o) => {
            let _ = writeln!(out, "  base: {} → {}", o.ami, new.ami);
            if o.parameter != new.parameter || o.region != new.region {
                let _ = writeln!(
                    out,
                    "        {} in {}, {}\n      → {} in {}, {}",
                    o.parameter,
                    o.region,
                    base_version(o),
                    new.parameter,
                    new.region,
                    base_version(new)
                );
            } else {
                let _ = writeln!(
                    out,
                    "        {} {} → {}",
                    new.parameter,
                    base_version(o),
                    base_version(new)
                );
            }
        }
        None => {
            let _ = writeln!(
                out,
                "  base: {} (new), {} {}",
                new.ami,
                new.parameter,
                base_version(new)
            );
        }
    }
}

fn flake_change(out: &mut String, old: Option<&FlakeLock>, new: &FlakeLock) {
    let when = |f: &FlakeLock| format!("committed {}", date_of_secs(f.last_modified));
    match old {
        Some(o) if o.rev == new.rev && o.url == new.url => {
            let _ = writeln!(out, "  flake: {} unchanged, {}", short(&new.rev), when(new));
        }
        Some(o) => {
            let _ = writeln!(
                out,
                "  flake: {} ({}) → {} ({})",
                short(&o.rev),
                when(o),
                short(&new.rev),
                when(new)
            );
            if o.url != new.url || o.git_ref != new.git_ref {
                let _ = writeln!(out, "        {} → {}", flake_source(o), flake_source(new));
            }
        }
        None => {
            let _ = writeln!(
                out,
                "  flake: {} (new), {}, {}",
                short(&new.rev),
                flake_source(new),
                when(new)
            );
        }
    }
    let empty = BTreeMap::new();
    let old_inputs = old.map_or(&empty, |o| &o.inputs);
    for line in input_changes(old_inputs, &new.inputs, old.is_none()) {
        let _ = writeln!(out, "        {line}");
    }
}

fn flake_source(f: &FlakeLock) -> String {
    match &f.git_ref {
        Some(r) => format!("{} ref {r}", f.url),
        None => f.url.clone(),
    }
}

fn input_changes(
    old: &BTreeMap<String, InputLock>,
    new: &BTreeMap<String, InputLock>,
    all: bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (name, n) in new {
        match old.get(name) {
            Some(o) if o.rev == n.rev && !all => {}
            Some(o) if o.rev == n.rev => lines.push(format!("{name}: {}", short(&n.rev))),
            Some(o) => lines.push(format!(
                "{name}: {} → {}{}",
                short(&o.rev),
                short(&n.rev),
                input_date(n)
            )),
            None if all => lines.push(format!("{name}: {}{}", short(&n.rev), input_date(n))),
            None => lines.push(format!(
                "{name}: {} (new input){}",
                short(&n.rev),
                input_date(n)
            )),
        }
    }
    for name in old.keys().filter(|k| !new.contains_key(*k)) {
        lines.push(format!("{name}: removed"));
    }
    lines
}

fn input_date(i: &InputLock) -> String {
    i.last_modified
        .map_or(String::new(), |t| format!(" ({})", date_of_secs(t)))
}

/// Counts from `--status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub locked: usize,
    pub old: usize,
    pub stale: usize,
    pub missing: usize,
    pub pruned: usize,
    /// Base AMIs older than their `base`'s `max-age`, or past their deprecation time.
    pub old_amis: usize,
    pub deprecated: usize,
}

/// `--status`: per image what is pinned, when it was resolved and how old that is; entries resolved more than
/// `max_age_days` before `now` are flagged OLD, entries the spec no longer matches STALE.
pub fn status(
    plan: &Plan,
    lock: &Lock,
    spec_name: &str,
    now: i64,
    max_age_days: u64,
) -> (String, StatusCounts) {
    let mut out = String::new();
    let mut counts = StatusCounts::default();
    let limit = i64::try_from(max_age_days).unwrap_or(i64::MAX);
    let age = |at: &str, counts: &mut StatusCounts| -> String {
        match parse_rfc3339(at) {
            Some(t) => {
                let days = age_days(t, now);
                if days > limit {
                    counts.old += 1;
                    format!(
                        "resolved {} ({days} days ago)  OLD: more than {limit} days",
                        date(at)
                    )
                } else {
                    format!("resolved {} ({days} days ago)", date(at))
                }
            }
            None => format!("resolved at an unreadable time `{at}`"),
        }
    };
    for image in &plan.images {
        let name = &image.name.value;
        let build = match &image.source {
            ImageSource::Pinned { ami } => {
                let _ = writeln!(out, "image {name}: pinned to {ami} (no entry needed)");
                continue;
            }
            ImageSource::Nixos(_) => {
                let _ = writeln!(
                    out,
                    "image {name}: {}",
                    crate::lock::nixos::status_line(lock, name)
                );
                continue;
            }
            ImageSource::Built(b) => b,
        };
        let Some(entry) = lock.images.get(name) else {
            counts.missing += 1;
            let _ = writeln!(
                out,
                "image {name}: MISSING, not locked yet (run `bake lock {spec_name}`)"
            );
            continue;
        };
        counts.locked += 1;
        let _ = writeln!(out, "image {name}");
        let b = &entry.base;
        let base_flag = if !base_matches(b, build, &plan.stack) {
            counts.stale += 1;
            "  STALE: the spec's parameter, region or account changed"
        } else if !base_is_valid(b) {
            counts.stale += 1;
            "  INVALID: not an AMI id"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  base       {}  {} {}, {}  {}{base_flag}",
            b.ami,
            b.parameter,
            base_version_short(b),
            date(&b.parameter_modified),
            age(&b.resolved_at, &mut counts)
        );
        let ami_line = match ami::describe(b) {
            None => {
                counts.missing += 1;
                format!(
                    "AMI not described: the lock predates format version 3 (run `bake lock {spec_name}`)"
                )
            }
            Some(words) => {
                let mut line = words;
                if let Some(created) = &b.ami_created {
                    let _ = write!(line, ", AMI created {}", date(created));
                }
                if let Some(days) = ami::age_days(b, now) {
                    let _ = write!(line, " ({days} days old)");
                    if days > i64::from(build.base_max_age_days) {
                        counts.old_amis += 1;
                        let _ = write!(
                            line,
                            "  OLD: more than max-age {}d",
                            build.base_max_age_days
                        );
                    }
                }
                if let Some(when) = ami::deprecated_at(b, now) {
                    counts.deprecated += 1;
                    let _ = write!(line, "  DEPRECATED since {when}");
                } else if let Some(t) = &b.ami_deprecation {
                    let _ = write!(line, ", deprecated from {}", date(t));
                }
                line
            }
        };
        let _ = writeln!(out, "             {ami_line}");
        let f = &entry.flake;
        let flake_flag = if !flake_matches(f, &build.flake) {
            counts.stale += 1;
            "  STALE: the spec's flake URL or ref changed"
        } else if !flake_is_valid(f) {
            counts.stale += 1;
            "  INVALID: not a commit hash"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  flake      {}  {}, committed {}  {}{flake_flag}",
            short(&f.rev),
            flake_source(f),
            date_of_secs(f.last_modified),
            age(&f.resolved_at, &mut counts)
        );
        let width = f.inputs.keys().map(String::len).max().unwrap_or(0);
        for (input, i) in &f.inputs {
            let _ = writeln!(
                out,
                "    {input:<width$}  {}{}",
                short(&i.rev),
                input_date(i)
            );
        }
        let inst = &entry.installer;
        let inst_flag = if !installer_matches(inst, &build.installer, build.arch) {
            counts.stale += 1;
            "  STALE: the spec's installer changed"
        } else if inst.sha256.is_none() {
            counts.missing += 1;
            "  MISSING: no SHA-256 of the binary (`bake lock` records it)"
        } else {
            ""
        };
        let hash = inst
            .sha256
            .as_deref()
            .map_or(String::new(), |h| format!(" sha256 {}", short(h)));
        let _ = writeln!(
            out,
            "  installer  {} {}{hash}{inst_flag}",
            inst.kind, inst.version
        );
    }
    for name in super::needs::pruned(plan, lock) {
        counts.pruned += 1;
        let _ = writeln!(
            out,
            "image {name}: UNUSED entry, the spec no longer builds it (`bake lock` removes it)"
        );
    }
    let _ = writeln!(
        out,
        "images: {} locked, {} missing, {} unused; entries: {} old (resolved more than {limit} days ago), {} stale; base AMIs: {} older than max-age, {} deprecated",
        counts.locked,
        counts.missing,
        counts.pruned,
        counts.old,
        counts.stale,
        counts.old_amis,
        counts.deprecated
    );
    (out, counts)
}

fn base_version_short(b: &BaseLock) -> String {
    format!("version {}", b.parameter_version)
}

/// The warnings `--status` prints at the spec's `base` nodes: locked AMIs past their deprecation time, or older
/// than their `base`'s `max-age`.
pub fn base_warnings(
    plan: &Plan,
    lock: &Lock,
    spec_name: &str,
    now: i64,
) -> Vec<crate::diag::Diag> {
    use super::lookup_diag::{deprecated, too_old};
    let mut out = Vec::new();
    for image in &plan.images {
        let (ImageSource::Built(build), Some(entry)) =
            (&image.source, lock.images.get(&image.name.value))
        else {
            continue;
        };
        if !base_matches(&entry.base, build, &plan.stack) {
            continue;
        }
        let span = build.base_parameter.span;
        out.extend(deprecated(&entry.base, now, span, spec_name));
        out.extend(too_old(
            &entry.base,
            now,
            build.base_max_age_days,
            span,
            spec_name,
        ));
    }
    out
}
