//! The real `securechat-server` binary, built inside this package so that
//! integration tests can run it via `CARGO_BIN_EXE_securechat-test-server`.

fn main() -> std::process::ExitCode {
    server::cli_main()
}
