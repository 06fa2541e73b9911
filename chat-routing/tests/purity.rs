//! Architecture invariant: chat-routing is pure and independent of chat-core. clippy.toml forbids
//! clock, random and I/O calls; this test forbids new runtime dependencies, so adding one (or
//! chat-core) is a reviewed decision, not an accident.

const ALLOWED: &[&str] = &["chrono", "serde", "thiserror", "uuid", "proptest"];

#[test]
fn r6_chat_routing_depends_only_on_the_allow_list() {
    let manifest = include_str!("../Cargo.toml");
    let deps: Vec<&str> = manifest
        .lines()
        .skip_while(|line| line.trim() != "[dependencies]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|line| line.split(['=', '.']).next().unwrap_or("").trim())
        .collect();
    assert!(deps.contains(&"chrono"), "could not read [dependencies]");
    for name in deps {
        assert!(
            ALLOWED.contains(&name),
            "chat-routing must stay pure: `{name}` is not in {ALLOWED:?}"
        );
    }
    assert!(manifest.contains("proptest = { workspace = true, optional = true }"));
}
