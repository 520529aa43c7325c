//! A fleet's launch template, instance role and profile, auto-scaling group with its update and creation
//! policies, and the instance-refresh launch hook.

use serde_json::{Map, Value, json};

use super::common::{assume_role, managed_policy, obj, tag_list, with_tags};
use super::{READY_HOOK, fleet_group_id, fleet_group_name_sub, fleet_id, image_id, merge_tags};
use crate::check::plan::{FleetPlan, ImageSource, Plan, Rollout};

pub(super) fn fleet_resources(
    plan: &Plan,
    fleet: &FleetPlan,
    user_data: Option<&str>,
    cache_objects: &[String],
    nixos_ami: Option<&str>,
    resources: &mut Map<String, Value>,
) {
    let tags = &plan.stack.tags;
    let image = &plan.images[fleet.image];
    let role = fleet_id(fleet, "Role");
    let profile = fleet_id(fleet, "Profile");
    let template_id = fleet_id(fleet, "LaunchTemplate");
    let group = fleet_group_id(fleet);
    let mut policies = vec![managed_policy("AmazonSSMManagedInstanceCore")];
    policies.extend(fleet.policies.iter().map(|p| json!(p)));
    // An instance-refresh fleet's instances complete their launch hook once ready. The hook exists only with user
    // data that completes it: a hook nobody completes would abandon every instance it launches.
    let hook = match (&fleet.rollout, user_data) {
        (Rollout::InstanceRefresh { ready, .. }, Some(_)) => Some(ready.timeout_secs),
        _ => None,
    };
    let mut role_props = obj(json!({
        "Description": format!("Instances of fleet {} in stack {}", fleet.name.value, plan.stack.name),
        "AssumeRolePolicyDocument": assume_role("ec2.amazonaws.com"),
        "ManagedPolicyArns": policies,
    }));
    let mut inline = Vec::new();
    if hook.is_some() {
        inline.push(json!({
                "PolicyName": "bake-ready",
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": "CompleteTheLaunchHookOfThisGroup",
                        "Effect": "Allow",
                        "Action": "autoscaling:CompleteLifecycleAction",
                        "Resource": {"Fn::Sub": format!(
                            "arn:${{AWS::Partition}}:autoscaling:${{AWS::Region}}:${{AWS::AccountId}}:autoScalingGroup:*:autoScalingGroupName/{}",
                            fleet_group_name_sub(fleet)
                        )}
                    }]
                }
        }));
    }
    if !cache_objects.is_empty() {
        inline.push(crate::closure::cache_read_policy(cache_objects));
    }
    if !inline.is_empty() {
        role_props.insert("Policies".into(), Value::Array(inline));
    }
    resources.insert(
        role.clone(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": with_tags(role_props, "Tags", tag_list(tags))
        }),
    );
    resources.insert(
        profile.clone(),
        json!({"Type": "AWS::IAM::InstanceProfile", "Properties": {"Roles": [{"Ref": role}]}}),
    );
    let image_ref = match &image.source {
        ImageSource::Built(_) => json!({"Fn::GetAtt": [image_id(image, ""), "ImageId"]}),
        ImageSource::Pinned { ami } => super::stackset::ami(plan, image, ami),
        // `emit` checked that the lock has it (`lock::nixos::verify` ran before).
        ImageSource::Nixos(_) => json!(nixos_ami.unwrap_or_default()),
    };
    let volume_tags = merge_tags(tags, &[("bake:fleet".into(), fleet.name.value.clone())]);
    let mut data = obj(json!({
        "ImageId": image_ref,
        "InstanceType": fleet.instance_type,
        "IamInstanceProfile": {"Arn": {"Fn::GetAtt": [profile, "Arn"]}},
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": fleet.imds_hop_limit},
        "BlockDeviceMappings": [{
            "DeviceName": "/dev/xvda",
            "Ebs": {"Encrypted": true, "VolumeType": "gp3", "DeleteOnTermination": true}
        }],
        "TagSpecifications": [{"ResourceType": "volume", "Tags": tag_list(&volume_tags)}],
    }));
    if let Some(groups) = super::stackset::security_groups(plan, fleet) {
        data.insert("SecurityGroupIds".into(), groups);
    }
    if let Some(ud) = user_data {
        data.insert("UserData".into(), json!({"Fn::Base64": {"Fn::Sub": ud}}));
    }
    resources.insert(
        template_id.clone(),
        json!({
            "Type": "AWS::EC2::LaunchTemplate",
            "Properties": {
                "LaunchTemplateData": data,
                "VersionDescription": format!("bake: fleet {} running image {}", fleet.name.value, image.name.value),
            }
        }),
    );
    let group_tags: Vec<Value> = merge_tags(
        tags,
        &[(
            "Name".into(),
            format!("{}-{}", plan.stack.name, fleet.name.value),
        )],
    )
    .iter()
    .map(|(k, v)| json!({"Key": k, "Value": v, "PropagateAtLaunch": true}))
    .collect();
    let mut props = obj(json!({
        "MinSize": fleet.min.to_string(),
        "MaxSize": fleet.max.to_string(),
        "VPCZoneIdentifier": super::stackset::subnets(plan, fleet),
        "LaunchTemplate": {
            "LaunchTemplateId": {"Ref": template_id},
            "Version": {"Fn::GetAtt": [template_id, "LatestVersionNumber"]}
        },
        "HealthCheckType": "EC2",
        "Tags": group_tags,
    }));
    if let Some(d) = fleet.desired {
        props.insert("DesiredCapacity".into(), json!(d.to_string()));
    }
    if matches!(fleet.rollout, Rollout::InstanceRefresh { .. }) {
        props.insert(
            "AutoScalingGroupName".into(),
            json!({"Fn::Sub": fleet_group_name_sub(fleet)}),
        );
    }
    if let Some(timeout) = hook {
        props.insert(
            "LifecycleHookSpecificationList".into(),
            json!([{
                "LifecycleHookName": READY_HOOK,
                "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                "HeartbeatTimeout": timeout,
                "DefaultResult": "ABANDON"
            }]),
        );
    }
    let mut resource = obj(json!({"Type": "AWS::AutoScaling::AutoScalingGroup"}));
    let (update, creation) = policies_for(fleet);
    if let Some(c) = creation {
        resource.insert("CreationPolicy".into(), c);
    }
    resource.insert("UpdatePolicy".into(), update);
    resource.insert("Properties".into(), Value::Object(props));
    resources.insert(group, Value::Object(resource));
}

