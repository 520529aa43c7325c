//! `bake plan`/`deploy`/`status`/`destroy` of a spec with a `stack-set`: the real binary against a real moto
//! server, whose StackSets create one stack per account and region.
//!
//! moto runs every stack set operation to its end inside the call and never fails an instance in one region
//! only, so the failure test puts a thin proxy on loopback in front of moto that forwards everything and reports
//! one region's results of the operation as FAILED (what CloudFormation reports when a stack instance fails
//! there). Every test uses its own stack set names and never resets moto.
//!
//! Peers: `BAKE_TEST_MOTO_URL`, fake AWS credentials in the environment, `curl` on PATH (moto's default subnets,
//! AMIs and SSM parameters are read over plain HTTP).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::peers::{Peer, Suite, moto_url};

#[path = "support/stack.rs"]
mod stack;
use stack::{AMI, bake, default_subnet, expect, text, unique};

#[path = "support/http.rs"]
mod http;
use http::{forward, read_request};

fn main() {
    let mut suite = Suite::new();
    let moto = &[Peer::Moto, Peer::Curl];
    suite.test(
        "two_regions_deploy_update_status_remove_destroy",
        moto,
        two_regions_deploy_update_status_remove_destroy,
    );
    suite.test(
        "two_accounts_two_regions_each_region_gets_its_ami",
        moto,
        two_accounts_two_regions_each_region_gets_its_ami,
    );
    suite.test(
        "a_failed_instance_is_reported_with_its_account_and_region",
        moto,
        a_failed_instance_is_reported_with_its_account_and_region,
    );
    suite.test(
        "status_watch_follows_instances_until_the_operation_ends",
        moto,
        status_watch_follows_instances_until_the_operation_ends,
    );
    suite.test(
        "a_region_without_its_ami_is_refused_before_any_call",
        &[],
        a_region_without_its_ami_is_refused_before_any_call,
    );
    suite.run()
}

const ACCOUNT: &str = "123456789012";
const OTHER_ACCOUNT: &str = "111111111111";

