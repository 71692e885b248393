fn main() -> std::process::ExitCode {
    sift_tui::cli::main()
}
