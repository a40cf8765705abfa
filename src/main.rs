//! The `feedflow` command line.

// Workers free what other workers allocated (records cross threads at every
// exchange); mimalloc handles that far better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in `mi_option_e` of the mimalloc v3 that libmimalloc-sys 0.1.49 builds
/// (the crate names only some of the options; Cargo.toml pins the version).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed heap pages stay with the process before mimalloc returns them to the OS, in ms.
/// Timely frees and allocates its message buffers every tick; at mimalloc's default of 10 ms
/// the pages go back and fault in again, which cost a sixth of the replay's CPU (BENCHMARKS.md §1).
const HEAP_PURGE_DELAY_MS: std::ffi::c_long = 1_000;

fn main() -> std::process::ExitCode {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads options at any time, no pointer is involved.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, HEAP_PURGE_DELAY_MS) };
    }
    feedflow::cli::main()
}
