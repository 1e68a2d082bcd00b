//! An exec command line given as one string (`--exec`, `configure-agent --exec-command`),
//! split into the argv the supervisor runs.

/// Splits a command line into words the way a POSIX shell would for simple cases: blanks
/// separate words, '...' keeps everything literally, "..." keeps blanks and allows \" and
/// \\, a backslash outside quotes escapes the next character. No expansion of any kind
/// (no variables, globs or pipes): the words become an argv, not a shell script.
pub fn split_command(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => word.push(ch),
                            Some(ch) => {
                                word.push('\\');
                                word.push(ch);
                            }
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(ch) => word.push(ch),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(ch) => word.push(ch),
                    None => return Err("trailing backslash".into()),
                }
            }
            ch => {
                in_word = true;
                word.push(ch);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(words)
}

#[cfg(test)]
mod split_command_tests {
    use super::split_command;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split_command(r#"sh -c 'echo "$X" {job_id}' a\ b "c \"d\"""#),
            Ok(vec![
                "sh".to_string(),
                "-c".into(),
                "echo \"$X\" {job_id}".into(),
                "a b".into(),
                "c \"d\"".into()
            ])
        );
        assert!(split_command("  ").is_err());
        assert!(split_command("echo 'x").is_err());
        assert_eq!(split_command("''"), Ok(vec![String::new()]));
    }
}
