//! Markdown digests of the proactive lane, short enough to send as they are: ranked, with
//! the evidence and the next step kept.

use chrono::{DateTime, Utc};

use crate::lanes::proactive::{Idea, Opportunity};

fn one_line(s: &str, max: usize) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() <= max {
        s
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn window(since: DateTime<Utc>, until: DateTime<Utc>) -> String {
    format!(
        "{} to {} UTC",
        since.format("%Y-%m-%d %H:%M"),
        until.format("%Y-%m-%d %H:%M")
    )
}

/// Evidence as one short line: an object's keys and values, compactly.
fn evidence(v: &serde_json::Value) -> Option<String> {
    let obj = v.as_object()?;
    if obj.is_empty() {
        return None;
    }
    let parts: Vec<String> = obj
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}: {s}"),
            serde_json::Value::Array(items) => format!(
                "{k}: {}",
                items
                    .iter()
                    .map(|i| i
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| i.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => format!("{k}: {other}"),
        })
        .collect();
    Some(one_line(&parts.join("; "), 160))
}

fn opportunity_item(n: usize, o: &Opportunity, out: &mut String) {
    out.push_str(&format!(
        "{n}. **{}** (score {}; impact {}, confidence {}, urgency {}, reversibility {}) from {}, {}\n",
        one_line(&o.title, 100),
        o.score,
        o.impact_score,
        o.confidence_score,
        o.urgency_score,
        o.reversibility.as_str(),
        o.source_agent,
        o.status
    ));
    out.push_str(&format!("   Why now: {}\n", one_line(&o.why_now, 200)));
    if let Some(e) = evidence(&o.evidence) {
        out.push_str(&format!("   Evidence: {e}\n"));
    }
    out.push_str(&format!(
        "   Next step: {}{}\n",
        one_line(&o.suggested_next_step, 160),
        o.owner_candidate
            .as_deref()
            .map(|w| format!(" (owner: {w})"))
            .unwrap_or_default()
    ));
}

/// The opportunities digest (ranked as given), or the weekly bets grouped by theme.
pub fn opportunities(
    title: &str,
    namespace: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    list: &[Opportunity],
    by_theme: bool,
) -> String {
    let mut out = format!(
        "# {title}\n\nNamespace {namespace}, {}.\n\n",
        window(since, until)
    );
    if list.is_empty() {
        out.push_str("Nothing to report.\n");
        return out;
    }
    if by_theme {
        let mut themes: Vec<&str> = Vec::new();
        for o in list {
            if !themes.contains(&o.theme.as_str()) {
                themes.push(&o.theme);
            }
        }
        let mut n = 0;
        for theme in themes {
            out.push_str(&format!("## {theme}\n\n"));
            for o in list.iter().filter(|o| o.theme == theme) {
                n += 1;
                opportunity_item(n, o, &mut out);
            }
            out.push('\n');
        }
    } else {
        for (i, o) in list.iter().enumerate() {
            opportunity_item(i + 1, o, &mut out);
        }
    }
    out
}

/// The ideas digest.
pub fn ideas(namespace: &str, since: DateTime<Utc>, until: DateTime<Utc>, list: &[Idea]) -> String {
    let mut out = format!(
        "# Ideas\n\nNamespace {namespace}, {}.\n\n",
        window(since, until)
    );
    if list.is_empty() {
        out.push_str("Nothing to report.\n");
        return out;
    }
    for i in list {
        out.push_str(&format!(
            "- **{}** ({}, from {}, {}): {}\n",
            one_line(&i.title, 100),
            i.theme,
            i.source_agent,
            i.status,
            one_line(&i.body, 200)
        ));
    }
    out
}
