fn main() {
    // The style is fixed so the window looks the same on every desktop.
    // Debug builds carry element info so the UI tests can find widgets by
    // their accessible labels.
    let debug = std::env::var("PROFILE").as_deref() != Ok("release");
    let config = slint_build::CompilerConfiguration::new()
        .with_style("fluent".into())
        .with_debug_info(debug);
    slint_build::compile_with_config("ui/main.slint", config).expect("ui/main.slint compiles");
}
