//! `autoid`: the command-line tool of the autoid authentication plugin (the library's
//! [`autoid_cli::main`]; exit codes in `docs/CLI.md`).

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    autoid_cli::main()
}
