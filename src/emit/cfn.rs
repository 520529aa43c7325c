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

/// A service role that only this account's Image Builder, acting for one of this account's Image Builder
/// resources in this region, may assume (the IAM confused-deputy guidance: `aws:SourceAccount` and
/// `aws:SourceArn`).
fn assume_role_from_image_builder() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "imagebuilder.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                "ArnLike": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:imagebuilder:${AWS::Region}:${AWS::AccountId}:*"}}
            }
        }]
    })
}

/// The stack's tags with bake's on top: a key bake sets replaces the user's, so no key appears twice. (`check`
/// reserves `bake:` keys, so in practice only `Name` is replaced.)
pub(crate) fn merge_tags(
    user: &[(String, String)],
    ours: &[(String, String)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = user
        .iter()
        .filter(|(k, _)| !ours.iter().any(|(o, _)| o == k))
        .cloned()
        .collect();
    for (k, v) in ours {
        if let Some(slot) = out.iter_mut().find(|(o, _)| o == k) {
            slot.1.clone_from(v);
        } else {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// The tag value naming one image of one stack: what the lifecycle policy selects and what an AMI search
/// filters on (`aws ec2 describe-images --owners self --filters Name=tag:bake:lineage,Values=<stack>/<image>`).
pub(crate) fn lineage(plan: &Plan, image: &ImagePlan) -> String {
    format!("{}/{}", plan.stack.name, image.name.value)
}

/// The SSM parameter holding the AMI an image's fleets run; its history lists the AMI of every deploy.
pub(crate) fn ami_parameter_name(plan: &Plan, image: &ImagePlan) -> String {
    format!("/bake/{}/{}/ami", plan.stack.name, image.name.value)
}

/// The launch lifecycle hook an instance-refresh fleet's instances complete once they are ready.
pub(crate) const READY_HOOK: &str = "bake-ready";

/// The name bake gives an instance-refresh fleet's group (for `Fn::Sub`), so that its instances can name the
/// group when they complete the launch hook without the launch template referring to the group.
pub(crate) fn fleet_group_name_sub(fleet: &FleetPlan) -> String {
    format!("${{AWS::StackName}}-{}", fleet.name.value)
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
                let mut meta = json!({"base-ami": r.base_ami, "flake-rev": r.flake_rev, "system-manager": r.system_manager_ref});
                if build.delete_old_amis {
                    meta["keep-amis"] = json!(build.keep_amis);
                }
                metadata_images.insert(image.name.value.clone(), meta);
                ami_record(
                    plan,
                    image,
                    json!({"Fn::GetAtt": [image_id(image, ""), "ImageId"]}),
                    &mut resources,
                    &mut outputs,
                );
            }
            (ImageSource::Pinned { ami }, _, _) => {
                outputs.insert(
                    image_id(image, "AmiId"),
                    json!({"Description": format!("The pinned AMI of image {}", image.name.value), "Value": ami}),
                );
                metadata_images.insert(image.name.value.clone(), json!({"pinned-ami": ami}));
                ami_record(plan, image, json!(ami), &mut resources, &mut outputs);
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

/// Records the AMI an image's fleets run in an SSM parameter that survives switching between a built and a pinned
/// image: its version history is the list of AMIs the stack deployed, the ones to roll back to. An image no fleet
/// runs (a warning at check) has nothing to roll back, and gets no record.
fn ami_record(
    plan: &Plan,
    image: &ImagePlan,
    ami: Value,
    resources: &mut Map<String, Value>,
    outputs: &mut Map<String, Value>,
) {
    let runs = plan
        .fleets
        .iter()
        .any(|f| std::ptr::eq(&plan.images[f.image], image));
    if !runs {
        return;
    }
    let parameter = image_id(image, "AmiParameter");
    resources.insert(
        parameter.clone(),
        json!({
            "Type": "AWS::SSM::Parameter",
            // No resource `Tags`: the stack's tags reach it (bake deploy tags the stack), and moto 5.2 fails on the
            // map form CloudFormation documents for this type.
            "Properties": {
                "Name": ami_parameter_name(plan, image),
                "Type": "String",
                "Value": ami,
                "Description": format!("The AMI of image {} in stack {}; its history lists the AMI of every deploy", image.name.value, plan.stack.name),
            }
        }),
    );
    outputs.insert(
        image_id(image, "AmiHistory"),
        json!({
            "Description": format!(
                "The SSM parameter recording image {}'s AMI on every deploy: aws ssm get-parameter-history --name {} lists the AMIs to roll back to",
                image.name.value,
                ami_parameter_name(plan, image)
            ),
            "Value": {"Ref": parameter}
        }),
    );
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
    let ami_tags = merge_tags(
        tags,
        &[
            ("bake:stack".into(), plan.stack.name.clone()),
            ("bake:image".into(), image.name.value.clone()),
            ("bake:lineage".into(), lineage(plan, image)),
            ("bake:base-ami".into(), resolved.base_ami.clone()),
            ("bake:flake-rev".into(), resolved.flake_rev.clone()),
        ],
    );
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
    let image_tags = merge_tags(tags, &[("bake:lineage".into(), lineage(plan, image))]);
    let mut image_resource = obj(json!({"Type": "AWS::ImageBuilder::Image"}));
    if build.delete_old_amis {
        // Image Builder's lifecycle policy deletes old AMIs, keeping the newest `keep`. CloudFormation must not
        // delete the image when it replaces it or when a rollback pins the image: that is what would leave no AMI
        // to go back to (and DeletionSettings would deregister the AMI right then).
        image_resource.insert("DeletionPolicy".into(), json!("Retain"));
        image_resource.insert("UpdateReplacePolicy".into(), json!("Retain"));
        retention(plan, image, build, &base_name, resources);
    }
    image_resource.insert(
        "Properties".into(),
        with_tags(image_props, "Tags", tag_map(&image_tags)),
    );
    resources.insert(image_id(image, ""), Value::Object(image_resource));
}

/// The lifecycle policy that keeps an image's newest `keep` baked AMIs and deletes older ones with their
/// snapshots, and its execution role: only what a DELETE rule uses (the AWS managed
/// `EC2ImageBuilderLifecycleExecutionPolicy` less deprecation, disabling, tagging and containers), only on
/// resources Image Builder created, AMIs only of this image's lineage.
fn retention(
    plan: &Plan,
    image: &ImagePlan,
    build: &BuildPlan,
    base_name: &str,
    resources: &mut Map<String, Value>,
) {
    let tags = &plan.stack.tags;
    let lineage = lineage(plan, image);
    let role = image_id(image, "RetentionRole");
    // Image Builder ARNs use the lower-cased name.
    let arn_name = base_name.to_ascii_lowercase();
    resources.insert(
        role.clone(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": with_tags(obj(json!({
                "Description": format!("Lets Image Builder delete the AMIs of {base_name} beyond the newest {}", build.keep_amis),
                "AssumeRolePolicyDocument": assume_role_from_image_builder(),
                "Policies": [{
                    "PolicyName": "bake-ami-retention",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "DeregisterThisImagesAmis",
                                "Effect": "Allow",
                                "Action": "ec2:DeregisterImage",
                                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}::image/*"},
                                "Condition": {"StringEquals": {
                                    "aws:ResourceTag/CreatedBy": "EC2 Image Builder",
                                    "aws:ResourceTag/bake:lineage": lineage,
                                }}
                            },
                            {
                                "Sid": "DeleteImageBuilderSnapshots",
                                "Effect": "Allow",
                                "Action": "ec2:DeleteSnapshot",
                                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*"},
                                "Condition": {"StringEquals": {"aws:ResourceTag/CreatedBy": "EC2 Image Builder"}}
                            },
                            {
                                "Sid": "DeleteThisImagesBuilds",
                                "Effect": "Allow",
                                "Action": "imagebuilder:DeleteImage",
                                "Resource": {"Fn::Sub": format!("arn:${{AWS::Partition}}:imagebuilder:${{AWS::Region}}:${{AWS::AccountId}}:image/{arn_name}/*")}
                            },
                            {
                                "Sid": "FindThem",
                                "Effect": "Allow",
                                "Action": ["ec2:DescribeImages", "ec2:DescribeImageAttribute", "tag:GetResources"],
                                "Resource": "*"
                            }
                        ]
                    }
                }],
            })), "Tags", tag_list(tags))
        }),
    );
    resources.insert(
        image_id(image, "Retention"),
        json!({
            "Type": "AWS::ImageBuilder::LifecyclePolicy",
            "Properties": with_tags(obj(json!({
                // Lifecycle policy names must be lower-case (as CDK's construct checks); stack names need not be.
                "Name": arn_name,
                "Description": format!("Keeps the newest {} AMIs of {base_name}; AMIs tagged bake:keep=true are kept", build.keep_amis),
                "ExecutionRole": {"Fn::GetAtt": [role, "Arn"]},
                "ResourceType": "AMI_IMAGE",
                "Status": "ENABLED",
                "ResourceSelection": {"TagMap": {"bake:lineage": lineage}},
                "PolicyDetails": [{
                    "Action": {"Type": "DELETE", "IncludeResources": {"Amis": true, "Snapshots": true}},
                    "Filter": {"Type": "COUNT", "Value": build.keep_amis},
                    "ExclusionRules": {"Amis": {"TagMap": {"bake:keep": "true"}}}
                }],
            })), "Tags", tag_map(tags))
        }),
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
    if hook.is_some() {
        role_props.insert(
            "Policies".into(),
            json!([{
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
            }]),
        );
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
        ImageSource::Pinned { ami } => json!(ami),
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{READY_HOOK, merge_tags, template};
    use crate::check::plan::Plan;
    use crate::lock::Lock;
    use crate::source::SourceFile;

    fn plan_of(text: &str) -> Plan {
        let (plan, diags) = crate::check_source(&SourceFile::new("t.kdl", text));
        plan.unwrap_or_else(|| panic!("{diags:?}"))
    }

    /// The template bake compiles for an example spec with its lock.
    fn example(name: &str, text: &str, lock: &str) -> Value {
        let plan = plan_of(text);
        let lock = Lock::from_json(lock).unwrap();
        let resolved = crate::lock::verify(&plan, &lock, name).unwrap();
        let artifacts = crate::emit::emit(&plan, &resolved, &lock).unwrap();
        serde_json::from_str(artifacts.get("template.json").unwrap()).unwrap()
    }

    fn web() -> Value {
        example(
            "specs/web.kdl",
            include_str!("../../specs/web.kdl"),
            include_str!("../../specs/web.lock.json"),
        )
    }

    fn keys(tags: &Value) -> Vec<String> {
        match tags {
            Value::Array(list) => list
                .iter()
                .map(|t| t["Key"].as_str().unwrap().to_owned())
                .collect(),
            Value::Object(map) => map.keys().cloned().collect(),
            other => panic!("{other}"),
        }
    }

    /// Every `Tags`-like list or map in the template, with where it is.
    fn all_tags(v: &Value, path: &str, out: &mut Vec<(String, Vec<String>)>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    let here = format!("{path}/{k}");
                    if matches!(k.as_str(), "Tags" | "AmiTags" | "ResourceTags") {
                        out.push((here.clone(), keys(child)));
                    }
                    all_tags(child, &here, out);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    all_tags(child, &format!("{path}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn bakes_tags_win_and_no_key_appears_twice() {
        let user = vec![
            ("Name".to_owned(), "mine".to_owned()),
            ("team".to_owned(), "a".to_owned()),
        ];
        let merged = merge_tags(&user, &[("Name".into(), "web-web".into())]);
        assert_eq!(
            merged,
            vec![
                ("team".to_owned(), "a".to_owned()),
                ("Name".to_owned(), "web-web".to_owned())
            ]
        );
        // The review's case: a stack `Name` tag on a spec with a fleet and a built image.
        let text = include_str!("../../specs/web.kdl").replace(
            r#"tags team="platform""#,
            r#"tags Name="web" team="platform""#,
        );
        let t = example(
            "specs/web.kdl",
            &text,
            include_str!("../../specs/web.lock.json"),
        );
        let mut found = Vec::new();
        all_tags(&t, "", &mut found);
        assert!(found.len() > 10, "{found:?}");
        for (path, keys) in &found {
            let mut unique = keys.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), keys.len(), "{path}: {keys:?}");
        }
        let group = &t["Resources"]["FleetWebGroup"]["Properties"]["Tags"];
        let name: Vec<&Value> = group
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["Key"] == "Name")
            .collect();
        assert_eq!(
            name,
            [&json!({"Key": "Name", "Value": "web-web", "PropagateAtLaunch": true})]
        );
        // Elsewhere the user's Name stands.
        assert_eq!(
            t["Resources"]["ImageWebRecipe"]["Properties"]["Tags"]["Name"],
            "web"
        );
        let volume = &t["Resources"]["FleetWebLaunchTemplate"]["Properties"]["LaunchTemplateData"]
            ["TagSpecifications"][0]["Tags"];
        assert!(keys(volume).contains(&"bake:fleet".to_owned()));
    }

    #[test]
    fn old_amis_are_retained_by_count_not_deleted_on_replacement() {
        let t = web();
        let r = &t["Resources"];
        let image = &r["ImageWeb"];
        assert_eq!(image["DeletionPolicy"], "Retain");
        assert_eq!(image["UpdateReplacePolicy"], "Retain");
        assert!(image["Properties"].get("DeletionSettings").is_none());
        assert_eq!(image["Properties"]["Tags"]["bake:lineage"], "web/web");
        let policy = &r["ImageWebRetention"]["Properties"];
        assert_eq!(policy["ResourceType"], "AMI_IMAGE");
        assert_eq!(
            policy["ResourceSelection"],
            json!({"TagMap": {"bake:lineage": "web/web"}})
        );
        let detail = &policy["PolicyDetails"][0];
        assert_eq!(detail["Filter"], json!({"Type": "COUNT", "Value": 3}));
        assert_eq!(detail["Action"]["Type"], "DELETE");
        assert_eq!(
            detail["ExclusionRules"]["Amis"]["TagMap"],
            json!({"bake:keep": "true"})
        );
        // The AMIs carry the lineage the role's conditions name.
        let ami_tags = &r["ImageWebDistribution"]["Properties"]["Distributions"][0]["AmiDistributionConfiguration"]
            ["AmiTags"];
        assert_eq!(ami_tags["bake:lineage"], "web/web");
        // keep=5 reaches the policy; a stack name with capitals gives a lower-case policy name.
        let text = include_str!("../../specs/web.kdl")
            .replace("keep=3", "keep=5")
            .replace(r#"stack "web""#, r#"stack "Web""#);
        let t = example(
            "specs/web.kdl",
            &text,
            include_str!("../../specs/web.lock.json"),
        );
        let policy = &t["Resources"]["ImageWebRetention"]["Properties"];
        assert_eq!(policy["PolicyDetails"][0]["Filter"]["Value"], 5);
        assert_eq!(policy["Name"], "web-web");
    }

    #[test]
    fn the_retention_role_is_least_privilege_and_not_a_confused_deputy() {
        let t = web();
        let role = &t["Resources"]["ImageWebRetentionRole"]["Properties"];
        assert!(role.get("ManagedPolicyArns").is_none(), "{role}");
        let trust = &role["AssumeRolePolicyDocument"]["Statement"][0];
        assert_eq!(trust["Principal"]["Service"], "imagebuilder.amazonaws.com");
        assert_eq!(
            trust["Condition"]["StringEquals"]["aws:SourceAccount"],
            json!({"Ref": "AWS::AccountId"})
        );
        assert!(
            trust["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
                .as_str()
                .unwrap()
                .starts_with(
                    "arn:${AWS::Partition}:imagebuilder:${AWS::Region}:${AWS::AccountId}:"
                )
        );
        let statements = role["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap();
        let mut actions: Vec<String> = statements
            .iter()
            .flat_map(|s| match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(a) => a.iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
                other => panic!("{other}"),
            })
            .collect();
        actions.sort();
        assert_eq!(
            actions,
            [
                "ec2:DeleteSnapshot",
                "ec2:DeregisterImage",
                "ec2:DescribeImageAttribute",
                "ec2:DescribeImages",
                "imagebuilder:DeleteImage",
                "tag:GetResources"
            ]
        );
        // Every action that changes something is scoped: to Image Builder's resources, this lineage's AMIs.
        for s in statements {
            let read_only = s["Sid"] == "FindThem";
            assert_eq!(read_only, s["Resource"] == "*", "{s}");
        }
        let deregister = statements
            .iter()
            .find(|s| s["Action"] == "ec2:DeregisterImage")
            .unwrap();
        assert_eq!(
            deregister["Condition"]["StringEquals"]["aws:ResourceTag/bake:lineage"],
            "web/web"
        );
    }

    #[test]
    fn every_image_records_its_ami_in_a_parameter_that_survives_a_pin() {
        let built = web();
        let pinned = example(
            "specs/rollback.kdl",
            include_str!("../../specs/rollback.kdl"),
            include_str!("../../specs/rollback.lock.json"),
        );
        for (t, value) in [
            (&built, json!({"Fn::GetAtt": ["ImageWeb", "ImageId"]})),
            (&pinned, json!("ami-0b7e3c9d1a2f45e68")),
        ] {
            let p = &t["Resources"]["ImageWebAmiParameter"];
            assert_eq!(p["Type"], "AWS::SSM::Parameter");
            assert_eq!(p["Properties"]["Name"], "/bake/web/web/ami");
            assert_eq!(p["Properties"]["Value"], value);
            assert_eq!(
                t["Outputs"]["ImageWebAmiHistory"]["Value"],
                json!({"Ref": "ImageWebAmiParameter"})
            );
        }
        // Rolling back removes the built image from the stack, which retains it.
        assert!(pinned["Resources"].get("ImageWeb").is_none());
        assert!(pinned["Resources"].get("ImageWebRetention").is_none());
    }

    const REFRESH: &str = r#"stack "web" region="us-east-1"
image "web" {
    base ami="ami-0123456789abcdef0" arch="x86_64"
}
fleet "web" image="web" instance-type="m7i.large" {
    subnets "subnet-0a1b2c3d4e5f60718"
    security-groups "sg-0123456789abcdef0"
    size min=1 max=2
    rollout "instance-refresh" ready-timeout="PT20M"
}
"#;

    #[test]
    fn instance_refresh_instances_gate_on_a_launch_hook_they_may_complete() {
        let plan = plan_of(REFRESH);
        let ud = Some("#!/bin/bash\n# completes the hook\n".to_owned());
        let t = template(&plan, &[None], &[None], &[ud]);
        let group = &t["Resources"]["FleetWebGroup"]["Properties"];
        assert_eq!(
            group["AutoScalingGroupName"],
            json!({"Fn::Sub": "${AWS::StackName}-web"})
        );
        assert_eq!(
            group["LifecycleHookSpecificationList"],
            json!([{
                "LifecycleHookName": READY_HOOK,
                "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                "HeartbeatTimeout": 1200,
                "DefaultResult": "ABANDON"
            }])
        );
        let statement = &t["Resources"]["FleetWebRole"]["Properties"]["Policies"][0]["PolicyDocument"]
            ["Statement"][0];
        assert_eq!(statement["Action"], "autoscaling:CompleteLifecycleAction");
        assert_eq!(
            statement["Resource"]["Fn::Sub"],
            "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/${AWS::StackName}-web"
        );
        // Without user data that completes it, a hook would abandon every instance: none is emitted.
        let t = template(&plan, &[None], &[None], &[None]);
        let group = &t["Resources"]["FleetWebGroup"]["Properties"];
        assert!(group.get("LifecycleHookSpecificationList").is_none());
        assert!(
            t["Resources"]["FleetWebRole"]["Properties"]
                .get("Policies")
                .is_none()
        );
    }

    #[test]
    fn instance_refresh_user_data_completes_the_hook_of_its_group() {
        let plan = plan_of(include_str!("../../specs/platform.kdl"));
        let lock = Lock::from_json(include_str!("../../specs/platform.lock.json")).unwrap();
        let resolved = crate::lock::verify(&plan, &lock, "specs/platform.kdl").unwrap();
        let artifacts = crate::emit::emit(&plan, &resolved, &lock).unwrap();
        let t: Value = serde_json::from_str(artifacts.get("template.json").unwrap()).unwrap();
        let ud = artifacts
            .get("batch.user-data.sh")
            .expect("an instance-refresh fleet has user data");
        let batch = plan
            .fleets
            .iter()
            .find(|f| f.name.value == "batch")
            .unwrap();
        let group = super::fleet_group_name_sub(batch);
        let props = &t["Resources"]["FleetBatchGroup"]["Properties"];
        assert_eq!(props["AutoScalingGroupName"]["Fn::Sub"], group.as_str());
        assert_eq!(
            props["LifecycleHookSpecificationList"][0]["LifecycleHookName"],
            READY_HOOK
        );
        assert_eq!(
            props["LifecycleHookSpecificationList"][0]["HeartbeatTimeout"],
            1200
        );
        assert_eq!(
            t["Resources"]["FleetBatchLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"],
            json!({"Fn::Base64": {"Fn::Sub": ud}})
        );
        // The script names that group and that hook, waits 90% of the hook's timeout, and uses the shared check.
        let words = |line: &str| shlex::split(line).unwrap();
        let assigned = |name: &str| {
            let line = ud
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in {ud}"));
            words(line).remove(0)
        };
        assert_eq!(assigned("GROUP"), group);
        assert_eq!(assigned("HOOK"), READY_HOOK);
        assert!(ud.contains("if ! bake_wait_ready 1080; then"), "{ud}");
        assert!(ud.contains(&crate::emit::readiness_script("batch.service", None).unwrap()));
        assert!(ud.contains(
            "--auto-scaling-group-name \"$GROUP\" \\\n  --lifecycle-hook-name \"$HOOK\" --instance-id \"$id\" --lifecycle-action-result \"$result\""
        ), "{ud}");
        assert!(!ud.contains("/opt/aws/bin/cfn-signal"));
    }

    #[test]
    fn an_instance_refresh_ready_command_gates_the_hook() {
        let text = include_str!("../../specs/platform.kdl").replace(
            r#"ready-unit="batch.service" ready-timeout="PT20M""#,
            r#"ready-unit="batch.service" ready-command="test -e /run/batch-ready" ready-timeout="PT20M""#,
        );
        let plan = plan_of(&text);
        let lock = Lock::from_json(include_str!("../../specs/platform.lock.json")).unwrap();
        let resolved = crate::lock::verify(&plan, &lock, "specs/platform.kdl").unwrap();
        let artifacts = crate::emit::emit(&plan, &resolved, &lock).unwrap();
        let ud = artifacts.get("batch.user-data.sh").unwrap();
        let check =
            crate::emit::readiness_script("batch.service", Some("test -e /run/batch-ready"))
                .unwrap();
        assert!(ud.contains(&check), "{ud}");
    }

    #[test]
    fn fleets_default_to_one_imds_hop_and_recommended_suspensions() {
        let t = web();
        let data = &t["Resources"]["FleetWebLaunchTemplate"]["Properties"]["LaunchTemplateData"];
        assert_eq!(data["MetadataOptions"]["HttpPutResponseHopLimit"], 1);
        assert_eq!(data["MetadataOptions"]["HttpTokens"], "required");
        assert_eq!(
            t["Resources"]["FleetWebGroup"]["UpdatePolicy"]["AutoScalingRollingUpdate"]["SuspendProcesses"],
            json!([
                "HealthCheck",
                "ReplaceUnhealthy",
                "AZRebalance",
                "AlarmNotification",
                "ScheduledActions"
            ])
        );
        let plan = plan_of(&REFRESH.replace(
            r#"instance-type="m7i.large" {"#,
            r#"instance-type="m7i.large" imds-hop-limit=2 {"#,
        ));
        let t = template(&plan, &[None], &[None], &[None]);
        assert_eq!(
            t["Resources"]["FleetWebLaunchTemplate"]["Properties"]["LaunchTemplateData"]["MetadataOptions"]
                ["HttpPutResponseHopLimit"],
            2
        );
    }
}
