//! Templates over CloudFormation's inline limit: the real binary against a real moto server's S3 and
//! CloudFormation, with a thin recording proxy on loopback in front of moto where the test must see what was sent
//! (the CreateChangeSet parameters) or make S3 refuse a call (moto does not enforce IAM).
//!
//! The specs have 12 built images (what makes a template large: each embeds its bootstrap script twice) and 12
//! fleets. moto has no Image Builder: it skips those resources, and a fleet whose launch template took its AMI
//! from a built image (`Fn::GetAtt`) would fail there, so the fleets run on one pinned image, as in
//! tests/deploy_moto.rs. The lock entries are copies of `specs/web.lock.json`'s image, so they follow the lock
//! format wherever it goes.
//!
//! Peers: `BAKE_TEST_MOTO_URL`, fake AWS credentials, `curl`. Without moto a test prints why and passes, unless
//! `BAKE_TEST_REQUIRE_PEERS=1`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

#[path = "support/stack.rs"]
mod stack;

use stack::{AMI, default_subnet, text, unique};

mod common;
use common::peers::{Peer, Suite, moto_url};

fn main() {
    let mut suite = Suite::new();
    suite.test(
        "twelve_images_deploy_through_the_template_bucket",
        &[Peer::Moto, Peer::Curl],
        twelve_images_deploy_through_the_template_bucket,
    );
    suite.test(
        "an_object_that_is_not_the_template_is_uploaded_again",
        &[Peer::Moto, Peer::Curl],
        an_object_that_is_not_the_template_is_uploaded_again,
    );
    suite.test(
        "a_template_that_fits_compact_is_sent_inline",
        &[Peer::Moto, Peer::Curl],
        a_template_that_fits_compact_is_sent_inline,
    );
    suite.test(
        "no_permission_to_create_the_bucket_says_which_and_how_to_use_your_own",
        &[Peer::Moto, Peer::Curl],
        no_permission_to_create_the_bucket_says_which_and_how_to_use_your_own,
    );
    suite.test(
        "a_bad_bucket_name_is_a_usage_error",
        &[],
        a_bad_bucket_name_is_a_usage_error,
    );
    suite.test(
        "over_a_mebibyte_is_refused_before_any_call",
        &[],
        over_a_mebibyte_is_refused_before_any_call,
    );
    suite.test(
        "the_refusal_blames_scripts_only_when_there_are_some",
        &[],
        the_refusal_blames_scripts_only_when_there_are_some,
    );
    suite.run()
}

/// moto's account.
const ACCOUNT: &str = "123456789012";
const INLINE_MAX: usize = 51_200;

/// `app.kdl` with `images` built images, a pinned one, and 12 fleets on the pinned one; `app.lock.json` beside it.
fn write_spec(dir: &Path, stack: &str, subnet: &str, images: usize) {
    let mut spec =
        format!("stack \"{stack}\" region=\"us-east-1\" {{\n    tags team=\"platform\"\n}}\n\n");
    let web: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/web.lock.json"))
            .unwrap(),
    )
    .unwrap();
    let mut lock = web.clone();
    let entries = lock["images"].as_object_mut().unwrap();
    let entry = entries.remove("web").unwrap();
    for i in 1..=images {
        let name = format!("img{i:02}");
        spec.push_str(&format!(
            r#"image "{name}" {{
    base ssm="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64"
    nix installer="determinate" version="3.1.1"
    flake "git+https://github.com/acme/infra.git" ref="main" output="systemConfigs.{name}"
    rpms "git"
    build "m7i.large" subnet="{subnet}" security-group="sg-0a1b2c3d4e5f60718"
}}

"#
        ));
        entries.insert(name, entry.clone());
    }
    spec.push_str(&format!(
        "image \"stock\" {{\n    base ami=\"{AMI}\" arch=\"x86_64\"\n}}\n\n"
    ));
    for i in 1..=12 {
        // desired=0: moto would otherwise launch instances.
        spec.push_str(&format!(
            r#"fleet "f{i:02}" image="stock" instance-type="t3.micro" {{
    subnets "{subnet}"
    security-groups "sg-0a1b2c3d4e5f60718"
    size min=0 max=2 desired=0
    rollout "rolling" max-batch=1 min-in-service=0
}}

"#
        ));
    }
    std::fs::write(dir.join("app.kdl"), spec).unwrap();
    std::fs::write(
        dir.join("app.lock.json"),
        serde_json::to_string_pretty(&lock).unwrap(),
    )
    .unwrap();
}