/// The group's UpdatePolicy and, when instances signal, its CreationPolicy.
fn policies_for(fleet: &FleetPlan) -> (Value, Option<Value>) {
    let count = fleet.desired.unwrap_or(fleet.min);
    let creation = fleet.rollout.signals().filter(|_| count > 0).map(|s| {
        let mut c = obj(json!({"ResourceSignal": {"Count": count, "Timeout": s.timeout}}));
        if let (Rollout::Replacing { .. }, Some(p)) = (&fleet.rollout, s.min_success_percent) {
            c.insert(
                "AutoScalingCreationPolicy".into(),
                json!({"MinSuccessfulInstancesPercent": p}),
            );
        }
        Value::Object(c)
    });
    let update = match &fleet.rollout {
        Rollout::Rolling {
            max_batch,
            min_in_service,
            pause,
            signals,
            suspend,
        } => {
            let mut r =
                obj(json!({"MaxBatchSize": max_batch, "MinInstancesInService": min_in_service}));
            if let Some(p) = pause {
                r.insert("PauseTime".into(), json!(p));
            }
            if let Some(s) = signals {
                r.insert("WaitOnResourceSignals".into(), json!(true));
                if let Some(p) = s.min_success_percent {
                    r.insert("MinSuccessfulInstancesPercent".into(), json!(p));
                }
            }
            if !suspend.is_empty() {
                r.insert("SuspendProcesses".into(), json!(suspend));
            }
            json!({"AutoScalingRollingUpdate": r})
        }
        Rollout::Replacing { .. } => json!({"AutoScalingReplacingUpdate": {"WillReplace": true}}),
        Rollout::InstanceRefresh {
            min_healthy,
            max_healthy,
            warmup_secs,
            checkpoints,
            checkpoint_delay_secs,
            skip_matching,
            ..
        } => {
            let mut p = obj(json!({
                "MinHealthyPercentage": min_healthy,
                "MaxHealthyPercentage": max_healthy,
                "SkipMatching": skip_matching,
            }));
            if let Some(w) = warmup_secs {
                p.insert("InstanceWarmup".into(), json!(w));
            }
            if !checkpoints.is_empty() {
                p.insert("CheckpointPercentages".into(), json!(checkpoints));
            }
            if let Some(d) = checkpoint_delay_secs {
                p.insert("CheckpointDelay".into(), json!(d));
            }
            json!({"AutoScalingInstanceRefresh": {"Strategy": "Rolling", "Preferences": p}})
        }
    };
    (update, creation)
}
