//! The EC2 calls `bake promote` makes; the only file that names aws-sdk-ec2 types.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    ImageState, LaunchPermission, LaunchPermissionModifications, OperationType,
    SnapshotAttributeName,
};

use crate::aws::{self, Classified, Endpoint, Failure, Kind};

/// A snapshot an AMI's block device mappings name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: String,
    pub encrypted: bool,
    pub kms_key: Option<String>,
}

pub struct Ec2 {
    client: aws_sdk_ec2::Client,
    endpoint: Endpoint,
}

/// How often a copy's state is asked for while it is pending.
const POLL: Duration = Duration::from_secs(5);

impl Ec2 {
    pub async fn connect(settings: &aws::Settings) -> Ec2 {
        let conf = aws::config(settings).await;
        Ec2 {
            client: aws_sdk_ec2::Client::new(&conf),
            endpoint: Endpoint::new("EC2", &conf, settings),
        }
    }

    fn failed<E>(
        &self,
        what: &str,
        e: &aws_sdk_ec2::error::SdkError<E, aws_sdk_cloudformation::config::http::HttpResponse>,
    ) -> Failure
    where
        E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        match aws::classify(e, &self.endpoint) {
            Classified::Service { code, message } => Failure::new(
                Kind::Other,
                format!(
                    "EC2 {what} in {} failed: {code}: {message}",
                    self.endpoint.region
                ),
            ),
            Classified::Failure(f) => f,
        }
    }

    /// The AMI's state and its EBS snapshots; an AMI that does not exist (or is not visible) is a failure.
    async fn describe(&self, ami: &str) -> Result<Option<aws_sdk_ec2::types::Image>, Failure> {
        let out = self
            .client
            .describe_images()
            .image_ids(ami)
            .send()
            .await
            .map_err(|e| self.failed("DescribeImages", &e))?;
        Ok(out.images().first().cloned())
    }

    pub async fn snapshots_of(&self, ami: &str) -> Result<Vec<Snapshot>, Failure> {
        let Some(image) = self.describe(ami).await? else {
            return Err(Failure::new(
                Kind::Other,
                format!(
                    "AMI {ami} does not exist in {} (or these credentials cannot see it): it may have been deregistered; deploy the source environment again",
                    self.endpoint.region
                ),
            ));
        };
        Ok(image
            .block_device_mappings()
            .iter()
            .filter_map(|m| {
                let ebs = m.ebs()?;
                Some(Snapshot {
                    id: ebs.snapshot_id()?.to_owned(),
                    encrypted: ebs.encrypted().unwrap_or(false),
                    kms_key: ebs.kms_key_id().map(str::to_owned),
                })
            })
            .collect())
    }

    /// Launch permission on the AMI and create-volume permission on its snapshots for `account`.
    pub async fn share(
        &self,
        ami: &str,
        snapshots: &[Snapshot],
        account: &str,
    ) -> Result<(), Failure> {
        self.client
            .modify_image_attribute()
            .image_id(ami)
            .launch_permission(
                LaunchPermissionModifications::builder()
                    .add(LaunchPermission::builder().user_id(account).build())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.failed("ModifyImageAttribute (launch permission)", &e))?;
        for s in snapshots {
            self.client
                .modify_snapshot_attribute()
                .snapshot_id(&s.id)
                .attribute(SnapshotAttributeName::CreateVolumePermission)
                .operation_type(OperationType::Add)
                .user_ids(account)
                .send()
                .await
                .map_err(|e| {
                    self.failed("ModifySnapshotAttribute (create volume permission)", &e)
                })?;
        }
        Ok(())
    }

    /// Copies an AMI from `source_region` into this client's region and waits, at most `timeout` in all, until
    /// the copy is available. The same `token` returns the same copy.
    pub async fn copy(
        &self,
        ami: &str,
        source_region: &str,
        name: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<String, Failure> {
        // A copy bake made earlier has this name (AMI names are unique per account and region): use it, so a
        // second promotion of the same AMI never makes a second copy, even where the client token has expired.
        let earlier = self
            .client
            .describe_images()
            .owners("self")
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("name")
                    .values(name)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.failed("DescribeImages", &e))?;
        let copy = match earlier.images().iter().find_map(|i| i.image_id()) {
            Some(id) => id.to_owned(),
            None => self.start_copy(ami, source_region, name, token).await?,
        };
        self.wait_available(ami, copy, timeout).await
    }

    async fn start_copy(
        &self,
        ami: &str,
        source_region: &str,
        name: &str,
        token: &str,
    ) -> Result<String, Failure> {
        let out = self
            .client
            .copy_image()
            .source_image_id(ami)
            .source_region(source_region)
            .name(name)
            .description(format!("bake promote: {ami} from {source_region}"))
            .client_token(token)
            .send()
            .await
            .map_err(|e| self.failed("CopyImage", &e))?;
        out.image_id().map(str::to_owned).ok_or_else(|| {
            Failure::new(
                Kind::BadAnswer,
                "EC2 CopyImage answered without an image id",
            )
        })
    }

    /// Waits, at most `timeout` in all, until the copy is available.
    async fn wait_available(
        &self,
        ami: &str,
        copy: String,
        timeout: Duration,
    ) -> Result<String, Failure> {
        let started = Instant::now();
        loop {
            let state = self.describe(&copy).await?.and_then(|i| i.state().cloned());
            match state {
                Some(ImageState::Available) => return Ok(copy),
                Some(ImageState::Failed | ImageState::Error | ImageState::Deregistered) => {
                    return Err(Failure::new(
                        Kind::Other,
                        format!(
                            "the copy {copy} of {ami} in {} failed; see `aws ec2 describe-images --image-ids {copy}` for its state reason",
                            self.endpoint.region
                        ),
                    ));
                }
                _ => {}
            }
            if started.elapsed() + POLL > timeout {
                return Err(Failure::new(
                    Kind::Timeout,
                    format!(
                        "the copy {copy} of {ami} in {} is not available after {} s; run `bake promote` again later (it finds the same copy) or raise `--timeout`",
                        self.endpoint.region,
                        timeout.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
