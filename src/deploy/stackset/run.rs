//! The four commands for a stack set.

use std::io::Write;

use serde_json::{Value, json};

use super::SetOptions;
use super::api::{Instance, Selection, StackSet, StackSets};
use super::diff::{Change, Diff, Row, diff};
use super::wait::{Outcome, report_failures, wait};
use crate::check::stackset::StackSetPlan;
use crate::deploy::events::clean_reason;
use crate::deploy::template_store::compact;
use crate::deploy::{Options, Target, Ui, env_error};
use crate::exit;

/// The stack set's state: the set (if any) and its instances.
struct Current {
    set: Option<StackSet>,
    instances: Vec<Instance>,
}

fn the_set<'a>(target: &'a Target<'_>, ui: &mut Ui) -> Result<&'a StackSetPlan, u8> {
    target.plan.stack_set.as_ref().ok_or_else(|| {
        ui.error("error: bake bug: a stack-set command for a spec without `stack-set`");
        exit::BUG
    })
}

async fn read<S: StackSets>(
    sets: &S,
    set: &StackSetPlan,
    target: &Target<'_>,
    ui: &mut Ui,
) -> Result<Current, u8> {
    let name = target.stack();
    let found = sets
        .describe(set, name)
        .await
        .map_err(|e| env_error(ui, &format!("cannot describe stack set {name}"), &e))?;
    let instances = match &found {
        None => Vec::new(),
        Some(_) => sets.instances(set, name).await.map_err(|e| {
            env_error(
                ui,
                &format!("cannot list the stack instances of {name}"),
                &e,
            )
        })?,
    };
    Ok(Current {
        set: found,
        instances,
    })
}

fn compute(set: &StackSetPlan, target: &Target<'_>, current: &Current) -> Diff {
    diff(
        set,
        current.set.is_some(),
        current
            .set
            .as_ref()
            .and_then(|s| s.template_body.as_deref()),
        target.template,
        &current.instances,
    )
}

/// "111111111111" or "ou-ab12-cdefgh34 (account 111111111111)".
fn who(row: &Row) -> String {
    match &row.account {
        Some(a) if *a != row.target => format!("{} (account {a})", row.target),
        Some(a) => a.clone(),
        None => format!("{} (its accounts)", row.target),
    }
}

fn state(i: &Instance) -> String {
    let mut s = i.status.clone();
    if let Some(d) = &i.detailed_status {
        s.push('/');
        s.push_str(d);
    }
    if let Some(d) = i.drift.as_deref().filter(|d| *d != "NOT_CHECKED") {
        s.push_str(&format!(", drift {d}"));
    }
    s
}

fn row_json(row: &Row) -> Value {
    json!({
        "target": row.target,
        "account": row.account,
        "region": row.region,
        "status": row.existing.as_ref().map(|i| &i.status),
        "detailed_status": row.existing.as_ref().and_then(|i| i.detailed_status.as_ref()),
        "drift": row.existing.as_ref().and_then(|i| i.drift.as_ref()),
        "reason": row.existing.as_ref().and_then(|i| i.status_reason.as_ref()),
        "change": row.change.word(),
        "changes": row.details,
    })
}

fn header(set: &StackSetPlan, target: &Target<'_>) -> String {
    format!(
        "Stack set {} in {} ({}, {} target(s) × {} region(s): {})",
        target.stack(),
        target.region,
        set.permission.model(),
        set.permission.targets().len(),
        set.regions.len(),
        set.regions.join(", ")
    )
}

fn print_plan(set: &StackSetPlan, target: &Target<'_>, d: &Diff, ui: &mut Ui) {
    if ui.json.is_some() {
        ui.json_line(&json!({
            "stack_set": target.stack(),
            "region": target.region,
            "permission_model": set.permission.model(),
            "create": d.create_set,
            "template_changed": d.template_changed,
            "resources": d.resources,
            "instances": d.rows.iter().map(row_json).collect::<Vec<_>>(),
        }));
        return;
    }
    let mut text = format!("{}:\n", header(set, target));
    text.push_str(if d.create_set {
        "  template: new stack set\n"
    } else if d.template_changed {
        "  template: changed (UpdateStackSet updates every instance)\n"
    } else {
        "  template: unchanged\n"
    });
    for r in &d.resources {
        text.push_str(&format!("    {r}\n"));
    }
    for row in &d.rows {
        let now = row.existing.as_ref().map(state).unwrap_or_default();
        text.push_str(&format!(
            "  {} {:<40} {:<16} {:<28} {}\n",
            row.change.sign(),
            who(row),
            row.region,
            now,
            row.change.word()
        ));
        if let Some(reason) = row
            .existing
            .as_ref()
            .and_then(|i| i.status_reason.as_deref())
            .filter(|r| !r.is_empty())
        {
            text.push_str(&format!("      reason: {}\n", clean_reason(reason)));
        }
        for detail in &row.details {
            text.push_str(&format!("      {detail}\n"));
        }
    }
    text.push_str(&format!(
        "Plan: {} stack instance(s) to create, {} to update, {} unchanged, {} not in the spec.\n",
        d.count(Change::Create),
        d.count(Change::Update),
        d.count(Change::Unchanged),
        d.count(Change::Remove)
    ));
    let _ = write!(ui.out, "{text}");
}

