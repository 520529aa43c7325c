//! `bake promote`: moves the AMIs one environment runs into another environment's lock entries, and makes them
//! usable where that environment deploys.
//!
//! It reads what the source environment *runs* — the `/bake/<stack>/<image>/ami` parameter its template writes on
//! every deploy (`emit::cfn::image::ami_record`) — never what it was meant to build. When the target is another
//! account it grants that account launch permission on the AMI (EC2 `ModifyImageAttribute`) and create-volume
//! permission on its snapshots (`ModifySnapshotAttribute`, which a copy in that account needs); when it is another
//! region it copies the AMI there (`CopyImage`, with a client token so a retry makes no second copy) and waits
//! until the copy is available. Encrypted snapshots are refused unless the caller says the key is shared
//! (`--kms-key-shared`): bake does not edit key policies. Every call has the shared timeout (`crate::aws`).

pub mod ec2;

use std::time::Duration;

use crate::aws::{self, Classified, Endpoint, Failure, Kind};
use crate::lock::PromotedLock;

/// Where an environment deploys, and with which credentials.
#[derive(Debug, Clone)]
pub struct Place {
    pub env: String,
    pub stack: String,
    pub region: String,
    pub account: Option<String>,
    pub profile: Option<String>,
}

/// What the source environment runs for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub ami: String,
    /// The parameter's last change: since when the source runs it (RFC 3339).
    pub since: String,
    pub parameter: String,
}

/// One image moved forward.
#[derive(Debug, Clone)]
pub struct Moved {
    pub image: String,
    pub entry: PromotedLock,
}

/// How an AMI reaches the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Same,
    Shared,
    Copied,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Same => "same",
            Delivery::Shared => "shared",
            Delivery::Copied => "copied",
        }
    }

    pub fn between(from: &Place, to: &Place) -> Delivery {
        if from.region != to.region {
            Delivery::Copied
        } else if matches!((&from.account, &to.account), (Some(a), Some(b)) if a != b) {
            Delivery::Shared
        } else {
            Delivery::Same
        }
    }
}

/// Reads the AMI the source runs for each image, then shares or copies it, and returns the new lock entries.
/// Nothing is written here; the caller writes the lock once every image has moved.
pub async fn promote(
    from: &Place,
    to: &Place,
    images: &[String],
    timeout: Duration,
    copy_wait: Duration,
    kms_key_shared: bool,
    now: &str,
) -> Result<Vec<Moved>, Failure> {
    let source_settings = aws::Settings {
        profile: from.profile.clone(),
        region: from.region.clone(),
        timeout,
    };
    let conf = aws::config(&source_settings).await;
    let ssm = aws_sdk_ssm::Client::new(&conf);
    let ssm_endpoint = Endpoint::new("SSM", &conf, &source_settings);
    let mut running = Vec::new();
    for image in images {
        running.push((
            image.clone(),
            read_running(&ssm, &ssm_endpoint, from, image).await?,
        ));
    }
    let delivery = Delivery::between(from, to);
    let source_ec2 = ec2::Ec2::connect(&source_settings).await;
    let target_ec2 = if delivery == Delivery::Copied {
        Some(
            ec2::Ec2::connect(&aws::Settings {
                profile: to.profile.clone(),
                region: to.region.clone(),
                timeout,
            })
            .await,
        )
    } else {
        None
    };
    let other_account = match (&from.account, &to.account) {
        (Some(a), Some(b)) if a != b => Some(b.clone()),
        _ => None,
    };
    let mut moved = Vec::new();
    for (image, run) in running {
        let ami = match delivery {
            Delivery::Same => run.ami.clone(),
            Delivery::Shared | Delivery::Copied => {
                let snapshots = source_ec2.snapshots_of(&run.ami).await?;
                let encrypted: Vec<String> = snapshots
                    .iter()
                    .filter_map(|s| s.kms_key.clone().filter(|_| s.encrypted))
                    .collect();
                if let Some(account) = &other_account {
                    if !snapshots.is_empty()
                        && snapshots.iter().any(|s| s.encrypted)
                        && !kms_key_shared
                    {
                        return Err(Failure::new(
                            Kind::Other,
                            format!(
                                "AMI {} of image `{image}` has encrypted snapshots (KMS key {}); account {account} can launch or copy it only with that key: grant it kms:Decrypt, kms:DescribeKey, kms:CreateGrant and kms:ReEncrypt* in the key policy (an AMI encrypted with the AWS managed aws/ebs key cannot be shared: re-encrypt it with a customer managed key), then run again with `--kms-key-shared`",
                                run.ami,
                                if encrypted.is_empty() {
                                    "unknown".to_owned()
                                } else {
                                    encrypted.join(", ")
                                }
                            ),
                        ));
                    }
                    source_ec2.share(&run.ami, &snapshots, account).await?;
                }
                match &target_ec2 {
                    Some(target) => {
                        let token = client_token(&run.ami, to);
                        let name = format!("bake-{}-{image}-{}", to.stack, run.ami);
                        target
                            .copy(&run.ami, &from.region, &name, &token, copy_wait)
                            .await?
                    }
                    None => run.ami.clone(),
                }
            }
        };
        moved.push(Moved {
            image: image.clone(),
            entry: PromotedLock {
                ami,
                from: from.env.clone(),
                source_ami: run.ami.clone(),
                source_region: from.region.clone(),
                source_account: from.account.clone(),
                region: to.region.clone(),
                account: to.account.clone(),
                delivery: delivery.as_str().to_owned(),
                tested_since: run.since.clone(),
                promoted_at: now.to_owned(),
            },
        });
    }
    Ok(moved)
}

