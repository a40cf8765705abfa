//! The `feedflow` command line.

// Workers free what other workers allocated (records cross threads at every
// exchange); mimalloc handles that far better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    feedflow::cli::main()
}
