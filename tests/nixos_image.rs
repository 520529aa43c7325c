//! NixOS images (`bake image`): the real `nix build` of a small flake, the upload through the EBS direct APIs
//! into a real moto server, `RegisterImage`/`CopyImage`/`DescribeImages` on moto's EC2, the lock, and `compile`
//! taking the AMI from it.
//!
//! moto keeps only the name and description of `RegisterImage` (it shows its own `/dev/sda1` mapping), so a thin
//! recording proxy on loopback in front of moto shows the request bake really sent; the same proxy stops
//! answering block uploads for the timeout test. The flake is made without nixpkgs: a `derivation` with
//! `builder = "/bin/sh"` writes a raw image with a few non-zero 512 KiB blocks and `nix-support/image-info.json`,
//! so it builds offline (this machine's nix runs with `sandbox = false`, so the builder may call `/bin/mkdir`).
//!
//! Peers: `BAKE_TEST_MOTO_URL` (moto 5.2.5) and `nix`. Without them a test is ignored with its reason, unless
//! `BAKE_TEST_REQUIRE_PEERS=1`.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

mod common;
use common::git;
use common::peers::{Peer, Suite, moto_url};

#[path = "support/http.rs"]
mod http;
use http::{forward, read_request};

fn main() {
    let mut suite = Suite::new();
    suite.test(
        "a_sparse_image_uploads_and_reads_back_block_for_block",
        &[Peer::Moto],
        a_sparse_image_uploads_and_reads_back_block_for_block,
    );
    suite.test(
        "bake_image_builds_registers_records_and_a_second_run_does_nothing",
        &[Peer::Moto, Peer::Nix],
        bake_image_builds_registers_records_and_a_second_run_does_nothing,
    );
    suite.test(
        "a_vhd_image_is_refused_with_a_diagnostic",
        &[Peer::Nix],
        a_vhd_image_is_refused_with_a_diagnostic,
    );
    suite.test(
        "a_server_that_stops_answering_fails_in_time_and_leaves_no_snapshot",
        &[Peer::Moto, Peer::Nix],
        a_server_that_stops_answering_fails_in_time_and_leaves_no_snapshot,
    );
    suite.test(
        "old_nixos_amis_go_beyond_keep_but_never_one_in_use",
        &[Peer::Moto, Peer::Nix],
        old_nixos_amis_go_beyond_keep_but_never_one_in_use,
    );
    suite.run()
}

const NOW: &str = "2026-12-01T12:00:00Z";
const KMS: &str = "arn:aws:kms:us-east-1:111122223333:key/0f3c8a52-7d1e-4b6a-9c2f-5e8d7a6b4c3d";
const BLOCK: u64 = 512 * 1024;

// ---- the SDK against moto ---------------------------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn sdk_config(url: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await
}

/// A unique name per test run, so tests sharing one moto never see each other's snapshots and AMIs.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{:x}{}", nanos, std::process::id() % 1000)
}

/// Snapshots moto's EC2 holds whose description names this stack.
async fn snapshots_of(ec2: &aws_sdk_ec2::Client, stack: &str) -> Vec<String> {
    let out = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    out.snapshots()
        .iter()
        .filter(|s| {
            s.description()
                .is_some_and(|d| d.contains(&format!("bake {stack}/")))
        })
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect()
}

/// AMIs moto's EC2 holds in `region` whose name starts with `bake/<stack>/`.
async fn images_of(url: &str, region: &str, stack: &str) -> Vec<String> {
    let ec2 = aws_sdk_ec2::Client::new(&sdk_config(url, region).await);
    let out = ec2.describe_images().owners("self").send().await.unwrap();
    out.images()
        .iter()
        .filter(|i| {
            i.name()
                .is_some_and(|n| n.starts_with(&format!("bake/{stack}/")))
        })
        .filter_map(|i| i.image_id().map(str::to_owned))
        .collect()
}

// ---- a sparse file, uploaded and read back ----------------------------------------------------------------------

