//! `bake plan`, and the printing of a plan that `bake deploy` shares.

use super::cfn::Cfn;
use super::changeset;
use super::prepare::{Prepared, cleanup, prepare};
use super::{Options, Target, Ui};
use crate::exit;

pub(super) fn print_plan(ui: &mut Ui, stack: &str, create: bool, planned: &[changeset::Planned]) {
    if ui.json.is_some() {
        ui.json_line(&changeset::to_json(stack, create, planned));
    } else {
        let text = changeset::render(stack, create, planned);
        let _ = write!(ui.out, "{text}");
    }
}

pub(super) fn print_no_changes(ui: &mut Ui, stack: &str, why: &str) {
    if ui.json.is_some() {
        ui.json_line(&changeset::to_json(stack, false, &[]));
    }
    ui.say(format!("No changes: stack {stack} is up to date ({why})."));
}

/// `bake plan`: what would change, without changing anything.
pub async fn plan<C: Cfn>(cfn: &C, target: &Target<'_>, options: Options, ui: &mut Ui) -> u8 {
    let stack = target.stack().to_owned();
    match prepare(cfn, target, ui).await {
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
                exit::CHANGES
            } else {
                exit::OK
            }
        }
    }
}
