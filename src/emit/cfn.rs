//! The CloudFormation template, built as JSON values. Its shape is data with many conditional parts, which
//! serde_json expresses safely (no hand-placed commas, automatic escaping); the scripts inside it come from the
//! handlebars templates.

use serde_json::{Map, Value, json};

use super::{ImageScripts, content_version};
use crate::check::pascal;
use crate::check::plan::{BuildPlan, FleetPlan, ImagePlan, ImageSource, Plan, Rollout};
use crate::lock::Resolved;

pub(crate) fn image_id(image: &ImagePlan, suffix: &str) -> String {
    format!("Image{}{suffix}", pascal(&image.name.value))
}

pub(crate) fn fleet_id(fleet: &FleetPlan, suffix: &str) -> String {
    format!("Fleet{}{suffix}", pascal(&fleet.name.value))
}

/// The logical id of a fleet's auto-scaling group, which instances name when they signal.
pub(crate) fn fleet_group_id(fleet: &FleetPlan) -> String {
    fleet_id(fleet, "Group")
}

fn managed_policy(name: &str) -> Value {
    json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:iam::aws:policy/{name}")})
}

fn tag_list(tags: &[(String, String)]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

fn tag_map(tags: &[(String, String)]) -> Value {
    Value::Object(
        tags.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn assume_role(service: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
    })
}

/// Adds `Tags` to a resource's properties only when there are tags (an empty list is noise in diffs).
fn with_tags(mut props: Map<String, Value>, key: &str, tags: Value) -> Value {
    let empty = match &tags {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => true,
    };
    if !empty {
        props.insert(key.to_owned(), tags);
    }
    Value::Object(props)
}

/// `{"Type": kind, "Properties": properties}`, moving `properties` in (`json!` would copy it).
fn resource(kind: &str, properties: Value) -> Value {
    let mut r = Map::new();
    r.insert("Type".into(), Value::String(kind.into()));
    r.insert("Properties".into(), properties);
    Value::Object(r)
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(crate) fn template(
    plan: &Plan,
    resolved: &[Option<Resolved>],
    scripts: &[Option<ImageScripts>],
    user_data: &[Option<String>],
) -> Value {
    let mut resources = Map::new();
    let mut outputs = Map::new();
    let mut metadata_images = Map::new();
    for ((image, resolved), scripts) in plan.images.iter().zip(resolved).zip(scripts) {
        match (&image.source, resolved, scripts) {
            (ImageSource::Built(build), Some(r), Some(s)) => {
                built_image(plan, image, build, r, s, &mut resources);
                outputs.insert(
                    image_id(image, "AmiId"),
                    json!({
                        "Description": format!("The AMI built for image {}", image.name.value),
                        "Value": {"Fn::GetAtt": [image_id(image, ""), "ImageId"]}
                    }),
                );
                metadata_images.insert(
                    image.name.value.clone(),
                    json!({"base-ami": r.base_ami, "flake-rev": r.flake_rev, "system-manager": r.system_manager_ref}),
                );
            }
            (ImageSource::Pinned { ami }, _, _) => {
                outputs.insert(
                    image_id(image, "AmiId"),
                    json!({"Description": format!("The pinned AMI of image {}", image.name.value), "Value": ami}),
                );
                metadata_images.insert(image.name.value.clone(), json!({"pinned-ami": ami}));
            }
            _ => {}
        }
    }
    for (fleet, user_data) in plan.fleets.iter().zip(user_data) {
        fleet_resources(plan, fleet, user_data.as_deref(), &mut resources);
        outputs.insert(
            fleet_id(fleet, "GroupName"),
            json!({
                "Description": format!("The auto-scaling group of fleet {}", fleet.name.value),
                "Value": {"Ref": fleet_group_id(fleet)}
            }),
        );
    }
    // Built by moving the maps in: `json!` would serialize each one into a copy (most of emit's time).
    let mut bake = obj(json!({"format": 1}));
    bake.insert("images".into(), Value::Object(metadata_images));
    let mut metadata = Map::new();
    metadata.insert("bake".into(), Value::Object(bake));
    let mut template = obj(json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("bake stack {}: generated from its spec by bake; edit the spec, not this template", plan.stack.name),
    }));
    template.insert("Metadata".into(), Value::Object(metadata));
    template.insert("Resources".into(), Value::Object(resources));
    template.insert("Outputs".into(), Value::Object(outputs));
    Value::Object(template)
}

