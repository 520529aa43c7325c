//! `bake status`: the stack's state, outputs and AMIs, whether it matches the spec, and `--watch`.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::cfn::Cfn;
use super::events::{Category, clean_reason, next_step};
use super::watch::{Baseline, Goal, finish, print_outputs, watch};
use super::{Options, Target, Ui, account_of, env_error};
use crate::exit;

/// `bake status`: the stack's state, outputs and AMIs, whether it runs the spec as compiled now, and (with
/// `--watch`) the operation in progress.
pub async fn status<C: Cfn>(cfn: &C, target: &Target<'_>, options: Options, ui: &mut Ui) -> u8 {
    let stack = target.stack().to_owned();
    let s = match cfn.describe_stack(&stack).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            ui.json_line(&json!({"stack": stack, "region": target.region, "exists": false}));
            ui.say(format!(
                "Stack {stack} does not exist in {}; `bake deploy {}` creates it.",
                target.region, target.spec
            ));
            return exit::OK;
        }
        Err(e) => return env_error(ui, &format!("cannot describe stack {stack}"), &e),
    };
    if options.watch && Category::of(&s.status) == Category::InProgress {
        ui.say(format!(
            "Stack {stack} in {} is {}; watching.",
            target.place(&s.id),
            s.status
        ));
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
        let end = watch(cfn, &s.id, &stack, baseline, options.timeout, ui).await;
        return finish(target, &s.id, ui, end, goal);
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
        "stack": stack, "region": target.region, "account": account_of(&s.id), "exists": true, "id": s.id, "status": s.status, "reason": s.status_reason,
        "outputs": s.outputs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "matches_spec": in_sync,
    }));
    let mut text = format!("Stack {stack} in {}: {}", target.place(&s.id), s.status);
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
