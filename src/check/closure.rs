//! A built image's `closure` node: which binary cache the prebuilt closure comes from and which key signs it.
//! The grammar already refused malformed URLs and keys; this adds what is legal but worth a warning.

use super::plan::ClosurePlan;
use crate::closure::url::{CacheUrl, parse_cache_url};
use crate::diag::{Code, Diag, Diags};
use crate::spec::Item;

pub(super) fn closure_plan(item: &Item, diags: &mut Diags) -> Option<ClosurePlan> {
    let node = item.child("closure")?;
    let cache = node.str("cache")?;
    let public_key = node.str("public-key")?;
    let cache_url = parse_cache_url(&cache.value).ok()?;
    match &cache_url {
        CacheUrl::Http { tls: false, .. } => diags.push(
            Diag::warning(
                Code::CachePlaintext,
                "the binary cache is read over plaintext HTTP",
            )
            .label(cache.span, "http://")
            .help("Nix checks every path's signature, so nothing unsigned gets in, but anyone on the path sees what the image holds and can withhold it; use https:// or an s3:// bucket"),
        ),
        CacheUrl::File { .. } => diags.push(
            Diag::warning(
                Code::CacheLocal,
                "the binary cache is a directory on the machine that reads it",
            )
            .label(cache.span, "file://")
            .help("the Image Builder instance has no such directory unless something puts it there; for images use an s3:// bucket (file:// caches are for trying `bake build` locally)"),
        ),
        _ => {}
    }
    Some(ClosurePlan {
        cache: cache.value,
        cache_url,
        public_key: public_key.value,
        span: node.name_span,
    })
}
