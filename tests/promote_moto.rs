//! Promotion end to end: the real binary against a real moto server. Staging deploys on an AMI registered in
//! moto's EC2 (standing for the AMI Image Builder would have baked: moto has no Image Builder), `bake promote`
//! reads the AMI staging runs from its `/bake/<stack>/<image>/ami` parameter and moves exactly that id into the
//! lock entry of prod — shared with prod's account — or of dr, copied into another region; then prod deploys.
//!
//! Peers: `BAKE_TEST_MOTO_URL`, fake AWS credentials, `curl` (EC2's query API for what the test itself asks
//! moto: RegisterImage, DescribeImageAttribute, DescribeSnapshotAttribute, DescribeImages).

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::peers::{Peer, Suite, moto_url};

#[path = "support/stack.rs"]
mod stack;
use stack::{default_subnet, expect, unique};

fn main() {
    let mut suite = Suite::new();
    let moto = &[Peer::Moto, Peer::Curl];
    suite.test(
        "promote_moves_exactly_the_running_ami_and_shares_it",
        moto,
        promote_moves_exactly_the_running_ami_and_shares_it,
    );
    suite.test(
        "promote_copies_into_another_region",
        moto,
        promote_copies_into_another_region,
    );
    suite.test(
        "staging_a_plain_stack_prod_a_stack_set_in_two_regions",
        moto,
        staging_a_plain_stack_prod_a_stack_set_in_two_regions,
    );
    suite.test(
        "promote_before_the_source_deployed_writes_nothing",
        moto,
        promote_before_the_source_deployed_writes_nothing,
    );
    suite.run()
}

/// Every run at the same clock: promotion records when it happened.
fn bake(dir: &Path, url: &str, args: &[&str]) -> Output {
    stack::bake_env(dir, url, args, &[("BAKE_NOW", "2026-12-01T12:00:00Z")])
}

/// EC2's query API in `region`; moto routes by the credential scope and does not check the signature.
/// Destroys each environment's stack, in this order.
fn destroy(dir: &Path, url: &str, envs: &[&str]) {
    for env in envs {
        let out = bake(dir, url, &["destroy", "app.kdl", "--env", env, "--yes"]);
        expect(&out, 0, "Destroyed stack");
    }
}

fn ec2(url: &str, region: &str, query: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-H",
            &format!(
                "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/{region}/ec2/aws4_request, \
                 SignedHeaders=host, Signature=0"
            ),
            &format!("{url}/?Version=2016-11-15&{query}"),
        ])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "{query}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn between<'a>(body: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    body.split(open)
        .skip(1)
        .filter_map(|s| s.split(close).next())
        .collect()
}

/// An AMI in moto's EC2 standing for the one staging's build baked.
fn register_ami(url: &str, name: &str) -> String {
    let body = ec2(
        url,
        "us-east-1",
        &format!("Action=RegisterImage&Name={name}&Architecture=x86_64&RootDeviceName=/dev/xvda"),
    );
    between(&body, "<imageId>", "<")[0].to_owned()
}

/// Staging runs `ami` pinned (the stand-in for a baked AMI); prod (another account) and qa take their images
/// from staging; dr is staging's region's neighbour.
fn write_spec(dir: &Path, stack: &str, ami: &str, subnet: &str, dr_subnet: &str) {
    let text = format!(
        r#"stack "{stack}" region="us-east-1" account="123456789012" {{
    tags team="platform"
}}

image "web" {{
    base ami="{ami}" arch="x86_64"
}}

fleet "web" image="web" instance-type="t3.micro" {{
    subnets "{subnet}"
    security-groups "sg-0123456789abcdef0"
    size min=0 max=2 desired=0
    rollout "rolling" max-batch=1 min-in-service=0
}}

environment "staging" default=#true {{
    account "123456789012"
    tags env="staging"
}}

environment "prod" {{
    account "222222222222"
    images-from "staging"
    tags env="prod"
    fleet "web" instance-type="t3.small" max=4
}}

environment "qa" {{
    images-from "staging"
}}

environment "dr" {{
    region "us-west-2"
    images-from "staging"
    fleet "web" {{
        subnets "{dr_subnet}"
    }}
}}
"#
    );
    std::fs::write(dir.join("app.kdl"), text).unwrap();
}

/// A lock with an entry `bake promote --to prod` must leave alone: qa's.
fn write_lock(dir: &Path) -> serde_json::Value {
    let lock = serde_json::json!({
        "version": 3,
        "images": {},
        "environments": {"qa": {"images": {"web": {
            "ami": "ami-0123456789abcdef0", "from": "staging", "source-ami": "ami-0123456789abcdef0",
            "source-region": "us-east-1", "region": "us-east-1", "delivery": "same",
            "tested-since": "2026-11-01T00:00:00Z", "promoted-at": "2026-11-02T00:00:00Z"
        }}}}
    });
    std::fs::write(
        dir.join("app.lock.json"),
        serde_json::to_string_pretty(&lock).unwrap() + "\n",
    )
    .unwrap();
    lock
}

