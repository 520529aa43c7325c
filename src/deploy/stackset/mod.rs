//! `bake plan`, `deploy`, `status` and `destroy` for a spec with a `stack-set`: the stack's template deployed
//! through CloudFormation StackSets, from the stack's region, to every target account (or OU) in every region.
//!
//! ```text
//! DescribeStackSet + ListStackInstances ─▶ diff against the spec (template, mappings per region, instances)
//!   ─▶ print the plan ─▶ confirm
//!   ─▶ CreateStackSet (new) │ UpdateStackSet (template changed) ─▶ wait
//!   ─▶ CreateStackInstances (new account/region pairs) ─▶ wait
//!   ─▶ DeleteStackInstances (pairs no longer in the spec; only with --delete-instances) ─▶ wait
//! wait = DescribeStackSetOperation polled with backoff, bounded in time, then ListStackSetOperationResults:
//!        every instance that failed, with its account, region and reason.
//! ```

pub mod api;
mod diff;
mod run;
mod wait;

pub use api::{AwsStackSets, StackSets};
pub use run::{deploy, destroy, plan, status};

/// What a stack-set deploy may do beyond the plain commands' `Options`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetOptions {
    /// `--delete-instances`: delete the stack instances of accounts and regions no longer in the spec.
    pub delete_instances: bool,
}
