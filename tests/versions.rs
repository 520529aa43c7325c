//! Image Builder recipes and components are immutable: their versions must change exactly when their content
//! does, or CloudFormation fails ("already exists") or rebuilds for nothing.

use std::path::Path;

use bake::lock::Lock;
use bake::source::SourceFile;
use serde_json::Value;

fn template(spec: &str, lock: &Lock) -> Value {
    let file = SourceFile::new("web.kdl", spec);
    let (plan, diags) = bake::check_source(&file);
    let plan = plan.unwrap_or_else(|| panic!("{diags:?}"));
    let resolved = bake::lock::verify(&plan, lock, "web.kdl").unwrap();
    let artifacts = bake::emit::emit(&plan, &resolved, lock).unwrap();
    serde_json::from_str(artifacts.get("template.json").unwrap()).unwrap()
}

fn versions(t: &Value) -> (String, String) {
    let v = |id: &str| {
        t["Resources"][id]["Properties"]["Version"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    (v("ImageWebComponent"), v("ImageWebRecipe"))
}

fn base() -> (String, Lock) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = std::fs::read_to_string(root.join("specs/web.kdl")).unwrap();
    let lock = Lock::from_json(&std::fs::read_to_string(root.join("specs/web.lock.json")).unwrap())
        .unwrap();
    (spec, lock)
}

#[test]
fn versions_follow_content() {
    let (spec, lock) = base();
    let (component, recipe) = versions(&template(&spec, &lock));
    for v in [&component, &recipe] {
        let parts: Vec<u64> = v.split('.').map(|p| p.parse().unwrap()).collect();
        assert!(parts.len() == 3 && parts[2] < (1 << 30), "{v}");
    }

    // Same inputs: same versions.
    assert_eq!(
        versions(&template(&spec, &lock)),
        (component.clone(), recipe.clone())
    );

    // Tags and the fleet are not part of either.
    let retagged = spec
        .replace("service=\"web\"", "service=\"www\"")
        .replace("desired=3", "desired=4");
    assert_eq!(
        versions(&template(&retagged, &lock)),
        (component.clone(), recipe.clone())
    );

    // A new flake revision changes the script: both change.
    let mut moved = lock.clone();
    moved.images.get_mut("web").unwrap().flake.rev =
        "0123456789abcdef0123456789abcdef01234567".into();
    let (c2, r2) = versions(&template(&spec, &moved));
    assert_ne!(c2, component);
    assert_ne!(r2, recipe);

    // A new base AMI changes only the recipe.
    let mut rebased = lock.clone();
    rebased.images.get_mut("web").unwrap().base.ami = "ami-0123456789abcdef0".into();
    let (c3, r3) = versions(&template(&spec, &rebased));
    assert_eq!(c3, component);
    assert_ne!(r3, recipe);

    // A bigger volume changes only the recipe; a new RPM both.
    let bigger = spec.replace("volume-gib=30", "volume-gib=40");
    let (c4, r4) = versions(&template(&bigger, &lock));
    assert_eq!(c4, component);
    assert_ne!(r4, recipe);
    let more = spec.replace("rpms \"git\" \"jq\"", "rpms \"git\" \"jq\" \"htop\"");
    let (c5, r5) = versions(&template(&more, &lock));
    assert_ne!(c5, component);
    assert_ne!(r5, recipe);
}
