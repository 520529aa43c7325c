//! A stack set's template: one template for every account and region, so what is regional (AMI, subnet and
//! security group ids) comes from the `Mappings` section, keyed by region and read with `Fn::FindInMap` on
//! `AWS::Region`. `check::stackset` made sure every target region has every key, so no lookup can fail.

use serde_json::{Map, Value, json};

use super::{fleet_id, image_id};
use crate::check::plan::{FleetPlan, ImagePlan, Plan};
use crate::check::stackset::StackSetPlan;

/// The one map: region → `Image<Name>Ami`, `Fleet<Name>Subnets`, `Fleet<Name>SecurityGroups`.
pub const MAP: &str = "BakeRegions";

fn lookup(key: String) -> Value {
    json!({"Fn::FindInMap": [MAP, {"Ref": "AWS::Region"}, key]})
}

/// The AMI a pinned image runs: the literal id in a plain stack, the region's id in a stack set.
pub(super) fn ami(plan: &Plan, image: &ImagePlan, ami: &str) -> Value {
    match plan.stack_set {
        Some(_) => lookup(image_id(image, "Ami")),
        None => json!(ami),
    }
}

pub(super) fn subnets(plan: &Plan, fleet: &FleetPlan) -> Value {
    match plan.stack_set {
        Some(_) => lookup(fleet_id(fleet, "Subnets")),
        None => json!(fleet.subnets),
    }
}

/// `None` when the fleet has no security groups (then in no region: `check::stackset`).
pub(super) fn security_groups(plan: &Plan, fleet: &FleetPlan) -> Option<Value> {
    if fleet.security_groups.is_empty() {
        return None;
    }
    Some(match plan.stack_set {
        Some(_) => lookup(fleet_id(fleet, "SecurityGroups")),
        None => json!(fleet.security_groups),
    })
}

/// The `Mappings` section, regions in the stack set's order.
pub(super) fn mappings(plan: &Plan, set: &StackSetPlan) -> Value {
    let mut regions = Map::new();
    for values in &set.values {
        let mut keys = Map::new();
        for image in &plan.images {
            if let Some(ami) = values.amis.get(&image.name.value) {
                keys.insert(image_id(image, "Ami"), json!(ami));
            }
        }
        for fleet in &plan.fleets {
            if let Some(s) = values.subnets.get(&fleet.name.value) {
                keys.insert(fleet_id(fleet, "Subnets"), json!(s));
            }
            if let Some(g) = values.security_groups.get(&fleet.name.value) {
                keys.insert(fleet_id(fleet, "SecurityGroups"), json!(g));
            }
        }
        regions.insert(values.region.clone(), Value::Object(keys));
    }
    json!({ MAP: regions })
}

/// What `Metadata.bake` records of the stack set: its targets and regions, for `bake plan` and a reader.
pub(super) fn metadata(set: &StackSetPlan) -> Value {
    json!({
        "permission-model": set.permission.model(),
        "targets": set.permission.targets(),
        "regions": set.regions,
    })
}