fn read_lock(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("app.lock.json")).unwrap()).unwrap()
}

fn promote_moves_exactly_the_running_ami_and_shares_it() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("promote");
    let ami = register_ami(&url, &stack);
    let subnet = default_subnet(&url, "us-east-1");
    let dr_subnet = default_subnet(&url, "us-west-2");
    write_spec(dir.path(), &stack, &ami, &subnet, &dr_subnet);
    let before = write_lock(dir.path());

    // Prod cannot be planned before anything was promoted into it.
    let plan = bake(dir.path(), &url, &["plan", "app.kdl", "--env", "prod"]);
    expect(&plan, 1, "bake::env::not_promoted");

    let deploy = bake(dir.path(), &url, &["deploy", "app.kdl", "--yes"]);
    expect(
        &deploy,
        0,
        &format!("Deployed stack {stack}-staging in us-east-1"),
    );

    let promote = bake(
        dir.path(),
        &url,
        &["promote", "app.kdl", "--from", "staging", "--to", "prod"],
    );
    expect(
        &promote,
        0,
        &format!("prod: image \"web\" runs {ami}, shared with account 222222222222"),
    );

    // Exactly prod's entry was added; qa's entry and the rest of the lock are as they were.
    let after = read_lock(dir.path());
    let mut rest = after.clone();
    let prod = rest["environments"]
        .as_object_mut()
        .unwrap()
        .remove("prod")
        .expect("a prod entry");
    assert_eq!(rest, before);
    let images = prod["images"].as_object().unwrap();
    assert_eq!(images.keys().collect::<Vec<_>>(), ["web"]);
    let web = &images["web"];
    assert_eq!(web["ami"], ami.as_str());
    assert_eq!(web["source-ami"], ami.as_str());
    assert_eq!(web["from"], "staging");
    assert_eq!(web["delivery"], "shared");
    assert_eq!(web["account"], "222222222222");
    assert_eq!(web["source-account"], "123456789012");
    assert_eq!(web["promoted-at"], "2026-12-01T12:00:00Z");
    let since = web["tested-since"].as_str().unwrap().to_owned();
    assert!(since.starts_with("20"), "{since}");

    // What moto records of the sharing: the launch permission, and the snapshot's create-volume permission.
    let attr = ec2(
        &url,
        "us-east-1",
        &format!("Action=DescribeImageAttribute&ImageId={ami}&Attribute=launchPermission"),
    );
    assert_eq!(between(&attr, "<userId>", "<"), ["222222222222"], "{attr}");
    let image = ec2(
        &url,
        "us-east-1",
        &format!("Action=DescribeImages&ImageId.1={ami}"),
    );
    let snapshot = between(&image, "<snapshotId>", "<")[0];
    let snap_attr = ec2(
        &url,
        "us-east-1",
        &format!(
            "Action=DescribeSnapshotAttribute&SnapshotId={snapshot}&Attribute=createVolumePermission"
        ),
    );
    assert_eq!(
        between(&snap_attr, "<userId>", "<"),
        ["222222222222"],
        "{snap_attr}"
    );

    // The plan says where the AMI comes from, not "new image"; prod's template builds nothing.
    let plan = bake(dir.path(), &url, &["plan", "app.kdl", "--env", "prod"]);
    expect(
        &plan,
        0,
        &format!("image \"web\": AMI {ami} from staging, tested since {since} (not rebuilt)"),
    );
    expect(&plan, 0, &format!("stack \"{stack}-prod\""));
    let out = dir.path().join("out");
    let compile = bake(
        dir.path(),
        &url,
        &[
            "compile",
            "app.kdl",
            "--env",
            "prod",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    expect(&compile, 0, "compiled");
    let template = std::fs::read_to_string(out.join("prod/template.json")).unwrap();
    assert!(!template.contains("AWS::ImageBuilder::"), "{template}");
    assert!(
        template.contains(&format!("\"ImageId\": \"{ami}\"")),
        "{template}"
    );
    assert!(
        template.contains("\"InstanceType\": \"t3.small\""),
        "{template}"
    );

    let deploy = bake(
        dir.path(),
        &url,
        &["deploy", "app.kdl", "--env", "prod", "--yes"],
    );
    expect(
        &deploy,
        0,
        &format!("Deployed stack {stack}-prod in us-east-1"),
    );
    let status = bake(dir.path(), &url, &["status", "app.kdl", "--env", "prod"]);
    expect(&status, 0, "The deployed template matches the spec.");
    // Promoting again with nothing new changes nothing but the time it was promoted.
    let again = bake(
        dir.path(),
        &url,
        &["promote", "app.kdl", "--from", "staging", "--to", "prod"],
    );
    expect(&again, 0, "promoted 1 image(s)");
    assert_eq!(read_lock(dir.path()), after);
    destroy(dir.path(), &url, &["prod", "staging"]);
}

fn promote_copies_into_another_region() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("copy");
    let ami = register_ami(&url, &stack);
    let subnet = default_subnet(&url, "us-east-1");
    let dr_subnet = default_subnet(&url, "us-west-2");
    write_spec(dir.path(), &stack, &ami, &subnet, &dr_subnet);
    write_lock(dir.path());
    let deploy = bake(dir.path(), &url, &["deploy", "app.kdl", "--yes"]);
    expect(&deploy, 0, "Deployed stack");
    let promote = bake(
        dir.path(),
        &url,
        &["promote", "app.kdl", "--from", "staging", "--to", "dr"],
    );
    expect(&promote, 0, &format!("(copied from {ami} in us-east-1)"));
    let lock = read_lock(dir.path());
    let web = &lock["environments"]["dr"]["images"]["web"];
    let copy = web["ami"].as_str().unwrap();
    assert_ne!(copy, ami);
    assert_eq!(web["delivery"], "copied");
    assert_eq!(web["region"], "us-west-2");
    assert_eq!(web["source-region"], "us-east-1");
    // The copy exists in us-west-2, available, and not in us-east-1.
    let there = ec2(
        &url,
        "us-west-2",
        &format!("Action=DescribeImages&ImageId.1={copy}"),
    );
    assert_eq!(
        between(&there, "<imageState>", "<"),
        ["available"],
        "{there}"
    );
    // A second promotion finds the same copy, not a new one. (moto ignores CopyImage's client token and would
    // make a second copy; bake finds its earlier copy by name.)
    let again = bake(
        dir.path(),
        &url,
        &["promote", "app.kdl", "--from", "staging", "--to", "dr"],
    );
    expect(&again, 0, "copied");
    let second = read_lock(dir.path());
    let second_copy = second["environments"]["dr"]["images"]["web"]["ami"]
        .as_str()
        .unwrap();
    assert_eq!(second_copy, copy);
    assert_eq!(second, lock);
    let deploy = bake(
        dir.path(),
        &url,
        &["deploy", "app.kdl", "--env", "dr", "--yes"],
    );
    expect(
        &deploy,
        0,
        &format!("Deployed stack {stack}-dr in us-west-2"),
    );
    destroy(dir.path(), &url, &["dr", "staging"]);
}

