//! bake compiles a KDL spec into the artifacts that bake an Amazon Linux 2023 AMI with Nix and roll it out:
//! an SSM document, a CloudFormation template (Image Builder, launch template, auto-scaling group) and a lock.
//!
//! The pipeline runs one way:
//!
//! ```text
//! SourceFile ─spec::parse─▶ Tree ─check::check─▶ Plan ─lock::verify─▶ Resolved ─emit::emit─▶ Artifacts
//! ```
//!
//! Every stage before `emit` reports all the problems it finds as `diag::Diag`s with spans into the spec.
//! Only `cli` touches files, the terminal and the process exit code.

pub mod aws;
pub mod check;
pub mod cli;
pub mod closure;
pub mod deploy;
pub mod diag;
pub mod emit;
pub mod environments;
pub mod exit;
pub mod fmt;
pub mod fsio;
pub mod lock;
pub mod lsp;
pub mod nixos;
pub mod pipeline;
pub mod promote;
pub mod source;
pub mod spec;

use check::plan::Plan;
use diag::Diag;
use source::SourceFile;

/// Parses and checks a spec: what `bake check` and the editor run. Diagnostics come in source order. With
/// environments, every environment is checked and the plan is the default one's (`check_source_env` to choose).
pub fn check_source(file: &SourceFile) -> (Option<Plan>, Vec<Diag>) {
    let (checked, diags) = check_source_env(file, environments::Want::All);
    (checked.map(|c| c.plan), diags)
}

/// `check_source` for the environment a command runs in.
pub fn check_source_env(
    file: &SourceFile,
    want: environments::Want<'_>,
) -> (Option<environments::Checked>, Vec<Diag>) {
    let (tree, diags) = spec::parse(file);
    check_tree(tree, diags, want)
}

/// `check_source` for a document the caller has already parsed (the editor reuses unchanged nodes).
pub fn check_document(doc: &kdl::KdlDocument) -> (Option<Plan>, Vec<Diag>) {
    let (tree, diags) = spec::shape(doc);
    let (checked, diags) = check_tree(Some(tree), diags, environments::Want::All);
    (checked.map(|c| c.plan), diags)
}

fn check_tree(
    tree: Option<spec::Tree>,
    mut diags: Vec<Diag>,
    want: environments::Want<'_>,
) -> (Option<environments::Checked>, Vec<Diag>) {
    let Some(tree) = tree else {
        return (None, diags);
    };
    let (plan, more) = environments::check(&tree, want);
    diags.extend(more);
    diag::sort(&mut diags);
    if plan.is_none() && !diag::has_errors(&diags) {
        // Every path that leaves a part of the plan out reports why; reaching this is a bake bug, never a
        // silent success.
        diags.push(
            Diag::error(
                diag::Code::Internal,
                "bake could not build a plan, but found no problem to report",
            )
            .label(source::span(0, 0), "")
            .help("this is a bake bug; please report it with the spec"),
        );
    }
    let plan = if diag::has_errors(&diags) { None } else { plan };
    (plan, diags)
}

/// Frees `value` on another thread, so that the caller goes on; a process that exits first does not free it at
/// all. For large trees of small allocations only (a parsed spec, a template), where freeing is a noticeable part
/// of a command: starting a thread costs tens of microseconds here, and more before it runs.
pub(crate) fn drop_later<T: Send + 'static>(value: T) {
    // When no thread can be had, `spawn` drops the closure, and the value with it, right here.
    let _ = std::thread::Builder::new().spawn(move || drop(value));
}