fn removal_hint(d: &Diff, target: &Target<'_>, options: SetOptions, ui: &mut Ui) {
    let n = d.count(Change::Remove);
    if n > 0 && !options.delete_instances {
        ui.error(format!(
            "warning: {n} stack instance(s) are no longer in the spec and are kept; `bake deploy {} --delete-instances` deletes them (and their stacks' resources)",
            target.spec
        ));
    }
}

/// `bake plan` for a stack set.
pub async fn plan<S: StackSets>(
    sets: &S,
    target: &Target<'_>,
    options: Options,
    ui: &mut Ui,
) -> u8 {
    let set = match the_set(target, ui) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let current = match read(sets, set, target, ui).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let d = compute(set, target, &current);
    print_plan(set, target, &d, ui);
    removal_hint(&d, target, SetOptions::default(), ui);
    if options.detailed_exitcode && d.has_changes(true) {
        exit::CHANGES
    } else {
        exit::OK
    }
}

/// The stack's tags without `Name` (as `deploy::prepare` does for a plain stack: a stack `Name` would compete with
/// the `Name` the template gives fleet groups).
fn tags(target: &Target<'_>) -> Vec<(String, String)> {
    target
        .plan
        .stack
        .tags
        .iter()
        .filter(|(k, _)| k != "Name")
        .cloned()
        .collect()
}

/// Waits on one operation and says how it went; `Err` with the exit code when it did not succeed.
#[allow(clippy::too_many_arguments)]
/// Deletes the stack instances of each selection, one operation each, and follows it to its end.
async fn delete_instances<S: StackSets>(
    sets: &S,
    set: &StackSetPlan,
    name: &str,
    target: &Target<'_>,
    selections: &[Selection],
    options: Options,
    ui: &mut Ui,
) -> Result<(), u8> {
    for which in selections {
        let (targets, regions) = (which.targets.join(", "), which.regions.join(", "));
        let id = sets.delete_instances(set, name, which).await.map_err(|e| {
            env_error(
                ui,
                &format!("cannot delete the stack instances of {targets} in {regions}"),
                &e,
            )
        })?;
        ui.say(format!(
            "Deleting stack instances of {targets} in {regions} (operation {id})."
        ));
        follow(sets, set, target, &id, "delete instances", options, ui).await?;
    }
    Ok(())
}

async fn follow<S: StackSets>(
    sets: &S,
    set: &StackSetPlan,
    target: &Target<'_>,
    id: &str,
    what: &str,
    options: Options,
    ui: &mut Ui,
) -> Result<(), u8> {
    match wait(sets, set, target.stack(), id, what, options.timeout, ui).await? {
        Outcome::Succeeded(results) => {
            // An operation can succeed within its failure tolerance and still have failed instances.
            report_failures(&results, ui);
            Ok(())
        }
        Outcome::Failed {
            status,
            reason,
            results,
        } => {
            let reason = reason
                .map(|r| format!(" ({})", clean_reason(&r)))
                .unwrap_or_default();
            ui.error(format!(
                "error: {what} of stack set {} {status}{reason}:",
                target.stack()
            ));
            let failed = report_failures(&results, ui);
            ui.error(format!(
                "  {failed} stack instance(s) did not succeed; fix the cause and run `bake deploy {}` again (`bake status {}` lists every instance)",
                target.spec, target.spec
            ));
            ui.json_line(&json!({"type": "result", "ok": false, "status": status}));
            Err(exit::FAILED)
        }
    }
}

/// `bake deploy` for a stack set.
pub async fn deploy<S: StackSets>(
    sets: &S,
    target: &Target<'_>,
    options: Options,
    set_options: SetOptions,
    ui: &mut Ui,
) -> u8 {
    match deploy_inner(sets, target, options, set_options, ui).await {
        Ok(()) | Err(exit::OK) => exit::OK,
        Err(code) => code,
    }
}

