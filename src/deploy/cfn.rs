//! CloudFormation as bake sees it: a small trait of bake-domain types, and `AwsCfn`, its implementation over
//! aws-sdk-cloudformation. This is the only file that names SDK types; tests script the trait instead.

use std::future::Future;
use std::time::Duration;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Tag};

use super::template_store::TemplateSource;
use crate::aws::{self, Classified, Endpoint, Failure, Kind};

/// A stack as `DescribeStacks` reports it. Statuses are kept as strings: values the SDK does not know
/// (`Unknown(..)`) arrive as they were sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stack {
    pub id: String,
    pub name: String,
    pub status: String,
    pub status_reason: Option<String>,
    /// `(key, value)` in the order CloudFormation gives them.
    pub outputs: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

/// A change set's state and its resource changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeSet {
    pub id: String,
    /// `CREATE_PENDING`, `CREATE_IN_PROGRESS`, `CREATE_COMPLETE`, `FAILED`, ...
    pub status: String,
    pub status_reason: Option<String>,
    pub changes: Vec<ResourceChange>,
}

/// One resource change of a change set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceChange {
    /// `Add`, `Modify`, `Remove`, `Import`, `Dynamic`.
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// `True`, `False` or `Conditional` for `Modify`.
    pub replacement: Option<String>,
    /// The changed properties' names, for `Modify`.
    pub properties: Vec<String>,
}

/// One stack event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StackEvent {
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSetKind {
    Create,
    Update,
}

/// What `CreateChangeSet` is asked to do. bake always passes `CAPABILITY_IAM`: every fleet has a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSetRequest {
    pub stack: String,
    pub name: String,
    pub kind: ChangeSetKind,
    /// Inline or from S3 (`super::template_store`).
    pub template: TemplateSource,
    pub tags: Vec<(String, String)>,
}

/// A failed call, sorted by what the caller can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CfnError {
    /// The service said no, for a reason it named (`ValidationError`, `InsufficientCapabilities`, a resource's
    /// error code on moto's `ExecuteChangeSet`, ...).
    Service { code: String, message: String },
    /// Rate-limited after the SDK's own retries: wait longer and try again. The text is a whole sentence.
    Throttled(String),
    /// No usable answer: no credentials, no connection, no answer in time, access denied, a proxy's HTML page.
    Transport(Failure),
}

impl CfnError {
    /// Whether this is CloudFormation's way of saying that a stack does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CfnError::Service { code, message }
            if code == "ValidationError" && message.contains("does not exist"))
    }
}

impl std::fmt::Display for CfnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CfnError::Service { code, message } => write!(f, "{code}: {message}"),
            CfnError::Throttled(m) => f.write_str(m),
            CfnError::Transport(failure) => write!(f, "{failure}"),
        }
    }
}

impl CfnError {
    /// The SDK's full report, for `--verbose`, when it says more than the message.
    pub fn detail(&self) -> Option<&str> {
        match self {
            CfnError::Transport(f) if f.detail != f.sentence => Some(&f.detail),
            _ => None,
        }
    }

    /// When the stack is busy with another operation (CloudFormation refuses to start a second one), the
    /// status it names ("Stack:… is in UPDATE_IN_PROGRESS state and can not be updated"), or "busy".
    pub fn busy_status(&self) -> Option<String> {
        let CfnError::Service { code, message } = self else {
            return None;
        };
        let named = message
            .split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .find(|w| w.ends_with("_IN_PROGRESS"));
        match named {
            Some(status) if message.contains("state and can not be updated") => {
                Some(status.to_owned())
            }
            _ if code == "OperationInProgressException" => Some("busy".to_owned()),
            _ => None,
        }
    }
}

