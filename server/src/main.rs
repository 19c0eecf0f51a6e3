//! `securechat-server`: see `server::cli`.

fn main() -> std::process::ExitCode {
    server::cli_main()
}