fn promote_before_the_source_deployed_writes_nothing() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("early");
    let ami = register_ami(&url, &stack);
    let subnet = default_subnet(&url, "us-east-1");
    write_spec(dir.path(), &stack, &ami, &subnet, &subnet);
    let before = std::fs::read(dir.path().join("app.lock.json")).ok();
    write_lock(dir.path());
    let before_text = std::fs::read(dir.path().join("app.lock.json")).unwrap();
    assert!(before.is_none());
    let promote = bake(
        dir.path(),
        &url,
        &["promote", "app.kdl", "--from", "staging", "--to", "prod"],
    );
    expect(&promote, 3, "runs no AMI for image `web` yet");
    expect(&promote, 3, "not written");
    assert_eq!(
        std::fs::read(dir.path().join("app.lock.json")).unwrap(),
        before_text
    );
    // Promoting into an environment that builds its own images is refused before any call.
    let wrong = bake(
        dir.path(),
        &url,
        &["promote", "app.kdl", "--from", "prod", "--to", "staging"],
    );
    expect(&wrong, 2, "builds its own images");
}

/// An AMI registered in `region` of moto's default account, standing for the promoted AMI's copy there.
fn register_ami_in(url: &str, region: &str, name: &str) -> String {
    let body = ec2(
        url,
        region,
        &format!("Action=RegisterImage&Name={name}&Architecture=x86_64&RootDeviceName=/dev/xvda"),
    );
    between(&body, "<imageId>", "<")[0].to_owned()
}

/// A default subnet of `account` in `region` (moto gives each account its own default VPC).
fn subnet_of(url: &str, account: &str, region: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-H",
            &format!(
                "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/{region}/ec2/aws4_request, \
                 SignedHeaders=host, Signature=0"
            ),
            "-H",
            &format!("x-moto-account-id: {account}"),
            &format!("{url}/?Action=DescribeSubnets&Version=2016-11-15"),
        ])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "DescribeSubnets: {out:?}");
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    between(&body, "<subnetId>", "<")[0].to_owned()
}

