//! `bake fmt` on any text: never a panic; when it formats, the result parses, is a fixed point, and keeps every
//! character of the input but whitespace, `;` between nodes and the `\` of line continuations.
#![no_main]

use bake::fmt::format;
use bake::source::SourceFile;
use bake::spec::lex::significant;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(out) = format(&SourceFile::new("fuzz.kdl", text)) else {
        return;
    };
    assert!(
        bake::spec::stack::parse(&out).is_ok(),
        "output does not parse: {out:?}"
    );
    let kept: String = significant(text).into_iter().map(|(_, c)| c).collect();
    let got: String = significant(&out).into_iter().map(|(_, c)| c).collect();
    assert_eq!(kept, got, "formatting lost text");
    let again = format(&SourceFile::new("fuzz.kdl", out.as_str())).expect("formatted text formats");
    assert_eq!(again, out, "not idempotent");
});
