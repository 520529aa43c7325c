//! What the moto-backed deploy tests share: a spec that moto can deploy, moto's default subnet, unique stack
//! names, the real `bake` pointed at moto, and a readable dump of a run. Included with `#[path]` by the moto-backed
//! test files (`deploy_*.rs`, `promote_moto.rs`).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

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

/// The real `bake` in `dir`, pointed at moto (`url`) with moto's fake credentials and no terminal.
pub fn bake(dir: &Path, url: &str, args: &[&str]) -> Output {
    bake_env(dir, url, args, &[])
}

/// `bake` with more environment variables (e.g. a fixed `BAKE_NOW`).
pub fn bake_env(dir: &Path, url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bake"))
        .args(args)
        .current_dir(dir)
        .env("AWS_ENDPOINT_URL", url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("bake runs")
}

/// The run exited with `code` and its output names `needle`.
pub fn expect(out: &Output, code: i32, needle: &str) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(code), "{all}");
    assert!(all.contains(needle), "expected {needle:?} in\n{all}");
}
