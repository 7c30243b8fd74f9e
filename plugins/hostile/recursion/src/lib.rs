//! Recurses without bound: must overflow the stack and trap.
include!("../../common.rs");

#[inline(never)]
fn descend(depth: u64, pad: [u64; 16]) -> u64 {
    // Never true in practice: the stack runs out long before.
    if depth == u64::MAX {
        return 0;
    }
    let next = std::hint::black_box(pad);
    descend(depth + 1, next) + next[(depth % 16) as usize]
}

impl Guest for Hostile {
    fn describe() -> PluginInfo {
        info("hostile-recursion")
    }

    fn parse(_doc: Document) -> Result<Parsed, PluginError> {
        let depth = descend(0, [1; 16]);
        Err(PluginError::Internal(format!("unreachable: {depth}")))
    }
}
