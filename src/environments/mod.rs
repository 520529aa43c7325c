//! Environments: one spec deployed as several stacks (staging, prod), each with typed overrides of what differs.
//!
//! An environment is applied to the shape-checked tree before `check`: its overrides replace the values they
//! override (with the override's span, so a problem points at the environment), and `check` then checks the
//! result like any spec. Every environment is checked, so the editor shows each one's problems; a command
//! compiles the one it is given (`--env`, or the `default=#true` one). An environment with `images-from` runs
//! the AMIs the lock records for it (`promotion.rs`) instead of building them. See docs/environments.md.

#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // pure: see clippy.toml

mod overlay;
pub mod promotion;

use crate::check::plan::Plan;
use crate::diag::{Code, Diag, Diags};
use crate::source::{Span, Spanned};
use crate::spec::schema::code_list;
use crate::spec::{Item, Tree};

/// Which environment a caller wants checked into a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want<'a> {
    /// `bake check` and the editor: every environment's problems; the plan is the default's (else the first's).
    All,
    /// A command: the named environment, or the default one. An unknown name, or none when the spec has
    /// environments but no default, is an error.
    Env(Option<&'a str>),
}

/// The environment a plan was checked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub name: String,
    pub name_span: Span,
    /// The environment it takes its images from, with the `images-from` node's argument span.
    pub images_from: Option<Spanned<String>>,
}

/// A checked plan, and the environment it is for (`None`: the spec has no environments).
#[derive(Debug, Clone)]
pub struct Checked {
    pub plan: Plan,
    pub env: Option<Selected>,
}

/// One `environment` node, as declared.
#[derive(Debug, Clone)]
pub(crate) struct Declared<'a> {
    pub item: &'a Item,
    pub name: Spanned<String>,
}

impl Declared<'_> {
    fn is_default(&self) -> bool {
        self.item.bool("default").is_some_and(|b| b.value)
    }

    pub(crate) fn images_from(&self) -> Option<Spanned<String>> {
        self.item.child("images-from").and_then(|c| c.arg_str(0))
    }

    fn selected(&self) -> Selected {
        Selected {
            name: self.name.value.clone(),
            name_span: self.name.span,
            images_from: self.images_from(),
        }
    }
}

pub(crate) fn declared(tree: &Tree) -> Vec<Declared<'_>> {
    tree.all("environment")
        .filter_map(|item| {
            Some(Declared {
                item,
                name: item.arg_str(0)?,
            })
        })
        .collect()
}

/// The names of the spec's environments, in spec order (for `bake` messages and completion).
pub fn names(tree: &Tree) -> Vec<String> {
    declared(tree).into_iter().map(|d| d.name.value).collect()
}

/// Checks the spec for what is wanted: without environments exactly `check::check`; with them, the spec as
/// written and every environment applied to it, each problem reported once.
pub fn check(tree: &Tree, want: Want<'_>) -> (Option<Checked>, Vec<Diag>) {
    let envs = declared(tree);
    if envs.is_empty() && tree.first("environment").is_none() {
        if let Want::Env(Some(name)) = want {
            return (None, vec![no_environments(name)]);
        }
        let (plan, diags) = crate::check::check(tree);
        return (plan.map(|plan| Checked { plan, env: None }), diags);
    }
    let mut diags = Diags::default();
    check_declarations(tree, &envs, &mut diags);
    let chosen = match want {
        Want::All => envs
            .iter()
            .position(Declared::is_default)
            .or((!envs.is_empty()).then_some(0)),
        Want::Env(requested) => match choose(&envs, requested) {
            Ok(i) => Some(i),
            Err(d) => {
                diags.push(d);
                None
            }
        },
    };
    let mut all: Vec<Diag> = Vec::new();
    let push_new = |more: Vec<Diag>, all: &mut Vec<Diag>| {
        for d in more {
            if !all.contains(&d) {
                all.push(d);
            }
        }
    };
    let mut base = tree.clone();
    base.items.retain(|i| i.name() != "environment");
    push_new(crate::check::check(&base).1, &mut all);
    let mut plan = None;
    for (i, env) in envs.iter().enumerate() {
        let overlaid = overlay::apply(&base, env);
        let images = if env.images_from().is_some() {
            crate::check::Images::Promoted
        } else {
            crate::check::Images::AsWritten
        };
        let (p, d) = crate::check::check_images(&overlaid, images);
        push_new(d, &mut all);
        if Some(i) == chosen {
            plan = p;
        }
    }
    push_new(diags.into_vec(), &mut all);
    crate::diag::sort(&mut all);
    if crate::diag::has_errors(&all) {
        return (None, all);
    }
    let checked = chosen.and_then(|i| {
        Some(Checked {
            plan: plan.clone()?,
            env: Some(envs[i].selected()),
        })
    });
    (checked, all)
}

