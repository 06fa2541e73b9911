//! Architecture invariant: chat-core depends on no async runtime, no I/O crate, no clock and no
//! random source. The clippy configuration forbids the calls; this test forbids the crates, so a
//! new dependency is a reviewed decision rather than an accident.

const ALLOWED: &[&str] = &["serde", "uuid", "chrono", "chrono-tz", "thiserror"];

fn section<'a>(manifest: &'a str, header: &str) -> Vec<&'a str> {
    manifest
        .lines()
        .skip_while(|line| line.trim() != header)
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .collect()
}

fn dependency_name(line: &str) -> &str {
    line.split(['=', '.']).next().unwrap_or("").trim()
}

#[test]
fn chat_core_depends_only_on_the_allow_list() {
    let manifest = include_str!("../Cargo.toml");
    let deps = section(manifest, "[dependencies]");
    assert!(
        !deps.is_empty(),
        "could not find chat-core's [dependencies]"
    );
    for line in deps {
        let name = dependency_name(line);
        assert!(
            ALLOWED.contains(&name),
            "chat-core must stay pure: dependency `{name}` is not in the allow-list {ALLOWED:?}"
        );
    }
    assert!(
        !manifest.contains("[target."),
        "chat-core must not add platform-specific dependencies"
    );
}

#[test]
fn the_workspace_denies_chat_core_a_clock_and_a_random_source() {
    // Feature selection makes `Utc::now` and `Uuid::new_v4` not exist for chat-core on its own.
    let workspace = include_str!("../../Cargo.toml");
    let uuid = workspace
        .lines()
        .find(|l| l.starts_with("uuid "))
        .expect("uuid in workspace dependencies");
    assert!(
        uuid.contains("default-features = false") && !uuid.contains("v4") && !uuid.contains("v7")
    );
    let chrono = workspace
        .lines()
        .find(|l| l.starts_with("chrono "))
        .expect("chrono in workspace dependencies");
    assert!(chrono.contains("default-features = false") && !chrono.contains("clock"));
}