/// The output `key` of the stack set's stack in `account` and `region` (moto names it `StackSet:<set>`).
fn set_output(url: &str, account: &str, region: &str, set: &str, key: &str) -> Option<String> {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-H",
            &format!(
                "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/{region}/cloudformation/aws4_request, \
                 SignedHeaders=host, Signature=0"
            ),
            "-H",
            &format!("x-moto-account-id: {account}"),
            &format!("{url}/?Action=DescribeStacks&StackName=StackSet%3A{set}&Version=2010-05-15"),
        ])
        .output()
        .expect("curl runs");
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let key = format!("<OutputKey>{key}</OutputKey><OutputValue>");
    let start = body.find(&key)? + key.len();
    Some(body[start..start + body[start..].find('<')?].to_owned())
}

/// Staging is a plain stack in moto's default account; prod (account 222222222222) runs staging's AMI through its
/// environment's `stack-set` in us-east-1 and eu-west-1: us-east-1 the AMI `bake promote` recorded, eu-west-1 the
/// AMI its `region` block pins.
fn staging_a_plain_stack_prod_a_stack_set_in_two_regions() {
    const PROD: &str = "222222222222";
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("envset");
    let ami = register_ami(&url, &stack);
    let eu_ami = register_ami_in(&url, "eu-west-1", &format!("{stack}-copy"));
    let subnet = default_subnet(&url, "us-east-1");
    let prod_subnet = subnet_of(&url, PROD, "us-east-1");
    let prod_eu_subnet = subnet_of(&url, PROD, "eu-west-1");
    let spec = format!(
        r#"stack "{stack}" region="us-east-1" account="123456789012" {{
    tags team="platform"
}}

image "web" {{
    base ami="{ami}" arch="x86_64"
}}

fleet "web" image="web" instance-type="t3.micro" {{
    subnets "{subnet}"
    size min=0 max=2 desired=0
    rollout "rolling" max-batch=1 min-in-service=0
}}

environment "staging" default=#true {{
    account "123456789012"
}}

environment "prod" {{
    account "{PROD}"
    images-from "staging"
    fleet "web" {{
        subnets "{prod_subnet}"
    }}
    stack-set permission-model="SELF_MANAGED" {{
        accounts "{PROD}"
        regions "us-east-1" "eu-west-1"
        region "eu-west-1" {{
            image "web" ami="{eu_ami}"
            subnets "{prod_eu_subnet}" fleet="web"
        }}
    }}
}}
"#
    );
    std::fs::write(dir.path().join("app.kdl"), spec).unwrap();
    std::fs::write(
        dir.path().join("app.lock.json"),
        "{\n  \"version\": 3,\n  \"images\": {}\n}\n",
    )
    .unwrap();

    let deploy = bake(dir.path(), &url, &["deploy", "app.kdl", "--yes"]);
    expect(
        &deploy,
        0,
        &format!("Deployed stack {stack}-staging in us-east-1"),
    );
    let promote = bake(
        dir.path(),
        &url,
        &["promote", "app.kdl", "--from", "staging", "--to", "prod"],
    );
    expect(&promote, 0, &format!("shared with account {PROD}"));
    assert_eq!(
        read_lock(dir.path())["environments"]["prod"]["images"]["web"]["ami"],
        ami.as_str()
    );

    // Prod goes through StackSets: one instance per region, none before the deploy.
    let set = format!("{stack}-prod");
    let plan = bake(dir.path(), &url, &["plan", "app.kdl", "--env", "prod"]);
    expect(&plan, 0, "Plan: 2 stack instance(s) to create");
    let deploy = bake(
        dir.path(),
        &url,
        &["deploy", "app.kdl", "--env", "prod", "--yes"],
    );
    expect(&deploy, 0, &format!("Deployed stack set {set}"));
    // Each region's stack resolved its region's AMI from the mapping.
    for (region, want) in [("us-east-1", ami.as_str()), ("eu-west-1", eu_ami.as_str())] {
        assert_eq!(
            set_output(&url, PROD, region, &set, "ImageWebAmiId").as_deref(),
            Some(want),
            "region {region}"
        );
    }
    let status = bake(
        dir.path(),
        &url,
        &["status", "app.kdl", "--env", "prod", "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).expect("one JSON object");
    let mut regions: Vec<&str> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["region"].as_str().unwrap())
        .collect();
    regions.sort_unstable();
    assert_eq!(regions, ["eu-west-1", "us-east-1"], "{v}");

    let destroy = bake(
        dir.path(),
        &url,
        &["destroy", "app.kdl", "--env", "prod", "--yes"],
    );
    expect(&destroy, 0, &format!("Deleted stack set {set}"));
    let destroy = bake(dir.path(), &url, &["destroy", "app.kdl", "--yes"]);
    expect(&destroy, 0, "Destroyed stack");
}
