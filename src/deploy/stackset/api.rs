//! CloudFormation StackSets as bake sees it: the `StackSets` trait of bake-domain types, and `AwsStackSets`, its
//! implementation over aws-sdk-cloudformation. The only file of `deploy::stackset` that names SDK types. Every
//! call goes through `send` (the shared configuration's timeouts, and an outer bound), every list is paged with a
//! bound on the number of pages.

use std::future::Future;
use std::time::Duration;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::{
    AutoDeployment, CallAs, Capability, ConcurrencyMode, DeploymentTargets, PermissionModels,
    RegionConcurrencyType, StackSetOperationPreferences, Tag,
};

use crate::aws::{self, Classified, Endpoint, Failure, Kind};
use crate::check::stackset::{Amount, Permission, Preferences, StackSetPlan};
use crate::deploy::cfn::{AwsOptions, CfnError};
use crate::deploy::template_store::TemplateSource;

/// A stack set as `DescribeStackSet` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StackSet {
    pub id: String,
    /// `ACTIVE` or `DELETED`.
    pub status: String,
    pub template_body: Option<String>,
}

/// One stack instance (`ListStackInstances`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Instance {
    pub account: String,
    pub region: String,
    /// The OU the account was deployed through (service-managed).
    pub organizational_unit: Option<String>,
    /// `CURRENT`, `OUTDATED`, `INOPERABLE`.
    pub status: String,
    /// `PENDING`, `RUNNING`, `SUCCEEDED`, `FAILED`, `CANCELLED`, `INOPERABLE`, …
    pub detailed_status: Option<String>,
    pub status_reason: Option<String>,
    /// `DRIFTED`, `IN_SYNC`, `UNKNOWN`, `NOT_CHECKED`.
    pub drift: Option<String>,
}

/// A stack set operation (`DescribeStackSetOperation`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Operation {
    /// `QUEUED`, `RUNNING`, `SUCCEEDED`, `FAILED`, `STOPPING`, `STOPPED`.
    pub status: String,
    pub status_reason: Option<String>,
}

/// One account and region of an operation (`ListStackSetOperationResults`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OperationResult {
    pub account: String,
    pub region: String,
    /// `PENDING`, `RUNNING`, `SUCCEEDED`, `FAILED`, `CANCELLED`.
    pub status: String,
    pub reason: Option<String>,
}

/// Which instances an instance operation addresses: `targets` (accounts or OUs, per the permission model) in
/// each of `regions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub targets: Vec<String>,
    pub regions: Vec<String>,
}

/// The StackSets calls bake makes, all on the stack set named by the spec's stack, in the stack's region.
#[allow(async_fn_in_trait)]
pub trait StackSets {
    /// The stack set, or `None` when there is none (or it was deleted).
    async fn describe(&self, set: &StackSetPlan, name: &str) -> Result<Option<StackSet>, CfnError>;
    async fn create(
        &self,
        set: &StackSetPlan,
        name: &str,
        template: &TemplateSource,
        tags: &[(String, String)],
    ) -> Result<(), CfnError>;
    /// Updates the template of every instance, going through `regions` (those with instances) in that order;
    /// returns the operation id.
    async fn update(
        &self,
        set: &StackSetPlan,
        name: &str,
        template: &TemplateSource,
        tags: &[(String, String)],
        regions: &[String],
    ) -> Result<String, CfnError>;
    async fn create_instances(
        &self,
        set: &StackSetPlan,
        name: &str,
        which: &Selection,
    ) -> Result<String, CfnError>;
    async fn delete_instances(
        &self,
        set: &StackSetPlan,
        name: &str,
        which: &Selection,
    ) -> Result<String, CfnError>;
    async fn delete(&self, set: &StackSetPlan, name: &str) -> Result<(), CfnError>;
    async fn instances(&self, set: &StackSetPlan, name: &str) -> Result<Vec<Instance>, CfnError>;
    async fn operation(
        &self,
        set: &StackSetPlan,
        name: &str,
        id: &str,
    ) -> Result<Operation, CfnError>;
    async fn results(
        &self,
        set: &StackSetPlan,
        name: &str,
        id: &str,
    ) -> Result<Vec<OperationResult>, CfnError>;
}

/// `StackSets` over the AWS SDK.
#[derive(Debug, Clone)]
pub struct AwsStackSets {
    client: Client,
    endpoint: Endpoint,
}

/// At most this many pages of a list (100 entries a page): a server handing out tokens forever cannot keep bake
/// asking.
const MAX_PAGES: u32 = 100;

