//! The `kargo` binary: parse the command line, run the command, map errors to exit codes.

fn main() -> std::process::ExitCode {
    kargo::cli::main()
}
