//! Running the real `agentbus-supervisor` against a test database.

use std::process::{Command, Stdio};

use super::{CliOutput, TestDb};

/// The `agentbus-supervisor` binary under test.
pub const SUPERVISOR: &str = env!("CARGO_BIN_EXE_agentbus-supervisor");

/// PATH with the directory of the built binaries first, so exec agents find `agentbus`.
pub fn path_with_binaries() -> String {
    let dir = std::path::Path::new(env!("CARGO_BIN_EXE_agentbus"))
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!("{dir}:{}", std::env::var("PATH").unwrap_or_default())
}

/// A running supervisor; killed (and reaped) when dropped.
pub struct SupervisorProc {
    pub child: std::process::Child,
    /// Its stderr goes to a file: a pipe read only at the end would fill up and block
    /// the supervisor's logging.
    pub log: std::path::PathBuf,
    /// Its --work-dir (prompt files) when the harness chose it: removed on drop even when
    /// the test killed the supervisor. A test that passes its own keeps it to inspect.
    pub work_dir: Option<std::path::PathBuf>,
}

impl SupervisorProc {
    /// Sends `signal` to the supervisor.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal supervisor");
    }

    /// Waits up to `within` for it to exit; returns its output.
    pub fn wait(mut self, within: std::time::Duration) -> CliOutput {
        let until = std::time::Instant::now() + within;
        loop {
            if let Some(_status) = self.child.try_wait().expect("try_wait") {
                break;
            }
            if std::time::Instant::now() > until {
                let _ = self.child.kill();
                let out = read_output(&mut self.child, &self.log);
                panic!(
                    "supervisor did not exit within {within:?}; stderr:\n{}",
                    out.stderr
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        read_output(&mut self.child, &self.log)
    }
}

fn read_output(child: &mut std::process::Child, log: &std::path::Path) -> CliOutput {
    use std::io::Read;
    let status = child.wait().expect("wait");
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Ok(mut f) = std::fs::File::open(log) {
        let _ = f.read_to_string(&mut stderr);
    }
    CliOutput {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

impl Drop for SupervisorProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        if let Some(dir) = &self.work_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl TestDb {
    /// Starts `agentbus-supervisor ARGS` against this database with a clean environment
    /// plus `env`. Its stderr is captured (read it with `wait`); stdout likewise.
    pub fn spawn_supervisor(&self, args: &[&str], env: &[(&str, &str)]) -> SupervisorProc {
        let log =
            std::env::temp_dir().join(format!("agentbus-supervisor-{}.log", uuid::Uuid::new_v4()));
        let log_file = std::fs::File::create(&log).expect("create supervisor log");
        let work_dir = (!args.contains(&"--work-dir")).then(|| {
            std::env::temp_dir().join(format!("agentbus-it-work-{}", uuid::Uuid::new_v4()))
        });
        let mut cmd = Command::new(SUPERVISOR);
        cmd.args(args);
        if let Some(dir) = &work_dir {
            cmd.arg("--work-dir").arg(dir);
        }
        cmd.env_clear()
            .env("USER", "tester")
            .env("PATH", path_with_binaries())
            .env("DATABASE_URL", &self.url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        SupervisorProc {
            child: cmd.spawn().expect("spawn agentbus-supervisor"),
            log,
            work_dir,
        }
    }

    /// Runs `agentbus-supervisor --once ARGS` to its end (at most `within`).
    pub fn supervise_once(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        within: std::time::Duration,
    ) -> CliOutput {
        let mut all = vec!["--once"];
        all.extend_from_slice(args);
        self.spawn_supervisor(&all, env).wait(within)
    }
}
