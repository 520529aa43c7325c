//! The `stack` node: the stack's name, region, account and tags.

use super::plan::StackPlan;
use crate::spec::Item;

pub(super) fn stack_plan(item: &Item) -> Option<StackPlan> {
    Some(StackPlan {
        name: item.arg_str(0)?.value,
        region: item.str("region")?.value,
        account: item.str("account").map(|a| a.value),
        tags: item
            .child("tags")
            .map(|t| {
                t.free_props
                    .iter()
                    .map(|(k, v)| (k.value.clone(), v.value.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    })
}
