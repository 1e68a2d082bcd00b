//! How library errors read on the command line. The library names the fields of its
//! parameters in backticks (`` `lease_seconds` ``) and gives failures a stable code; here
//! fields become the flags of the command that ran (`--lease-seconds`) and codes become
//! the command to run next.

use std::collections::BTreeSet;

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