/// A deterministic pseudo-random generator (xorshift), seeded per run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn a_sparse_image_uploads_and_reads_back_block_for_block() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.raw");
    // 300 MiB and 1000 bytes: mostly holes, 40 blocks of random data and a partial last block.
    let size = 300 * 1024 * 1024 + 1000;
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(size).unwrap();
    let blocks = size.div_ceil(BLOCK);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let mut data_blocks = std::collections::BTreeSet::new();
    {
        use std::os::unix::fs::FileExt;
        while data_blocks.len() < 40 {
            let b = rng.next() % (blocks - 1);
            let mut buf = vec![0u8; BLOCK as usize];
            // Some blocks only partly filled: a block with one non-zero byte still counts.
            let fill = if data_blocks.len() % 5 == 0 {
                1
            } else {
                buf.len()
            };
            for x in &mut buf[..fill] {
                *x = (rng.next() as u8) | 1;
            }
            file.write_all_at(&buf, b * BLOCK).unwrap();
            data_blocks.insert(b);
        }
        file.write_all_at(b"the end of the image", size - 20)
            .unwrap();
        data_blocks.insert(blocks - 1);
    }
    drop(file);
    let want = Sha256::digest(std::fs::read(&path).unwrap());

    let rt = runtime();
    let stack = unique("sparse");
    let (uploaded, ebs) = rt.block_on(async {
        let settings = bake::aws::Settings {
            profile: None,
            region: "us-east-1".into(),
            timeout: Duration::from_secs(60),
        };
        let config = sdk_config(&url, "us-east-1").await;
        let ebs = aws_sdk_ebs::Client::new(&config);
        let endpoint = bake::aws::Endpoint::new("EBS", &config, &settings);
        let req = bake::nixos::upload::UploadRequest {
            file: &path,
            volume_gib: bake::nixos::upload::min_volume_gib(size),
            description: format!("bake {stack}/img: test"),
            tags: vec![("bake:lineage".into(), format!("{stack}/img"))],
            encrypted: false,
            kms_key: None,
            parallelism: 8,
            client_token: unique("token"),
            snapshot_timeout_minutes: 60,
        };
        let up = bake::nixos::upload::upload(&ebs, &endpoint, &req)
            .await
            .unwrap_or_else(|f| panic!("{f:?}"));
        (up, ebs)
    });
    assert_eq!(uploaded.blocks, blocks);
    assert_eq!(
        uploaded.written,
        data_blocks.len() as u64,
        "only non-zero blocks are written"
    );

    // Read the snapshot back with the EBS direct read APIs and rebuild the file's bytes.
    let got = rt.block_on(async {
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..1000 {
            let out = ebs
                .list_snapshot_blocks()
                .snapshot_id(&uploaded.snapshot)
                .set_next_token(token.clone())
                .send()
                .await
                .unwrap();
            for b in out.blocks() {
                listed.push((
                    b.block_index().unwrap() as u64,
                    b.block_token().unwrap_or_default().to_owned(),
                ));
            }
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        listed.sort();
        let indices: Vec<u64> = listed.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, data_blocks.iter().copied().collect::<Vec<_>>());
        let mut hasher = Sha256::new();
        let mut next = 0u64;
        for (index, token) in &listed {
            while next < *index {
                hasher.update(vec![0u8; BLOCK as usize]);
                next += 1;
            }
            let out = ebs
                .get_snapshot_block()
                .snapshot_id(&uploaded.snapshot)
                .block_index(*index as i32)
                .block_token(token)
                .send()
                .await
                .unwrap();
            let checksum = out.checksum().unwrap_or_default().to_owned();
            let data = out.block_data.collect().await.unwrap().into_bytes();
            assert_eq!(data.len() as u64, BLOCK);
            assert_eq!(
                checksum,
                aws_smithy_types::base64::encode(Sha256::digest(&data))
            );
            let keep = if *index == blocks - 1 {
                (size - index * BLOCK) as usize
            } else {
                data.len()
            };
            assert!(
                data[keep..].iter().all(|&b| b == 0),
                "the last block is padded with zeros"
            );
            hasher.update(&data[..keep]);
            next = index + 1;
        }
        hasher.finalize()
    });
    assert_eq!(got, want, "the snapshot holds the file's bytes");
}

// ---- the recording proxy ----------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    body: Vec<u8>,
}

