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
mod deploy;
mod destroy;
pub mod events;
mod plan;
mod prepare;
pub mod progress;
mod status;
mod watch;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::Value;

use crate::check::plan::Plan;
use crate::exit;
use cfn::CfnError;

pub use deploy::deploy;
pub use destroy::destroy;
pub use plan::plan;
pub use prepare::TEMPLATE_BODY_MAX;
pub use status::status;

/// Asks a yes/no question; `None` when there is nobody to ask (no terminal).
pub type Confirm = Box<dyn FnMut(&str) -> Option<bool>>;

/// Where output goes and how questions are asked.
pub struct Ui {
    /// Human text: plans, questions, summaries.
    pub out: Box<dyn Write>,
    /// `--format json`: the plan object or the NDJSON event stream go here.
    pub json: Option<Box<dyn Write>>,
    /// Draw a live progress view (a terminal) instead of plain lines.
    pub live: bool,
    pub confirm: Confirm,
    /// Set by Ctrl-C.
    pub interrupted: Arc<AtomicBool>,
    /// Set while events are watched: Ctrl-C then stops watching instead of ending bake.
    pub watching: Arc<AtomicBool>,
}

impl Ui {
    pub(super) fn say(&mut self, text: impl AsRef<str>) {
        let _ = writeln!(self.out, "{}", text.as_ref());
    }

    pub(super) fn json_line(&mut self, v: &Value) {
        if let Some(j) = &mut self.json {
            let _ = writeln!(j, "{v}");
        }
    }
}

/// The compiled spec a command works on.
pub struct Target<'a> {
    pub plan: &'a Plan,
    pub template: &'a str,
    /// The spec path as the user typed it, for the commands bake suggests.
    pub spec: String,
}

impl Target<'_> {
    pub(super) fn stack(&self) -> &str {
        &self.plan.stack.name
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub yes: bool,
    pub detach: bool,
    pub no_rollback: bool,
    pub detailed_exitcode: bool,
    /// `status`: follow an operation in progress.
    pub watch: bool,
}

pub(super) fn env_error(ui: &mut Ui, what: &str, e: &CfnError) -> u8 {
    ui.say(format!("error: {what}: {e}"));
    exit::ENV
}
