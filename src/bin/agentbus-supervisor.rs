//! The `agentbus-supervisor` binary: wires signals, argv, the environment and stdio to
//! the supervisor.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

fn main() -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        // The second signal exits at once (the stop flag is already set then); the first
        // only sets the flag. Registration order matters: the conditional exit first.
        let registered = flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))
            .and_then(|_| flag::register(signal, Arc::clone(&stop)));
        if let Err(e) = registered {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("agentbus-supervisor: error: cannot install signal handlers: {e}\n")
                    .as_bytes(),
            );
            return ExitCode::from(1);
        }
    }
    let env = agentbus::supervisor::EnvSnapshot(std::env::vars().collect());
    let code = agentbus::cli::supervisor::run(
        std::env::args().collect(),
        env,
        // Not locked: the supervisor's threads write log lines to stderr.
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        stop,
    );
    ExitCode::from(code)
}