impl AwsStackSets {
    /// A client on the shared AWS configuration (timeouts, retries). Nothing is contacted yet.
    pub async fn connect(options: &AwsOptions) -> AwsStackSets {
        let config = aws::config(options).await;
        AwsStackSets {
            client: Client::new(&config),
            endpoint: Endpoint::new("CloudFormation", &config, options),
        }
    }

    /// One call, bounded by the SDK's operation timeout and an outer bound a little longer.
    async fn send<T, E>(
        &self,
        call: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, CfnError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let limit = self.endpoint.timeout + Duration::from_secs(2);
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(match aws::classify(&e, &self.endpoint) {
                Classified::Service { code, message } => CfnError::Service { code, message },
                Classified::Failure(f) if f.kind == Kind::Throttled => {
                    CfnError::Throttled(f.sentence)
                }
                Classified::Failure(f) => CfnError::Transport(f),
            }),
            Err(_) => Err(CfnError::Transport(Failure::new(
                Kind::Timeout,
                format!(
                    "CloudFormation in {} did not answer within {} s; check network/proxy/VPC endpoint, or raise --timeout",
                    self.endpoint.region,
                    self.endpoint.timeout.as_secs_f64().ceil()
                ),
            ))),
        }
    }
}

fn call_as(set: &StackSetPlan) -> CallAs {
    CallAs::from(set.call_as.as_str())
}

fn preferences(p: &Preferences, regions: &[String]) -> StackSetOperationPreferences {
    let mut b = StackSetOperationPreferences::builder()
        .region_concurrency_type(RegionConcurrencyType::from(p.region_concurrency.as_str()))
        .set_region_order(Some(regions.to_vec()))
        .concurrency_mode(ConcurrencyMode::from(p.concurrency_mode.as_str()));
    b = match p.max_concurrent {
        Some(Amount::Count(n)) => b.max_concurrent_count(n),
        Some(Amount::Percentage(n)) => b.max_concurrent_percentage(n),
        None => b,
    };
    b = match p.failure_tolerance {
        Some(Amount::Count(n)) => b.failure_tolerance_count(n),
        Some(Amount::Percentage(n)) => b.failure_tolerance_percentage(n),
        None => b,
    };
    b.build()
}

fn tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The `TemplateBody` or `TemplateURL` of a create or update.
macro_rules! with_template {
    ($call:expr, $template:expr) => {
        match $template {
            TemplateSource::Body(body) => $call.template_body(body),
            TemplateSource::Url(url) => $call.template_url(url),
        }
    };
}

/// The permission model's settings (roles, or auto-deployment), on a create or update call.
macro_rules! with_permission {
    ($call:expr, $set:expr) => {
        match &$set.permission {
            Permission::SelfManaged {
                administration_role,
                execution_role,
                ..
            } => $call
                .set_administration_role_arn(administration_role.clone())
                .execution_role_name(execution_role),
            Permission::ServiceManaged {
                auto_deployment,
                retain_stacks_on_account_removal,
                ..
            } => $call.auto_deployment(
                AutoDeployment::builder()
                    .enabled(*auto_deployment)
                    .retain_stacks_on_account_removal(*retain_stacks_on_account_removal)
                    .build(),
            ),
        }
    };
}

/// Accounts (self-managed) or OU deployment targets (service-managed), on an instances call.
macro_rules! with_targets {
    ($call:expr, $set:expr, $which:expr) => {
        match &$set.permission {
            Permission::SelfManaged { .. } => $call.set_accounts(Some($which.targets.clone())),
            Permission::ServiceManaged { .. } => $call.deployment_targets(
                DeploymentTargets::builder()
                    .set_organizational_unit_ids(Some($which.targets.clone()))
                    .build(),
            ),
        }
    };
}

fn owned(s: Option<&str>) -> String {
    s.unwrap_or_default().to_owned()
}