/// The CloudFormation calls bake makes. `stack` is a name or a stack id (ARN).
#[allow(async_fn_in_trait)]
pub trait Cfn {
    /// The stack, or `None` when it does not exist.
    async fn describe_stack(&self, stack: &str) -> Result<Option<Stack>, CfnError>;
    /// The deployed template's body (`Original` stage), or `None` when there is none.
    async fn get_template(&self, stack: &str) -> Result<Option<String>, CfnError>;
    /// Creates a change set and returns its id and its stack's id.
    async fn create_change_set(
        &self,
        request: &ChangeSetRequest,
    ) -> Result<(String, String), CfnError>;
    async fn describe_change_set(&self, stack: &str, id: &str) -> Result<ChangeSet, CfnError>;
    async fn execute_change_set(
        &self,
        stack: &str,
        id: &str,
        disable_rollback: bool,
    ) -> Result<(), CfnError>;
    async fn delete_change_set(&self, stack: &str, id: &str) -> Result<(), CfnError>;
    async fn delete_stack(&self, stack: &str) -> Result<(), CfnError>;
    /// Events newest first, at least back to `since_ms` (older ones may follow).
    async fn stack_events(&self, stack: &str, since_ms: i64) -> Result<Vec<StackEvent>, CfnError>;
}

/// `Cfn` over the AWS SDK.
#[derive(Debug, Clone)]
pub struct AwsCfn {
    client: Client,
    endpoint: Endpoint,
}

/// The credentials, region and timeout to connect with ([`aws::Settings`]).
pub type AwsOptions = aws::Settings;

impl AwsCfn {
    /// A client on the shared AWS configuration (timeouts, retries). Nothing is contacted yet.
    pub async fn connect(options: &AwsOptions) -> AwsCfn {
        let config = aws::config(options).await;
        AwsCfn {
            client: Client::new(&config),
            endpoint: Endpoint::new("CloudFormation", &config, options),
        }
    }

    /// Where the calls go: the region of the resolved configuration, and the endpoint URL if one is set.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends one call. The SDK's operation timeout bounds it; this outer bound (a little longer) also covers
    /// whatever the SDK does not time, such as a credential process that hangs.
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
            Ok(Err(e)) => Err(map_err(&e, &self.endpoint)),
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

fn map_err<E>(e: &SdkError<E, HttpResponse>, endpoint: &Endpoint) -> CfnError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match aws::classify(e, endpoint) {
        Classified::Service { code, message } => CfnError::Service { code, message },
        Classified::Failure(f) if f.kind == Kind::Throttled => CfnError::Throttled(f.sentence),
        Classified::Failure(f) => CfnError::Transport(f),
    }
}

/// At most this many pages of one paginated answer: a server that keeps handing out tokens cannot keep bake
/// asking forever (a page holds up to 100 events; change sets of bake's templates fit in one or two).
const MAX_PAGES: u32 = 50;

fn owned(s: Option<&str>) -> String {
    s.unwrap_or_default().to_owned()
}

