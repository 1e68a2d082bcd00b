//! A private PostgreSQL cluster for tests that restart the server (the shared test
//! server must stay up for every other test). Runs as the `postgres` user when the tests
//! run as root, as PostgreSQL refuses root.

use std::path::PathBuf;
use std::process::Command;

pub struct PrivateCluster {
    pub dir: PathBuf,
    pub port: u16,
    bindir: PathBuf,
    as_postgres: bool,
}

fn bindir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists());
    found.sort();
    if let Some(p) = found.pop() {
        return p;
    }
    let out = Command::new("pg_config").arg("--bindir").output();
    match out {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => panic!("PostgreSQL server binaries (initdb, pg_ctl) not found; scripts/pg-local.sh installs them"),
    }
}

impl PrivateCluster {
    /// initdb + start on a free port, trust auth, socket in the cluster's own folder.
    pub fn start() -> PrivateCluster {
        let bindir = bindir();
        let as_postgres = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0\n"))
            .unwrap_or(false);
        let dir =
            std::env::temp_dir().join(format!("agentbus-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = PrivateCluster {
            dir,
            port,
            bindir,
            as_postgres,
        };
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.dir)
                .status()
                .unwrap();
            assert!(ok.success(), "chown the cluster folder to postgres");
        }
        let data = cluster.dir.join("data");
        cluster.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--locale=C",
                "--encoding=UTF8",
            ],
        );
        cluster.pg_ctl(&["start"]);
        cluster
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// `pg_ctl restart -m fast`: every connection is cut.
    pub fn restart(&self) {
        self.pg_ctl(&["restart", "-m", "fast"]);
    }

    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "immediate"]);
    }

    pub fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.join("data").display().to_string();
        let log = self.dir.join("server.log").display().to_string();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let mut all = vec![
            "-D",
            data.as_str(),
            "-l",
            log.as_str(),
            "-w",
            "-t",
            "60",
            "-o",
            opts.as_str(),
        ];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bindir.join(tool);
        let status = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .status()
        } else {
            Command::new(&program).args(args).status()
        };
        assert!(
            status.map(|s| s.success()).unwrap_or(false),
            "{tool} {args:?} failed; see {}",
            self.dir.display()
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let program = self.bindir.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
