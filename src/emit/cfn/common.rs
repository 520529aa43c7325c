//! Helpers the template's parts share: managed-policy ARNs, tag lists and maps, IAM trust documents and small
//! JSON builders.

use serde_json::{Map, Value, json};

pub(super) fn managed_policy(name: &str) -> Value {
    json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:iam::aws:policy/{name}")})
}

pub(super) fn tag_list(tags: &[(String, String)]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

pub(super) fn tag_map(tags: &[(String, String)]) -> Value {
    Value::Object(
        tags.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

pub(super) fn assume_role(service: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
    })
}

/// A service role that only this account's Image Builder, acting for one of this account's Image Builder
/// resources in this region, may assume (the IAM confused-deputy guidance: `aws:SourceAccount` and
/// `aws:SourceArn`).
pub(super) fn assume_role_from_image_builder() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "imagebuilder.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                "ArnLike": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:imagebuilder:${AWS::Region}:${AWS::AccountId}:*"}}
            }
        }]
    })
}

/// Adds `Tags` to a resource's properties only when there are tags (an empty list is noise in diffs).
pub(super) fn with_tags(mut props: Map<String, Value>, key: &str, tags: Value) -> Value {
    let empty = match &tags {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => true,
    };
    if !empty {
        props.insert(key.to_owned(), tags);
    }
    Value::Object(props)
}

/// `{"Type": kind, "Properties": properties}`, moving `properties` in (`json!` would copy it).
pub(super) fn resource(kind: &str, properties: Value) -> Value {
    let mut r = Map::new();
    r.insert("Type".into(), Value::String(kind.into()));
    r.insert("Properties".into(), properties);
    Value::Object(r)
}

pub(super) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