/// One AWS query/JSON call to moto over curl; moto routes by the credential scope and ignores the signature.
fn moto_call(region: &str, service: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "-sf".to_owned(),
        "-H".to_owned(),
        format!(
            "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/{region}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0"
        ),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let out = Command::new("curl")
        .args(&args)
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "{service} call failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An AMI moto's EC2 knows in `region` (AMI ids are regional).
fn an_ami(url: &str, region: &str) -> String {
    let body = moto_call(
        region,
        "ec2",
        &[&format!(
            "{url}/?Action=DescribeImages&Owner.1=amazon&Version=2016-11-15"
        )],
    );
    let start = body.find("<imageId>").expect("moto has AMIs") + "<imageId>".len();
    body[start..start + body[start..].find('<').unwrap()].to_owned()
}

/// The value of SSM parameter `name` in `region`, or `None` when there is none.
fn ssm_value(url: &str, region: &str, name: &str) -> Option<String> {
    let out = Command::new("curl")
        .args([
            "-s",
            "-H",
            &format!(
                "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/{region}/ssm/aws4_request, \
                 SignedHeaders=host, Signature=0"
            ),
            "-H",
            "X-Amz-Target: AmazonSSM.GetParameter",
            "-H",
            "Content-Type: application/x-amz-json-1.1",
            "-d",
            &format!("{{\"Name\": \"{name}\"}}"),
            &format!("{url}/"),
        ])
        .output()
        .expect("curl runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["Parameter"]["Value"].as_str().map(str::to_owned)
}

/// The output `key` of the stack set's stack in `account` and `region` (moto names it `StackSet:<set>` and takes
/// the account from its `x-moto-account-id` header).
fn stack_output(url: &str, account: &str, region: &str, set: &str, key: &str) -> Option<String> {
    let body = moto_call(
        region,
        "cloudformation",
        &[
            "-H",
            &format!("x-moto-account-id: {account}"),
            &format!("{url}/?Action=DescribeStacks&StackName=StackSet%3A{set}&Version=2010-05-15"),
        ],
    );
    let key = format!("<OutputKey>{key}</OutputKey><OutputValue>");
    let start = body.find(&key)? + key.len();
    Some(body[start..start + body[start..].find('<')?].to_owned())
}

/// `DescribeStacks` in `region`: a stack set's stacks carry the set's name.
fn stacks_in(url: &str, region: &str) -> String {
    moto_call(
        region,
        "cloudformation",
        &[&format!("{url}/?Action=DescribeStacks&Version=2010-05-15")],
    )
}

/// A spec whose stack set deploys `image` (AMI per region) and, with `fleet`, one fleet per region's subnet.
fn write_spec(
    dir: &Path,
    name: &str,
    accounts: &[&str],
    regions: &[(&str, String, Option<String>)],
    fleet: bool,
) {
    let (home, home_ami, home_subnet) = &regions[0];
    let mut text = format!(
        "stack \"{name}\" region=\"{home}\" {{\n    tags team=\"platform\"\n}}\n\nimage \"base\" {{\n    base ami=\"{home_ami}\" arch=\"x86_64\"\n}}\n"
    );
    if fleet {
        text.push_str(&format!(
            "\nfleet \"web\" image=\"base\" instance-type=\"t3.micro\" {{\n    subnets \"{}\"\n    size min=0 max=2 desired=0\n    rollout \"rolling\" max-batch=1 min-in-service=0\n}}\n",
            home_subnet.as_deref().unwrap()
        ));
    }
    let accounts: Vec<String> = accounts.iter().map(|a| format!("\"{a}\"")).collect();
    let names: Vec<String> = regions.iter().map(|(r, _, _)| format!("\"{r}\"")).collect();
    text.push_str(&format!(
        "\nstack-set permission-model=\"SELF_MANAGED\" {{\n    accounts {}\n    regions {}\n    preferences region-concurrency=\"SEQUENTIAL\" max-concurrent-count=1 failure-tolerance-count=0\n",
        accounts.join(" "),
        names.join(" ")
    ));
    for (region, ami, subnet) in &regions[1..] {
        text.push_str(&format!(
            "    region \"{region}\" {{\n        image \"base\" ami=\"{ami}\"\n"
        ));
        if fleet {
            text.push_str(&format!(
                "        subnets \"{}\" fleet=\"web\"\n",
                subnet.as_deref().unwrap()
            ));
        }
        text.push_str("    }\n");
    }
    text.push_str("}\n");
    std::fs::write(dir.join("app.kdl"), text).unwrap();
    std::fs::write(
        dir.join("app.lock.json"),
        "{\n  \"version\": 2,\n  \"images\": {}\n}\n",
    )
    .unwrap();
}

fn two_regions_deploy_update_status_remove_destroy() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("sset");
    let eu_ami = an_ami(&url, "eu-west-1");
    let regions = vec![
        (
            "us-east-1",
            AMI.to_owned(),
            Some(default_subnet(&url, "us-east-1")),
        ),
        (
            "eu-west-1",
            eu_ami.clone(),
            Some(default_subnet(&url, "eu-west-1")),
        ),
    ];
    write_spec(dir.path(), &name, &[ACCOUNT], &regions, true);
    let parameter = format!("/bake/{name}/base/ami");

    // Plan: a new stack set with one instance per region; nothing exists yet.
    let plan = bake(
        dir.path(),
        &url,
        &["plan", "app.kdl", "--detailed-exitcode"],
    );
    expect(&plan, 10, "template: new stack set");
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(
        out.contains(&format!("+ {ACCOUNT}")) && out.contains("eu-west-1"),
        "{}",
        text(&plan)
    );
    expect(&plan, 10, "Plan: 2 stack instance(s) to create");
    assert_eq!(ssm_value(&url, "eu-west-1", &parameter), None);

    // Deploy: the set, then the instances, region by region.
    let deploy = bake(dir.path(), &url, &["deploy", "app.kdl", "--yes"]);
    expect(&deploy, 0, &format!("Deployed stack set {name}"));
    expect(&deploy, 0, "create instances: SUCCEEDED");
    // Each region's stack got that region's AMI from the mapping.
    assert_eq!(
        ssm_value(&url, "us-east-1", &parameter).as_deref(),
        Some(AMI)
    );
    assert_eq!(
        ssm_value(&url, "eu-west-1", &parameter).as_deref(),
        Some(eu_ami.as_str())
    );
    assert!(stacks_in(&url, "eu-west-1").contains(&name));

    // Status lists each instance with its state; the template is the spec's.
    let status = bake(dir.path(), &url, &["status", "app.kdl"]);
    expect(&status, 0, "CURRENT/SUCCEEDED");
    expect(&status, 0, "The stack set's template matches the spec.");
    let lines = String::from_utf8_lossy(&status.stdout);
    assert_eq!(
        lines.matches("CURRENT/SUCCEEDED").count(),
        2,
        "{}",
        text(&status)
    );
    let json = bake(dir.path(), &url, &["status", "app.kdl", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("one JSON object");
    let regions_seen: Vec<&str> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["region"].as_str().unwrap())
        .collect();
    assert_eq!(regions_seen, ["us-east-1", "eu-west-1"]);
    assert_eq!(v["matches_spec"], true);

    // No-op: nothing to do.
    let again = bake(dir.path(), &url, &["deploy", "app.kdl", "--yes"]);
    expect(&again, 0, "No changes");
    let plan = bake(
        dir.path(),
        &url,
        &["plan", "app.kdl", "--detailed-exitcode"],
    );
    expect(&plan, 0, "template: unchanged");

    // Update: a new AMI in eu-west-1 only. The plan says which mapped id changes in which region.
    let new_eu_ami = "ami-0fedcba9876543210";
    let spec = std::fs::read_to_string(dir.path().join("app.kdl")).unwrap();
    std::fs::write(
        dir.path().join("app.kdl"),
        spec.replace(&eu_ami, new_eu_ami),
    )
    .unwrap();
    let plan = bake(
        dir.path(),
        &url,
        &["plan", "app.kdl", "--detailed-exitcode"],
    );
    expect(&plan, 10, "template: changed");
    expect(&plan, 10, &format!("ImageBaseAmi: {eu_ami} → {new_eu_ami}"));
    let out = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(out.matches("ImageBaseAmi:").count(), 1, "{}", text(&plan));
    let update = bake(dir.path(), &url, &["deploy", "app.kdl", "--yes"]);
    expect(&update, 0, "update: SUCCEEDED");
    // The stack set now holds the spec's template. (moto's UpdateStackSet stores the template but does not run
    // the instances' stacks again, so their resources keep the old AMI there; AWS updates every instance.)
    let plan = bake(
        dir.path(),
        &url,
        &["plan", "app.kdl", "--detailed-exitcode"],
    );
    expect(&plan, 0, "template: unchanged");
    let status = bake(dir.path(), &url, &["status", "app.kdl"]);
    expect(&status, 0, "The stack set's template matches the spec.");

    // eu-west-1 leaves the spec: kept (and said so) without --delete-instances, deleted with it.
    let home_only = vec![regions[0].clone()];
    write_spec(dir.path(), &name, &[ACCOUNT], &home_only, true);
    let plan = bake(dir.path(), &url, &["plan", "app.kdl"]);
    expect(&plan, 0, "not in the spec");
    expect(&plan, 0, "--delete-instances");
    let kept = bake(dir.path(), &url, &["deploy", "app.kdl", "--yes"]);
    expect(&kept, 0, "are no longer in the spec and are kept");
    assert!(ssm_value(&url, "eu-west-1", &parameter).is_some());
    let pruned = bake(
        dir.path(),
        &url,
        &["deploy", "app.kdl", "--yes", "--delete-instances"],
    );
    expect(&pruned, 0, "delete instances: SUCCEEDED");
    let status = bake(dir.path(), &url, &["status", "app.kdl"]);
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("eu-west-1 "),
        "{}",
        text(&status)
    );
    assert_eq!(ssm_value(&url, "eu-west-1", &parameter), None);

    // Destroy: instances, then the set.
    let destroy = bake(dir.path(), &url, &["destroy", "app.kdl", "--yes"]);
    expect(&destroy, 0, &format!("Deleted stack set {name}"));
    let status = bake(dir.path(), &url, &["status", "app.kdl"]);
    expect(&status, 0, "does not exist");
    assert_eq!(ssm_value(&url, "us-east-1", &parameter), None);
}

fn two_accounts_two_regions_each_region_gets_its_ami() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("ssacct");
    let eu_ami = an_ami(&url, "eu-west-1");
    // No fleet: moto gives each account its own default VPC, so one subnet id cannot serve both accounts
    // (docs/stacksets.md: shared VPC subnets do). The image's AMI output shows what each stack resolved.
    let regions = vec![
        ("us-east-1", AMI.to_owned(), None),
        ("eu-west-1", eu_ami.clone(), None),
    ];
    write_spec(
        dir.path(),
        &name,
        &[ACCOUNT, OTHER_ACCOUNT],
        &regions,
        false,
    );
    let plan = bake(dir.path(), &url, &["plan", "app.kdl"]);
    expect(&plan, 0, "Plan: 4 stack instance(s) to create");
    let deploy = bake(dir.path(), &url, &["deploy", "app.kdl", "--yes"]);
    expect(&deploy, 0, &format!("Deployed stack set {name}"));
    let json = bake(dir.path(), &url, &["status", "app.kdl", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("one JSON object");
    let mut pairs: Vec<(String, String, String)> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["account"].as_str().unwrap().to_owned(),
                i["region"].as_str().unwrap().to_owned(),
                i["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    let want = |a: &str, r: &str| (a.to_owned(), r.to_owned(), "CURRENT".to_owned());
    assert_eq!(
        pairs,
        [
            want(OTHER_ACCOUNT, "eu-west-1"),
            want(OTHER_ACCOUNT, "us-east-1"),
            want(ACCOUNT, "eu-west-1"),
            want(ACCOUNT, "us-east-1"),
        ]
    );
    // Each account's stack in each region resolved that region's AMI from the mapping.
    for account in [ACCOUNT, OTHER_ACCOUNT] {
        for (region, ami) in [("us-east-1", AMI), ("eu-west-1", eu_ami.as_str())] {
            assert_eq!(
                stack_output(&url, account, region, &name, "ImageBaseAmiId").as_deref(),
                Some(ami),
                "account {account}, region {region}"
            );
        }
    }
    let destroy = bake(dir.path(), &url, &["destroy", "app.kdl", "--yes"]);
    expect(&destroy, 0, &format!("Deleted stack set {name}"));
}

fn a_failed_instance_is_reported_with_its_account_and_region() {
    let url = moto_url();
    let proxy = Rewriter::start(&url, "eu-west-1");
    let dir = tempfile::tempdir().unwrap();
    let name = unique("ssfail");
    let regions = vec![
        ("us-east-1", AMI.to_owned(), None),
        ("eu-west-1", an_ami(&url, "eu-west-1"), None),
    ];
    write_spec(dir.path(), &name, &[ACCOUNT], &regions, false);
    let deploy = bake(dir.path(), &proxy.url, &["deploy", "app.kdl", "--yes"]);
    let all = text(&deploy);
    assert_eq!(deploy.status.code(), Some(4), "{all}");
    let stderr = String::from_utf8_lossy(&deploy.stderr);
    assert!(
        stderr.contains(&format!(
            "✗ account {ACCOUNT} in eu-west-1: FAILED — {REASON}"
        )),
        "{all}"
    );
    assert!(!stderr.contains("in us-east-1: FAILED"), "{all}");
    assert!(
        stderr.contains("1 stack instance(s) did not succeed"),
        "{all}"
    );
    // Status through the same proxy shows the failed instance with its region and reason.
    let status = bake(dir.path(), &proxy.url, &["status", "app.kdl"]);
    let out = String::from_utf8_lossy(&status.stdout);
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(ACCOUNT) && l.contains("eu-west-1"))
        .unwrap_or_default();
    assert!(line.contains("OUTDATED/FAILED"), "{}", text(&status));
    assert!(out.contains(REASON), "{}", text(&status));
    drop(proxy);
    let destroy = bake(dir.path(), &url, &["destroy", "app.kdl", "--yes"]);
    expect(&destroy, 0, &format!("Deleted stack set {name}"));
}

fn status_watch_follows_instances_until_the_operation_ends() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("sswatch");
    let regions = vec![
        ("us-east-1", AMI.to_owned(), None),
        ("eu-west-1", an_ami(&url, "eu-west-1"), None),
    ];
    write_spec(dir.path(), &name, &[ACCOUNT], &regions, false);
    let deploy = bake(dir.path(), &url, &["deploy", "app.kdl", "--yes"]);
    expect(&deploy, 0, &format!("Deployed stack set {name}"));
    // The proxy answers the first two listings with RUNNING instances, as during an operation.
    let proxy = Rewriter::with(&url, Mode::BusyFor(2));
    let status = bake(dir.path(), &proxy.url, &["status", "app.kdl"]);
    expect(
        &status,
        0,
        "An operation is in progress: `bake status app.kdl --watch` follows it.",
    );
    let start = Instant::now();
    let watched = bake(dir.path(), &proxy.url, &["status", "app.kdl", "--watch"]);
    let took = start.elapsed();
    expect(&watched, 0, "CURRENT/SUCCEEDED");
    assert!(
        !String::from_utf8_lossy(&watched.stdout).contains("in progress"),
        "{}",
        text(&watched)
    );
    // It read again after its 5-second pause, and stopped once the instances were done.
    assert!(took >= Duration::from_secs(5), "{took:?}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    drop(proxy);
    let destroy = bake(dir.path(), &url, &["destroy", "app.kdl", "--yes"]);
    expect(&destroy, 0, &format!("Deleted stack set {name}"));
}

fn a_region_without_its_ami_is_refused_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let regions = vec![
        ("us-east-1", AMI.to_owned(), None),
        ("eu-west-1", "ami-0123456789abcdef0".to_owned(), None),
    ];
    write_spec(dir.path(), "nocall", &[ACCOUNT], &regions, false);
    let spec = std::fs::read_to_string(dir.path().join("app.kdl")).unwrap();
    std::fs::write(
        dir.path().join("app.kdl"),
        spec.replace("        image \"base\" ami=\"ami-0123456789abcdef0\"\n", ""),
    )
    .unwrap();
    // A closed port: any AWS call would be an environment error (exit 3), not the spec error (exit 1).
    let out = bake(
        dir.path(),
        "http://127.0.0.1:9",
        &["deploy", "app.kdl", "--yes"],
    );
    expect(&out, 1, "bake::stackset::region_value");
    expect(
        &out,
        1,
        "region `eu-west-1` needs an AMI id for image `base`",
    );
}

// ---- a proxy that rewrites moto's answers ---------------------------------------------------------------------------

const REASON: &str = "injected by the test proxy: the stack instance failed in this region";

/// Forwards every request to moto and rewrites its answers (`Mode`): for a failed region, its operation results
/// FAILED (with `REASON`), the operation FAILED and its stack instances OUTDATED/FAILED.
struct Rewriter {
    url: String,
    stop: Arc<AtomicBool>,
}

/// What the proxy changes in moto's answers.
#[derive(Clone, Copy)]
enum Mode {
    /// The region's results and instances FAILED (`REASON`), the operation FAILED.
    Fail(&'static str),
    /// Every instance RUNNING in the first this many `ListStackInstances` answers (an operation under way).
    BusyFor(usize),
}

impl Rewriter {
    fn start(upstream: &str, region: &'static str) -> Rewriter {
        Rewriter::with(upstream, Mode::Fail(region))
    }

    fn with(upstream: &str, mode: Mode) -> Rewriter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let lists = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let upstream = upstream.clone();
                        let lists = Arc::clone(&lists);
                        std::thread::spawn(move || serve(conn, &upstream, mode, &lists));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Rewriter { url, stop }
    }
}

impl Drop for Rewriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(mut conn: TcpStream, upstream: &str, mode: Mode, lists: &std::sync::atomic::AtomicUsize) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let Some((head, body)) = read_request(&mut conn) else {
        return;
    };
    let Some(answer) = forward(upstream, &head, &body) else {
        return;
    };
    let request = String::from_utf8_lossy(&body).into_owned();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |p| p + 4);
    let (answer_head, answer_body) = answer.split_at(split);
    let xml = String::from_utf8_lossy(answer_body).into_owned();
    let region = match mode {
        Mode::Fail(region) => region,
        Mode::BusyFor(n) => {
            let xml = if request.contains("Action=ListStackInstances")
                && lists.fetch_add(1, Ordering::SeqCst) < n
            {
                xml.replace(
                    "<DetailedStatus>SUCCEEDED</DetailedStatus>",
                    "<DetailedStatus>RUNNING</DetailedStatus>",
                )
            } else {
                xml
            };
            return answer_with(&mut conn, answer_head, &xml);
        }
    };
    let member_in_region = format!("<Region>{region}</Region>");
    let xml = if request.contains("Action=ListStackSetOperationResults") {
        rewrite_members(&xml, &member_in_region, |m| {
            m.replacen(
                "<Status>SUCCEEDED</Status>",
                &format!("<Status>FAILED</Status><StatusReason>{REASON}</StatusReason>"),
                1,
            )
        })
    } else if request.contains("Action=DescribeStackSetOperation") {
        xml.replacen("<Status>SUCCEEDED</Status>", "<Status>FAILED</Status>", 1)
    } else if request.contains("Action=ListStackInstances") {
        rewrite_members(&xml, &member_in_region, |m| {
            m.replacen(
                "<Status>CURRENT</Status>",
                &format!("<Status>OUTDATED</Status><StatusReason>{REASON}</StatusReason>"),
                1,
            )
            .replacen(
                "<DetailedStatus>SUCCEEDED</DetailedStatus>",
                "<DetailedStatus>FAILED</DetailedStatus>",
                1,
            )
        })
    } else {
        xml
    };
    answer_with(&mut conn, answer_head, &xml);
}

/// moto's answer head with the (rewritten) body and its new length.
fn answer_with(conn: &mut TcpStream, answer_head: &[u8], xml: &str) {
    let head: String = String::from_utf8_lossy(answer_head)
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:") && !l.is_empty())
        .collect::<Vec<_>>()
        .join("\r\n");
    let _ = write!(conn, "{head}\r\nContent-Length: {}\r\n\r\n{xml}", xml.len());
}

/// Applies `f` to each `<member>…</member>` of a summary list that contains `needle`.
fn rewrite_members(xml: &str, needle: &str, f: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<member>") {
        let Some(len) = rest[start..].find("</member>") else {
            break;
        };
        let end = start + len + "</member>".len();
        out.push_str(&rest[..start]);
        let member = &rest[start..end];
        if member.contains(needle) {
            out.push_str(&f(member));
        } else {
            out.push_str(member);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}
