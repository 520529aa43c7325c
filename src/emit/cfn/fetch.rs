//! The build role's read access to the secrets a `fetch` names: `secretsmanager:GetSecretValue` and
//! `ssm:GetParameter` on exactly the ARNs the lock records, and `kms:Decrypt` on a customer-managed key that
//! encrypts one of them, only through those services. Nothing else: no wildcard, no `ListSecrets`.

use serde_json::{Value, json};

use crate::lock::secrets::ResolvedSecret;

/// The role's inline policy, or `None` when the image reads no secret.
pub(super) fn read_policy(secrets: &[ResolvedSecret]) -> Option<Value> {
    let mut sm: Vec<&str> = Vec::new();
    let mut ssm: Vec<&str> = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    for s in secrets {
        let list = if s.arn.contains(":secretsmanager:") {
            &mut sm
        } else {
            &mut ssm
        };
        if !list.contains(&s.arn.as_str()) {
            list.push(&s.arn);
        }
        if let Some(k) = s.kms_key.as_deref().filter(|k| is_key_arn(k))
            && !keys.contains(&k)
        {
            keys.push(k);
        }
    }
    let mut statements = Vec::new();
    if !sm.is_empty() {
        statements.push(json!({
            "Sid": "ReadFetchSecrets",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": sm,
        }));
    }
    if !ssm.is_empty() {
        statements.push(json!({
            "Sid": "ReadFetchParameters",
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": ssm,
        }));
    }
    if !keys.is_empty() {
        statements.push(json!({
            "Sid": "DecryptFetchSecrets",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": keys,
            "Condition": {"StringEquals": {"kms:ViaService": [
                {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"},
                {"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"},
            ]}},
        }));
    }
    if statements.is_empty() {
        return None;
    }
    Some(json!({
        "PolicyName": "bake-fetch-credentials",
        "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
    }))
}

/// `arn:aws:kms:<region>:<account>:key/<id>`: a key IAM can name (an alias cannot be a `kms:Decrypt` resource).
fn is_key_arn(k: &str) -> bool {
    let f: Vec<&str> = k.splitn(6, ':').collect();
    f.len() == 6
        && f[0] == "arn"
        && f[1].starts_with("aws")
        && f[2] == "kms"
        && crate::aws::is_region_name(f[3])
        && f[4].len() == 12
        && f[4].bytes().all(|b| b.is_ascii_digit())
        && f[5].strip_prefix("key/").is_some_and(|id| {
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}
