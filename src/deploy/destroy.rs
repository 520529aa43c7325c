//! `bake destroy`: delete the stack, with confirmation, and watch.

use super::cfn::Cfn;
use super::events::Category;
use super::watch::{Goal, baseline, finish, watch};
use super::{Options, Target, Ui, busy, env_error};
use crate::exit;

/// `bake destroy`: delete the stack, with confirmation, and watch.
pub async fn destroy<C: Cfn>(cfn: &C, target: &Target<'_>, options: Options, ui: &mut Ui) -> u8 {
    let stack = target.stack().to_owned();
    let s = match cfn.describe_stack(&stack).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            ui.say(format!(
                "Stack {stack} does not exist in {}; nothing to destroy.",
                target.region
            ));
            return exit::OK;
        }
        Err(e) => return env_error(ui, &format!("cannot describe stack {stack}"), &e),
    };
    if Category::of(&s.status) == Category::InProgress {
        return busy(ui, target, &s.status, &s.id);
    }
    if !options.yes {
        let question = format!(
            "Delete stack {stack} ({}) in {} and every resource in it?",
            s.status,
            target.place(&s.id)
        );
        match (ui.confirm)(&question) {
            Some(true) => {}
            None => {
                ui.error("error: no terminal to confirm on; pass --yes to destroy without confirmation. Nothing was changed.");
                return exit::NOT_CONFIRMED;
            }
            Some(false) => {
                ui.say("Declined; nothing was changed.");
                return exit::NOT_CONFIRMED;
            }
        }
    }
    let baseline = baseline(cfn, &s.id).await;
    ui.mark_started();
    if let Err(e) = cfn.delete_stack(&s.id).await {
        if let Some(status) = e.busy_status() {
            return busy(ui, target, &status, &s.id);
        }
        return env_error(ui, &format!("cannot delete stack {stack}"), &e);
    }
    if options.detach {
        ui.say(format!(
            "Deleting stack {stack} in {}; follow it with `bake status {} --watch`.",
            target.place(&s.id),
            target.spec
        ));
        return exit::OK;
    }
    let end = watch(cfn, &s.id, &stack, baseline, options.timeout, ui).await;
    finish(target, &s.id, ui, end, Goal::Destroy)
}
