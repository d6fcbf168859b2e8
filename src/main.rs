//! The `kargo` binary: parse the command line, run the command, map errors to exit codes.

// Validation and the reader allocate many small values; mimalloc is markedly faster at
// that than the system allocator (see bench/validate.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kargo::cli::main()
}
