//! Applies one environment's overrides to the tree. An override replaces the value it overrides and keeps its own
//! span, so `check` blames the environment for what is wrong with it.

use super::Declared;
use crate::source::Spanned;
use crate::spec::{Item, Tree, Value, schema};

/// The spec as this environment deploys it. `base` has no `environment` nodes.
pub(super) fn apply(base: &Tree, env: &Declared<'_>) -> Tree {
    let mut tree = base.clone();
    for item in &mut tree.items {
        match item.name() {
            "stack" => stack(item, env),
            "fleet" => {
                let name = item.arg_str(0).map(|n| n.value);
                if let Some(over) = env
                    .item
                    .children_named("fleet")
                    .find(|o| o.arg_str(0).map(|n| n.value) == name)
                {
                    fleet(item, over);
                }
            }
            _ => {}
        }
    }
    // The environment's stack set replaces the spec's (or gives it one); it keeps its spans, so the stack set
    // check blames the environment.
    if let Some(set) = env.item.child("stack-set") {
        match tree.items.iter().position(|i| i.name() == "stack-set") {
            Some(i) => tree.items[i] = set.clone(),
            None => tree.items.push(set.clone()),
        }
    }
    tree
}

fn stack(stack: &mut Item, env: &Declared<'_>) {
    let name = match env.item.child("stack-name").and_then(|c| c.arg_str(0)) {
        Some(given) => Some(given),
        None => stack
            .arg_str(0)
            .map(|base| Spanned::new(format!("{}-{}", base.value, env.name.value), env.name.span)),
    };
    if let Some(name) = name {
        stack.args = vec![Spanned::new(Value::Str(name.value), name.span)];
    }
    // Several regions or accounts are reported in `check_declarations`; the first one is checked here.
    for prop in ["region", "account"] {
        if let Some(value) = env.item.child(prop).and_then(|c| c.args.first().cloned()) {
            let key = schema_prop(stack, prop);
            stack.props.push((key, value));
        }
    }
    if let Some(tags) = env.item.child("tags") {
        let index = match stack.children.iter().position(|c| c.name() == "tags") {
            Some(i) => i,
            None => {
                let Some(schema) = stack.schema.child("tags") else {
                    return;
                };
                stack.children.push(Item {
                    schema,
                    name_span: tags.name_span,
                    span: tags.span,
                    args: Vec::new(),
                    props: Vec::new(),
                    free_props: Vec::new(),
                    children: Vec::new(),
                    rejected: Vec::new(),
                });
                stack.children.len() - 1
            }
        };
        let target = &mut stack.children[index];
        for (key, value) in &tags.free_props {
            match target
                .free_props
                .iter_mut()
                .find(|(k, _)| k.value == key.value)
            {
                Some(existing) => existing.1 = value.clone(),
                None => target.free_props.push((key.clone(), value.clone())),
            }
        }
    }
}

/// The `&'static str` the schema uses for a property name (the tree keys properties by it).
fn schema_prop(item: &Item, name: &str) -> &'static str {
    item.schema
        .prop(name)
        .map_or("", |p: &'static schema::Prop| p.name)
}

fn fleet(fleet: &mut Item, over: &Item) {
    if let Some(value) = over.props.iter().rev().find(|(n, _)| *n == "instance-type") {
        let key = schema_prop(fleet, "instance-type");
        fleet.props.push((key, value.1.clone()));
    }
    if let Some(size) = fleet.children.iter_mut().find(|c| c.name() == "size") {
        for name in ["min", "max", "desired"] {
            if let Some((_, value)) = over.props.iter().rev().find(|(n, _)| *n == name) {
                let key = schema_prop(size, name);
                size.props.push((key, value.clone()));
            }
        }
    }
    for child in ["subnets", "security-groups", "rollout"] {
        if let Some(replacement) = over.child(child) {
            fleet.children.retain(|c| c.name() != child);
            fleet.children.push(replacement.clone());
        }
    }
}