fn bake(dir: &Path, url: &str, endpoints: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bake"));
    cmd.args(args)
        .current_dir(dir)
        .env("AWS_ENDPOINT_URL", url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (k, v) in endpoints {
        cmd.env(k, v);
    }
    cmd.output().expect("bake runs")
}

fn expect(out: &Output, code: i32, needle: &str) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(code), "{all}");
    assert!(all.contains(needle), "expected {needle:?} in\n{all}");
}

/// The template `bake compile` writes (pretty) and the compact form of it.
fn compiled(dir: &Path) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bake"))
        .args(["compile", "app.kdl", "-o", "out"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let pretty = std::fs::read_to_string(dir.join("out/template.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&pretty).unwrap();
    (pretty, serde_json::to_string(&v).unwrap())
}

fn key_for(stack: &str, compact: &str) -> String {
    let hex: String = Sha256::digest(compact.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("bake/{stack}/{hex}.json")
}

// ---------------------------------------------------------------------------------------------------------------
// A recording proxy: one request per connection (it answers `Connection: close`), forwarded to moto unless `deny`
// answers it.

#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    body: Vec<u8>,
}

type Deny = fn(&Request) -> Option<String>;

struct Proxy {
    url: String,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Proxy {
    fn start(upstream: &str, deny: Deny) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (upstream, log) = (upstream.clone(), Arc::clone(&log2));
                std::thread::spawn(move || {
                    let _ = relay(conn, &upstream, &log, deny);
                });
            }
        });
        Proxy { url, log }
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

fn relay(
    client: TcpStream,
    upstream: &str,
    log: &Mutex<Vec<Request>>,
    deny: Deny,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut length = 0usize;
    let mut chunked = false;
    let mut request_line = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if request_line.is_empty() {
            request_line = line.trim_end().to_owned();
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut raw_body = Vec::new();
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            raw_body.extend_from_slice(size_line.as_bytes());
            let size =
                usize::from_str_radix(size_line.trim().split(';').next().unwrap(), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            raw_body.extend_from_slice(&chunk);
            body.extend_from_slice(&chunk[..size]);
            if size == 0 {
                break;
            }
        }
    } else {
        body = vec![0; length];
        reader.read_exact(&mut body)?;
        raw_body.clone_from(&body);
    }
    let mut parts = request_line.split(' ');
    let request = Request {
        method: parts.next().unwrap_or_default().to_owned(),
        target: parts.next().unwrap_or_default().to_owned(),
        body,
    };
    log.lock().unwrap().push(request.clone());
    let mut client = client;
    if let Some(answer) = deny(&request) {
        client.write_all(answer.as_bytes())?;
        return Ok(());
    }
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(30)))?;
    up.write_all(&head)?;
    up.write_all(&raw_body)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    client.write_all(&response)?;
    Ok(())
}

fn allow_all(_: &Request) -> Option<String> {
    None
}

/// S3 as a principal without `s3:CreateBucket` sees it: CreateBucket is `PUT /<bucket>` (path style) without a
/// query.
fn deny_create_bucket(r: &Request) -> Option<String> {
    let path_only = r.target.trim_end_matches('/');
    let is_create =
        r.method == "PUT" && !r.target.contains('?') && path_only.matches('/').count() == 1;
    is_create.then(|| {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
                    <Message>Access Denied</Message><RequestId>0</RequestId></Error>";
        format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    })
}

/// The form parameters of the CloudFormation calls the proxy saw, for `action`.
fn cfn_calls(proxy: &Proxy, action: &str) -> Vec<Vec<(String, String)>> {
    proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| form(&r.body))
        .filter(|f| f.iter().any(|(k, v)| k == "Action" && v == action))
        .collect()
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn param<'a>(call: &'a [(String, String)], name: &str) -> Option<&'a str> {
    call.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------------------------------
// The SDK against moto, to look at what bake left there.

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn sdk_config(url: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await
}

/// The keys under `prefix` and their last-modified times.
async fn objects(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<(String, i64)> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .map(|o| {
            (
                o.key().unwrap_or_default().to_owned(),
                o.last_modified().map_or(0, |t| t.secs()),
            )
        })
        .collect()
}

