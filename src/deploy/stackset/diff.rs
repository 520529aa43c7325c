//! What a deploy would change: the stack set's template (resources, and each region's mapped ids), and which
//! stack instances are created, updated, left alone or no longer in the spec. Pure: from what was read.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::api::{Instance, Selection};
use crate::check::stackset::{Permission, StackSetPlan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Create,
    Update,
    Unchanged,
    /// In AWS, no longer in the spec: deleted only with `--delete-instances`.
    Remove,
}

impl Change {
    pub fn word(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Update => "update",
            Change::Unchanged => "unchanged",
            Change::Remove => "not in the spec",
        }
    }

    pub fn sign(self) -> char {
        match self {
            Change::Create => '+',
            Change::Update => '~',
            Change::Unchanged => '=',
            Change::Remove => '-',
        }
    }
}

/// One stack instance, existing or planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The account id (self-managed) or OU id (service-managed) the instance belongs to.
    pub target: String,
    /// The account, when the instance exists (service-managed: the OU's accounts are known only then).
    pub account: Option<String>,
    pub region: String,
    pub existing: Option<Instance>,
    pub change: Change,
    /// What changes in this instance: the region's mapped ids that differ.
    pub details: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// The stack set does not exist yet.
    pub create_set: bool,
    /// The deployed template differs from the compiled one.
    pub template_changed: bool,
    /// Resource-level changes of the template (`+ Id (Type)`, `~ Id`, `- Id`), the same in every instance.
    pub resources: Vec<String>,
    pub rows: Vec<Row>,
}

impl Diff {
    pub fn count(&self, change: Change) -> usize {
        self.rows.iter().filter(|r| r.change == change).count()
    }

    /// Whether `bake deploy` has anything to do (removals count only when they would be deleted).
    pub fn has_changes(&self, delete_instances: bool) -> bool {
        self.create_set
            || self.template_changed
            || self.count(Change::Create) > 0
            || (delete_instances && self.count(Change::Remove) > 0)
    }

    /// The regions that have stack instances: the spec's in its order, then any others (instances the spec no
    /// longer names), sorted. An update goes through them in this order.
    pub fn instance_regions(&self, set: &StackSetPlan) -> Vec<String> {
        let has = |r: &str| {
            self.rows
                .iter()
                .any(|row| row.region == r && row.existing.is_some())
        };
        let mut out: Vec<String> = set.regions.iter().filter(|r| has(r)).cloned().collect();
        let mut others: Vec<String> = self
            .rows
            .iter()
            .filter(|row| row.existing.is_some() && !set.regions.contains(&row.region))
            .map(|row| row.region.clone())
            .collect();
        others.sort();
        others.dedup();
        out.extend(others);
        out
    }

    /// The instance operations for rows with `change`: targets grouped by the regions they need, regions in the
    /// stack set's order, so that each group is one call.
    pub fn selections(&self, set: &StackSetPlan, change: Change) -> Vec<Selection> {
        let mut by_target: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let order = |r: &str| {
            set.regions
                .iter()
                .position(|x| x == r)
                .unwrap_or(usize::MAX)
        };
        let mut targets_in_order: Vec<&str> = Vec::new();
        for row in self.rows.iter().filter(|r| r.change == change) {
            if !targets_in_order.contains(&row.target.as_str()) {
                targets_in_order.push(&row.target);
            }
            let regions = by_target.entry(&row.target).or_default();
            if !regions.contains(&row.region) {
                regions.push(row.region.clone());
            }
        }
        let mut groups: Vec<Selection> = Vec::new();
        for target in targets_in_order {
            let mut regions = by_target.remove(target).unwrap_or_default();
            regions.sort_by_key(|r| (order(r), r.clone()));
            match groups.iter_mut().find(|g| g.regions == regions) {
                Some(g) => g.targets.push(target.to_owned()),
                None => groups.push(Selection {
                    targets: vec![target.to_owned()],
                    regions,
                }),
            }
        }
        groups
    }
}

/// The key an instance is deployed under: its account (self-managed) or OU (service-managed).
fn target_of(set: &StackSetPlan, i: &Instance) -> String {
    match &set.permission {
        Permission::SelfManaged { .. } => i.account.clone(),
        Permission::ServiceManaged { .. } => i
            .organizational_unit
            .clone()
            .unwrap_or_else(|| i.account.clone()),
    }
}

