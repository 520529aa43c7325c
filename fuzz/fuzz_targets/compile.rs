//! `bake compile` on any text, with the lock of `specs/web.kdl` (the seed corpus is mostly variations of the
//! examples, so mutations keep verifying against it): never a panic, and never an `EmitError::Bug` (bake
//! generating a script or template it does not itself accept).
#![no_main]

use bake::lock::Lock;
use bake::pipeline::{Failed, build};
use bake::source::SourceFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let lock = Lock::from_json(include_str!("../../specs/web.lock.json"))
        .expect("the example lock parses");
    let file = SourceFile::new("web.kdl", text);
    let (Some(plan), diags) = bake::check_source(&file) else {
        return;
    };
    if let Err(Failed::Bug(bug)) = build(&file, plan, diags, &lock) {
        panic!("bake bug: {bug}");
    }
});