async fn object_body(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    String::from_utf8(out.body.collect().await.unwrap().to_vec()).unwrap()
}

fn twelve_images_deploy_through_the_template_bucket() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("s3big");
    write_spec(dir.path(), &stack, &default_subnet(&url, "us-east-1"), 12);
    let (pretty, compact) = compiled(dir.path());
    assert!(
        compact.len() > INLINE_MAX && compact.len() < pretty.len(),
        "{} bytes compact, {} pretty",
        compact.len(),
        pretty.len()
    );
    let bucket = format!("bake-templates-{ACCOUNT}-us-east-1");
    let key = key_for(&stack, &compact);
    let cfn = Proxy::start(&url, allow_all);
    let via = [("AWS_ENDPOINT_URL_CLOUDFORMATION", cfn.url.as_str())];
    let rt = runtime();
    let config = rt.block_on(sdk_config(&url, "us-east-1"));
    let s3 = aws_sdk_s3::Client::new(&config);

    // plan uploads the template and explains the change set from its metadata.
    let plan = bake(
        dir.path(),
        &url,
        &via,
        &["plan", "app.kdl", "--detailed-exitcode"],
    );
    expect(&plan, 10, &format!("uploaded to s3://{bucket}/{key}"));
    expect(&plan, 10, "(image \"img12\")");
    expect(&plan, 10, "(fleet \"f12\")");
    let stored = rt.block_on(objects(&s3, &bucket, &format!("bake/{stack}/")));
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].0, key);
    assert_eq!(rt.block_on(object_body(&s3, &bucket, &key)), compact);

    // deploy re-uses the object and CloudFormation reads the template from it.
    std::thread::sleep(Duration::from_millis(1100));
    let deploy = bake(dir.path(), &url, &via, &["deploy", "app.kdl", "--yes"]);
    expect(&deploy, 0, &format!("already in s3://{bucket}/{key}"));
    expect(
        &deploy,
        0,
        &format!("Deployed stack {stack} in us-east-1 (account 123456789012): CREATE_COMPLETE."),
    );
    assert_eq!(
        rt.block_on(objects(&s3, &bucket, &format!("bake/{stack}/"))),
        stored,
        "the object was uploaded again"
    );
    let creates = cfn_calls(&cfn, "CreateChangeSet");
    assert_eq!(creates.len(), 2, "plan and deploy each create one");
    for call in &creates {
        assert_eq!(
            param(call, "TemplateURL"),
            Some(format!("https://{bucket}.s3.us-east-1.amazonaws.com/{key}").as_str()),
            "{call:?}"
        );
        assert_eq!(param(call, "TemplateBody"), None);
    }
    let deployed = rt.block_on(async {
        aws_sdk_cloudformation::Client::new(&config)
            .get_template()
            .stack_name(&stack)
            .send()
            .await
            .unwrap()
            .template_body
            .unwrap()
    });
    assert_eq!(deployed, compact);

    // A second deploy is a no-op and stores nothing new.
    let again = bake(dir.path(), &url, &via, &["deploy", "app.kdl", "--yes"]);
    expect(&again, 0, "No changes");
    assert_eq!(cfn_calls(&cfn, "CreateChangeSet").len(), 2);
    assert_eq!(
        rt.block_on(objects(&s3, &bucket, &format!("bake/{stack}/"))),
        stored
    );

    // The bucket as bake configured it.
    rt.block_on(async {
        let enc = s3
            .get_bucket_encryption()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
        assert_eq!(
            rule.apply_server_side_encryption_by_default()
                .unwrap()
                .sse_algorithm()
                .as_str(),
            "AES256"
        );
        let pab = s3
            .get_public_access_block()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        let pab = pab.public_access_block_configuration().unwrap();
        assert_eq!(
            (
                pab.block_public_acls(),
                pab.ignore_public_acls(),
                pab.block_public_policy(),
                pab.restrict_public_buckets()
            ),
            (Some(true), Some(true), Some(true), Some(true))
        );
        let own = s3
            .get_bucket_ownership_controls()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        assert_eq!(
            own.ownership_controls().unwrap().rules()[0]
                .object_ownership()
                .as_str(),
            "BucketOwnerEnforced"
        );
        let life = s3
            .get_bucket_lifecycle_configuration()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        let rule = &life.rules()[0];
        assert_eq!(rule.status().as_str(), "Enabled");
        assert_eq!(rule.expiration().unwrap().days(), Some(7));
        assert_eq!(
            rule.noncurrent_version_expiration()
                .unwrap()
                .noncurrent_days(),
            Some(1)
        );
    });

    // The plan of an update explains it from the metadata of the deployed (compact) template and the new one.
    let lock_path = dir.path().join("app.lock.json");
    let mut lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lock_path).unwrap()).unwrap();
    let old_rev = lock["images"]["img03"]["flake"]["rev"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_rev = "0123456789abcdef0123456789abcdef01234567";
    assert_ne!(old_rev, new_rev);
    lock["images"]["img03"]["flake"]["rev"] = new_rev.into();
    std::fs::write(&lock_path, serde_json::to_string_pretty(&lock).unwrap()).unwrap();
    let update = bake(dir.path(), &url, &via, &["plan", "app.kdl"]);
    expect(&update, 0, "Plan to update stack");
    expect(
        &update,
        0,
        &format!("because flake revision {} → 0123456789ab", &old_rev[..12]),
    );
    assert_eq!(
        rt.block_on(objects(&s3, &bucket, &format!("bake/{stack}/")))
            .len(),
        2,
        "the changed template is a second object"
    );

    let destroy = bake(dir.path(), &url, &[], &["destroy", "app.kdl", "--yes"]);
    expect(
        &destroy,
        0,
        &format!("Destroyed stack {stack} in us-east-1 (account 123456789012)."),
    );
}