impl Request {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The form fields of an EC2 query request, decoded.
    fn form(&self) -> Vec<(String, String)> {
        self.text()
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (decode(k), decode(v)))
            .collect()
    }

    fn action(&self) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v)
    }

    fn is_put_block(&self) -> bool {
        self.method == "PUT"
            && self.target.starts_with("/snapshots/")
            && self.target.contains("/blocks/")
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Proxy {
    url: String,
    log: Arc<Mutex<Vec<Request>>>,
    held: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Forwards to moto; with `freeze_blocks`, holds every PutSnapshotBlock without an answer.
    fn start(upstream: &str, freeze_blocks: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let log = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, h, s) = (Arc::clone(&log), Arc::clone(&held), Arc::clone(&stop));
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(600);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        let (upstream, l, h, s) = (
                            upstream.clone(),
                            Arc::clone(&l),
                            Arc::clone(&h),
                            Arc::clone(&s),
                        );
                        std::thread::spawn(move || {
                            let _ = relay(conn, &upstream, &l, &h, &s, freeze_blocks);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            url,
            log,
            held,
            stop,
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    fn ec2(&self, action: &str) -> Vec<Vec<(String, String)>> {
        self.requests()
            .iter()
            .filter(|r| r.action().as_deref() == Some(action))
            .map(Request::form)
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Serves one request per connection (answers go back with moto's `Connection: close`), forwarded on a fresh one.
fn relay(
    mut client: TcpStream,
    upstream: &str,
    log: &Mutex<Vec<Request>>,
    held: &AtomicUsize,
    stop: &AtomicBool,
    freeze_blocks: bool,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    let Some((head, body)) = read_request(&mut client) else {
        return Ok(());
    };
    let mut parts = head.lines().next().unwrap_or_default().split(' ');
    let request = Request {
        method: parts.next().unwrap_or_default().to_owned(),
        target: parts.next().unwrap_or_default().to_owned(),
        body: body.clone(),
    };
    log.lock().unwrap().push(request.clone());
    if freeze_blocks && request.is_put_block() {
        held.fetch_add(1, Ordering::SeqCst);
        let until = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::SeqCst) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        return Ok(());
    }
    let Some(response) = forward(upstream, &head, &body) else {
        return Ok(());
    };
    // moto closes; the answer goes back as is and the client's connection closes too.
    client.write_all(&response)?;
    Ok(())
}

// ---- a flake without nixpkgs, and the real binary ---------------------------------------------------------------

/// The image: block 0 starts with 1 KiB of data, blocks 1 and 2 are zeros, block 3 ends with 1 KiB of data, and a
/// partial block 4 holds 1 KiB: five blocks, three written. `marker` (16 characters) is the data pattern.
const BUILD_SH: &str = r#"
/bin/mkdir -p "$out/nix-support"
z='\0\0\0\0\0\0\0\0'; z="$z$z$z$z$z$z$z$z"; z="$z$z$z$z$z$z$z$z"; z="$z$z"
d="$marker"; d="$d$d$d$d$d$d$d$d"; d="$d$d$d$d$d$d$d$d"
zeros() { i=0; while [ "$i" -lt "$1" ]; do printf "$z"; i=$((i+1)); done; }
{
  printf '%s' "$d"; zeros 511
  zeros 1024
  zeros 511; printf '%s' "$d"
  printf '%s' "$d"
} > "$out/image.raw"
printf '{"boot_mode":"uefi","format":"%s","label":"test","system":"x86_64-linux","file":"%s/image.raw"}\n' "$format" "$out" > "$out/nix-support/image-info.json"
"#;

fn flake_nix(marker: &str) -> String {
    assert_eq!(marker.len(), 16);
    format!(
        r#"{{
  outputs = {{ self }}:
    let
      image = format: derivation {{
        name = "nixos-image-test-${{format}}";
        system = "x86_64-linux";
        builder = "/bin/sh";
        args = [ "-c" (builtins.readFile ./build.sh) ];
        marker = "{marker}";
        inherit format;
      }};
    in {{
      images.raw = image "raw";
      images.vhd = image "vpc";
    }};
}}
"#
    )
}

struct Fixture {
    dir: tempfile::TempDir,
    stack: String,
}

impl Fixture {
    /// `infra/` (a git flake) and `spec.kdl` with one NixOS image of `output`, copied to eu-west-1.
    fn new(output: &str, marker: &str) -> Fixture {
        Fixture::with(output, marker, "")
    }

    /// As `new`, with more lines in the image node.
    fn with(output: &str, marker: &str, extra: &str) -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
            stack: unique("nx"),
        };
        let infra = f.path("infra");
        std::fs::create_dir_all(&infra).unwrap();
        git(&infra, &["init", "-q"], NOW);
        f.commit(marker);
        let spec = format!(
            r#"stack "{stack}" region="us-east-1"

image "web" {{
    nixos "git+https://github.com/acme/infra.git" ref="main" output="{output}" checkout="infra" encrypted=#true kms-key="{KMS}" tpm=#true upload-parallelism=4
    copy-to "eu-west-1"
    {extra}
}}

fleet "web" image="web" instance-type="m7i.large" {{
    subnets "subnet-0a1b2c3d4e5f60718"
    security-groups "sg-0123456789abcdef0"
    size min=1 max=2
    rollout "rolling" max-batch=1 min-in-service=0
}}
"#,
            stack = f.stack
        );
        std::fs::write(f.path("spec.kdl"), spec).unwrap();
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn commit(&self, marker: &str) {
        let infra = self.path("infra");
        std::fs::write(infra.join("flake.nix"), flake_nix(marker)).unwrap();
        std::fs::write(infra.join("build.sh"), BUILD_SH).unwrap();
        git(&infra, &["add", "-A"], NOW);
        git(
            &infra,
            &["commit", "-q", "--allow-empty", "-m", marker],
            NOW,
        );
    }

    fn head(&self) -> String {
        let out = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(self.path("infra"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn bake(&self, endpoint: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bake"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("BAKE_NOW", NOW)
            .env("NO_COLOR", "1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null());
        if let Some(e) = endpoint {
            cmd.env("AWS_ENDPOINT_URL", e);
        } else {
            cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
        }
        cmd.output().unwrap()
    }

    fn lock(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.path("spec.lock.json")).unwrap())
            .unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn nix_nar_hash(path: &str) -> String {
    let out = Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command flakes",
            "path-info",
            "--json",
            path,
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = v
        .as_array()
        .map(|a| a[0].clone())
        .unwrap_or_else(|| v[path].clone());
    entry["narHash"].as_str().unwrap().to_owned()
}

fn bake_image_builds_registers_records_and_a_second_run_does_nothing() {
    let url = moto_url();
    let f = Fixture::new("images.raw", "marker-000000001");
    let proxy = Proxy::start(&url, false);
    let out = f.bake(Some(&proxy.url), &["image", "spec.kdl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("uploaded 3 of 5 blocks"),
        "{}",
        stderr(&out)
    );

    // The lock: flake revision, store path and its NAR hash as nix reports them, snapshot, AMI per region.
    let lock = f.lock();
    let e = &lock["nixos"]["web"];
    assert_eq!(e["rev"], f.head());
    let store_path = e["store-path"].as_str().unwrap().to_owned();
    assert!(
        Path::new(&store_path)
            .join("nix-support/image-info.json")
            .is_file(),
        "{store_path}"
    );
    assert_eq!(e["nar-hash"].as_str().unwrap(), nix_nar_hash(&store_path));
    assert_eq!(e["architecture"], "x86_64");
    let ami = e["amis"]["us-east-1"].as_str().unwrap().to_owned();
    let copy = e["amis"]["eu-west-1"].as_str().unwrap().to_owned();
    let snapshot = e["snapshot"].as_str().unwrap().to_owned();
    assert!(
        ami.starts_with("ami-") && copy.starts_with("ami-") && snapshot.starts_with("snap-"),
        "{e}"
    );
    assert_ne!(ami, copy);

    // What bake asked for, as sent (moto drops most of RegisterImage).
    let start: Vec<serde_json::Value> = proxy
        .requests()
        .iter()
        .filter(|r| {
            r.method == "POST"
                && r.target.starts_with("/snapshots")
                && !r.target.contains("/completion")
        })
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(start.len(), 1, "{start:?}");
    assert_eq!(start[0]["Encrypted"], true);
    assert_eq!(start[0]["KmsKeyArn"], KMS);
    assert_eq!(start[0]["VolumeSize"], 1);
    assert!(
        start[0]["ClientToken"]
            .as_str()
            .is_some_and(|t| t.starts_with("bake-")),
        "{}",
        start[0]
    );
    let puts: Vec<Request> = proxy
        .requests()
        .into_iter()
        .filter(Request::is_put_block)
        .collect();
    let mut indices: Vec<String> = puts
        .iter()
        .map(|r| r.target.rsplit('/').next().unwrap().to_owned())
        .collect();
    indices.sort();
    assert_eq!(
        indices,
        ["0", "3", "4"],
        "the zero blocks 1 and 2 are skipped"
    );
    let register = proxy.ec2("RegisterImage");
    assert_eq!(register.len(), 1);
    let r = &register[0];
    for (k, v) in [
        ("Architecture", "x86_64"),
        ("BootMode", "uefi"),
        ("EnaSupport", "true"),
        ("SriovNetSupport", "simple"),
        ("ImdsSupport", "v2.0"),
        ("TpmSupport", "v2.0"),
        ("VirtualizationType", "hvm"),
        ("RootDeviceName", "/dev/xvda"),
        ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
        ("BlockDeviceMapping.1.Ebs.SnapshotId", snapshot.as_str()),
        ("BlockDeviceMapping.1.Ebs.VolumeType", "gp3"),
        ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true"),
    ] {
        assert_eq!(field(r, k), Some(v), "RegisterImage {k}: {r:?}");
    }
    let name = field(r, "Name").unwrap().to_owned();
    assert_eq!(name, e["ami-name"].as_str().unwrap());
    let hash = store_path
        .trim_start_matches("/nix/store/")
        .split('-')
        .next()
        .unwrap();
    assert!(
        name.contains(hash),
        "the AMI name follows the store path: {name}"
    );
    let copies = proxy.ec2("CopyImage");
    assert_eq!(copies.len(), 1);
    assert_eq!(field(&copies[0], "SourceImageId"), Some(ami.as_str()));
    assert_eq!(field(&copies[0], "SourceRegion"), Some("us-east-1"));
    assert!(field(&copies[0], "ClientToken").is_some_and(|t| t.starts_with("bake-")));

    // compile takes the AMI from the lock; the template has no Image Builder resources.
    let out = f.bake(None, &["compile", "spec.kdl", "-o", "out"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let template: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.path("out/template.json")).unwrap())
            .unwrap();
    let resources = template["Resources"].as_object().unwrap();
    assert!(resources.values().all(|r| {
        !r["Type"]
            .as_str()
            .unwrap()
            .starts_with("AWS::ImageBuilder::")
    }));
    assert_eq!(
        resources["FleetWebLaunchTemplate"]["Properties"]["LaunchTemplateData"]["ImageId"],
        ami
    );

    // `bake lock` leaves the NixOS entries alone (only `bake image` writes them).
    let before = std::fs::read_to_string(f.path("spec.lock.json")).unwrap();
    let out = f.bake(None, &["lock", "spec.kdl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(f.path("spec.lock.json")).unwrap(),
        before
    );

    // A second run: the flake did not move, so nothing is built, uploaded or registered.
    let second = Proxy::start(&url, false);
    let out = f.bake(Some(&second.url), &["image", "spec.kdl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("up to date"), "{}", stderr(&out));
    let actions: Vec<Option<String>> = second.requests().iter().map(Request::action).collect();
    assert_eq!(
        actions,
        [Some("DescribeImages".to_owned())],
        "only a look that the AMI is still there"
    );
    assert_eq!(
        std::fs::read_to_string(f.path("spec.lock.json")).unwrap(),
        before
    );
    let rt = runtime();
    let ec2 = rt.block_on(async { aws_sdk_ec2::Client::new(&sdk_config(&url, "us-east-1").await) });
    assert_eq!(rt.block_on(snapshots_of(&ec2, &f.stack)).len(), 1);

    // --rebuild of the same store path finds the AMI by its name and uploads nothing.
    let third = Proxy::start(&url, false);
    let out = f.bake(Some(&third.url), &["image", "spec.kdl", "--rebuild"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already registered"),
        "{}",
        stderr(&out)
    );
    assert!(!third.requests().iter().any(Request::is_put_block));
    assert!(third.ec2("RegisterImage").is_empty() && third.ec2("CopyImage").is_empty());
    assert_eq!(
        rt.block_on(images_of(&url, "us-east-1", &f.stack)),
        std::slice::from_ref(&ami)
    );

    // The flake moves: --dry-run says so and builds nothing; the run makes a new snapshot and AMI.
    f.commit("marker-000000002");
    let out = f.bake(Some(&third.url), &["image", "spec.kdl", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("would build: the flake moved"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(f.path("spec.lock.json")).unwrap(),
        before
    );
    let out = f.bake(Some(&url), &["image", "spec.kdl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lock = f.lock();
    assert_eq!(lock["nixos"]["web"]["rev"], f.head());
    assert_ne!(lock["nixos"]["web"]["amis"]["us-east-1"], ami.as_str());
    assert_eq!(rt.block_on(snapshots_of(&ec2, &f.stack)).len(), 2);
    assert_eq!(rt.block_on(images_of(&url, "eu-west-1", &f.stack)).len(), 2);

    // Someone deregisters the AMI the lock names: the next run sees it and registers it again.
    let gone = lock["nixos"]["web"]["amis"]["us-east-1"]
        .as_str()
        .unwrap()
        .to_owned();
    rt.block_on(ec2.deregister_image().image_id(&gone).send())
        .unwrap();
    let out = f.bake(Some(&url), &["image", "spec.kdl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("the lock's AMI {gone} is no longer registered")),
        "{}",
        stderr(&out)
    );
    let again = f.lock()["nixos"]["web"]["amis"]["us-east-1"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(again.starts_with("ami-") && again != gone);
}

fn a_vhd_image_is_refused_with_a_diagnostic() {
    let f = Fixture::new("images.vhd", "marker-00000000v");
    let out = f.bake(None, &["image", "spec.kdl"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("bake::image::not_raw"), "{err}");
    assert!(err.contains("`vpc`, not a raw disk image"), "{err}");
    assert!(!f.path("spec.lock.json").exists(), "nothing written");
}

fn a_server_that_stops_answering_fails_in_time_and_leaves_no_snapshot() {
    let url = moto_url();
    let f = Fixture::new("images.raw", "marker-00000000s");
    let proxy = Proxy::start(&url, true);
    let started = Instant::now();
    let out = f.bake(Some(&proxy.url), &["image", "spec.kdl", "--timeout", "3"]);
    let took = started.elapsed();
    let err = stderr(&out);
    eprintln!("after {took:?}:\n{err}");
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        proxy.held.load(Ordering::SeqCst) > 0,
        "a block upload was held"
    );
    assert!(err.contains("PutSnapshotBlock"), "{err}");
    assert!(
        err.contains("did not answer within 3 s")
            || err.contains("timed out")
            || err.contains("within 3"),
        "{err}"
    );
    assert!(
        err.contains("bake deleted the unfinished snapshot snap-"),
        "{err}"
    );
    // The build took some of the time; the upload gave up after its 3 s timeout, not after the proxy's 120 s.
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert!(!f.path("spec.lock.json").exists());
    let rt = runtime();
    let ec2 = rt.block_on(async { aws_sdk_ec2::Client::new(&sdk_config(&url, "us-east-1").await) });
    assert!(
        rt.block_on(snapshots_of(&ec2, &f.stack)).is_empty(),
        "no snapshot is left behind"
    );
    assert!(proxy.ec2("RegisterImage").is_empty());
    drop(proxy);
}

fn old_nixos_amis_go_beyond_keep_but_never_one_in_use() {
    let url = moto_url();
    let f = Fixture::with(
        "images.raw",
        "marker-0000000r1",
        "delete-old-amis #true keep=2",
    );
    let rt = runtime();
    let ssm = rt.block_on(async { aws_sdk_ssm::Client::new(&sdk_config(&url, "us-east-1").await) });
    let mut amis = Vec::new();
    for (i, marker) in [
        "marker-0000000r1",
        "marker-0000000r2",
        "marker-0000000r3",
        "marker-0000000r4",
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            f.commit(marker);
            // moto dates AMIs by the second: one second apart, they sort by age.
            std::thread::sleep(Duration::from_millis(1100));
        }
        if i == 2 {
            // The stack's fleets still run the first AMI (the parameter the template writes says so).
            rt.block_on(
                ssm.put_parameter()
                    .name(format!("/bake/{}/web/ami", f.stack))
                    .value(&amis[0])
                    .r#type(aws_sdk_ssm::types::ParameterType::String)
                    .overwrite(true)
                    .send(),
            )
            .unwrap();
        }
        if i == 3 {
            rt.block_on(
                ssm.delete_parameter()
                    .name(format!("/bake/{}/web/ami", f.stack))
                    .send(),
            )
            .unwrap();
        }
        let out = f.bake(Some(&url), &["image", "spec.kdl"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let ami = f.lock()["nixos"]["web"]["amis"]["us-east-1"]
            .as_str()
            .unwrap()
            .to_owned();
        amis.push(ami);
        let mut now = rt.block_on(images_of(&url, "us-east-1", &f.stack));
        now.sort();
        let mut want: Vec<String> = match i {
            // Up to two: nothing goes. The third: the first is what the fleets run, the second the lock's.
            0..=2 => amis.clone(),
            // The fourth: the first two go; the third stays as the lock's previous entry.
            _ => vec![amis[2].clone(), amis[3].clone()],
        };
        want.sort();
        assert_eq!(now, want, "after run {}: {}", i + 1, stderr(&out));
        if i == 3 {
            for gone in &amis[..2] {
                assert!(
                    stderr(&out).contains(&format!("deregistered old AMI {gone}")),
                    "{}",
                    stderr(&out)
                );
            }
        }
    }
}
