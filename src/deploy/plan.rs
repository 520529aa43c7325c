//! `bake plan`, and the printing of a plan that `bake deploy` shares.

use std::io::Write;

use serde_json::json;

use super::cfn::Cfn;
use super::changeset;
use super::prepare::{Prepared, cleanup, prepare};
use super::{Options, Target, Ui, account_of};
use crate::exit;

/// The plan as text on `out`, or as one JSON object (with the region and account it is for).
pub(super) fn print_plan(
    ui: &mut Ui,
    target: &Target<'_>,
    stack_id: &str,
    create: bool,
    planned: &[changeset::Planned],
) {
    let stack = target.stack();
    if ui.json.is_some() {
        let mut v = changeset::to_json(stack, create, planned);
        if let Some(o) = v.as_object_mut() {
            o.insert("region".into(), json!(target.region));
            o.insert("account".into(), json!(account_of(stack_id)));
            let promotions = changeset::promotions(target.plan);
            if !promotions.is_empty() {
                o.insert("promotions".into(), json!(promotions));
            }
        }
        ui.json_line(&v);
    } else {
        let text = changeset::render(stack, &target.place(stack_id), create, planned);
        let _ = write!(ui.out, "{text}");
        for line in changeset::promotions(target.plan) {
            let _ = writeln!(ui.out, "  {line}");
        }
    }
}

pub(super) fn print_no_changes(ui: &mut Ui, target: &Target<'_>, stack_id: &str, why: &str) {
    if ui.json.is_some() {
        print_plan(ui, target, stack_id, false, &[]);
    }
    ui.say(format!(
        "No changes: stack {} in {} is up to date ({why}).",
        target.stack(),
        target.place(stack_id)
    ));
}

/// `bake plan`: what would change, without changing anything.
pub async fn plan<C: Cfn>(cfn: &C, target: &Target<'_>, options: Options, ui: &mut Ui) -> u8 {
    match prepare(cfn, target, ui).await {
        Err(code) => code,
        Ok(Prepared::NoChanges { why, stack_id }) => {
            print_no_changes(ui, target, &stack_id, why);
            exit::OK
        }
        Ok(Prepared::Changes {
            change_set,
            stack_id,
            create,
            planned,
        }) => {
            print_plan(ui, target, &stack_id, create, &planned);
            cleanup(cfn, &stack_id, &change_set, create, ui).await;
            if options.detailed_exitcode {
                exit::CHANGES
            } else {
                exit::OK
            }
        }
    }
}