fn an_object_that_is_not_the_template_is_uploaded_again() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("s3tamper");
    write_spec(dir.path(), &stack, &default_subnet(&url, "us-east-1"), 12);
    let (_, compact) = compiled(dir.path());
    let bucket = format!("bake-templates-{ACCOUNT}-us-east-1");
    let key = key_for(&stack, &compact);
    let plan = bake(dir.path(), &url, &[], &["plan", "app.kdl"]);
    expect(&plan, 0, &format!("uploaded to s3://{bucket}/{key}"));
    // Someone with write access to the bucket replaces the object: its name no longer says what it holds.
    let rt = runtime();
    let config = rt.block_on(sdk_config(&url, "us-east-1"));
    let s3 = aws_sdk_s3::Client::new(&config);
    let forged = compact.replacen("\"Description\":\"", "\"Description\":\"forged: ", 1);
    assert_ne!(forged, compact);
    rt.block_on(async {
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(forged.into_bytes().into())
            .send()
            .await
            .unwrap();
    });
    let deploy = bake(dir.path(), &url, &[], &["deploy", "app.kdl", "--yes"]);
    expect(&deploy, 0, &format!("uploaded to s3://{bucket}/{key}"));
    expect(
        &deploy,
        0,
        &format!("Deployed stack {stack} in us-east-1 (account 123456789012): CREATE_COMPLETE."),
    );
    assert_eq!(rt.block_on(object_body(&s3, &bucket, &key)), compact);
    let deployed = rt.block_on(async {
        aws_sdk_cloudformation::Client::new(&config)
            .get_template()
            .stack_name(&stack)
            .send()
            .await
            .unwrap()
            .template_body
            .unwrap()
    });
    assert_eq!(deployed, compact);
    let destroy = bake(dir.path(), &url, &[], &["destroy", "app.kdl", "--yes"]);
    expect(
        &destroy,
        0,
        &format!("Destroyed stack {stack} in us-east-1 (account 123456789012)."),
    );
}

