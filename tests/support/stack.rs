//! What the moto-backed deploy tests share: a spec that moto can deploy, moto's default subnet, unique stack
//! names, and a readable dump of a run. Included with `#[path]` by `deploy_moto.rs` and `deploy_faults.rs`.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The AMI moto's SSM public parameters name for AL2023 in us-east-1; moto's EC2 knows it.
pub const AMI: &str = "ami-0d27e0fb3bac4d724";

/// A spec with one fleet on a pinned AMI (moto has no Image Builder): no build, no lock entry.
pub fn write_spec(dir: &Path, stack: &str, region: &str, subnet: &str, max: u32) {
    let text = format!(
        r#"stack "{stack}" region="{region}" {{
    tags team="platform"
}}

image "base" {{
    base ami="{AMI}" arch="x86_64"
}}

// desired=0: moto would otherwise launch instances, and its EC2 wants volume sizes bake leaves to the AMI.
fleet "web" image="base" instance-type="t3.micro" {{
    subnets "{subnet}"
    security-groups "sg-0123456789abcdef0"
    size min=0 max={max} desired=0
    rollout "rolling" max-batch=1 min-in-service=0
}}
"#
    );
    std::fs::write(dir.join("app.kdl"), text).unwrap();
}

/// A subnet of moto's default VPC in `region`, via the EC2 query API. moto routes the request by the
/// credential scope in the Authorization header and does not check the signature.
pub fn default_subnet(url: &str, region: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-H",
            &format!(
                "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/{region}/ec2/aws4_request, \
                 SignedHeaders=host, Signature=0"
            ),
            &format!("{url}/?Action=DescribeSubnets&Version=2016-11-15"),
        ])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "DescribeSubnets failed: {out:?}");
    let body = String::from_utf8_lossy(&out.stdout);
    let start = body.find("<subnetId>").expect("moto has a default subnet") + "<subnetId>".len();
    let end = start + body[start..].find('<').unwrap();
    body[start..end].to_owned()
}

/// A stack name no other test run uses.
pub fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("bake-{test}-{}-{nanos}", std::process::id())
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
