//! The snapshot as an AMI (aws-sdk-ec2): `RegisterImage` with what a NixOS repart image needs — its architecture,
//! `BootMode=uefi`, ENA, `SriovNetSupport=simple`, `ImdsSupport=v2.0`, HVM, root device `/dev/xvda` with a gp3
//! mapping of the snapshot, and NitroTPM when asked — found again by its name (derived from the store path) so a
//! second run registers nothing; `CopyImage` (with a client token) to the other regions; and the clean-up of a
//! snapshot that never became an AMI.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    ArchitectureValues, BlockDeviceMapping, BootModeValues, EbsBlockDevice, Filter,
    ImdsSupportValues, ResourceType, Tag, TagSpecification, TpmSupportValues, VolumeType,
};

use crate::aws::{self, Classified, Endpoint};
use crate::check::plan::Arch;

/// The root device of the AMI; the repart image's partitions are on it.
pub const ROOT_DEVICE: &str = "/dev/xvda";

#[derive(Debug, Clone)]
pub struct Registration {
    pub name: String,
    pub description: String,
    pub arch: Arch,
    pub snapshot: String,
    pub volume_gib: i32,
    pub tpm: bool,
    pub tags: Vec<(String, String)>,
}

fn failure<E>(
    call: &str,
    e: &aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
    endpoint: &Endpoint,
) -> String
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match aws::classify(e, endpoint) {
        Classified::Service { code, message } => format!("EC2 {call} failed: {code}: {message}"),
        Classified::Failure(f) => format!("EC2 {call}: {}", f.sentence),
    }
}

fn tags(resource: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

/// The AMI of ours with this name, if there is one (`DescribeImages`, owner self).
pub async fn find(ec2: &Client, endpoint: &Endpoint, name: &str) -> Result<Option<String>, String> {
    let out = ec2
        .describe_images()
        .owners("self")
        .filters(Filter::builder().name("name").values(name).build())
        .send()
        .await
        .map_err(|e| failure("DescribeImages", &e, endpoint))?;
    Ok(out
        .images()
        .iter()
        .filter(|i| i.name() == Some(name))
        .filter(|i| {
            !matches!(
                i.state().map(|s| s.as_str()),
                Some("failed" | "deregistered")
            )
        })
        .find_map(|i| i.image_id().map(str::to_owned)))
}

/// Registers the snapshot as an AMI.
pub async fn register(
    ec2: &Client,
    endpoint: &Endpoint,
    r: &Registration,
) -> Result<String, String> {
    let mut call = ec2
        .register_image()
        .name(&r.name)
        .description(&r.description)
        .architecture(match r.arch {
            Arch::X86_64 => ArchitectureValues::X8664,
            Arch::Arm64 => ArchitectureValues::Arm64,
        })
        .boot_mode(BootModeValues::Uefi)
        .ena_support(true)
        .sriov_net_support("simple")
        .imds_support(ImdsSupportValues::V20)
        .virtualization_type("hvm")
        .root_device_name(ROOT_DEVICE)
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name(ROOT_DEVICE)
                .ebs(
                    EbsBlockDevice::builder()
                        .snapshot_id(&r.snapshot)
                        .volume_type(VolumeType::Gp3)
                        .volume_size(r.volume_gib)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        .tag_specifications(tags(ResourceType::Image, &r.tags));
    if r.tpm {
        call = call.tpm_support(TpmSupportValues::V20);
    }
    let out = call
        .send()
        .await
        .map_err(|e| failure("RegisterImage", &e, endpoint))?;
    out.image_id()
        .map(str::to_owned)
        .ok_or_else(|| "EC2 RegisterImage answered without an image id".to_owned())
}

/// Copies an AMI into the client's region (`CopyImage`; the client token makes a retried call copy once).
pub async fn copy(
    ec2: &Client,
    endpoint: &Endpoint,
    source_region: &str,
    source_ami: &str,
    name: &str,
    client_token: &str,
    tag_list: &[(String, String)],
) -> Result<String, String> {
    let out = ec2
        .copy_image()
        .source_region(source_region)
        .source_image_id(source_ami)
        .name(name)
        .client_token(client_token)
        .tag_specifications(tags(ResourceType::Image, tag_list))
        .send()
        .await
        .map_err(|e| failure("CopyImage", &e, endpoint))?;
    out.image_id()
        .map(str::to_owned)
        .ok_or_else(|| "EC2 CopyImage answered without an image id".to_owned())
}

/// Deletes a snapshot that did not become an AMI.
pub async fn delete_snapshot(
    ec2: &Client,
    endpoint: &Endpoint,
    snapshot: &str,
) -> Result<(), String> {
    ec2.delete_snapshot()
        .snapshot_id(snapshot)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| failure("DeleteSnapshot", &e, endpoint))
}

/// One of bake's AMIs, for retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub ami: String,
    pub created: String,
    pub snapshots: Vec<String>,
    /// Tagged `bake:keep=true`: never deleted.
    pub keep: bool,
}

/// bake's AMIs of one lineage, with their snapshots and creation dates: the AMIs of ours whose name starts with
/// `bake/<stack>/<image>/` (the names `lock::nixos::ami_name` gives). By name, not by tag: a tag can be missing
/// (and moto 5.2.5 keeps no RegisterImage tags).
pub async fn lineage_images(
    ec2: &Client,
    endpoint: &Endpoint,
    lineage: &str,
) -> Result<Vec<Owned>, String> {
    let prefix = format!("bake/{lineage}/");
    let out = ec2
        .describe_images()
        .owners("self")
        .filters(
            Filter::builder()
                .name("name")
                .values(format!("{prefix}*"))
                .build(),
        )
        .send()
        .await
        .map_err(|e| failure("DescribeImages", &e, endpoint))?;
    Ok(out
        .images()
        .iter()
        .filter(|i| i.name().is_some_and(|n| n.starts_with(&prefix)))
        .filter_map(|i| {
            Some(Owned {
                ami: i.image_id()?.to_owned(),
                created: i.creation_date().unwrap_or_default().to_owned(),
                snapshots: i
                    .block_device_mappings()
                    .iter()
                    .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_owned))
                    .collect(),
                keep: i
                    .tags()
                    .iter()
                    .any(|t| t.key() == Some("bake:keep") && t.value() == Some("true")),
            })
        })
        .collect())
}

/// Waits until an AMI is `available` (polling `DescribeImages` every 2 s, at most `wait`); a `failed` AMI or the
/// deadline is an error.
pub async fn wait_available(
    ec2: &Client,
    endpoint: &Endpoint,
    ami: &str,
    wait: std::time::Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let out = ec2
            .describe_images()
            .image_ids(ami)
            .send()
            .await
            .map_err(|e| failure("DescribeImages", &e, endpoint))?;
        let state = out
            .images()
            .first()
            .and_then(|i| i.state())
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        match state.as_str() {
            "available" => return Ok(()),
            "failed" | "error" | "invalid" | "deregistered" => {
                return Err(format!(
                    "AMI {ami} became `{state}` instead of available; see its StateReason with `aws ec2 describe-images --image-ids {ami}`"
                ));
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "AMI {ami} was not available within {} s (state `{state}`); run `bake image` again later, it finds the AMI by name",
                wait.as_secs()
            ));
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Deregisters an AMI (retention).
pub async fn deregister(ec2: &Client, endpoint: &Endpoint, ami: &str) -> Result<(), String> {
    ec2.deregister_image()
        .image_id(ami)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| failure("DeregisterImage", &e, endpoint))
}
