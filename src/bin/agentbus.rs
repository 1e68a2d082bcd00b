//! The `agentbus` binary: wires the process (argv, environment, stdio) to the CLI.

use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let stdout_is_tty = std::io::stdout().is_terminal();
    let code = agentbus::cli::run(
        std::env::args().collect(),
        Box::new(|name| std::env::var(name).ok()),
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
        stdout_is_tty,
    );
    ExitCode::from(code)
}
