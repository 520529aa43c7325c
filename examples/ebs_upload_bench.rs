//! Upload benchmark for NixOS images (scripts/bench-ebs-upload.sh): a sparse image of SIZE GiB with DATA
//! MiB of random blocks, uploaded through bake's EBS direct upload (`bake::nixos::upload`) to the endpoint in
//! `AWS_ENDPOINT_URL` (moto). Prints one line: `bake size_mib written blocks skipped_pct secs mib_per_s`.
//!
//! Usage: cargo run --example ebs_upload_bench -- SIZE_GIB DATA_MIB PARALLELISM [FILE]

use std::os::unix::fs::FileExt;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size_gib: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2);
    let data_mib: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let parallelism: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(16);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = args
        .get(4)
        .map_or_else(|| dir.path().join("image.raw"), std::path::PathBuf::from);
    let size = size_gib * 1024 * 1024 * 1024;
    let block = bake::nixos::upload::BLOCK;
    if args.get(4).is_none() || !path.exists() {
        let f = std::fs::File::create(&path).expect("create");
        f.set_len(size).expect("set_len");
        // Data blocks spread evenly over the image, each full of pseudo-random bytes.
        let count = data_mib * 1024 * 1024 / block;
        let stride = (size / block) / count.max(1);
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut buf = vec![0u8; usize::try_from(block).unwrap_or(0)];
        for i in 0..count {
            for b in &mut buf {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            f.write_all_at(&buf, i * stride * block).expect("write");
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let up = rt.block_on(async {
        let settings = bake::aws::Settings {
            profile: None,
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            timeout: Duration::from_secs(60),
        };
        let config = bake::aws::config(&settings).await;
        let ebs = aws_sdk_ebs::Client::new(&config);
        let endpoint = bake::aws::Endpoint::new("EBS", &config, &settings);
        let req = bake::nixos::upload::UploadRequest {
            file: &path,
            volume_gib: bake::nixos::upload::min_volume_gib(size),
            description: "bake upload benchmark".into(),
            tags: vec![],
            encrypted: false,
            kms_key: None,
            parallelism,
            client_token: format!("bake-bench-{}", std::process::id()),
            snapshot_timeout_minutes: 60,
        };
        bake::nixos::upload::upload(&ebs, &endpoint, &req).await
    });
    match up {
        Ok(up) => {
            let secs = up.elapsed.as_secs_f64();
            println!(
                "bake {} {} {} {:.1} {:.2} {:.1}",
                size / 1024 / 1024,
                up.written,
                up.blocks,
                100.0 * (up.blocks - up.written) as f64 / up.blocks as f64,
                secs,
                (size as f64 / 1_048_576.0) / secs
            );
        }
        Err(f) => {
            eprintln!("upload failed: {}", f.sentence);
            std::process::exit(3);
        }
    }
}
