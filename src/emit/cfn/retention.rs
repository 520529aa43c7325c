//! AMI retention: an image's lifecycle policy and its least-privilege execution role.

use serde_json::{Map, Value, json};

use super::common::{assume_role_from_image_builder, obj, tag_list, tag_map, with_tags};
use super::{image_id, lineage};
use crate::check::plan::{BuildPlan, ImagePlan, Plan};

/// The lifecycle policy that keeps an image's newest `keep` baked AMIs and deletes older ones with their
/// snapshots, and its execution role: only what a DELETE rule uses (the AWS managed
/// `EC2ImageBuilderLifecycleExecutionPolicy` less deprecation, disabling, tagging and containers), only on
/// resources Image Builder created, AMIs only of this image's lineage.
pub(super) fn retention(
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
