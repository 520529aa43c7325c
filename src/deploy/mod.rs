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
pub mod events;
pub mod progress;
pub mod template_store;

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::check::plan::Plan;
use crate::cli::exit;
use cfn::{Cfn, CfnError, ChangeSetKind, ChangeSetRequest, Stack, StackEvent};
use events::{Category, clean_reason, next_step, root_cause, spec_node};
use progress::Progress;
use template_store::TemplateStore;

/// Exit codes of the deploy commands, beyond `cli::exit` (0 ok, 1 spec, 2 usage, 3 environment).
pub mod codes {
    /// The stack operation (or the change set) failed; the summary names the root cause.
    pub const FAILED: u8 = 4;
    /// The user declined, or there was no terminal to ask and no `--yes`.
    pub const NOT_CONFIRMED: u8 = 5;
    /// `bake plan --detailed-exitcode`: the plan has changes.
    pub const CHANGES: u8 = 10;
    /// Ctrl-C while watching: the operation goes on without us.
    pub const INTERRUPTED: u8 = 130;
}

/// CloudFormation's limit for an inline `TemplateBody`.
pub const TEMPLATE_BODY_MAX: usize = template_store::INLINE_MAX;

/// The stack messages CloudFormation uses for "nothing to do".
fn is_no_change(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

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
    fn say(&mut self, text: impl AsRef<str>) {
        let _ = writeln!(self.out, "{}", text.as_ref());
    }

    fn json_line(&mut self, v: &Value) {
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
    fn stack(&self) -> &str {
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

/// A change set ready to execute, or the news that there is nothing to do.
enum Prepared {
    NoChanges(&'static str),
    Changes {
        change_set: String,
        stack_id: String,
        /// A CREATE change set: its stack is empty (`REVIEW_IN_PROGRESS`) until it is executed.
        create: bool,
        planned: Vec<changeset::Planned>,
    },
}

fn env_error(ui: &mut Ui, what: &str, e: &CfnError) -> u8 {
    ui.say(format!("error: {what}: {e}"));
    exit::ENV
}

fn same_tags(a: &[(String, String)], b: &[(String, String)]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

fn change_set_name() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("bake-{ms}")
}

async fn prepare<C: Cfn>(
    cfn: &C,
    store: &TemplateStore,
    target: &Target<'_>,
    ui: &mut Ui,
) -> Result<Prepared, u8> {
    let stack = target.stack();
    // What is sent is compact, and the limits apply to it.
    let body = template_store::compact(target.template);
    if let Some(refusal) = store.refusal(&body, target.plan) {
        ui.say(refusal);
        return Err(exit::SPEC);
    }
    // Both at once: a no-op deploy is these two calls, so their latencies should not add up.
    let (existing, deployed) = tokio::join!(cfn.describe_stack(stack), cfn.get_template(stack));
    let existing =
        existing.map_err(|e| env_error(ui, &format!("cannot describe stack {stack}"), &e))?;
    let new_template: Option<Value> = serde_json::from_str(target.template).ok();
    let mut old_template: Option<Value> = None;
    let create = match &existing {
        None => true,
        Some(s) if s.status == "REVIEW_IN_PROGRESS" => true,
        Some(s) => {
            match Category::of(&s.status) {
                Category::InProgress => {
                    ui.say(format!(
                        "error: stack {stack} is busy ({}); wait for it: `bake status {} --watch`",
                        s.status, target.spec
                    ));
                    return Err(exit::ENV);
                }
                _ if matches!(
                    s.status.as_str(),
                    "ROLLBACK_COMPLETE"
                        | "ROLLBACK_FAILED"
                        | "CREATE_FAILED"
                        | "DELETE_FAILED"
                        | "UPDATE_ROLLBACK_FAILED"
                ) =>
                {
                    ui.say(format!(
                        "error: stack {stack} is in {} and cannot be updated\n  help: {}",
                        s.status,
                        next_step(&s.status, &target.spec, stack)
                    ));
                    return Err(codes::FAILED);
                }
                _ => {}
            }
            let body =
                deployed.map_err(|e| env_error(ui, "cannot read the deployed template", &e))?;
            old_template = body.and_then(|b| serde_json::from_str(&b).ok());
            if old_template.is_some()
                && old_template == new_template
                && same_tags(&s.tags, &target.plan.stack.tags)
            {
                return Ok(Prepared::NoChanges("the deployed template is identical"));
            }
            false
        }
    };
    let request = ChangeSetRequest {
        stack: stack.to_owned(),
        name: change_set_name(),
        kind: if create {
            ChangeSetKind::Create
        } else {
            ChangeSetKind::Update
        },
        template: match store.place(body, stack).await {
            Ok((source, note)) => {
                if let Some(note) = note {
                    ui.say(note);
                }
                source
            }
            Err(e) => {
                ui.say(format!("error: {e}"));
                return Err(exit::ENV);
            }
        },
        tags: target.plan.stack.tags.clone(),
    };
    let (id, stack_id) = match cfn.create_change_set(&request).await {
        Ok(ids) => ids,
        Err(CfnError::Service { message, .. }) if is_no_change(&message) => {
            return Ok(Prepared::NoChanges("CloudFormation found no changes"));
        }
        Err(e) => return Err(env_error(ui, "cannot create a change set", &e)),
    };
    let set = match poll_change_set(cfn, &stack_id, &id).await {
        Ok(set) => set,
        Err(e) => return Err(env_error(ui, "cannot read the change set", &e)),
    };
    if set.status == "FAILED" {
        let reason = set.status_reason.clone().unwrap_or_default();
        cleanup(cfn, &stack_id, &id, create, ui).await;
        if is_no_change(&reason) {
            return Ok(Prepared::NoChanges("CloudFormation found no changes"));
        }
        ui.say(format!(
            "error: CloudFormation rejected the change set: {}",
            clean_reason(&reason)
        ));
        return Err(codes::FAILED);
    }
    // The id, not the name, from here on: a name can match several stacks (moto creates a second stack for a
    // CREATE change set on a stack in REVIEW_IN_PROGRESS).
    let stack_id = if stack_id.is_empty() {
        stack.to_owned()
    } else {
        stack_id
    };
    let planned = changeset::annotate(
        target.plan,
        old_template.as_ref(),
        new_template.as_ref(),
        &set.changes,
    );
    Ok(Prepared::Changes {
        change_set: id,
        stack_id,
        create,
        planned,
    })
}

/// Waits for a change set to be created. Our own loop: the SDK's waiter treats `FAILED`, which is how
/// CloudFormation says "no changes", as an error.
async fn poll_change_set<C: Cfn>(
    cfn: &C,
    stack: &str,
    id: &str,
) -> Result<cfn::ChangeSet, CfnError> {
    let mut delay = Duration::from_millis(100);
    let mut throttled = 0;
    loop {
        match cfn.describe_change_set(stack, id).await {
            Ok(set) if !matches!(set.status.as_str(), "CREATE_PENDING" | "CREATE_IN_PROGRESS") => {
                return Ok(set);
            }
            Ok(_) => {}
            Err(CfnError::Throttled(_)) if throttled < 10 => {
                throttled += 1;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Deletes a change set that will not be executed, and the empty stack a CREATE change set left behind.
async fn cleanup<C: Cfn>(cfn: &C, stack: &str, id: &str, create: bool, ui: &mut Ui) {
    if let Err(e) = cfn.delete_change_set(stack, id).await {
        ui.say(format!("warning: could not delete change set {id}: {e}"));
    }
    if create && let Err(e) = cfn.delete_stack(stack).await {
        ui.say(format!(
            "warning: could not delete the empty stack {stack}: {e}"
        ));
    }
}

fn print_plan(ui: &mut Ui, stack: &str, create: bool, planned: &[changeset::Planned]) {
    if ui.json.is_some() {
        ui.json_line(&changeset::to_json(stack, create, planned));
    } else {
        let text = changeset::render(stack, create, planned);
        let _ = write!(ui.out, "{text}");
    }
}

fn print_no_changes(ui: &mut Ui, stack: &str, why: &str) {
    if ui.json.is_some() {
        ui.json_line(&changeset::to_json(stack, false, &[]));
    }
    ui.say(format!("No changes: stack {stack} is up to date ({why})."));
}

/// `bake plan`: what would change, without changing anything. Templates over the inline limit are refused.
pub async fn plan<C: Cfn>(cfn: &C, target: &Target<'_>, options: Options, ui: &mut Ui) -> u8 {
    plan_with(cfn, &TemplateStore::InlineOnly, target, options, ui).await
}

/// `bake plan`, with templates over the inline limit sent through `store`.
pub async fn plan_with<C: Cfn>(
    cfn: &C,
    store: &TemplateStore,
    target: &Target<'_>,
    options: Options,
    ui: &mut Ui,
) -> u8 {
    let stack = target.stack().to_owned();
    match prepare(cfn, store, target, ui).await {
        Err(code) => code,
        Ok(Prepared::NoChanges(why)) => {
            print_no_changes(ui, &stack, why);
            exit::OK
        }
        Ok(Prepared::Changes {
            change_set,
            stack_id,
            create,
            planned,
        }) => {
            print_plan(ui, &stack, create, &planned);
            cleanup(cfn, &stack_id, &change_set, create, ui).await;
            if options.detailed_exitcode {
                codes::CHANGES
            } else {
                exit::OK
            }
        }
    }
}

/// `bake deploy`: plan, confirm, execute, watch, explain. Templates over the inline limit are refused.
pub async fn deploy<C: Cfn>(cfn: &C, target: &Target<'_>, options: Options, ui: &mut Ui) -> u8 {
    deploy_with(cfn, &TemplateStore::InlineOnly, target, options, ui).await
}

/// `bake deploy`, with templates over the inline limit sent through `store`.
pub async fn deploy_with<C: Cfn>(
    cfn: &C,
    store: &TemplateStore,
    target: &Target<'_>,
    options: Options,
    ui: &mut Ui,
) -> u8 {
    let stack = target.stack().to_owned();
    let (change_set, stack_id, create, planned) = match prepare(cfn, store, target, ui).await {
        Err(code) => return code,
        Ok(Prepared::NoChanges(why)) => {
            print_no_changes(ui, &stack, why);
            return exit::OK;
        }
        Ok(Prepared::Changes {
            change_set,
            stack_id,
            create,
            planned,
        }) => (change_set, stack_id, create, planned),
    };
    print_plan(ui, &stack, create, &planned);
    if !options.yes {
        let question = format!(
            "Deploy these changes to stack {stack} in {}?",
            target.plan.stack.region
        );
        match (ui.confirm)(&question) {
            Some(true) => {}
            answer => {
                cleanup(cfn, &stack_id, &change_set, create, ui).await;
                ui.say(match answer {
                    None => "error: no terminal to confirm on; pass --yes to deploy without confirmation. Nothing was changed.",
                    _ => "Declined. The change set was deleted; nothing was changed.",
                });
                return codes::NOT_CONFIRMED;
            }
        }
    }
    let baseline = baseline(cfn, &stack_id).await;
    if let Err(e) = cfn
        .execute_change_set(&stack_id, &change_set, options.no_rollback)
        .await
    {
        return rejected(cfn, target, ui, &stack_id, create, &e).await;
    }
    if options.detach {
        ui.say(format!(
            "Deploying stack {stack}; follow it with `bake status {} --watch`.",
            target.spec
        ));
        return exit::OK;
    }
    let end = watch(cfn, &stack_id, &stack, baseline, ui).await;
    finish(target, ui, end, Goal::Deploy)
}

/// Execution failed at the API call itself (moto reports resource errors this way; AWS reports validation
/// errors this way): terminal, nothing to watch.
async fn rejected<C: Cfn>(
    cfn: &C,
    target: &Target<'_>,
    ui: &mut Ui,
    stack_id: &str,
    create: bool,
    e: &CfnError,
) -> u8 {
    if let CfnError::Transport(_) = e {
        return env_error(ui, "cannot execute the change set", e);
    }
    let mut status = match cfn.describe_stack(stack_id).await {
        Ok(Some(s)) => s.status,
        _ => "unknown".to_owned(),
    };
    // A CREATE that never started leaves an empty stack behind: remove it, so the next deploy starts clean.
    if create && status == "REVIEW_IN_PROGRESS" && cfn.delete_stack(stack_id).await.is_ok() {
        status = "deleted (it was empty)".to_owned();
    }
    let message = match e {
        CfnError::Service { code, message } => format!("{} ({code})", clean_reason(message)),
        other => other.to_string(),
    };
    ui.json_line(&json!({"type": "result", "ok": false, "status": status, "root_cause": {"message": message}}));
    ui.say(format!(
        "\nDeployment of stack {} failed: CloudFormation rejected the execution:\n  {message}\nStack {} is {status}.\n  next: {}",
        target.stack(),
        target.stack(),
        next_step(&status, &target.spec, target.stack())
    ));
    codes::FAILED
}

/// The events already there before an operation: ignored by the watcher.
struct Baseline {
    since_ms: i64,
    seen: HashSet<String>,
}

async fn baseline<C: Cfn>(cfn: &C, stack: &str) -> Baseline {
    // `i64::MAX`: one page is enough, the watcher only needs the newest events' ids and time.
    let events = cfn.stack_events(stack, i64::MAX).await.unwrap_or_default();
    Baseline {
        since_ms: events.iter().map(|e| e.timestamp_ms).max().unwrap_or(0),
        seen: events.into_iter().map(|e| e.id).collect(),
    }
}

enum WatchEnd {
    /// The stack settled (`None`: it no longer exists).
    Settled(Option<Stack>, Vec<StackEvent>),
    Interrupted,
    Lost(CfnError),
}

/// Polls events until the stack settles. Adaptive: fast while events arrive, at most a second apart when
/// quiet (so the end is noticed within a second), backing off when throttled.
async fn watch<C: Cfn>(
    cfn: &C,
    stack_id: &str,
    stack_name: &str,
    mut baseline: Baseline,
    ui: &mut Ui,
) -> WatchEnd {
    let mut printer: Box<dyn Progress + '_> = match (&mut ui.json, ui.live) {
        (Some(j), _) => Box::new(progress::Json { out: j }),
        (None, true) => Box::new(progress::Live::new()),
        (None, false) => Box::new(progress::Plain { out: &mut ui.out }),
    };
    let interrupted = Arc::clone(&ui.interrupted);
    ui.watching.store(true, Ordering::SeqCst);
    let mut collected: Vec<StackEvent> = Vec::new();
    let mut zero_ms: Option<i64> = None;
    let mut delay = Duration::from_millis(250);
    let mut failures = 0u32;
    let mut polls = 0u32;
    let mut started = false;
    let end = loop {
        if interrupted.load(Ordering::SeqCst) {
            break WatchEnd::Interrupted;
        }
        polls += 1;
        // Every tenth poll, ask the stack itself, in case its final event was missed — but only once this
        // operation has shown itself, so a status left from the previous operation is not taken for the end.
        let mut check_stack = started && polls.is_multiple_of(10);
        match cfn.stack_events(stack_id, baseline.since_ms).await {
            Ok(events) => {
                failures = 0;
                let mut fresh: Vec<StackEvent> = events
                    .into_iter()
                    .filter(|e| e.timestamp_ms >= baseline.since_ms)
                    .filter(|e| baseline.seen.insert(e.id.clone()))
                    .collect();
                fresh.reverse();
                for e in &fresh {
                    let zero = *zero_ms.get_or_insert(e.timestamp_ms);
                    printer.event(e, zero);
                    let stack_level = e.resource_type == "AWS::CloudFormation::Stack"
                        && e.logical_id == stack_name;
                    if stack_level {
                        started = true;
                        check_stack |= matches!(
                            Category::of(&e.status),
                            Category::Complete | Category::Failed | Category::Cancelled
                        );
                    }
                }
                delay = if fresh.is_empty() {
                    (delay + Duration::from_millis(250)).min(Duration::from_secs(1))
                } else {
                    Duration::from_millis(250)
                };
                collected.extend(fresh);
            }
            Err(CfnError::Throttled(_)) => {
                delay = (delay * 2).clamp(Duration::from_secs(2), Duration::from_secs(20));
                printer.note(&format!(
                    "throttled by CloudFormation; polling every {}s",
                    delay.as_secs()
                ));
            }
            Err(e) if e.is_not_found() => {
                check_stack = true;
            }
            Err(e) => {
                failures += 1;
                if failures >= 5 {
                    break WatchEnd::Lost(e);
                }
                printer.note(&format!("{e}; retrying ({failures}/5)"));
                delay = Duration::from_secs(1) * 2u32.pow(failures.min(4));
            }
        }
        if check_stack {
            match cfn.describe_stack(stack_id).await {
                Ok(Some(s)) if Category::of(&s.status).is_settled() => {
                    break WatchEnd::Settled(Some(s), collected);
                }
                Ok(None) => break WatchEnd::Settled(None, collected),
                Ok(Some(_)) | Err(_) => {}
            }
        }
        // Sleep in slices so Ctrl-C is noticed at once.
        let mut left = delay;
        while !left.is_zero() && !interrupted.load(Ordering::SeqCst) {
            let slice = left.min(Duration::from_millis(100));
            tokio::time::sleep(slice).await;
            left -= slice;
        }
    };
    printer.finish();
    end
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Deploy,
    Destroy,
}

/// The final summary: success, or the root cause, the stack's state and the next command.
fn finish(target: &Target<'_>, ui: &mut Ui, end: WatchEnd, goal: Goal) -> u8 {
    let stack = target.stack().to_owned();
    let spec = target.spec.clone();
    let (settled, events) = match end {
        WatchEnd::Interrupted => {
            ui.json_line(&json!({"type": "result", "ok": null, "status": "interrupted"}));
            ui.say(format!(
                "\nStopped watching. The operation on stack {stack} continues on AWS and was not cancelled;\n  \
                 resume watching with `bake status {spec} --watch`."
            ));
            return codes::INTERRUPTED;
        }
        WatchEnd::Lost(e) => {
            ui.json_line(
                &json!({"type": "result", "ok": null, "status": "unknown", "error": e.to_string()}),
            );
            ui.say(format!(
                "\nerror: lost contact with CloudFormation while watching: {e}\n  \
                 The operation on stack {stack} continues on AWS; resume watching with `bake status {spec} --watch`."
            ));
            return exit::ENV;
        }
        WatchEnd::Settled(s, events) => (s, events),
    };
    let status = settled
        .as_ref()
        .map_or_else(|| "DELETE_COMPLETE".to_owned(), |s| s.status.clone());
    let ok = match goal {
        Goal::Deploy => matches!(
            status.as_str(),
            "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE"
        ),
        Goal::Destroy => status == "DELETE_COMPLETE",
    };
    if ok {
        ui.json_line(&json!({"type": "result", "ok": true, "status": status}));
        match goal {
            Goal::Deploy => {
                ui.say(format!("\nDeployed stack {stack}: {status}."));
                if let Some(s) = &settled {
                    print_outputs(ui, target.plan, s);
                }
            }
            Goal::Destroy => ui.say(format!("\nDestroyed stack {stack}.")),
        }
        return exit::OK;
    }
    let cause = root_cause(&events, &stack);
    let cause_json = cause.map(|e| {
        json!({
            "logical_id": e.logical_id,
            "resource_type": e.resource_type,
            "status": e.status,
            "reason": e.reason.as_deref().map(clean_reason),
            "spec": spec_node(target.plan, &e.logical_id).map(|n| n.to_string()),
        })
    });
    ui.json_line(
        &json!({"type": "result", "ok": false, "status": status, "root_cause": cause_json}),
    );
    let verb = match goal {
        Goal::Deploy => "Deployment",
        Goal::Destroy => "Deletion",
    };
    let mut text = format!("\n{verb} of stack {stack} failed.\n");
    match cause {
        Some(e) => {
            let reason = e.reason.as_deref().map(clean_reason).unwrap_or_default();
            let node = spec_node(target.plan, &e.logical_id)
                .map(|n| format!(", from {n} in {spec}"))
                .unwrap_or_default();
            text.push_str(&format!(
                "  root cause: {} ({}{node}) {}:\n    {reason}\n",
                e.logical_id, e.resource_type, e.status
            ));
            if e.resource_type == "AWS::ImageBuilder::Image" {
                text.push_str(
                    "    (what the Image Builder build reported; its full log is in the image's workflow steps: \
                     `aws imagebuilder list-workflow-executions --image-build-version-arn <arn>`)\n",
                );
            }
        }
        None => text.push_str("  CloudFormation gave no reason for the failure.\n"),
    }
    text.push_str(&format!(
        "Stack {stack} is {status}.\n  next: {}",
        next_step(&status, &spec, &stack)
    ));
    ui.say(text);
    codes::FAILED
}

fn print_outputs(ui: &mut Ui, plan: &Plan, stack: &Stack) {
    for (key, value) in &stack.outputs {
        let node = spec_node(plan, key)
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        ui.say(format!("  {key} = {value}{node}"));
    }
}

/// `bake status`: the stack's state, outputs and AMIs, whether it runs the spec as compiled now, and (with
/// `--watch`) the operation in progress.
pub async fn status<C: Cfn>(cfn: &C, target: &Target<'_>, options: Options, ui: &mut Ui) -> u8 {
    let stack = target.stack().to_owned();
    let s = match cfn.describe_stack(&stack).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            ui.json_line(&json!({"stack": stack, "exists": false}));
            ui.say(format!(
                "Stack {stack} does not exist in {}; `bake deploy {}` creates it.",
                target.plan.stack.region, target.spec
            ));
            return exit::OK;
        }
        Err(e) => return env_error(ui, &format!("cannot describe stack {stack}"), &e),
    };
    if options.watch && Category::of(&s.status) == Category::InProgress {
        ui.say(format!("Stack {stack} is {}; watching.", s.status));
        let baseline = Baseline {
            since_ms: 0,
            seen: HashSet::new(),
        };
        let last_start = last_operation_start(cfn, &s.id, &stack).await;
        let baseline = Baseline {
            since_ms: last_start,
            ..baseline
        };
        let goal = if s.status.starts_with("DELETE") {
            Goal::Destroy
        } else {
            Goal::Deploy
        };
        let end = watch(cfn, &s.id, &stack, baseline, ui).await;
        return finish(target, ui, end, goal);
    }
    let in_sync = match cfn.get_template(&s.id).await {
        _ if s.status == "REVIEW_IN_PROGRESS" => None,
        Ok(Some(body)) => {
            let deployed: Option<Value> = serde_json::from_str(&body).ok();
            let compiled: Option<Value> = serde_json::from_str(target.template).ok();
            Some(deployed.is_some() && deployed == compiled)
        }
        _ => None,
    };
    ui.json_line(&json!({
        "stack": stack, "exists": true, "id": s.id, "status": s.status, "reason": s.status_reason,
        "outputs": s.outputs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "matches_spec": in_sync,
    }));
    let mut text = format!("Stack {stack} ({}): {}", target.plan.stack.region, s.status);
    if let Some(r) = s.status_reason.as_deref().filter(|r| !r.is_empty()) {
        text.push_str(&format!(" — {}", clean_reason(r)));
    }
    ui.say(text);
    print_outputs(ui, target.plan, &s);
    match in_sync {
        Some(true) => ui.say("The deployed template matches the spec."),
        Some(false) => ui.say(format!(
            "The deployed template differs from the spec: `bake plan {}` shows how.",
            target.spec
        )),
        None => {}
    }
    match Category::of(&s.status) {
        Category::Failed | Category::Pending => {
            ui.say(format!(
                "  next: {}",
                next_step(&s.status, &target.spec, &stack)
            ));
        }
        Category::InProgress => ui.say(format!(
            "  An operation is in progress: `bake status {} --watch` follows it.",
            target.spec
        )),
        _ => {}
    }
    exit::OK
}

/// The time of the newest stack-level "User Initiated" event: where the current operation began.
async fn last_operation_start<C: Cfn>(cfn: &C, stack_id: &str, stack_name: &str) -> i64 {
    let events = cfn
        .stack_events(stack_id, i64::MAX)
        .await
        .unwrap_or_default();
    events
        .iter()
        .find(|e| {
            e.logical_id == stack_name
                && Category::of(&e.status) == Category::InProgress
                && e.reason.as_deref() == Some("User Initiated")
        })
        .map_or(0, |e| e.timestamp_ms)
}

/// `bake destroy`: delete the stack, with confirmation, and watch.
pub async fn destroy<C: Cfn>(cfn: &C, target: &Target<'_>, options: Options, ui: &mut Ui) -> u8 {
    let stack = target.stack().to_owned();
    let s = match cfn.describe_stack(&stack).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            ui.say(format!("Stack {stack} does not exist; nothing to destroy."));
            return exit::OK;
        }
        Err(e) => return env_error(ui, &format!("cannot describe stack {stack}"), &e),
    };
    if Category::of(&s.status) == Category::InProgress {
        ui.say(format!(
            "error: stack {stack} is busy ({}); wait for it: `bake status {} --watch`",
            s.status, target.spec
        ));
        return exit::ENV;
    }
    if !options.yes {
        let question = format!(
            "Delete stack {stack} ({}) in {} and every resource in it?",
            s.status, target.plan.stack.region
        );
        match (ui.confirm)(&question) {
            Some(true) => {}
            None => {
                ui.say("error: no terminal to confirm on; pass --yes to destroy without confirmation. Nothing was changed.");
                return codes::NOT_CONFIRMED;
            }
            Some(false) => {
                ui.say("Declined; nothing was changed.");
                return codes::NOT_CONFIRMED;
            }
        }
    }
    let baseline = baseline(cfn, &s.id).await;
    if let Err(e) = cfn.delete_stack(&s.id).await {
        return env_error(ui, &format!("cannot delete stack {stack}"), &e);
    }
    if options.detach {
        ui.say(format!(
            "Deleting stack {stack}; follow it with `bake status {} --watch`.",
            target.spec
        ));
        return exit::OK;
    }
    let end = watch(cfn, &s.id, &stack, baseline, ui).await;
    finish(target, ui, end, Goal::Destroy)
}