fn a_template_that_fits_compact_is_sent_inline() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("s3inline");
    let subnet = default_subnet(&url, "us-east-1");
    // The number of images whose template is over the limit pretty and under it compact.
    let compact = (1..=8)
        .find_map(|n| {
            write_spec(dir.path(), &stack, &subnet, n);
            let (pretty, compact) = compiled(dir.path());
            (pretty.len() > INLINE_MAX && compact.len() <= INLINE_MAX).then_some(compact)
        })
        .expect("some number of images is over the limit pretty and under it compact");
    let cfn = Proxy::start(&url, allow_all);
    // Nothing listens on port 9: any S3 or STS call would fail the deploy.
    let via = [
        ("AWS_ENDPOINT_URL_CLOUDFORMATION", cfn.url.as_str()),
        ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9"),
        ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9"),
    ];
    let deploy = bake(dir.path(), &url, &via, &["deploy", "app.kdl", "--yes"]);
    expect(
        &deploy,
        0,
        &format!("Deployed stack {stack} in us-east-1 (account 123456789012): CREATE_COMPLETE."),
    );
    assert!(!text(&deploy).contains("s3://"), "{}", text(&deploy));
    let creates = cfn_calls(&cfn, "CreateChangeSet");
    assert_eq!(creates.len(), 1);
    assert_eq!(param(&creates[0], "TemplateURL"), None);
    assert_eq!(param(&creates[0], "TemplateBody"), Some(compact.as_str()));
    let destroy = bake(dir.path(), &url, &[], &["destroy", "app.kdl", "--yes"]);
    expect(
        &destroy,
        0,
        &format!("Destroyed stack {stack} in us-east-1 (account 123456789012)."),
    );
}

fn no_permission_to_create_the_bucket_says_which_and_how_to_use_your_own() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("s3denied");
    // The stack goes to us-west-2 through `--region`, so its subnet is one there.
    write_spec(dir.path(), &stack, &default_subnet(&url, "us-west-2"), 12);
    // us-west-2 through `--region`: no earlier run created bake's bucket there, since creating it is denied.
    let s3 = Proxy::start(&url, deny_create_bucket);
    let via = [("AWS_ENDPOINT_URL_S3", s3.url.as_str())];
    let bucket = format!("bake-templates-{ACCOUNT}-us-west-2");
    let denied = bake(
        dir.path(),
        &url,
        &via,
        &["deploy", "app.kdl", "--yes", "--region", "us-west-2"],
    );
    expect(
        &denied,
        3,
        &format!("bake may not create its template bucket {bucket}"),
    );
    expect(&denied, 3, "s3:CreateBucket");
    expect(&denied, 3, "`--template-bucket`");
    assert!(
        s3.requests().iter().any(|r| r.method == "PUT"),
        "CreateBucket was tried"
    );
    let status = bake(
        dir.path(),
        &url,
        &[],
        &["status", "app.kdl", "--region", "us-west-2"],
    );
    expect(&status, 0, "does not exist");

    // A bucket of the user's own, named on the command line, is used as it is.
    let own = format!("team-templates-{}", std::process::id());
    let rt = runtime();
    let config = rt.block_on(sdk_config(&url, "us-west-2"));
    let client = aws_sdk_s3::Client::new(&config);
    rt.block_on(async {
        client
            .create_bucket()
            .bucket(&own)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    let deploy = bake(
        dir.path(),
        &url,
        &via,
        &[
            "deploy",
            "app.kdl",
            "--yes",
            "--region",
            "us-west-2",
            "--template-bucket",
            &own,
        ],
    );
    expect(&deploy, 0, &format!("uploaded to s3://{own}/bake/{stack}/"));
    expect(
        &deploy,
        0,
        &format!("Deployed stack {stack} in us-west-2 (account 123456789012): CREATE_COMPLETE."),
    );
    assert_eq!(
        rt.block_on(objects(&client, &own, &format!("bake/{stack}/")))
            .len(),
        1
    );
    let destroy = bake(
        dir.path(),
        &url,
        &[],
        &["destroy", "app.kdl", "--yes", "--region", "us-west-2"],
    );
    expect(
        &destroy,
        0,
        &format!("Destroyed stack {stack} in us-west-2 (account 123456789012)."),
    );
}

fn a_bad_bucket_name_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path(), "s3name", "subnet-0123456789abcdef0", 1);
    let out = bake(
        dir.path(),
        "http://127.0.0.1:9",
        &[],
        &["plan", "app.kdl", "--template-bucket", "Not_A_Bucket"],
    );
    expect(&out, 2, "is not an S3 bucket name");
}

fn over_a_mebibyte_is_refused_before_any_call() {
    // No moto needed: nothing listens on port 9, and nothing may be called.
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path(), "s3huge", "subnet-0123456789abcdef0", 140);
    let (_, compact) = compiled(dir.path());
    assert!(compact.len() > 1024 * 1024, "{} bytes", compact.len());
    let out = bake(
        dir.path(),
        "http://127.0.0.1:9",
        &[],
        &["deploy", "app.kdl", "--yes"],
    );
    expect(
        &out,
        1,
        &format!(
            "the template is {} bytes as sent (compact JSON); CloudFormation takes at most 1048576 bytes even from S3",
            compact.len()
        ),
    );
    expect(
        &out,
        1,
        "each of the 140 built image(s) embeds its bootstrap script twice",
    );
    assert!(!text(&out).contains("cannot"), "{}", text(&out));
}

