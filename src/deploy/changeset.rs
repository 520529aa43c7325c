//! A change set read the way a reviewer needs it: grouped into add / change / remove, replacements shouted,
//! IAM and security changes flagged, and each change tied to the spec node and the spec-level reason behind it.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::check::plan::{Plan, Rollout};

use super::cfn::ResourceChange;
use super::events::{SpecNode, spec_node};

/// One resource change with what bake knows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub change: ResourceChange,
    pub node: Option<SpecNode>,
    /// An IAM or network-security resource.
    pub sensitive: bool,
    pub reasons: Vec<String>,
}

impl Planned {
    pub fn replaced(&self) -> bool {
        self.change.replacement.as_deref() == Some("True")
    }

    fn maybe_replaced(&self) -> bool {
        self.change.replacement.as_deref() == Some("Conditional")
    }
}

fn is_sensitive(resource_type: &str) -> bool {
    resource_type.starts_with("AWS::IAM::")
        || resource_type == "AWS::EC2::SecurityGroup"
        || resource_type.starts_with("AWS::EC2::SecurityGroup")
}

/// `Metadata.bake.images.<name>.<key>` of a template.
fn image_meta<'a>(template: Option<&'a Value>, image: &str, key: &str) -> Option<&'a str> {
    template?
        .pointer(&format!("/Metadata/bake/images/{image}/{key}"))
        .and_then(Value::as_str)
}

fn short(v: &str) -> &str {
    if v.len() == 40 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        &v[..12]
    } else {
        v
    }
}

/// Why an image's resources change, from the templates' bake metadata.
fn image_reasons(old: Option<&Value>, new: Option<&Value>, image: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (key, what) in [
        ("flake-rev", "flake revision"),
        ("base-ami", "base AMI"),
        ("system-manager", "system-manager"),
        ("pinned-ami", "pinned AMI"),
        ("nixos-ami", "NixOS AMI"),
    ] {
        let (a, b) = (image_meta(old, image, key), image_meta(new, image, key));
        if key == "base-ami"
            && a.is_some_and(|a| Some(a) != b)
            && let Some(words) = release_change(old, new, image)
        {
            out.push(format!(
                "base AMI {} → {}: {words}",
                a.unwrap_or_default(),
                b.unwrap_or_default()
            ));
            continue;
        }
        match (a, b) {
            (Some(a), Some(b)) if a != b => out.push(format!("{what} {} → {}", short(a), short(b))),
            (None, Some(b)) if old.is_some() && key != "system-manager" => {
                out.push(format!("{what} now {}", short(b)));
            }
            _ => {}
        }
    }
    if let (Some(from), Some(ami)) = (
        image_meta(new, image, "promoted-from"),
        image_meta(new, image, "pinned-ami"),
    ) && image_meta(old, image, "pinned-ami") != Some(ami)
    {
        // A promoted AMI is not a new image: say where it was tested instead of "pinned AMI a → b".
        out.retain(|r| !r.starts_with("pinned AMI"));
        let since = image_meta(new, image, "tested-since").unwrap_or("an unknown time");
        out.push(format!("AMI {ami} from {from}, tested since {since}"));
    }
    out
}

/// A base AMI change in AL2023 release terms, when both templates name the AMIs (`base-ami-name`).
fn release_change(old: Option<&Value>, new: Option<&Value>, image: &str) -> Option<String> {
    use crate::lock::ami::{Release, describe_change, parse_name};
    let a = parse_name(image_meta(old, image, "base-ami-name")?)?;
    let b = parse_name(image_meta(new, image, "base-ami-name")?)?;
    Some(describe_change(
        &Release::from_name(&a),
        &Release::from_name(&b),
    ))
}

/// "image \"web\": AMI ami-… from staging, tested since …" for each promoted image of the plan.
pub fn promotions(plan: &Plan) -> Vec<String> {
    plan.images
        .iter()
        .filter_map(|image| {
            let p = image.promoted.as_ref()?;
            let crate::check::plan::ImageSource::Pinned { ami } = &image.source else {
                return None;
            };
            Some(format!(
                "image \"{}\": AMI {ami} from {}, tested since {} (not rebuilt)",
                image.name.value, p.from, p.tested_since
            ))
        })
        .collect()
}

fn rollout_reason(plan: &Plan, fleet: &str) -> Option<String> {
    let fleet = plan.fleets.iter().find(|f| f.name.value == fleet)?;
    let n = fleet.desired.unwrap_or(fleet.min);
    Some(match &fleet.rollout {
        Rollout::Rolling {
            max_batch,
            min_in_service,
            pause,
            signals,
            ..
        } => {
            let mut s = format!(
                "the group rolls {n} instance(s) in batches of {max_batch}, keeping {min_in_service} in service"
            );
            if let Some(p) = pause {
                let _ = write!(s, ", pausing {p} after each batch");
            }
            if signals.is_some() {
                s.push_str(", each batch waiting for its instances to signal");
            }
            s
        }
        Rollout::Replacing { .. } => {
            format!("a new group of {n} instance(s) replaces the old one once they signal success")
        }
        Rollout::InstanceRefresh { min_healthy, .. } => format!(
            "an instance refresh replaces the group's {n} instance(s), keeping {min_healthy}% healthy"
        ),
    })
}