fn built_image(
    plan: &Plan,
    image: &ImagePlan,
    build: &BuildPlan,
    resolved: &Resolved,
    scripts: &ImageScripts,
    resources: &mut Map<String, Value>,
) {
    let tags = &plan.stack.tags;
    let base_name = format!("{}-{}", plan.stack.name, image.name.value);
    let role = image_id(image, "BuildRole");
    let profile = image_id(image, "BuildProfile");
    let mut document = obj(json!({
        "DocumentType": "Command",
        "DocumentFormat": "JSON",
        "TargetType": "/AWS::EC2::Instance",
    }));
    // The document is the largest value here: a clone, not `json!`'s serialization into a copy.
    document.insert("Content".into(), scripts.ssm_document.clone());
    resources.insert(
        image_id(image, "Document"),
        resource(
            "AWS::SSM::Document",
            with_tags(document, "Tags", tag_list(tags)),
        ),
    );
    resources.insert(
        role.clone(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": with_tags(obj(json!({
                "Description": format!("Image Builder build instances of {base_name}"),
                "AssumeRolePolicyDocument": assume_role("ec2.amazonaws.com"),
                "ManagedPolicyArns": [
                    managed_policy("EC2InstanceProfileForImageBuilder"),
                    managed_policy("AmazonSSMManagedInstanceCore"),
                ],
            })), "Tags", tag_list(tags))
        }),
    );
    resources.insert(
        profile.clone(),
        json!({"Type": "AWS::IAM::InstanceProfile", "Properties": {"Roles": [{"Ref": role}]}}),
    );
    let mut component = obj(json!({
        "Name": format!("{base_name}-bootstrap"),
        "Platform": "Linux",
        "Description": format!("bake bootstrap: Nix and system-manager for {base_name}"),
        "Data": scripts.component_data,
    }));
    // Every property but Tags is create-only: the version covers them all, so a change makes a new version.
    let component_version =
        content_version(&[&serde_json::to_string(&component).unwrap_or_default()]);
    component.insert("Version".into(), Value::String(component_version.clone()));
    resources.insert(
        image_id(image, "Component"),
        resource(
            "AWS::ImageBuilder::Component",
            with_tags(component, "Tags", tag_map(tags)),
        ),
    );
    let mut recipe = obj(json!({
        "Name": base_name,
        "ParentImage": resolved.base_ami,
        "Components": [{"ComponentArn": {"Fn::GetAtt": [image_id(image, "Component"), "Arn"]}}],
        "BlockDeviceMappings": [{
            "DeviceName": "/dev/xvda",
            "Ebs": {
                "VolumeSize": build.volume_gib,
                "VolumeType": build.volume_type,
                "Encrypted": true,
                "DeleteOnTermination": true
            }
        }],
        "AdditionalInstanceConfiguration": {"SystemsManagerAgent": {"UninstallAfterBuild": false}},
        "Description": format!("bake recipe for {base_name}"),
    }));
    // The version covers everything create-only in the recipe, the component's version included.
    let recipe_version = content_version(&[
        &serde_json::to_string(&recipe).unwrap_or_default(),
        &component_version,
    ]);
    recipe.insert("Version".into(), Value::String(recipe_version));
    resources.insert(
        image_id(image, "Recipe"),
        resource(
            "AWS::ImageBuilder::ImageRecipe",
            with_tags(recipe, "Tags", tag_map(tags)),
        ),
    );
    let mut infra = obj(json!({
        "Name": base_name,
        "Description": format!("bake build infrastructure for {base_name}"),
        "InstanceProfileName": {"Ref": profile},
        "TerminateInstanceOnFailure": true,
        "InstanceMetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
    }));
    if !build.instance_types.is_empty() {
        infra.insert("InstanceTypes".into(), json!(build.instance_types));
    }
    if let Some(subnet) = &build.subnet {
        infra.insert("SubnetId".into(), json!(subnet));
    }
    if let Some(sg) = &build.security_group {
        infra.insert("SecurityGroupIds".into(), json!([sg]));
    }
    if !tags.is_empty() {
        infra.insert("ResourceTags".into(), tag_map(tags));
    }
    resources.insert(
        image_id(image, "Infrastructure"),
        resource(
            "AWS::ImageBuilder::InfrastructureConfiguration",
            with_tags(infra, "Tags", tag_map(tags)),
        ),
    );
    let mut ami_tags: Vec<(String, String)> = tags.clone();
    ami_tags.push(("bake:stack".into(), plan.stack.name.clone()));
    ami_tags.push(("bake:image".into(), image.name.value.clone()));
    ami_tags.push(("bake:base-ami".into(), resolved.base_ami.clone()));
    ami_tags.push(("bake:flake-rev".into(), resolved.flake_rev.clone()));
    resources.insert(
        image_id(image, "Distribution"),
        json!({
            "Type": "AWS::ImageBuilder::DistributionConfiguration",
            "Properties": with_tags(obj(json!({
                "Name": base_name,
                "Description": format!("bake distribution for {base_name}"),
                "Distributions": [{
                    "Region": {"Ref": "AWS::Region"},
                    "AmiDistributionConfiguration": {
                        "Name": format!("{base_name}-{{{{ imagebuilder:buildDate }}}}"),
                        "Description": format!("bake image {} of stack {}", image.name.value, plan.stack.name),
                        "AmiTags": tag_map(&ami_tags),
                    }
                }],
            })), "Tags", tag_map(tags))
        }),
    );
    let mut image_props = obj(json!({
        "ImageRecipeArn": {"Fn::GetAtt": [image_id(image, "Recipe"), "Arn"]},
        "InfrastructureConfigurationArn": {"Fn::GetAtt": [image_id(image, "Infrastructure"), "Arn"]},
        "DistributionConfigurationArn": {"Fn::GetAtt": [image_id(image, "Distribution"), "Arn"]},
        "EnhancedImageMetadataEnabled": true,
    }));
    image_props.insert(
        "ImageTestsConfiguration".into(),
        if build.image_tests {
            json!({"ImageTestsEnabled": true, "TimeoutMinutes": 60})
        } else {
            json!({"ImageTestsEnabled": false})
        },
    );
    if build.delete_old_amis {
        let deletion_role = image_id(image, "DeletionRole");
        resources.insert(
            deletion_role.clone(),
            json!({
                "Type": "AWS::IAM::Role",
                "Properties": with_tags(obj(json!({
                    "Description": format!("Lets Image Builder delete the old AMIs of {base_name}"),
                    "AssumeRolePolicyDocument": assume_role("imagebuilder.amazonaws.com"),
                    "ManagedPolicyArns": [managed_policy("EC2ImageBuilderExecutionPolicy")],
                })), "Tags", tag_list(tags))
            }),
        );
        image_props.insert(
            "DeletionSettings".into(),
            json!({"ExecutionRole": {"Fn::GetAtt": [deletion_role, "Arn"]}}),
        );
    }
    resources.insert(
        image_id(image, ""),
        resource(
            "AWS::ImageBuilder::Image",
            with_tags(image_props, "Tags", tag_map(tags)),
        ),
    );
}

