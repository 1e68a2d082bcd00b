//! How library errors read on the command line. The library names the fields of its
//! parameters in backticks (`` `lease_seconds` ``) and gives failures a stable code; here
//! fields become the flags of the command that ran (`--lease-seconds`) and codes become
//! the command to run next.

use std::collections::BTreeSet;
use std::io::Write;

use crate::error::Error;

/// The long flags (and their aliases) `command` accepts: its own, those of its
/// subcommands (`agent new`), and the global ones.
pub fn flags_of(root: &clap::Command, command: &str) -> BTreeSet<String> {
    fn collect(cmd: &clap::Command, out: &mut BTreeSet<String>, deep: bool) {
        for arg in cmd.get_arguments() {
            out.extend(arg.get_long().map(str::to_string));
            out.extend(
                arg.get_all_aliases()
                    .into_iter()
                    .flatten()
                    .map(str::to_string),
            );
        }
        if deep {
            for sub in cmd.get_subcommands() {
                collect(sub, out, true);
            }
        }
    }
    let mut flags = BTreeSet::new();
    collect(root, &mut flags, false);
    if let Some(sub) = root.find_subcommand(command) {
        collect(sub, &mut flags, true);
    }
    flags
}

/// `text` with every `` `field` `` that is a flag of the command written as that flag;
/// other backticked words are left as they are.
pub fn fields_as_flags(text: &str, flags: &BTreeSet<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('`') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let word = &after[..end];
        let is_field = !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let flag = word.replace('_', "-");
        if is_field && flags.contains(&flag) {
            out.push_str("--");
            out.push_str(&flag);
        } else {
            out.push('`');
            out.push_str(word);
            out.push('`');
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The next command for a failure with a code, when there is a useful one.
pub fn next_step(err: &Error) -> Option<String> {
    let subject = err.subject.as_deref().unwrap_or("ID");
    let hint = match err.code? {
        "schema_not_migrated" => "run `agentbus migrate`".to_string(),
        "agent_unknown" => "`agentbus list-agents` lists the agents".to_string(),
        "job_needs_retry" => format!("use `agentbus retry-job {subject}`"),
        "job_not_awaiting_approval" => {
            "`agentbus list-approvals` lists the jobs waiting for a decision".to_string()
        }
        "job_state" => format!("`agentbus trace {subject}` shows how it got here"),
        "standing_order_undeclared" => {
            "`agentbus fleet sync DIR` declares the orders of a fleet".to_string()
        }
        "standing_order_latest_undeclared" => "--scheduled-for latest needs the order in the \
            database: run `agentbus fleet sync DIR`, or give the occurrence as an RFC 3339 time"
            .to_string(),
        "opportunity_not_triaged" => format!(
            "triage it first: agentbus triage-opportunity --opportunity-id {subject} --decision accepted"
        ),
        _ => return None,
    };
    Some(hint)
}

/// The message and hint of `err` as the command line shows them.
pub fn rendered(err: &Error, flags: &BTreeSet<String>) -> (String, Option<String>) {
    let message = fields_as_flags(&err.message, flags);
    let hint = err
        .hint
        .as_deref()
        .map(|h| fields_as_flags(h, flags))
        .or_else(|| next_step(err));
    (message, hint)
}

/// Prints the one-line error (and the hint, and a JSON object with `--format json`).
pub(super) fn report(stderr: &mut dyn Write, command: &str, err: &Error, json: bool) {
    let flags = flags_of(&<super::Cli as clap::CommandFactory>::command(), command);
    let (message, hint) = rendered(err, &flags);
    // One line each, terminal-safe: messages quote values from rows and from the caller.
    let one_line = |s: &str| super::output::terminal_safe(&s.replace('\n', " ")).into_owned();
    let _ = writeln!(stderr, "agentbus: error: {command}: {}", one_line(&message));
    if let Some(hint) = &hint {
        let _ = writeln!(stderr, "agentbus: hint: {}", one_line(hint));
    }
    if json {
        let doc = serde_json::json!({
            "error": {
                "command": command,
                "kind": err.kind,
                "code": err.code,
                "exit_code": err.kind.exit_code(),
                "message": message,
                "hint": hint,
            }
        });
        let _ = writeln!(stderr, "{doc}");
    }
}

/// Help and version go to stdout with exit 0; parse errors become one error line, exit 2.
pub(super) fn clap_error(
    err: clap::Error,
    argv: &[String],
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    use clap::error::ErrorKind as K;
    match err.kind() {
        K::DisplayHelp | K::DisplayVersion => {
            let _ = write!(stdout, "{}", err.render());
            0
        }
        K::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = write!(stderr, "{}", err.render());
            crate::error::ErrorKind::Usage.exit_code()
        }
        _ => {
            let rendered = err.render().to_string();
            // One line: clap's message without its usage block.
            let first = rendered
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let first = first.trim_start_matches("error: ");
            let root = <super::Cli as clap::CommandFactory>::command();
            let sub = argv
                .iter()
                .skip(1)
                .find(|a| root.find_subcommand(a.as_str()).is_some())
                .map(String::as_str)
                .unwrap_or("");
            // The documented shape: `agentbus: error: <command>: <message>`, terminal-safe.
            let first = super::output::terminal_safe(first);
            if sub.is_empty() {
                let _ = writeln!(stderr, "agentbus: error: {first}");
            } else {
                let _ = writeln!(stderr, "agentbus: error: {sub}: {first}");
            }
            let _ = writeln!(
                stderr,
                "agentbus: hint: see `agentbus {}--help`",
                if sub.is_empty() {
                    String::new()
                } else {
                    format!("{sub} ")
                }
            );
            crate::error::ErrorKind::Usage.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_the_command_become_flags() {
        let flags: BTreeSet<String> = ["lease-seconds".to_string(), "summary".into()].into();
        assert_eq!(
            fields_as_flags("`lease_seconds`: 0 is out of range; `summary` too", &flags),
            "--lease-seconds: 0 is out of range; --summary too"
        );
        assert_eq!(
            fields_as_flags("`other_field` and `agentbus migrate` and `", &flags),
            "`other_field` and `agentbus migrate` and `"
        );
    }
}
