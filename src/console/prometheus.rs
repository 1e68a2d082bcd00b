//! The one Prometheus text-format writer (exposition format 0.0.4), used by
//! `agentbus metrics` and by the supervisor's `/metrics`.

use std::fmt::{Display, Write};

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A value that only goes up (until the process restarts).
    Counter,
    /// Buckets, sum and count.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

/// Text being written: families, each a `# HELP`/`# TYPE` header and its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Exposition::default()
    }

    /// Starts a family: its `# HELP` line (when `help` is given) and its `# TYPE` line.
    pub fn family(&mut self, name: &str, kind: Kind, help: Option<&str>) {
        if let Some(help) = help {
            let _ = writeln!(self.out, "# HELP {name} {help}");
        }
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample: `name{label="value",...} value`, label values escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// A label value with backslash, double quote and newline escaped.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn families_and_samples() {
        let mut e = Exposition::new();
        e.family("agentbus_x", Kind::Gauge, Some("An x."));
        e.sample(
            "agentbus_x",
            &[("namespace", "a\"b"), ("status", "queued")],
            3.0,
        );
        e.sample("agentbus_x", &[], 0.5);
        assert_eq!(
            e.finish(),
            "# HELP agentbus_x An x.\n# TYPE agentbus_x gauge\n\
             agentbus_x{namespace=\"a\\\"b\",status=\"queued\"} 3\nagentbus_x 0.5\n"
        );
    }
}
