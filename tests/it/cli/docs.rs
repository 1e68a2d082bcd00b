//! Help and man pages: every command documents itself with an example, and the checked-in
//! man pages match the clap definitions.

use clap::CommandFactory;

use crate::support::run_cli;

#[test]
fn every_command_has_help_with_an_example() {
    let root = agentbus::cli::Cli::command();
    let top = run_cli(&["--help"], &[], None);
    assert_eq!(top.code, 0);
    assert!(top.stdout.contains("Exit status:"), "{}", top.stdout);
    for sub in root.get_subcommands() {
        let name = sub.get_name();
        assert!(
            top.stdout.contains(name),
            "agentbus --help does not list {name}"
        );
        let out = run_cli(&[name, "--help"], &[], None);
        assert_eq!(out.code, 0, "{name} --help");
        let examples = out.stdout.split("Examples:\n").nth(1).unwrap_or("");
        assert!(
            examples.lines().next().is_some_and(|l| l.starts_with("  "))
                && examples.contains(&format!("agentbus {name}")),
            "{name} --help has no example of itself:\n{}",
            out.stdout
        );
    }
}

#[test]
fn man_pages_match_the_clap_definitions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages = agentbus::cli::man::pages();
    if std::env::var_os("AGENTBUS_BLESS_MAN").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if is_man_page(&path.to_string_lossy()) {
                std::fs::remove_file(path).unwrap();
            }
        }
        for (name, text) in &pages {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| is_man_page(n))
                .collect()
        })
        .unwrap_or_default();
    on_disk.sort();
    let mut expected: Vec<String> = pages.iter().map(|(n, _)| n.clone()).collect();
    expected.sort();
    assert_eq!(
        on_disk, expected,
        "man/ pages differ from the commands; run scripts/gen-man.sh"
    );
    for (name, text) in &pages {
        let current = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert!(
            current == *text,
            "man/{name} is stale; run scripts/gen-man.sh"
        );
        assert!(
            text.contains(".SH EXAMPLES") || text.contains(".SH \"EXAMPLES\""),
            "man/{name} has no EXAMPLES section"
        );
    }
}

/// Sections 1 (commands), 5 (file formats) and 8 (the supervisor daemon).
fn is_man_page(name: &str) -> bool {
    [".1", ".5", ".8"].iter().any(|ext| name.ends_with(ext))
}

#[test]
fn completion_scripts_cover_the_commands_and_parse() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = crate::support::run_cli(&["completions", shell], &[], None);
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        for cmd in [
            "trace",
            "approve-job",
            "drain-agent",
            "openclaw-cron",
            "full-ids",
        ] {
            assert!(out.stdout.contains(cmd), "{shell} completion lacks {cmd}");
        }
    }
    for args in [
        &["completions", "bash"][..],
        &["completions", "bash", "--supervisor"],
    ] {
        let out = crate::support::run_cli(args, &[], None);
        let mut bash = std::process::Command::new("bash")
            .arg("-n")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        bash.stdin
            .take()
            .unwrap()
            .write_all(out.stdout.as_bytes())
            .unwrap();
        assert!(
            bash.wait().unwrap().success(),
            "bash -n failed for {args:?}"
        );
    }
    crate::support::run_cli(&["completions", "tcsh"], &[], None).fails(2, "invalid value");
}
