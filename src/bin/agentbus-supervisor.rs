//! The `agentbus-supervisor` binary: wires signals, argv, the environment and stdio to
//! the supervisor.

use std::process::ExitCode;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn main() -> ExitCode {
    let stop = agentbus::supervisor::Stop::new();
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("agentbus-supervisor: error: cannot install signal handlers: {e}\n")
                    .as_bytes(),
            );
            return ExitCode::from(1);
        }
    };
    // The first signal asks the supervisor to stop (it arrives in the main loop as an
    // event); a second one, while it is still winding down, exits at once.
    let on_signal = stop.clone();
    let watcher = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if on_signal.requested() {
                    std::process::exit(1);
                }
                on_signal.request(signal);
            }
        });
    if let Err(e) = watcher {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("agentbus-supervisor: error: cannot start the signal thread: {e}\n").as_bytes(),
        );
        return ExitCode::from(1);
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
