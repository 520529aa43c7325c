//! Before anything changes: read the stack and its deployed template, create a change set (or find that nothing
//! changed), wait for it, and clean it up when it will not be executed.

use std::time::Duration;

use serde_json::Value;

use super::cfn::{self, Cfn, CfnError, ChangeSetKind, ChangeSetRequest};
use super::changeset;
use super::events::{Category, clean_reason, next_step};
use super::{Target, Ui, busy, env_error};
use crate::aws::{Failure, Kind};
use crate::exit;

/// CloudFormation's limit for an inline `TemplateBody`.
pub const TEMPLATE_BODY_MAX: usize = super::template_store::INLINE_MAX;

/// The stack messages CloudFormation uses for "nothing to do".
pub(super) fn is_no_change(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

/// A change set ready to execute, or the news that there is nothing to do.
pub(super) enum Prepared {
    NoChanges {
        why: &'static str,
        /// The stack's id, when it exists (for the account in messages).
        stack_id: String,
    },
    Changes {
        change_set: String,
        stack_id: String,
        /// A CREATE change set: its stack is empty (`REVIEW_IN_PROGRESS`) until it is executed.
        create: bool,
        planned: Vec<changeset::Planned>,
    },
}

fn same_tags(a: &[(String, String)], b: &[(String, String)]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

/// The tags bake puts on the stack: the spec's, without `Name`. CloudFormation propagates stack tags to the
/// resources it creates, where a stack `Name` would compete with the `Name` the template gives fleet groups and
/// their instances; left out, the template decides. AWS compares tag keys case-sensitively, so `name` stays.
fn stack_tags(tags: &[(String, String)]) -> Vec<(String, String)> {
    tags.iter().filter(|(k, _)| k != "Name").cloned().collect()
}

/// A change-set name no other run picks, and that says which run made it: `bake-20261201T094100Z-4242-0-9f3a1c7e5b2d4068`
/// (UTC time, process id, a counter, 64 random bits). CloudFormation's grammar is `[a-zA-Z][-a-zA-Z0-9]*`, at most 128.
pub fn change_set_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(now.as_secs()).unwrap_or(0);
    let time: String = crate::lock::time::rfc3339(secs)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    // `RandomState` is seeded from the operating system's randomness; hashing the clock and a counter into it
    // gives distinct values within one process too.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(now.as_nanos());
    let count = COUNT.fetch_add(1, Ordering::Relaxed);
    h.write_u64(count);
    let random = h.finish();
    // The counter makes names of one process distinct by construction; time, process id and 64 random bits keep
    // those of different runs apart (two CI jobs in the same second).
    format!("bake-{time}-{}-{count}-{random:016x}", std::process::id())
}

pub(super) async fn prepare<C: Cfn>(
    cfn: &C,
    target: &Target<'_>,
    ui: &mut Ui,
) -> Result<Prepared, u8> {
    let stack = target.stack();
    // What is sent is compact, and the limits apply to it.
    let body = super::template_store::compact(target.template);
    if let Some(refusal) = target.store.refusal(&body, target.plan) {
        ui.error(refusal);
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
                Category::InProgress => return Err(busy(ui, target, &s.status, &s.id)),
                _ if matches!(
                    s.status.as_str(),
                    "ROLLBACK_COMPLETE"
                        | "ROLLBACK_FAILED"
                        | "CREATE_FAILED"
                        | "DELETE_FAILED"
                        | "UPDATE_ROLLBACK_FAILED"
                ) =>
                {
                    ui.error(format!(
                        "error: stack {stack} in {} is in {} and cannot be updated\n  help: {}",
                        target.place(&s.id),
                        s.status,
                        next_step(&s.status, &target.spec, stack)
                    ));
                    return Err(exit::FAILED);
                }
                _ => {}
            }
            let body =
                deployed.map_err(|e| env_error(ui, "cannot read the deployed template", &e))?;
            old_template = body.and_then(|b| serde_json::from_str(&b).ok());
            if old_template.is_some()
                && old_template == new_template
                && same_tags(&s.tags, &stack_tags(&target.plan.stack.tags))
            {
                return Ok(Prepared::NoChanges {
                    why: "the deployed template is identical",
                    stack_id: s.id.clone(),
                });
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
        // After the "identical template" check, so a no-op deploy never touches S3.
        template: match target.store.place(body, stack).await {
            Ok((source, note)) => {
                if let Some(note) = note {
                    ui.say(note);
                }
                source
            }
            Err(e) => {
                ui.error(format!("error: {e}"));
                return Err(exit::ENV);
            }
        },
        tags: stack_tags(&target.plan.stack.tags),
    };
    let (id, stack_id) = match cfn.create_change_set(&request).await {
        Ok(ids) => ids,
        Err(CfnError::Service { message, .. }) if is_no_change(&message) => {
            return Ok(Prepared::NoChanges {
                why: "CloudFormation found no changes",
                stack_id: existing.map(|s| s.id).unwrap_or_default(),
            });
        }
        Err(e) if let Some(status) = e.busy_status() => {
            let id = existing.as_ref().map_or("", |s| s.id.as_str());
            return Err(busy(ui, target, &status, id));
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
            return Ok(Prepared::NoChanges {
                why: "CloudFormation found no changes",
                stack_id,
            });
        }
        ui.error(format!(
            "error: CloudFormation rejected the change set: {}",
            clean_reason(&reason)
        ));
        return Err(exit::FAILED);
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

/// How long a change set may stay `CREATE_PENDING`/`CREATE_IN_PROGRESS` (large templates take a minute or two).
const CHANGE_SET_PATIENCE: Duration = Duration::from_secs(600);

/// Waits for a change set to be created, at most [`CHANGE_SET_PATIENCE`]. Our own loop: the SDK's waiter treats
/// `FAILED`, which is how CloudFormation says "no changes", as an error.
async fn poll_change_set<C: Cfn>(
    cfn: &C,
    stack: &str,
    id: &str,
) -> Result<cfn::ChangeSet, CfnError> {
    let mut delay = Duration::from_millis(100);
    let mut throttled = 0;
    let started = tokio::time::Instant::now();
    loop {
        if started.elapsed() > CHANGE_SET_PATIENCE {
            return Err(CfnError::Transport(Failure::new(
                Kind::Timeout,
                format!(
                    "change set {id} was still being created after {} min; look with \
                     `aws cloudformation describe-change-set --stack-name {stack} --change-set-name {id}`",
                    CHANGE_SET_PATIENCE.as_secs() / 60
                ),
            )));
        }
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
pub(super) async fn cleanup<C: Cfn>(cfn: &C, stack: &str, id: &str, create: bool, ui: &mut Ui) {
    if let Err(e) = cfn.delete_change_set(stack, id).await {
        ui.error(format!("warning: could not delete change set {id}: {e}"));
    }
    if create && let Err(e) = cfn.delete_stack(stack).await {
        ui.error(format!(
            "warning: could not delete the empty stack {stack}: {e}"
        ));
    }
}
