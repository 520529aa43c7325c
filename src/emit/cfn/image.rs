//! A built image's Image Builder resources (component, recipe, infrastructure, distribution, pipeline, image)
//! and the SSM parameter recording the AMI an image's fleets run.

use serde_json::{Map, Value, json};

use super::common::{assume_role, managed_policy, obj, resource, tag_list, tag_map, with_tags};
use super::retention::retention;
use super::{ami_parameter_name, image_id, lineage, merge_tags};
use crate::check::plan::{BuildPlan, ImagePlan, Plan};
use crate::emit::{ImageScripts, content_version};
use crate::lock::Resolved;

/// Records the AMI an image's fleets run in an SSM parameter that survives switching between a built and a pinned
/// image: its version history is the list of AMIs the stack deployed, the ones to roll back to. An image no fleet
/// runs (a warning at check) has nothing to roll back, and gets no record.
pub(super) fn ami_record(
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

pub(super) fn built_image(
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
    let mut role_props = obj(json!({
        "Description": format!("Image Builder build instances of {base_name}"),
        "AssumeRolePolicyDocument": assume_role("ec2.amazonaws.com"),
        "ManagedPolicyArns": [
            managed_policy("EC2InstanceProfileForImageBuilder"),
            managed_policy("AmazonSSMManagedInstanceCore"),
        ],
    }));
    // A prebuilt closure in S3: read access to exactly its cache files; a private flake: exactly its secrets.
    let mut policies = Vec::new();
    if let Some(c) = resolved
        .closure
        .as_ref()
        .filter(|c| !c.read_objects.is_empty())
    {
        policies.push(crate::closure::cache_read_policy(&c.read_objects));
    }
    policies.extend(super::fetch::read_policy(&resolved.secrets));
    if !policies.is_empty() {
        role_props.insert("Policies".into(), Value::Array(policies));
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

/// A NixOS image: no Image Builder resources. `bake image` registered its AMI; the lock records it, and the
/// template uses it like a pinned AMI (output, metadata, the AMI record its fleets' rollbacks read).
pub(super) fn nixos_image(
    plan: &Plan,
    image: &ImagePlan,
    entry: &crate::lock::nixos::NixosLock,
    resources: &mut Map<String, Value>,
    outputs: &mut Map<String, Value>,
    metadata_images: &mut Map<String, Value>,
) {
    let ami = entry
        .amis
        .get(&plan.stack.region)
        .cloned()
        .unwrap_or_default();
    outputs.insert(
        image_id(image, "AmiId"),
        json!({"Description": format!("The NixOS AMI of image {}, registered by bake image", image.name.value), "Value": ami}),
    );
    metadata_images.insert(
        image.name.value.clone(),
        json!({"nixos-ami": ami, "flake-rev": entry.rev, "store-path": entry.store_path}),
    );
    ami_record(plan, image, json!(ami), resources, outputs);
}