/// The same copy of the same AMI into the same place gets the same token: a retried `bake promote` finds the copy
/// it already started instead of starting another (EC2 keeps client tokens for a while).
fn client_token(ami: &str, to: &Place) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("bake promote {ami} {} {}", to.region, to.stack));
    format!("bake-{:x}", digest)[..48].to_owned()
}

async fn read_running(
    ssm: &aws_sdk_ssm::Client,
    endpoint: &Endpoint,
    from: &Place,
    image: &str,
) -> Result<Running, Failure> {
    use aws_sdk_ssm::primitives::DateTimeFormat;
    let parameter = format!("/bake/{}/{image}/ami", from.stack);
    let out = ssm
        .get_parameter()
        .name(&parameter)
        .send()
        .await
        .map_err(|e| match aws::classify(&e, endpoint) {
            Classified::Service { code, .. } if code == "ParameterNotFound" => Failure::new(
                Kind::Other,
                format!(
                    "environment `{}` runs no AMI for image `{image}` yet: {parameter} does not exist in {}; deploy `{}` first (`bake deploy <spec> --env {}`)",
                    from.env, from.region, from.env, from.env
                ),
            ),
            Classified::Service { code, message } => Failure::new(
                Kind::Other,
                format!("SSM GetParameter {parameter} failed: {code}: {message}"),
            ),
            Classified::Failure(f) => f,
        })?;
    let p = out.parameter();
    let ami = p.and_then(|p| p.value()).unwrap_or_default().to_owned();
    if crate::spec::grammar::Grammar::AmiId.check(&ami).is_err() {
        return Err(Failure::new(
            Kind::BadAnswer,
            format!(
                "{parameter} in {} holds `{}`, not an AMI id; it is bake's record of what `{}` runs, so check who changed it",
                from.region,
                ami.chars().take(40).collect::<String>(),
                from.env
            ),
        ));
    }
    let since = p
        .and_then(|p| p.last_modified_date())
        .and_then(|d| d.fmt(DateTimeFormat::DateTime).ok())
        .unwrap_or_default();
    Ok(Running {
        ami,
        since,
        parameter,
    })
}
