//! What CloudFormation statuses and events mean to bake: the one status → category function, the root cause of a
//! failed operation, and the way back from a logical id to the spec node that produced it.

use crate::check::pascal;
use crate::check::plan::Plan;

use super::cfn::StackEvent;

/// rain's five categories, plus the distinction CloudFormation blurs: `UPDATE_ROLLBACK_COMPLETE` is "complete" to
/// it and a failed deployment to bake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Waiting for a change set to be executed (`REVIEW_IN_PROGRESS`).
    Pending,
    InProgress,
    /// Done, and what was asked happened.
    Complete,
    /// Done, and what was asked did not happen (rolled back, failed).
    Failed,
    /// A resource gave up because another failed.
    Cancelled,
}

impl Category {
    pub fn of(status: &str) -> Category {
        if status == "REVIEW_IN_PROGRESS" {
            Category::Pending
        } else if status.ends_with("_IN_PROGRESS") {
            Category::InProgress
        } else if status.contains("ROLLBACK") || status.ends_with("_FAILED") {
            Category::Failed
        } else if status.ends_with("_SKIPPED") || status.contains("CANCEL") {
            Category::Cancelled
        } else if status.ends_with("_COMPLETE") {
            Category::Complete
        } else {
            // A status this version of bake has never seen: not finished, so keep watching.
            Category::InProgress
        }
    }

    /// Whether a stack in this status will not change without a new request.
    pub fn is_settled(self) -> bool {
        !matches!(self, Category::InProgress)
    }
}

/// Whether a reason is one of the cascade messages that follow the real failure.
pub fn is_cascade(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("cancelled")
        || r.contains("canceled")
        || r.starts_with("the following resource(s) failed")
        || r.contains("resource update cancelled")
}

/// Strips the handler wrapping CloudFormation puts around a resource provider's message:
/// `Resource handler returned message: "X" (RequestToken: …, HandlerErrorCode: …)` → `X (HandlerErrorCode: …)`.
pub fn clean_reason(reason: &str) -> String {
    let Some(rest) = reason.strip_prefix("Resource handler returned message: \"") else {
        return reason.trim().to_owned();
    };
    let (message, tail) = match rest.rfind("\" (") {
        Some(i) => (&rest[..i], &rest[i + 3..]),
        None => (rest.trim_end_matches('"'), ""),
    };
    let code = tail
        .split(", ")
        .find_map(|part| part.strip_prefix("HandlerErrorCode: "))
        .map(|c| c.trim_end_matches(')'));
    match code {
        Some(c) => format!("{message} ({c})"),
        None => message.to_owned(),
    }
}

/// The spec node a logical id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecNode {
    Image(String),
    Fleet(String),
}

impl std::fmt::Display for SpecNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpecNode::Image(n) => write!(f, "image \"{n}\""),
            SpecNode::Fleet(n) => write!(f, "fleet \"{n}\""),
        }
    }
}

/// Maps a logical id (`Image<Name>…`, `Fleet<Name>…`) back to its spec node. The longest matching name wins,
/// so `Fleet<WebApi>` is not mistaken for `Fleet<Web>`.
pub fn spec_node(plan: &Plan, logical_id: &str) -> Option<SpecNode> {
    let images = plan.images.iter().map(|i| (&i.name.value, "Image", true));
    let fleets = plan.fleets.iter().map(|f| (&f.name.value, "Fleet", false));
    images
        .chain(fleets)
        .filter(|(name, prefix, _)| logical_id.starts_with(&format!("{prefix}{}", pascal(name))))
        .max_by_key(|(name, _, _)| pascal(name).len())
        .map(|(name, _, image)| {
            if image {
                SpecNode::Image(name.clone())
            } else {
                SpecNode::Fleet(name.clone())
            }
        })
}

/// The event that explains a failed operation: the first resource failure that is not a cascade message,
/// else the first failure of any kind, else the last stack-level failure reason.
pub fn root_cause<'a>(events: &'a [StackEvent], stack_name: &str) -> Option<&'a StackEvent> {
    let failed = |e: &&StackEvent| {
        e.status.ends_with("_FAILED") && e.reason.as_deref().is_some_and(|r| !r.is_empty())
    };
    let is_stack = |e: &StackEvent| {
        e.resource_type == "AWS::CloudFormation::Stack" && e.logical_id == stack_name
    };
    events
        .iter()
        .filter(failed)
        .find(|e| !is_stack(e) && !is_cascade(e.reason.as_deref().unwrap_or_default()))
        .or_else(|| events.iter().filter(failed).find(|e| !is_stack(e)))
        .or_else(|| {
            events
                .iter()
                .filter(|e| {
                    is_stack(e) && (e.status.contains("ROLLBACK") || e.status.ends_with("_FAILED"))
                })
                .find(|e| e.reason.as_deref().is_some_and(|r| !r.is_empty()))
        })
}

/// What to run next, for a stack that settled in `status` after a failed or interrupted operation.
pub fn next_step(status: &str, spec: &str, stack: &str) -> String {
    match status {
        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" => format!(
            "the stack was never created and cannot be updated: fix the cause, run `bake destroy {spec}`, then `bake deploy {spec}`"
        ),
        "UPDATE_ROLLBACK_COMPLETE" => format!(
            "the stack is back on its previous version and still serves it: fix the cause, then `bake deploy {spec}`"
        ),
        "UPDATE_ROLLBACK_FAILED" => format!(
            "the rollback itself failed: fix the resources it names, then `aws cloudformation continue-update-rollback --stack-name {stack}`"
        ),
        "UPDATE_FAILED" => format!(
            "rollback was disabled (--no-rollback): fix the cause and `bake deploy {spec}` again, or roll back with `aws cloudformation rollback-stack --stack-name {stack}`"
        ),
        "DELETE_FAILED" => format!(
            "some resources could not be deleted: remove what blocks them, then `bake destroy {spec}` again"
        ),
        "deleted (it was empty)" => {
            format!("nothing was created: fix the cause, then `bake deploy {spec}`")
        }
        "REVIEW_IN_PROGRESS" => format!(
            "nothing was created: fix the cause and `bake deploy {spec}` again (or `bake destroy {spec}` to remove the empty stack)"
        ),
        s if Category::of(s) == Category::InProgress => {
            format!("the operation continues on AWS: `bake status {spec} --watch` follows it")
        }
        _ => format!("fix the cause, then `bake deploy {spec}`"),
    }
}
