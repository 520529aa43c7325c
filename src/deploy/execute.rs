//! `bake deploy`: plan, confirm, execute the change set, watch, explain.

use serde_json::json;

use super::cfn::{Cfn, CfnError};
use super::events::{clean_reason, next_step};
use super::plan::{print_no_changes, print_plan};
use super::prepare::{Prepared, cleanup, prepare};
use super::watch::{Goal, baseline, finish, watch};
use super::{Options, Target, Ui, busy, env_error};
use crate::exit;

/// `bake deploy`: plan, confirm, execute, watch, explain.
pub async fn deploy<C: Cfn>(cfn: &C, target: &Target<'_>, options: Options, ui: &mut Ui) -> u8 {
    let stack = target.stack().to_owned();
    let (change_set, stack_id, create, planned) = match prepare(cfn, target, ui).await {
        Err(code) => return code,
        Ok(Prepared::NoChanges { why, stack_id }) => {
            print_no_changes(ui, target, &stack_id, why);
            return exit::OK;
        }
        Ok(Prepared::Changes {
            change_set,
            stack_id,
            create,
            planned,
        }) => (change_set, stack_id, create, planned),
    };
    print_plan(ui, target, &stack_id, create, &planned);
    if !options.yes {
        let question = format!(
            "Deploy these changes to stack {stack} in {}?",
            target.place(&stack_id)
        );
        match (ui.confirm)(&question) {
            Some(true) => {}
            answer => {
                cleanup(cfn, &stack_id, &change_set, create, ui).await;
                match answer {
                    None => ui.error("error: no terminal to confirm on; pass --yes to deploy without confirmation. Nothing was changed."),
                    _ => ui.say("Declined. The change set was deleted; nothing was changed."),
                }
                return exit::NOT_CONFIRMED;
            }
        }
    }
    let baseline = baseline(cfn, &stack_id).await;
    ui.mark_started();
    if let Err(e) = cfn
        .execute_change_set(&stack_id, &change_set, options.no_rollback)
        .await
    {
        // Refused by the service: nothing goes on in AWS after all (a later Ctrl-C must not say it does). A
        // call that got no answer may have started the operation: that stays "started".
        if !matches!(e, CfnError::Transport(_)) {
            ui.started.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        return rejected(cfn, target, ui, &stack_id, create, &e).await;
    }
    if options.detach {
        ui.say(format!(
            "Deploying stack {stack} in {}; follow it with `bake status {} --watch`.",
            target.place(&stack_id),
            target.spec
        ));
        return exit::OK;
    }
    let end = watch(cfn, &stack_id, &stack, baseline, options.timeout, ui).await;
    finish(target, &stack_id, ui, end, Goal::Deploy)
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
        let code = env_error(ui, "cannot execute the change set", e);
        ui.error(format!(
            "  The request may have reached CloudFormation: `bake status {} --watch` shows whether the stack is changing.",
            target.spec
        ));
        return code;
    }
    // Another operation started between the plan and the execution: busy, as when bake sees it first.
    if let Some(status) = e.busy_status() {
        return busy(ui, target, &status, stack_id);
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
        "\nDeployment of stack {} in {} failed: CloudFormation rejected the execution:\n  {message}\nStack {} is {status}.\n  next: {}",
        target.stack(),
        target.place(stack_id),
        target.stack(),
        next_step(&status, &target.spec, target.stack())
    ));
    exit::FAILED
}
