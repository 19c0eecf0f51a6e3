//! `securechat-load`: see the `loadgen` crate docs, or `securechat-load --help`.

fn main() -> std::process::ExitCode {
    loadgen::cli_main()
}
