//! The build role's read access to the secrets a `fetch` names: `secretsmanager:GetSecretValue` and
//! `ssm:GetParameter` on exactly the ARNs the lock records, and `kms:Decrypt` on a customer-managed key that
//! encrypts one of them, only through those services. Nothing else: no wildcard, no `ListSecrets`.

use serde_json::{Value, json};

use crate::lock::secrets::ResolvedSecret;

/// The role's inline policy, or `None` when the image reads no secret.
pub(super) fn read_policy(secrets: &[ResolvedSecret]) -> Option<Value> {
    let mut sm: Vec<&str> = Vec::new();
    let mut ssm: Vec<&str> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    for s in secrets {
        let list = if s.arn.contains(":secretsmanager:") {
            &mut sm
        } else {
            &mut ssm
        };
        if !list.contains(&s.arn.as_str()) {
            list.push(&s.arn);
        }
        if let Some(k) = s.kms_key.as_deref().and_then(|k| key_arn(k, &s.arn))
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

/// The key ARN IAM can name for a secret's KMS key: the ARN itself, or a bare key id (as `DescribeSecret` and
/// `DescribeParameters` may answer) in the secret's partition, region and account. `None` for an alias, which
/// cannot be a `kms:Decrypt` resource (docs/private-flakes.md says what to do then).
fn key_arn(key: &str, secret_arn: &str) -> Option<String> {
    if is_key_arn(key) {
        return Some(key.to_owned());
    }
    let is_id = !key.is_empty()
        && key.len() <= 64
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !key.starts_with('-');
    let f: Vec<&str> = secret_arn.split(':').collect();
    (is_id && f.len() >= 5).then(|| format!("arn:{}:kms:{}:{}:key/{key}", f[1], f[3], f[4]))
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

#[cfg(test)]
mod tests {
    use super::key_arn;

    #[test]
    fn kms_keys_become_key_arns() {
        let secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bake/t-AbC123";
        let arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(key_arn(arn, secret).as_deref(), Some(arn));
        assert_eq!(
            key_arn("1234abcd-12ab-34cd-56ef-1234567890ab", secret).as_deref(),
            Some(arn)
        );
        assert_eq!(key_arn("alias/team-key", secret), None);
        assert_eq!(
            key_arn("arn:aws:kms:eu-west-1:123456789012:alias/team-key", secret),
            None
        );
    }
}