fn no_environments(name: &str) -> Diag {
    Diag::error(
        Code::EnvUnknown,
        format!("`--env {name}`: the spec declares no environments"),
    )
    .label(
        crate::source::span(0, 0),
        "no `environment` node in this spec",
    )
    .help("drop `--env`, or declare it: environment \"staging\" { region \"us-east-1\" }")
}

/// The environment a command runs in: the one named, else the only `default=#true` one.
fn choose(envs: &[Declared<'_>], requested: Option<&str>) -> Result<usize, Diag> {
    let first = envs
        .first()
        .map_or(crate::source::span(0, 0), |e| e.name.span);
    let listed = code_list(envs.iter().map(|e| e.name.value.as_str()));
    match requested {
        Some(name) => envs
            .iter()
            .position(|e| e.name.value == name)
            .ok_or_else(|| {
                let mut d = Diag::error(
                    Code::EnvUnknown,
                    format!("`--env {name}`: the spec has no environment `{name}`"),
                )
                .label(first, format!("the environments are {listed}"));
                if let Some(close) =
                    crate::spec::suggest::closest(name, envs.iter().map(|e| e.name.value.as_str()))
                {
                    d = d.help(format!("did you mean `--env {close}`?"));
                } else {
                    d = d.help(format!("name one of {listed}"));
                }
                d
            }),
        None => {
            let defaults: Vec<usize> = (0..envs.len()).filter(|&i| envs[i].is_default()).collect();
            match defaults.as_slice() {
                [one] => Ok(*one),
                _ => Err(Diag::error(
                    Code::EnvRequired,
                    "the spec has environments and none is the default: name one with `--env`",
                )
                .label(first, format!("the environments are {listed}"))
                .help(
                    "pass `--env NAME`, or mark the environment commands should use without it with `default=#true`",
                )),
            }
        }
    }
}

/// What is wrong with the environments themselves: duplicate names, several defaults, unknown fleets, an
/// `images-from` that names no environment or goes round in a circle, and several regions or accounts.
fn check_declarations(tree: &Tree, envs: &[Declared<'_>], diags: &mut Diags) {
    for (i, env) in envs.iter().enumerate() {
        if let Some(first) = envs[..i].iter().find(|e| e.name.value == env.name.value) {
            diags.push(
                Diag::error(
                    Code::Duplicate,
                    format!("environment `{}` is declared twice", env.name.value),
                )
                .label(env.name.span, "declared again here")
                .label(first.name.span, "first declared here")
                .help("give each environment its own name, or merge the two"),
            );
        }
    }
    let defaults: Vec<&Declared<'_>> = envs.iter().filter(|e| e.is_default()).collect();
    if let [first, rest @ ..] = defaults.as_slice() {
        for other in rest {
            diags.push(
                Diag::error(Code::EnvDefault, "more than one environment is the default")
                    .label(
                        other.item.name_span,
                        format!("`{}` says `default=#true`", other.name.value),
                    )
                    .label(
                        first.item.name_span,
                        format!("so does `{}`", first.name.value),
                    )
                    .help("keep `default=#true` on one environment (usually the one that is safe to deploy by mistake)"),
            );
        }
    }
    let fleets: Vec<String> = tree
        .all("fleet")
        .filter_map(|f| f.arg_str(0).map(|n| n.value))
        .collect();
    for env in envs {
        let mut seen: Vec<String> = Vec::new();
        for over in env.item.children_named("fleet") {
            let Some(name) = over.arg_str(0) else {
                continue;
            };
            if !fleets.contains(&name.value) {
                let mut d = Diag::error(
                    Code::EnvUnknownFleet,
                    format!(
                        "environment `{}` overrides fleet `{}`, which the spec does not define",
                        env.name.value, name.value
                    ),
                )
                .label(name.span, "no such fleet");
                d = match crate::spec::suggest::closest(
                    &name.value,
                    fleets.iter().map(String::as_str),
                ) {
                    Some(close) => d.help(format!("did you mean `{close}`?")),
                    None if fleets.is_empty() => d.help("the spec has no fleets"),
                    None => d.help(format!(
                        "the fleets are {}",
                        code_list(fleets.iter().map(String::as_str))
                    )),
                };
                diags.push(d);
            } else if seen.contains(&name.value) {
                diags.push(
                    Diag::error(
                        Code::Duplicate,
                        format!(
                            "environment `{}` overrides fleet `{}` twice",
                            env.name.value, name.value
                        ),
                    )
                    .label(name.span, "again here")
                    .help("merge the two `fleet` overrides into one"),
                );
            }
            seen.push(name.value);
        }
        // With a `stack-set`, the environment's `region` and `account` are where the set is administered, one
        // each, and the set names the target accounts and regions.
        let plain = env.item.child("stack-set").is_none();
        for (node, what) in [("region", "regions"), ("account", "accounts")] {
            if let Some(child) = env.item.child(node) {
                let values = child.arg_strs();
                if values.len() > 1 {
                    let (message, help) = if plain {
                        (
                            format!(
                                "environment `{}` names {} {what}; a plain stack deploys to exactly one",
                                env.name.value,
                                values.len()
                            ),
                            format!(
                                "one stack per account and region is what a `stack-set` in this environment deploys (see docs/environments.md); for a plain stack keep one {node} here, or declare one environment per {node}"
                            ),
                        )
                    } else {
                        (
                            format!(
                                "environment `{}` names {} {what} beside its `stack-set`; its {node} is where the stack set is administered, exactly one",
                                env.name.value,
                                values.len()
                            ),
                            format!(
                                "keep one {node} here and list the target {what} in the `stack-set` (see docs/stacksets.md)"
                            ),
                        )
                    };
                    diags.push(
                        Diag::error(Code::EnvSeveralTargets, message)
                            .label(child.name_span, format!("{} {what}", values.len()))
                            .help(help),
                    );
                }
            }
        }
        if let Some(from) = env.images_from() {
            check_source(envs, env, &from, diags);
        }
    }
}

/// `images-from` names another environment, and following `images-from` never comes back.
fn check_source(
    envs: &[Declared<'_>],
    env: &Declared<'_>,
    from: &Spanned<String>,
    diags: &mut Diags,
) {
    if from.value == env.name.value {
        diags.push(
            Diag::error(
                Code::EnvPromotionCycle,
                format!(
                    "environment `{}` takes its images from itself",
                    env.name.value
                ),
            )
            .label(from.span, "this environment")
            .help("name the environment whose tested AMIs this one runs, or drop `images-from` to build here"),
        );
        return;
    }
    let Some(source) = envs.iter().find(|e| e.name.value == from.value) else {
        let others: Vec<&str> = envs
            .iter()
            .filter(|e| e.name.value != env.name.value)
            .map(|e| e.name.value.as_str())
            .collect();
        let mut d = Diag::error(
            Code::EnvUnknown,
            format!(
                "environment `{}` takes its images from `{}`, which the spec does not declare",
                env.name.value, from.value
            ),
        )
        .label(from.span, "no such environment");
        d = match crate::spec::suggest::closest(&from.value, others.iter().copied()) {
            Some(close) => d.help(format!("did you mean `{close}`?")),
            None if others.is_empty() => {
                d.help("declare the environment that builds (or runs) the images first")
            }
            None => d.help(format!("the other environments are {}", code_list(others))),
        };
        diags.push(d);
        return;
    };
    // Follow the chain; it ends at an environment that builds, or comes back (reported once, at each member).
    let mut path = vec![env.name.value.as_str()];
    let mut at = source;
    loop {
        if path.contains(&at.name.value.as_str()) {
            if at.name.value == env.name.value {
                diags.push(
                    Diag::error(
                        Code::EnvPromotionCycle,
                        format!(
                            "`images-from` goes round in a circle: {} → {}",
                            path.join(" → "),
                            env.name.value
                        ),
                    )
                    .label(from.span, "from here")
                    .help("one environment of the chain must build its images: drop its `images-from`"),
                );
            }
            return;
        }
        path.push(at.name.value.as_str());
        let Some(next) = at
            .images_from()
            .and_then(|n| envs.iter().find(|e| e.name.value == n.value))
        else {
            return;
        };
        at = next;
    }
}