async fn deploy_inner<S: StackSets>(
    sets: &S,
    target: &Target<'_>,
    options: Options,
    set_options: SetOptions,
    ui: &mut Ui,
) -> Result<(), u8> {
    let set = the_set(target, ui)?;
    let name = target.stack();
    if options.no_rollback {
        ui.error("warning: --no-rollback does not apply to a stack set (StackSets operations have no such option); it is ignored");
    }
    let body = compact(target.template);
    if let Some(refusal) = target.store.refusal(&body, target.plan) {
        ui.error(refusal);
        return Err(exit::SPEC);
    }
    let current = read(sets, set, target, ui).await?;
    let d = compute(set, target, &current);
    if !d.has_changes(set_options.delete_instances) {
        ui.say(format!(
            "No changes: stack set {name} in {} is up to date in its {} instance(s).",
            target.region,
            d.count(Change::Unchanged) + d.count(Change::Update)
        ));
        removal_hint(&d, target, set_options, ui);
        ui.json_line(&json!({"type": "result", "ok": true, "status": "NO_CHANGES"}));
        return Ok(());
    }
    print_plan(set, target, &d, ui);
    removal_hint(&d, target, set_options, ui);
    let deletes = if set_options.delete_instances {
        d.count(Change::Remove)
    } else {
        0
    };
    if !options.yes {
        let mut question = format!(
            "Deploy stack set {name}: create {}, update {} stack instance(s)",
            d.count(Change::Create),
            d.count(Change::Update)
        );
        if deletes > 0 {
            question.push_str(&format!(
                ", and DELETE {deletes} (with every resource in their stacks)"
            ));
        }
        question.push('?');
        match (ui.confirm)(&question) {
            Some(true) => {}
            None => {
                ui.error("error: no terminal to confirm on; pass --yes to deploy without confirmation. Nothing was changed.");
                return Err(exit::NOT_CONFIRMED);
            }
            Some(false) => {
                ui.say("Declined; nothing was changed.");
                return Err(exit::NOT_CONFIRMED);
            }
        }
    }
    let template = match target.store.place(body, name).await {
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
    };
    let tags = tags(target);
    ui.mark_started();
    if d.create_set {
        sets.create(set, name, &template, &tags)
            .await
            .map_err(|e| env_error(ui, &format!("cannot create stack set {name}"), &e))?;
        ui.say(format!("Created stack set {name} in {}.", target.region));
    } else if d.template_changed {
        let id = sets
            .update(set, name, &template, &tags, &d.instance_regions(set))
            .await
            .map_err(|e| env_error(ui, &format!("cannot update stack set {name}"), &e))?;
        ui.say(format!(
            "Updating stack set {name} (operation {id}) in {} instance(s).",
            d.count(Change::Update)
        ));
        if options.detach {
            return detached(target, ui);
        }
        follow(sets, set, target, &id, "update", options, ui).await?;
    }
    for which in d.selections(set, Change::Create) {
        let id = sets
            .create_instances(set, name, &which)
            .await
            .map_err(|e| {
                env_error(
                    ui,
                    &format!(
                        "cannot create the stack instances of {} in {}",
                        which.targets.join(", "),
                        which.regions.join(", ")
                    ),
                    &e,
                )
            })?;
        ui.say(format!(
            "Creating stack instances for {} in {} (operation {id}).",
            which.targets.join(", "),
            which.regions.join(", ")
        ));
        if options.detach {
            return detached(target, ui);
        }
        follow(sets, set, target, &id, "create instances", options, ui).await?;
    }
    if set_options.delete_instances {
        let remove = d.selections(set, Change::Remove);
        delete_instances(sets, set, name, target, &remove, options, ui).await?;
    }
    ui.say(format!(
        "Deployed stack set {name}: `bake status {}` lists its instances.",
        target.spec
    ));
    ui.json_line(&json!({"type": "result", "ok": true, "status": "SUCCEEDED"}));
    Ok(())
}

fn detached(target: &Target<'_>, ui: &mut Ui) -> Result<(), u8> {
    ui.say(format!(
        "Started; follow the instances with `bake status {}` and run `bake deploy {}` again for the remaining steps.",
        target.spec, target.spec
    ));
    Err(exit::OK)
}

