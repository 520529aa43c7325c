//! Following a stack operation: poll its events until it settles, print each once, and sum it up.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use super::cfn::{Cfn, CfnError, Stack, StackEvent};
use super::events::{Category, clean_reason, next_step, root_cause, spec_node};
use super::progress::{self, Progress};
use super::{Target, Ui};
use crate::aws::Kind;
use crate::check::plan::Plan;
use crate::exit;

/// The events already there before an operation: ignored by the watcher.
pub(super) struct Baseline {
    pub(super) since_ms: i64,
    pub(super) seen: HashSet<String>,
}

pub(super) async fn baseline<C: Cfn>(cfn: &C, stack: &str) -> Baseline {
    // `i64::MAX`: one page is enough, the watcher only needs the newest events' ids and time.
    let events = cfn.stack_events(stack, i64::MAX).await.unwrap_or_default();
    Baseline {
        since_ms: events.iter().map(|e| e.timestamp_ms).max().unwrap_or(0),
        seen: events.into_iter().map(|e| e.id).collect(),
    }
}

pub(super) enum WatchEnd {
    /// The stack settled (`None`: it no longer exists).
    Settled(Option<Stack>, Vec<StackEvent>),
    Lost(CfnError),
}

/// Polls events until the stack settles. Adaptive: fast while events arrive, at most a second apart when
/// quiet (so the end is noticed within a second), backing off when throttled. Contact is lost after five
/// failed polls in a row, or when no poll has been answered for `patience` (each poll is itself bounded by the
/// SDK's timeout), or at once when the credentials stop working.
pub(super) async fn watch<C: Cfn>(
    cfn: &C,
    stack_id: &str,
    stack_name: &str,
    mut baseline: Baseline,
    patience: Duration,
    ui: &mut Ui,
) -> WatchEnd {
    ui.mark_started();
    let mut printer: Box<dyn Progress + '_> = match (&mut ui.json, ui.live) {
        (Some(j), _) => Box::new(progress::Json { out: j }),
        (None, true) => Box::new(progress::Live::new()),
        (None, false) => Box::new(progress::Plain { out: &mut ui.out }),
    };
    let mut last_answer = tokio::time::Instant::now();
    let mut collected: Vec<StackEvent> = Vec::new();
    let mut zero_ms: Option<i64> = None;
    let mut delay = Duration::from_millis(250);
    let mut failures = 0u32;
    let mut polls = 0u32;
    let mut started = false;
    let end = loop {
        polls += 1;
        // Every tenth poll, ask the stack itself, in case its final event was missed — but only once this
        // operation has shown itself, so a status left from the previous operation is not taken for the end.
        let mut check_stack = started && polls.is_multiple_of(10);
        match cfn.stack_events(stack_id, baseline.since_ms).await {
            Ok(events) => {
                failures = 0;
                last_answer = tokio::time::Instant::now();
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
                last_answer = tokio::time::Instant::now();
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
                let hopeless = matches!(&e, CfnError::Transport(f)
                    if matches!(f.kind, Kind::Credentials | Kind::AccessDenied));
                if failures >= 5 || hopeless || last_answer.elapsed() >= patience {
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
        tokio::time::sleep(delay).await;
    };
    printer.finish();
    end
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Goal {
    Deploy,
    Destroy,
}

/// The final summary: success, or the root cause, the stack's state and the next command.
pub(super) fn finish(
    target: &Target<'_>,
    stack_id: &str,
    ui: &mut Ui,
    end: WatchEnd,
    goal: Goal,
) -> u8 {
    let stack = target.stack().to_owned();
    let spec = target.spec.clone();
    let place = target.place(stack_id);
    let (settled, events) = match end {
        WatchEnd::Lost(e) => {
            ui.json_line(
                &json!({"type": "result", "ok": null, "status": "unknown", "error": e.to_string()}),
            );
            ui.error(format!(
                "\nerror: lost contact with CloudFormation while watching: {e}\n  \
                 The operation on stack {stack} in {place} continues on AWS; resume watching with `bake status {spec} --watch`."
            ));
            if ui.verbose
                && let Some(detail) = e.detail()
            {
                ui.error(format!("  detail: {detail}"));
            }
            return exit::ENV;
        }
        // The stack is gone while a deployment was watched: not a failed deployment, a lost trail.
        WatchEnd::Settled(None, _) if goal == Goal::Deploy => {
            ui.json_line(&json!({"type": "result", "ok": null, "status": "not_found"}));
            ui.error(format!(
                "\nerror: lost contact: stack {stack} is no longer found in {place} while its deployment was watched \
                 (deleted by someone else, or the wrong region or account?).\n  look: `bake status {spec}`, or \
                 `aws cloudformation describe-stacks --region {region} --stack-name {id}`",
                region = target.region,
                id = if stack_id.is_empty() { stack.as_str() } else { stack_id },
            ));
            return exit::ENV;
        }
        WatchEnd::Settled(s, events) => (s, events),
    };
    // Only a deletion gets here without a stack: it is gone, as asked.
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
                ui.say(format!("\nDeployed stack {stack} in {place}: {status}."));
                if let Some(s) = &settled {
                    print_outputs(ui, target.plan, s);
                }
            }
            Goal::Destroy => ui.say(format!("\nDestroyed stack {stack} in {place}.")),
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
    let mut text = format!("\n{verb} of stack {stack} in {place} failed.\n");
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
    exit::FAILED
}

pub(super) fn print_outputs(ui: &mut Ui, plan: &Plan, stack: &Stack) {
    for (key, value) in &stack.outputs {
        let node = spec_node(plan, key)
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        ui.say(format!("  {key} = {value}{node}"));
    }
}
