//! `bake plan`, `deploy`, `status` and `destroy`: rain's flow over CloudFormation change sets, CDK's event
//! poller, behind the `Cfn` trait so every path (rollbacks, throttling, a dying server) can be tested.
//!
//! ```text
//! describe stack ─▶ deployed template identical? ─▶ no changes
//!   ─▶ create change set (CREATE | UPDATE) ─▶ poll ─▶ "didn't contain changes" ─▶ no changes
//!   ─▶ print plan ─▶ confirm ─▶ execute ─▶ watch events ─▶ summary (root cause + next step)
//! ```

pub mod cfn;
pub mod changeset;
mod destroy;
pub mod events;
mod execute;
mod plan;
mod prepare;
pub mod progress;
pub mod stackset;
mod status;
pub mod template_store;
mod watch;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::check::plan::Plan;
use crate::exit;
use cfn::CfnError;

pub use destroy::destroy;
pub use execute::deploy;
pub use plan::plan;
pub use prepare::{TEMPLATE_BODY_MAX, change_set_name};
pub use status::status;

/// Asks a yes/no question; `None` when there is nobody to ask (no terminal).
pub type Confirm = Box<dyn FnMut(&str) -> Option<bool>>;

/// Where output goes and how questions are asked.
pub struct Ui {
    /// Human text: plans, questions, summaries.
    pub out: Box<dyn Write>,
    /// Errors and warnings: always stderr in the binary, so `bake plan > plan.txt` still shows them.
    pub err: Box<dyn Write>,
    /// `--format json`: the plan object or the NDJSON event stream go here.
    pub json: Option<Box<dyn Write>>,
    /// Draw a live progress view (a terminal) instead of plain lines.
    pub live: bool,
    /// `--verbose`: print the SDK's full report under an error.
    pub verbose: bool,
    pub confirm: Confirm,
    /// Set once an operation may be under way in AWS (just before `ExecuteChangeSet` or `DeleteStack` is sent,
    /// or when `status --watch` follows one): Ctrl-C then says that it goes on and how to resume watching.
    pub started: Arc<AtomicBool>,
}

impl Ui {
    pub(super) fn say(&mut self, text: impl AsRef<str>) {
        let _ = writeln!(self.out, "{}", text.as_ref());
    }

    /// An error or warning line (with its `error:`/`warning:` prefix).
    pub(super) fn error(&mut self, text: impl AsRef<str>) {
        let _ = writeln!(self.err, "{}", text.as_ref());
    }

    pub(super) fn json_line(&mut self, v: &Value) {
        if let Some(j) = &mut self.json {
            let _ = writeln!(j, "{v}");
        }
    }

    pub(super) fn mark_started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }
}

/// The compiled spec a command works on, and where its calls go.
pub struct Target<'a> {
    pub plan: &'a Plan,
    pub template: &'a str,
    /// The spec path as the user typed it, for the commands bake suggests.
    pub spec: String,
    /// The region the calls go to (`--region`, or the spec's stack region), as the SDK configuration resolved it.
    pub region: String,
    /// Where a template over the inline limit goes (`template_store`).
    pub store: &'a template_store::TemplateStore,
}

impl Target<'_> {
    pub(super) fn stack(&self) -> &str {
        &self.plan.stack.name
    }

    /// "eu-west-1 (account 123456789012)": the region of the calls, and the account from the stack's ARN when one is
    /// known (no extra call: `DescribeStacks` and `CreateChangeSet` return it).
    pub(super) fn place(&self, stack_id: &str) -> String {
        match account_of(stack_id) {
            Some(account) => format!("{} (account {account})", self.region),
            None => self.region.clone(),
        }
    }
}

/// The account field of a stack ARN (`arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/ID`).
pub fn account_of(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.next() == Some("arn"))
        .then(|| parts.nth(3))
        .flatten()
        .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub yes: bool,
    pub detach: bool,
    pub no_rollback: bool,
    pub detailed_exitcode: bool,
    /// `status`: follow an operation in progress.
    pub watch: bool,
    /// `--timeout`: how long a call may take (the SDK enforces it), and how long watching goes on without a
    /// single answer before bake reports lost contact.
    pub timeout: Duration,
}

impl Options {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
}

impl Default for Options {
    fn default() -> Self {
        Options {
            yes: false,
            detach: false,
            no_rollback: false,
            detailed_exitcode: false,
            watch: false,
            timeout: Options::DEFAULT_TIMEOUT,
        }
    }
}

pub(super) fn env_error(ui: &mut Ui, what: &str, e: &CfnError) -> u8 {
    ui.error(format!("error: {what}: {e}"));
    if ui.verbose
        && let Some(detail) = e.detail()
    {
        ui.error(format!("  detail: {detail}"));
    }
    exit::ENV
}

/// A stack busy with another operation: the same message and code (3) wherever bake finds out.
pub(super) fn busy(ui: &mut Ui, target: &Target<'_>, status: &str, stack_id: &str) -> u8 {
    ui.error(format!(
        "error: stack {} in {} is busy ({status}); wait for it: `bake status {} --watch`",
        target.stack(),
        target.place(stack_id),
        target.spec
    ));
    exit::ENV
}

/// What bake prints when Ctrl-C or SIGTERM (`signal`) ends it. Before anything was executed nothing changed;
/// after, the operation goes on in AWS.
pub fn interrupted_message(target: &Target<'_>, started: bool, signal: &str) -> String {
    if started {
        format!(
            "\nStopped ({signal}). The operation on stack {} in {} continues on AWS and was not cancelled;\n  \
             resume watching with `bake status {} --watch`.",
            target.stack(),
            target.region,
            target.spec
        )
    } else {
        format!(
            "\nInterrupted ({signal}) before anything was executed; nothing was changed (a change set bake created may \
             remain until another one is executed)."
        )
    }
}
