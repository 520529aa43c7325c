//! The compile pipeline after the spec was checked: `Plan` + `Lock` → verified → `Artifacts`.
//!
//! Shared by `bake compile` and `bake deploy`/`plan`, so a deploy ships exactly what `compile` would write.
//! Never resolves anything: a missing or stale lock entry is a diagnostic, as in `compile`.

use crate::check::plan::Plan;
use crate::diag::{self, Diag};
use crate::emit::{self, Artifacts, EmitError};
use crate::lock::Lock;
use crate::source::SourceFile;

/// A successful compile: the plan, the artifacts and the warnings met on the way.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub plan: Plan,
    pub artifacts: Artifacts,
    pub diags: Vec<Diag>,
}

impl Compiled {
    /// The CloudFormation template, as written to `template.json`.
    pub fn template(&self) -> &str {
        self.artifacts.get("template.json").unwrap_or_default()
    }
}

/// Why a compile stopped.
#[derive(Debug)]
pub enum Failed {
    /// The lock does not answer the spec; every diagnostic (including the spec's warnings), sorted.
    Diags(Vec<Diag>),
    /// A generated document exceeds an AWS size limit: a spec problem with a message but no span.
    TooLarge { diags: Vec<Diag>, message: String },
    /// A bake bug.
    Bug(String),
}

/// `build` for the environment a plan was checked for: a promoted environment's images first become the AMIs
/// the lock records for it (`environments::promotion`).
pub fn build_env(
    file: &SourceFile,
    checked: crate::environments::Checked,
    diags: Vec<Diag>,
    lock: &Lock,
) -> Result<Compiled, Failed> {
    let mut plan = checked.plan;
    if let Err(more) =
        crate::environments::promotion::apply(&mut plan, checked.env.as_ref(), lock, "the lock")
    {
        let mut all = diags;
        all.extend(more);
        diag::sort(&mut all);
        return Err(Failed::Diags(all));
    }
    build(file, plan, diags, lock)
}

/// Verifies the lock against a checked plan and emits the artifacts. `diags` are the checker's warnings.
pub fn build(
    file: &SourceFile,
    plan: Plan,
    diags: Vec<Diag>,
    lock: &Lock,
) -> Result<Compiled, Failed> {
    let mut diags = diags;
    diags.extend(crate::check::rollback::pinned_base_warnings(&plan, lock));
    diags.extend(crate::lock::secrets::lock_warnings(&plan, lock));
    diag::sort(&mut diags);
    let resolved = match crate::lock::verify(&plan, lock, &file.name()) {
        Ok(r) => r,
        Err(lock_diags) => {
            let mut all = diags;
            all.extend(lock_diags);
            diag::sort(&mut all);
            return Err(Failed::Diags(all));
        }
    };
    match emit::emit(&plan, &resolved, lock) {
        Ok(artifacts) => Ok(Compiled {
            plan,
            artifacts,
            diags,
        }),
        Err(e @ EmitError::TooLarge(_)) => Err(Failed::TooLarge {
            diags,
            message: e.to_string(),
        }),
        Err(e) => Err(Failed::Bug(e.to_string())),
    }
}