impl Cfn for AwsCfn {
    async fn describe_stack(&self, stack: &str) -> Result<Option<Stack>, CfnError> {
        let out = match self
            .send(self.client.describe_stacks().stack_name(stack).send())
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return if e.is_not_found() { Ok(None) } else { Err(e) };
            }
        };
        Ok(out.stacks().first().map(|s| Stack {
            id: owned(s.stack_id()),
            name: owned(s.stack_name()),
            status: s
                .stack_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            status_reason: s.stack_status_reason().map(str::to_owned),
            outputs: s
                .outputs()
                .iter()
                .map(|o| (owned(o.output_key()), owned(o.output_value())))
                .collect(),
            tags: s
                .tags()
                .iter()
                .map(|t| (owned(t.key()), owned(t.value())))
                .collect(),
        }))
    }

    async fn get_template(&self, stack: &str) -> Result<Option<String>, CfnError> {
        match self
            .send(self.client.get_template().stack_name(stack).send())
            .await
        {
            Ok(out) => Ok(out.template_body().map(str::to_owned)),
            Err(e) => {
                if e.is_not_found() {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn create_change_set(
        &self,
        request: &ChangeSetRequest,
    ) -> Result<(String, String), CfnError> {
        let kind = match request.kind {
            ChangeSetKind::Create => ChangeSetType::Create,
            ChangeSetKind::Update => ChangeSetType::Update,
        };
        let mut call = self
            .client
            .create_change_set()
            .stack_name(&request.stack)
            .change_set_name(&request.name)
            .change_set_type(kind)
            .capabilities(Capability::CapabilityIam)
            .description("bake deploy");
        call = match &request.template {
            TemplateSource::Body(body) => call.template_body(body),
            TemplateSource::Url(url) => call.template_url(url),
        };
        for (k, v) in &request.tags {
            call = call.tags(Tag::builder().key(k).value(v).build());
        }
        let out = self.send(call.send()).await?;
        Ok((owned(out.id()), owned(out.stack_id())))
    }

    async fn describe_change_set(&self, stack: &str, id: &str) -> Result<ChangeSet, CfnError> {
        let mut set = ChangeSet::default();
        let mut token: Option<String> = None;
        let mut page = 0u32;
        loop {
            page += 1;
            let out = self
                .send(
                    self.client
                        .describe_change_set()
                        .stack_name(stack)
                        .change_set_name(id)
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
            set.id = owned(out.change_set_id());
            set.status = out
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            set.status_reason = out.status_reason().map(str::to_owned);
            for change in out.changes() {
                let Some(rc) = change.resource_change() else {
                    continue;
                };
                let mut properties: Vec<String> = rc
                    .details()
                    .iter()
                    .filter_map(|d| d.target())
                    .filter_map(|t| t.name().map(str::to_owned))
                    .collect();
                properties.sort();
                properties.dedup();
                set.changes.push(ResourceChange {
                    action: rc
                        .action()
                        .map(|a| a.as_str().to_owned())
                        .unwrap_or_default(),
                    logical_id: owned(rc.logical_resource_id()),
                    resource_type: owned(rc.resource_type()),
                    replacement: rc.replacement().map(|r| r.as_str().to_owned()),
                    properties,
                });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() && page < MAX_PAGES => token = Some(t.to_owned()),
                _ => return Ok(set),
            }
        }
    }

    async fn execute_change_set(
        &self,
        stack: &str,
        id: &str,
        disable_rollback: bool,
    ) -> Result<(), CfnError> {
        let mut call = self
            .client
            .execute_change_set()
            .stack_name(stack)
            .change_set_name(id);
        if disable_rollback {
            call = call.disable_rollback(true);
        }
        self.send(call.send()).await?;
        Ok(())
    }

    async fn delete_change_set(&self, stack: &str, id: &str) -> Result<(), CfnError> {
        let call = self
            .client
            .delete_change_set()
            .stack_name(stack)
            .change_set_name(id);
        self.send(call.send()).await?;
        Ok(())
    }

    async fn delete_stack(&self, stack: &str) -> Result<(), CfnError> {
        let call = self.client.delete_stack().stack_name(stack);
        self.send(call.send()).await?;
        Ok(())
    }

    async fn stack_events(&self, stack: &str, since_ms: i64) -> Result<Vec<StackEvent>, CfnError> {
        let mut events = Vec::new();
        let mut token: Option<String> = None;
        let mut page = 0u32;
        loop {
            page += 1;
            let out = self
                .send(
                    self.client
                        .describe_stack_events()
                        .stack_name(stack)
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
            let mut older = false;
            for e in out.stack_events() {
                let timestamp_ms = e.timestamp().and_then(|t| t.to_millis().ok()).unwrap_or(0);
                older |= timestamp_ms < since_ms;
                events.push(StackEvent {
                    id: owned(e.event_id()),
                    timestamp_ms,
                    logical_id: owned(e.logical_resource_id()),
                    resource_type: owned(e.resource_type()),
                    status: e
                        .resource_status()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    reason: e.resource_status_reason().map(str::to_owned),
                });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() && !older && page < MAX_PAGES => {
                    token = Some(t.to_owned())
                }
                _ => return Ok(events),
            }
        }
    }
}