/// A `Cfn` that must not be called.
struct Untouched;

impl bake::deploy::cfn::Cfn for Untouched {
    async fn describe_stack(
        &self,
        _: &str,
    ) -> Result<Option<bake::deploy::cfn::Stack>, bake::deploy::cfn::CfnError> {
        panic!("describe_stack")
    }
    async fn get_template(&self, _: &str) -> Result<Option<String>, bake::deploy::cfn::CfnError> {
        panic!("get_template")
    }
    async fn create_change_set(
        &self,
        _: &bake::deploy::cfn::ChangeSetRequest,
    ) -> Result<(String, String), bake::deploy::cfn::CfnError> {
        panic!("create_change_set")
    }
    async fn describe_change_set(
        &self,
        _: &str,
        _: &str,
    ) -> Result<bake::deploy::cfn::ChangeSet, bake::deploy::cfn::CfnError> {
        panic!("describe_change_set")
    }
    async fn execute_change_set(
        &self,
        _: &str,
        _: &str,
        _: bool,
    ) -> Result<(), bake::deploy::cfn::CfnError> {
        panic!("execute_change_set")
    }
    async fn delete_change_set(&self, _: &str, _: &str) -> Result<(), bake::deploy::cfn::CfnError> {
        panic!("delete_change_set")
    }
    async fn delete_stack(&self, _: &str) -> Result<(), bake::deploy::cfn::CfnError> {
        panic!("delete_stack")
    }
    async fn stack_events(
        &self,
        _: &str,
        _: i64,
    ) -> Result<Vec<bake::deploy::cfn::StackEvent>, bake::deploy::cfn::CfnError> {
        panic!("stack_events")
    }
}

#[derive(Clone, Default)]
struct Buf(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What `bake::deploy::deploy` (no template bucket) says about a template of `size` bytes for the spec in `dir`.
fn refusal(dir: &Path, size: usize) -> String {
    let text = std::fs::read_to_string(dir.join("app.kdl")).unwrap();
    let file = bake::source::SourceFile::new("app.kdl", text);
    let (plan, diags) = bake::check_source(&file);
    let lock =
        bake::lock::Lock::from_json(&std::fs::read_to_string(dir.join("app.lock.json")).unwrap())
            .unwrap();
    let compiled = bake::pipeline::build(&file, plan.unwrap(), diags, &lock).unwrap();
    let big = format!("{{\"Description\": \"{}\"}}", "x".repeat(size));
    let out = Buf::default();
    let mut ui = bake::deploy::Ui {
        out: Box::new(out.clone()),
        err: Box::new(out.clone()),
        json: None,
        live: false,
        verbose: false,
        confirm: Box::new(|_: &str| None),
        started: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    let store = bake::deploy::template_store::TemplateStore::InlineOnly;
    let target = bake::deploy::Target {
        plan: &compiled.plan,
        template: &big,
        spec: "app.kdl".into(),
        region: compiled.plan.stack.region.clone(),
        store: &store,
    };
    let code = runtime().block_on(bake::deploy::deploy(
        &Untouched,
        &target,
        bake::deploy::Options::default(),
        &mut ui,
    ));
    assert_eq!(code, bake::cli::exit::SPEC);
    String::from_utf8(out.0.borrow().clone()).unwrap()
}

fn the_refusal_blames_scripts_only_when_there_are_some() {
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path(), "s3msg", "subnet-0123456789abcdef0", 0);
    let said = refusal(dir.path(), 60_000);
    assert!(
        said.contains("CloudFormation takes at most 51200 bytes inline"),
        "{said}"
    );
    assert!(!said.contains("script"), "{said}");
    assert!(
        said.contains("split the fleets into several specs"),
        "{said}"
    );

    write_spec(dir.path(), "s3msg", "subnet-0123456789abcdef0", 2);
    let said = refusal(dir.path(), 60_000);
    assert!(
        said.contains("each of the 2 built image(s) embeds its bootstrap script twice"),
        "{said}"
    );
}
