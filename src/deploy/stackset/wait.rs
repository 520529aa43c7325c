//! Waiting on a stack set operation: `DescribeStackSetOperation` polled with backoff (1 s doubling to 15 s),
//! bounded in time, then `ListStackSetOperationResults` for what happened in each account and region.

use std::time::{Duration, Instant};

use super::api::{OperationResult, StackSets};
use crate::check::stackset::StackSetPlan;
use crate::deploy::events::clean_reason;
use crate::deploy::{Ui, env_error};
use crate::exit;

/// The longest bake follows one operation: CloudFormation's own limit for a stack operation is 12 hours
/// (Image Builder's handler), and a stack set runs its regions one after the other.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

const FIRST_POLL: Duration = Duration::from_secs(1);
const MAX_POLL: Duration = Duration::from_secs(15);

/// How an operation ended.
#[derive(Debug)]
pub enum Outcome {
    Succeeded(Vec<OperationResult>),
    /// `FAILED` or `STOPPED`, with every result (the failed ones are what the user needs).
    Failed {
        status: String,
        reason: Option<String>,
        results: Vec<OperationResult>,
    },
}

/// Follows operation `id` to its end. `timeout` is how long bake goes on without a single answer before it
/// reports lost contact (exit 3), as the plain watch does.
pub async fn wait<S: StackSets>(
    sets: &S,
    set: &StackSetPlan,
    name: &str,
    id: &str,
    what: &str,
    timeout: Duration,
    ui: &mut Ui,
) -> Result<Outcome, u8> {
    let start = Instant::now();
    let mut last_answer = Instant::now();
    let mut delay = FIRST_POLL;
    let mut last_status = String::new();
    loop {
        match sets.operation(set, name, id).await {
            Ok(op) => {
                last_answer = Instant::now();
                if op.status != last_status {
                    ui.say(format!("  {what}: {}", op.status));
                    ui.json_line(&serde_json::json!({"type": "operation", "id": id, "what": what, "status": op.status}));
                    last_status.clone_from(&op.status);
                }
                match op.status.as_str() {
                    "SUCCEEDED" | "FAILED" | "STOPPED" => {
                        let results = sets.results(set, name, id).await.map_err(|e| {
                            env_error(
                                ui,
                                &format!("cannot list the results of operation {id}"),
                                &e,
                            )
                        })?;
                        return Ok(if op.status == "SUCCEEDED" {
                            Outcome::Succeeded(results)
                        } else {
                            Outcome::Failed {
                                status: op.status,
                                reason: op.status_reason,
                                results,
                            }
                        });
                    }
                    _ => {}
                }
            }
            Err(e) if last_answer.elapsed() >= timeout => {
                return Err(env_error(
                    ui,
                    &format!(
                        "lost contact while waiting on stack set operation {id} (no answer for {} s); it goes on in AWS: `bake status` shows the instances",
                        timeout.as_secs()
                    ),
                    &e,
                ));
            }
            Err(_) => {}
        }
        if start.elapsed() >= MAX_WAIT {
            ui.error(format!(
                "error: stack set operation {id} is still {last_status} after {} hours; bake stops waiting (it goes on in AWS): `bake status` shows the instances",
                MAX_WAIT.as_secs() / 3600
            ));
            return Err(exit::ENV);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_POLL);
    }
}

/// Prints each account and region that did not succeed, with its reason; returns how many.
pub fn report_failures(results: &[OperationResult], ui: &mut Ui) -> usize {
    let mut failed = 0;
    for r in results.iter().filter(|r| r.status != "SUCCEEDED") {
        failed += 1;
        let reason = r
            .reason
            .as_deref()
            .map(clean_reason)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "no reason given".to_owned());
        ui.error(format!(
            "  ✗ account {} in {}: {} — {reason}",
            r.account, r.region, r.status
        ));
        ui.json_line(&serde_json::json!({
            "type": "instance-result", "account": r.account, "region": r.region, "status": r.status, "reason": r.reason,
        }));
    }
    failed
}