pub fn diff(
    set: &StackSetPlan,
    exists: bool,
    deployed: Option<&str>,
    compiled: &str,
    instances: &[Instance],
) -> Diff {
    let compiled: Value = serde_json::from_str(compiled).unwrap_or(Value::Null);
    let deployed: Option<Value> = deployed.and_then(|d| serde_json::from_str(d).ok());
    let template_changed = exists && deployed.as_ref() != Some(&compiled);
    let empty = json!({});
    let old = deployed.as_ref().unwrap_or(&empty);
    let resources = if exists {
        resource_changes(old, &compiled)
    } else {
        Vec::new()
    };
    let mut rows = Vec::new();
    let mut seen = vec![false; instances.len()];
    for region in &set.regions {
        let details = region_changes(old, &compiled, region);
        for target in set.permission.targets() {
            let mut found = false;
            for (i, inst) in instances.iter().enumerate() {
                if &inst.region == region && &target_of(set, inst) == target {
                    seen[i] = true;
                    found = true;
                    let stale = inst.status != "CURRENT";
                    let change = if template_changed || stale {
                        Change::Update
                    } else {
                        Change::Unchanged
                    };
                    rows.push(Row {
                        target: target.clone(),
                        account: Some(inst.account.clone()),
                        region: region.clone(),
                        existing: Some(inst.clone()),
                        change,
                        details: if template_changed {
                            details.clone()
                        } else {
                            Vec::new()
                        },
                    });
                }
            }
            if !found {
                rows.push(Row {
                    target: target.clone(),
                    account: match set.permission {
                        Permission::SelfManaged { .. } => Some(target.clone()),
                        Permission::ServiceManaged { .. } => None,
                    },
                    region: region.clone(),
                    existing: None,
                    change: Change::Create,
                    details: Vec::new(),
                });
            }
        }
    }
    for (inst, _) in instances.iter().zip(&seen).filter(|(_, s)| !**s) {
        rows.push(Row {
            target: target_of(set, inst),
            account: Some(inst.account.clone()),
            region: inst.region.clone(),
            existing: Some(inst.clone()),
            change: Change::Remove,
            details: Vec::new(),
        });
    }
    Diff {
        create_set: !exists,
        template_changed,
        resources,
        rows,
    }
}

/// `+ Id (Type)`, `- Id (Type)`, `~ Id (Type)` for resources added, removed or changed, in the compiled order.
fn resource_changes(old: &Value, new: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let old = old["Resources"].as_object().unwrap_or(&empty);
    let new = new["Resources"].as_object().unwrap_or(&empty);
    let ty = |v: &Value| v["Type"].as_str().unwrap_or("?").to_owned();
    let mut out = Vec::new();
    for (id, r) in new {
        match old.get(id) {
            None => out.push(format!("+ {id} ({})", ty(r))),
            Some(o) if o != r => out.push(format!("~ {id} ({})", ty(r))),
            Some(_) => {}
        }
    }
    for (id, r) in old {
        if !new.contains_key(id) {
            out.push(format!("- {id} ({})", ty(r)));
        }
    }
    out
}