/// Ties each change to its spec node and reason. `old` is the deployed template, when there is one.
pub fn annotate(
    plan: &Plan,
    old: Option<&Value>,
    new: Option<&Value>,
    changes: &[ResourceChange],
) -> Vec<Planned> {
    let image_changes = |name: &str| image_reasons(old, new, name);
    let changed_templates: Vec<String> = changes
        .iter()
        .filter(|c| c.resource_type == "AWS::EC2::LaunchTemplate" && c.action == "Modify")
        .filter_map(|c| match spec_node(plan, &c.logical_id) {
            Some(SpecNode::Fleet(f)) => Some(f),
            _ => None,
        })
        .collect();
    changes
        .iter()
        .map(|c| {
            let node = spec_node(plan, &c.logical_id);
            let mut reasons = Vec::new();
            if c.action == "Modify" {
                match (&node, c.resource_type.as_str()) {
                    (Some(SpecNode::Image(name)), t) => {
                        reasons.extend(image_changes(name));
                        if t == "AWS::ImageBuilder::ImageRecipe" {
                            reasons.push("new recipe version".into());
                        }
                        if t == "AWS::ImageBuilder::Image" {
                            reasons.push(
                                "the image is rebuilt (an Image Builder build takes tens of minutes)"
                                    .into(),
                            );
                        }
                    }
                    (Some(SpecNode::Fleet(name)), "AWS::EC2::LaunchTemplate") => {
                        if let Some(f) = plan.fleets.iter().find(|f| &f.name.value == name) {
                            let image = &plan.images[f.image].name.value;
                            let why = image_changes(image);
                            if why.is_empty() {
                                reasons.push("new launch template version".into());
                            } else {
                                reasons.push(format!(
                                    "new launch template version for image \"{image}\" ({})",
                                    why.join(", ")
                                ));
                            }
                        }
                    }
                    (Some(SpecNode::Fleet(name)), "AWS::AutoScaling::AutoScalingGroup")
                        if changed_templates.contains(name)
                            || c.properties.iter().any(|p| p == "LaunchTemplate") =>
                    {
                        reasons.extend(rollout_reason(plan, name));
                    }
                    _ => {}
                }
            }
            Planned {
                change: c.clone(),
                node,
                sensitive: is_sensitive(&c.resource_type),
                reasons,
            }
        })
        .collect()
}

/// Counts for the summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub add: usize,
    pub modify: usize,
    pub replace: usize,
    pub remove: usize,
    pub sensitive: usize,
}

pub fn counts(planned: &[Planned]) -> Counts {
    let mut c = Counts::default();
    for p in planned {
        match p.change.action.as_str() {
            "Add" | "Import" => c.add += 1,
            "Remove" => c.remove += 1,
            _ => c.modify += 1,
        }
        c.replace += usize::from(p.replaced());
        c.sensitive += usize::from(p.sensitive);
    }
    c
}

/// The plan as text: grouped, one resource a line, reasons indented below.
/// `place` is where the stack lives: "eu-west-1 (account 123456789012)".
pub fn render(stack: &str, place: &str, create: bool, planned: &[Planned]) -> String {
    let mut s = String::new();
    let verb = if create { "create" } else { "update" };
    let _ = writeln!(s, "Plan to {verb} stack \"{stack}\" in {place}:");
    let groups: [(&str, &[&str]); 3] = [
        ("Add", &["Add", "Import"]),
        ("Change", &["Modify", "Dynamic"]),
        ("Remove", &["Remove"]),
    ];
    for (title, actions) in groups {
        let members: Vec<&Planned> = planned
            .iter()
            .filter(|p| actions.contains(&p.change.action.as_str()))
            .collect();
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n  {title}:");
        for p in members {
            let mark = match p.change.action.as_str() {
                "Add" | "Import" => "+",
                "Remove" => "-",
                _ if p.replaced() => "-/+",
                _ => "~",
            };
            let mut tail = String::new();
            if p.replaced() {
                tail.push_str("  !! REPLACED: deleted and created anew");
            } else if p.maybe_replaced() {
                tail.push_str("  ! may be replaced");
            }
            if p.sensitive {
                tail.push_str("  [IAM/security]");
            }
            let node = p
                .node
                .as_ref()
                .map(|n| format!("  ({n})"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {mark:>3} {:<28} {}{node}{tail}",
                p.change.logical_id, p.change.resource_type
            );
            if !p.change.properties.is_empty() {
                let _ = writeln!(s, "        changes {}", p.change.properties.join(", "));
            }
            for r in &p.reasons {
                let _ = writeln!(s, "        because {r}");
            }
        }
    }
    let c = counts(planned);
    let _ = write!(
        s,
        "\nPlan: {} to add, {} to change ({} replaced), {} to remove.",
        c.add, c.modify, c.replace, c.remove
    );
    if c.sensitive > 0 {
        let _ = write!(s, " {} IAM/security change(s).", c.sensitive);
    }
    s.push('\n');
    s
}

/// The plan as one JSON object.
pub fn to_json(stack: &str, create: bool, planned: &[Planned]) -> Value {
    let c = counts(planned);
    json!({
        "stack": stack,
        "status": if planned.is_empty() { "no-changes" } else { "changes" },
        "operation": if create { "create" } else { "update" },
        "changes": planned.iter().map(|p| json!({
            "action": p.change.action,
            "logical_id": p.change.logical_id,
            "resource_type": p.change.resource_type,
            "replacement": p.change.replacement,
            "properties": p.change.properties,
            "spec": p.node.as_ref().map(ToString::to_string),
            "iam_or_security": p.sensitive,
            "reasons": p.reasons,
        })).collect::<Vec<_>>(),
        "summary": {"add": c.add, "change": c.modify, "replace": c.replace, "remove": c.remove, "iam_or_security": c.sensitive},
    })
}