fn fleet_resources(
    plan: &Plan,
    fleet: &FleetPlan,
    user_data: Option<&str>,
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
    resources.insert(
        role.clone(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": with_tags(obj(json!({
                "Description": format!("Instances of fleet {} in stack {}", fleet.name.value, plan.stack.name),
                "AssumeRolePolicyDocument": assume_role("ec2.amazonaws.com"),
                "ManagedPolicyArns": policies,
            })), "Tags", tag_list(tags))
        }),
    );
    resources.insert(
        profile.clone(),
        json!({"Type": "AWS::IAM::InstanceProfile", "Properties": {"Roles": [{"Ref": role}]}}),
    );
    let image_ref = match &image.source {
        ImageSource::Built(_) => json!({"Fn::GetAtt": [image_id(image, ""), "ImageId"]}),
        ImageSource::Pinned { ami } => json!(ami),
    };
    let mut volume_tags = tags.clone();
    volume_tags.push(("bake:fleet".into(), fleet.name.value.clone()));
    let mut data = obj(json!({
        "ImageId": image_ref,
        "InstanceType": fleet.instance_type,
        "IamInstanceProfile": {"Arn": {"Fn::GetAtt": [profile, "Arn"]}},
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2},
        "BlockDeviceMappings": [{
            "DeviceName": "/dev/xvda",
            "Ebs": {"Encrypted": true, "VolumeType": "gp3", "DeleteOnTermination": true}
        }],
        "TagSpecifications": [{"ResourceType": "volume", "Tags": tag_list(&volume_tags)}],
    }));
    if !fleet.security_groups.is_empty() {
        data.insert("SecurityGroupIds".into(), json!(fleet.security_groups));
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
    let mut group_tags: Vec<Value> = tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v, "PropagateAtLaunch": true}))
        .collect();
    group_tags.push(json!({"Key": "Name", "Value": format!("{}-{}", plan.stack.name, fleet.name.value), "PropagateAtLaunch": true}));
    let mut props = obj(json!({
        "MinSize": fleet.min.to_string(),
        "MaxSize": fleet.max.to_string(),
        "VPCZoneIdentifier": fleet.subnets,
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