/// The region's mapped ids that change: `ImageWebAmi: ami-old → ami-new`.
fn region_changes(old: &Value, new: &Value, region: &str) -> Vec<String> {
    let map = crate::emit::STACKSET_MAP;
    let empty = serde_json::Map::new();
    let old = old["Mappings"][map][region].as_object().unwrap_or(&empty);
    let new = new["Mappings"][map][region].as_object().unwrap_or(&empty);
    let show = |v: Option<&Value>| match v {
        None => "(none)".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    };
    let mut out = Vec::new();
    for (k, v) in new {
        if old.get(k) != Some(v) {
            out.push(format!("{k}: {} → {}", show(old.get(k)), show(Some(v))));
        }
    }
    for (k, v) in old {
        if !new.contains_key(k) {
            out.push(format!("{k}: {} → (none)", show(Some(v))));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::stackset::{Preferences, RegionValues};

    fn set(targets: &[&str], regions: &[&str]) -> StackSetPlan {
        StackSetPlan {
            permission: Permission::SelfManaged {
                accounts: targets.iter().map(|t| (*t).to_owned()).collect(),
                administration_role: None,
                execution_role: "AWSCloudFormationStackSetExecutionRole".into(),
            },
            call_as: "SELF".into(),
            regions: regions.iter().map(|r| (*r).to_owned()).collect(),
            preferences: Preferences {
                region_concurrency: "SEQUENTIAL".into(),
                max_concurrent: None,
                failure_tolerance: None,
                concurrency_mode: "STRICT_FAILURE_TOLERANCE".into(),
            },
            values: regions
                .iter()
                .map(|r| RegionValues {
                    region: (*r).to_owned(),
                    ..RegionValues::default()
                })
                .collect(),
        }
    }

    fn instance(account: &str, region: &str) -> Instance {
        Instance {
            account: account.into(),
            region: region.into(),
            status: "CURRENT".into(),
            ..Instance::default()
        }
    }

    fn template(amis: &[(&str, &str)]) -> String {
        let mut map = serde_json::Map::new();
        for (region, ami) in amis {
            map.insert((*region).into(), json!({"ImageWebAmi": ami}));
        }
        json!({"Mappings": {"BakeRegions": map}, "Resources": {"P": {"Type": "AWS::SSM::Parameter", "Properties": {}}}})
            .to_string()
    }

    #[test]
    fn new_pairs_are_grouped_by_the_regions_they_need_in_spec_order() {
        let s = set(
            &["111111111111", "222222222222", "333333333333"],
            &["eu-west-1", "us-east-1"],
        );
        // 111 has both regions, 222 only us-east-1, 333 none; 444 is no longer in the spec.
        let have = [
            instance("111111111111", "eu-west-1"),
            instance("111111111111", "us-east-1"),
            instance("222222222222", "us-east-1"),
            instance("444444444444", "ap-south-1"),
        ];
        let t = template(&[("eu-west-1", "ami-1"), ("us-east-1", "ami-2")]);
        let d = diff(&s, true, Some(&t), &t, &have);
        assert!(!d.template_changed);
        assert_eq!(d.count(Change::Unchanged), 3);
        assert_eq!(d.count(Change::Create), 3);
        assert_eq!(d.count(Change::Remove), 1);
        let creates = d.selections(&s, Change::Create);
        assert_eq!(
            creates,
            [
                Selection {
                    targets: vec!["222222222222".into()],
                    regions: vec!["eu-west-1".into()]
                },
                Selection {
                    targets: vec!["333333333333".into()],
                    regions: vec!["eu-west-1".into(), "us-east-1".into()]
                },
            ]
        );
        assert_eq!(
            d.selections(&s, Change::Remove),
            [Selection {
                targets: vec!["444444444444".into()],
                regions: vec!["ap-south-1".into()]
            }]
        );
        assert_eq!(
            d.instance_regions(&s),
            ["eu-west-1", "us-east-1", "ap-south-1"]
        );
        assert!(d.has_changes(false));
    }

    #[test]
    fn a_changed_ami_shows_in_its_region_only() {
        let s = set(&["111111111111"], &["us-east-1", "eu-west-1"]);
        let have = [
            instance("111111111111", "us-east-1"),
            instance("111111111111", "eu-west-1"),
        ];
        let old = template(&[("us-east-1", "ami-1"), ("eu-west-1", "ami-2")]);
        let new = template(&[("us-east-1", "ami-1"), ("eu-west-1", "ami-3")]);
        let d = diff(&s, true, Some(&old), &new, &have);
        assert!(d.template_changed);
        assert_eq!(d.count(Change::Update), 2);
        let eu = d.rows.iter().find(|r| r.region == "eu-west-1").unwrap();
        assert_eq!(eu.details, ["ImageWebAmi: ami-2 → ami-3"]);
        let us = d.rows.iter().find(|r| r.region == "us-east-1").unwrap();
        assert!(us.details.is_empty());
        // Same template: nothing to do.
        let d = diff(&s, true, Some(&new), &new, &have);
        assert!(!d.has_changes(true));
    }
}