/// `bake status` for a stack set: each instance (account, region, status, detailed status, drift), whether the
/// deployed template is the spec's, and which instances the spec wants that do not exist.
pub async fn status<S: StackSets>(
    sets: &S,
    target: &Target<'_>,
    options: Options,
    ui: &mut Ui,
) -> u8 {
    let set = match the_set(target, ui) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut current = match read(sets, set, target, ui).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    // `--watch`: while an instance is PENDING or RUNNING, read them again (every 5 s, bounded like `wait`).
    let start = std::time::Instant::now();
    while options.watch && busy(&current.instances) {
        if start.elapsed() >= super::wait::MAX_WAIT {
            ui.error("error: the stack set's instances are still busy after 24 hours; bake stops watching (the operation goes on in AWS)");
            return exit::ENV;
        }
        ui.mark_started();
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        current = match read(sets, set, target, ui).await {
            Ok(c) => c,
            Err(code) => return code,
        };
    }
    let name = target.stack();
    if current.set.is_none() {
        ui.json_line(&json!({"stack_set": name, "region": target.region, "exists": false}));
        ui.say(format!(
            "Stack set {name} does not exist in {}; `bake deploy {}` creates it.",
            target.region, target.spec
        ));
        return exit::OK;
    }
    let d = compute(set, target, &current);
    let matches = !d.template_changed;
    if ui.json.is_some() {
        ui.json_line(&json!({
            "stack_set": name, "region": target.region, "exists": true,
            "id": current.set.as_ref().map(|s| &s.id),
            "matches_spec": matches,
            "instances": d.rows.iter().map(row_json).collect::<Vec<_>>(),
        }));
        return exit::OK;
    }
    let mut text = format!("{}:\n", header(set, target));
    for row in &d.rows {
        let line = match &row.existing {
            Some(i) => state(i),
            None => "missing: `bake deploy` creates it".to_owned(),
        };
        let note = if row.change == Change::Remove {
            "  (not in the spec)"
        } else {
            ""
        };
        text.push_str(&format!(
            "  {:<40} {:<16} {line}{note}\n",
            who(row),
            row.region
        ));
        if let Some(reason) = row
            .existing
            .as_ref()
            .and_then(|i| i.status_reason.as_deref())
            .filter(|r| !r.is_empty())
        {
            text.push_str(&format!("      reason: {}\n", clean_reason(reason)));
        }
    }
    text.push_str(if matches {
        "The stack set's template matches the spec.\n"
    } else {
        "The stack set's template differs from the spec: `bake plan` shows how.\n"
    });
    if busy(&current.instances) {
        text.push_str(&format!(
            "  An operation is in progress: `bake status {} --watch` follows it.\n",
            target.spec
        ));
    }
    let _ = write!(ui.out, "{text}");
    exit::OK
}

/// Whether an operation is under way in some instance.
fn busy(instances: &[Instance]) -> bool {
    instances
        .iter()
        .any(|i| matches!(i.detailed_status.as_deref(), Some("PENDING" | "RUNNING")))
}

/// `bake destroy` for a stack set: delete every stack instance (their stacks and resources), then the set.
pub async fn destroy<S: StackSets>(
    sets: &S,
    target: &Target<'_>,
    options: Options,
    ui: &mut Ui,
) -> u8 {
    match destroy_inner(sets, target, options, ui).await {
        Ok(()) | Err(exit::OK) => exit::OK,
        Err(code) => code,
    }
}

async fn destroy_inner<S: StackSets>(
    sets: &S,
    target: &Target<'_>,
    options: Options,
    ui: &mut Ui,
) -> Result<(), u8> {
    let set = the_set(target, ui)?;
    let name = target.stack();
    let current = read(sets, set, target, ui).await?;
    if current.set.is_none() {
        ui.say(format!(
            "Stack set {name} does not exist in {}; nothing to destroy.",
            target.region
        ));
        return Ok(());
    }
    // Every existing instance, whether the spec still names it or not.
    let all = Diff {
        create_set: false,
        template_changed: false,
        resources: Vec::new(),
        rows: compute(set, target, &current)
            .rows
            .into_iter()
            .filter(|r| r.existing.is_some())
            .map(|r| Row {
                change: Change::Remove,
                ..r
            })
            .collect(),
    };
    if !options.yes {
        let question = format!(
            "Delete stack set {name} in {} and its {} stack instance(s), with every resource in their stacks?",
            target.region,
            all.rows.len()
        );
        match (ui.confirm)(&question) {
            Some(true) => {}
            None => {
                ui.error("error: no terminal to confirm on; pass --yes to destroy without confirmation. Nothing was changed.");
                return Err(exit::NOT_CONFIRMED);
            }
            Some(false) => {
                ui.say("Declined; nothing was changed.");
                return Err(exit::NOT_CONFIRMED);
            }
        }
    }
    ui.mark_started();
    let remove = all.selections(set, Change::Remove);
    delete_instances(sets, set, name, target, &remove, options, ui).await?;
    sets.delete(set, name)
        .await
        .map_err(|e| env_error(ui, &format!("cannot delete stack set {name}"), &e))?;
    ui.say(format!("Deleted stack set {name} in {}.", target.region));
    ui.json_line(&json!({"type": "result", "ok": true, "status": "DELETED"}));
    Ok(())
}