impl StackSets for AwsStackSets {
    async fn describe(&self, set: &StackSetPlan, name: &str) -> Result<Option<StackSet>, CfnError> {
        let call = self
            .client
            .describe_stack_set()
            .stack_set_name(name)
            .call_as(call_as(set));
        match self.send(call.send()).await {
            Ok(out) => Ok(out
                .stack_set()
                .map(|s| StackSet {
                    id: owned(s.stack_set_id()),
                    status: s
                        .status()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    template_body: s.template_body().map(str::to_owned),
                })
                .filter(|s| s.status != "DELETED")),
            Err(CfnError::Service { code, .. }) if code == "StackSetNotFoundException" => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create(
        &self,
        set: &StackSetPlan,
        name: &str,
        template: &TemplateSource,
        tags_: &[(String, String)],
    ) -> Result<(), CfnError> {
        let mut call = self
            .client
            .create_stack_set()
            .stack_set_name(name)
            .description(format!("bake stack set {name}"))
            .capabilities(Capability::CapabilityIam)
            .permission_model(PermissionModels::from(set.permission.model()))
            .call_as(call_as(set))
            .set_tags(Some(tags(tags_)));
        call = with_template!(call, template);
        call = with_permission!(call, set);
        self.send(call.send()).await?;
        Ok(())
    }

    async fn update(
        &self,
        set: &StackSetPlan,
        name: &str,
        template: &TemplateSource,
        tags_: &[(String, String)],
        regions: &[String],
    ) -> Result<String, CfnError> {
        let mut call = self
            .client
            .update_stack_set()
            .stack_set_name(name)
            .description(format!("bake stack set {name}"))
            .capabilities(Capability::CapabilityIam)
            .operation_preferences(preferences(&set.preferences, regions))
            .call_as(call_as(set))
            .set_tags(Some(tags(tags_)));
        call = with_template!(call, template);
        call = with_permission!(call, set);
        let out = self.send(call.send()).await?;
        Ok(owned(out.operation_id()))
    }

    async fn create_instances(
        &self,
        set: &StackSetPlan,
        name: &str,
        which: &Selection,
    ) -> Result<String, CfnError> {
        let call = self
            .client
            .create_stack_instances()
            .stack_set_name(name)
            .set_regions(Some(which.regions.clone()))
            .operation_preferences(preferences(&set.preferences, &which.regions))
            .call_as(call_as(set));
        let call = with_targets!(call, set, which);
        let out = self.send(call.send()).await?;
        Ok(owned(out.operation_id()))
    }

    async fn delete_instances(
        &self,
        set: &StackSetPlan,
        name: &str,
        which: &Selection,
    ) -> Result<String, CfnError> {
        let call = self
            .client
            .delete_stack_instances()
            .stack_set_name(name)
            .set_regions(Some(which.regions.clone()))
            .retain_stacks(false)
            .operation_preferences(preferences(&set.preferences, &which.regions))
            .call_as(call_as(set));
        let call = with_targets!(call, set, which);
        let out = self.send(call.send()).await?;
        Ok(owned(out.operation_id()))
    }

    async fn delete(&self, set: &StackSetPlan, name: &str) -> Result<(), CfnError> {
        let call = self
            .client
            .delete_stack_set()
            .stack_set_name(name)
            .call_as(call_as(set));
        self.send(call.send()).await?;
        Ok(())
    }

    async fn instances(&self, set: &StackSetPlan, name: &str) -> Result<Vec<Instance>, CfnError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let call = self
                .client
                .list_stack_instances()
                .stack_set_name(name)
                .call_as(call_as(set))
                .set_next_token(token.take());
            let page = self.send(call.send()).await?;
            for s in page.summaries() {
                out.push(Instance {
                    account: owned(s.account()),
                    region: owned(s.region()),
                    organizational_unit: s.organizational_unit_id().map(str::to_owned),
                    status: s
                        .status()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    detailed_status: s
                        .stack_instance_status()
                        .and_then(|d| d.detailed_status())
                        .map(|d| d.as_str().to_owned()),
                    status_reason: s.status_reason().map(str::to_owned),
                    drift: s.drift_status().map(|d| d.as_str().to_owned()),
                });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn operation(
        &self,
        set: &StackSetPlan,
        name: &str,
        id: &str,
    ) -> Result<Operation, CfnError> {
        let call = self
            .client
            .describe_stack_set_operation()
            .stack_set_name(name)
            .operation_id(id)
            .call_as(call_as(set));
        let out = self.send(call.send()).await?;
        let op = out.stack_set_operation();
        Ok(Operation {
            status: op
                .and_then(|o| o.status())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            status_reason: op.and_then(|o| o.status_reason()).map(str::to_owned),
        })
    }

    async fn results(
        &self,
        set: &StackSetPlan,
        name: &str,
        id: &str,
    ) -> Result<Vec<OperationResult>, CfnError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let call = self
                .client
                .list_stack_set_operation_results()
                .stack_set_name(name)
                .operation_id(id)
                .call_as(call_as(set))
                .set_next_token(token.take());
            let page = self.send(call.send()).await?;
            for r in page.summaries() {
                out.push(OperationResult {
                    account: owned(r.account()),
                    region: owned(r.region()),
                    status: r
                        .status()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    reason: r.status_reason().map(str::to_owned),
                });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }
}
