//! The `feedflow` command line.

fn main() -> std::process::ExitCode {
    feedflow::cli::main()
}
