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
        include_str!("../../../specs/web.kdl"),
        include_str!("../../../specs/web.lock.json"),
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
    let text = include_str!("../../../specs/web.kdl").replace(
        r#"tags team="platform""#,
        r#"tags Name="web" team="platform""#,
    );
    let t = example(
        "specs/web.kdl",
        &text,
        include_str!("../../../specs/web.lock.json"),
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
    let volume = &t["Resources"]["FleetWebLaunchTemplate"]["Properties"]["LaunchTemplateData"]["TagSpecifications"]
        [0]["Tags"];
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
    let text = include_str!("../../../specs/web.kdl")
        .replace("keep=3", "keep=5")
        .replace(r#"stack "web""#, r#"stack "Web""#);
    let t = example(
        "specs/web.kdl",
        &text,
        include_str!("../../../specs/web.lock.json"),
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
            .starts_with("arn:${AWS::Partition}:imagebuilder:${AWS::Region}:${AWS::AccountId}:")
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
        include_str!("../../../specs/rollback.kdl"),
        include_str!("../../../specs/rollback.lock.json"),
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
    let plan = plan_of(include_str!("../../../specs/platform.kdl"));
    let lock = Lock::from_json(include_str!("../../../specs/platform.lock.json")).unwrap();
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
    let text = include_str!("../../../specs/platform.kdl").replace(
        r#"ready-unit="batch.service" ready-timeout="PT20M""#,
        r#"ready-unit="batch.service" ready-command="test -e /run/batch-ready" ready-timeout="PT20M""#,
    );
    let plan = plan_of(&text);
    let lock = Lock::from_json(include_str!("../../../specs/platform.lock.json")).unwrap();
    let resolved = crate::lock::verify(&plan, &lock, "specs/platform.kdl").unwrap();
    let artifacts = crate::emit::emit(&plan, &resolved, &lock).unwrap();
    let ud = artifacts.get("batch.user-data.sh").unwrap();
    let check =
        crate::emit::readiness_script("batch.service", Some("test -e /run/batch-ready")).unwrap();
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
