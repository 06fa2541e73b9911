//! Examples of embedding the chat engine. Each example is a file beside this one, listed as an
//! `[[example]]` in `examples/Cargo.toml`; run one with `cargo run -p chat-examples --example NAME`.
