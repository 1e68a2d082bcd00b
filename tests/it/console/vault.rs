//! `agentbus vault`: a reproducible, linked Markdown projection of the ledger that only
//! ever touches its own files, and an inbox people write to on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Scratch, TestDb};

const LEDGER: &str = include_str!("../../fixtures/vault/ledger.sql");

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vault/golden")
}

/// Every file under `dir` (relative path -> content), the manifest left out.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                if !rel.starts_with(".agentbus-vault.") {
                    out.insert(rel, std::fs::read_to_string(&p).unwrap());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn export(db: &TestDb, dir: &Path) -> Value {
    db.cli(&["vault", "export", dir.to_str().unwrap(), "--format", "json"])
        .ok()
}

fn written(r: &Value) -> BTreeSet<String> {
    r["changes"]["written"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Every `[[link]]` of every note names a note of the vault, and every front matter is YAML.
fn check_links_and_front_matter(files: &BTreeMap<String, String>) {
    let stems: BTreeSet<String> = files
        .keys()
        .map(|k| {
            Path::new(k)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for (name, text) in files {
        for part in text.split("[[").skip(1) {
            let target = part.split(['|', ']']).next().unwrap();
            assert!(
                stems.contains(target),
                "{name}: [[{target}]] resolves to no note"
            );
        }
        if let Some(rest) = text.strip_prefix("---\n") {
            let front = rest.split("\n---\n").next().unwrap();
            let docs = yaml_rust2::YamlLoader::load_from_str(front)
                .unwrap_or_else(|e| panic!("{name}: front matter is not YAML: {e}"));
            // People's notes (the inbox) are theirs; everything else is marked generated.
            if !name.starts_with("00 Inbox/") || name == "00 Inbox/README.md" {
                assert_eq!(docs[0]["generated"].as_bool(), Some(true), "{name}");
            }
        }
    }
}

#[test]
fn a_small_ledger_gives_the_golden_vault_and_a_second_export_writes_nothing() {
    let db = TestDb::new();
    db.client().batch_execute(LEDGER).unwrap();
    let dir = Scratch::new();
    let first = export(&db, &dir.0);
    assert_eq!(first["removed"], 0);
    let got = tree(&dir.0);
    if std::env::var_os("AGENTBUS_UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(golden_dir());
        for (rel, text) in &got {
            let p = golden_dir().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }
    let want = tree(&golden_dir());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the vault's files (AGENTBUS_UPDATE_GOLDEN=1 rewrites the golden files)"
    );
    for (rel, text) in &want {
        assert_eq!(&got[rel], text, "{rel} differs from its golden file");
    }
    check_links_and_front_matter(&got);
    // The row text "[[not a link]]" stayed text.
    assert!(got.values().any(|t| t.contains("\\[\\[not a link\\]\\]")));

    let second = export(&db, &dir.0);
    assert_eq!(second["written"], 0, "{second}");
    assert_eq!(second["removed"], 0);
    assert_eq!(second["unchanged"], first["written"]);
}

#[test]
fn a_change_rewrites_only_the_affected_notes_and_a_deleted_row_removes_its_note() {
    let db = TestDb::new();
    db.client().batch_execute(LEDGER).unwrap();
    let dir = Scratch::new();
    export(&db, &dir.0);
    // A person's own note in the vault.
    let mine = dir.0.join("02 Ideas/my own thoughts.md");
    std::fs::write(&mine, "# mine\n").unwrap();

    db.client()
        .batch_execute(
            "update ideas set status = 'reviewed', updated_at = '2026-04-17T08:00:00Z'
              where id = '00000000-0000-4000-8000-000000000003'",
        )
        .unwrap();
    let r = export(&db, &dir.0);
    assert_eq!(
        written(&r),
        BTreeSet::from([
            "02 Ideas/2026-04-16-idea-weekly-review-could-be-shorter-00000000.md".to_string()
        ]),
        "{r}"
    );

    // The promoted idea is deleted: its note goes, and the opportunity's link becomes text.
    db.client()
        .batch_execute("delete from ideas where id = '00000000-0000-4000-8000-000000000001'")
        .unwrap();
    let r = export(&db, &dir.0);
    assert_eq!(r["removed"], 1, "{r}");
    assert_eq!(
        r["changes"]["removed"][0],
        "02 Ideas/2026-04-15-idea-pricing-pages-changed-00000000.md"
    );
    assert!(
        written(&r)
            .iter()
            .all(|w| w.starts_with("03 Opportunities/")),
        "{r}"
    );
    check_links_and_front_matter(&tree(&dir.0));
    assert_eq!(
        std::fs::read_to_string(&mine).unwrap(),
        "# mine\n",
        "a person's note is never touched"
    );
}

#[test]
fn an_incremental_export_equals_a_fresh_one_and_a_damaged_cache_only_means_a_full_read() {
    let db = TestDb::new();
    db.client().batch_execute(LEDGER).unwrap();
    let dir = Scratch::new();
    export(&db, &dir.0);
    let cache = dir.0.join(".agentbus-vault.cache.json");
    assert!(cache.is_file(), "the export keeps what it read");

    // A damaged cache: everything is read again, the vault is the same, nothing written.
    std::fs::write(&cache, "{ not json").unwrap();
    let r = export(&db, &dir.0);
    assert_eq!(r["written"], 0, "{r}");
    assert!(serde_json::from_slice::<Value>(&std::fs::read(&cache).unwrap()).is_ok());

    // The job the opportunity became dies a day later: the parts that read jobs are
    // rendered again (its note, the opportunity showing its outcome, the day, the agent,
    // the snapshot); ideas and memories are kept from the cache.
    db.client()
        .batch_execute(
            "update jobs set status = 'dead', last_error = 'vendor site down',
                             completed_at = '2026-04-16T10:00:00Z'
              where id = '00000000-0000-4000-8000-00000000000a'",
        )
        .unwrap();
    let r = export(&db, &dir.0);
    let w = written(&r);
    for want in [
        "01 Daily/2026-04-16.md",
        "07 Snapshots/health.md",
        "03 Opportunities/2026-04-15-opportunity-vendors-move-to-usage-pricing-not-a-link-00000000.md",
    ] {
        assert!(w.contains(want), "{want} not rewritten: {r}");
    }
    assert!(
        w.iter()
            .all(|f| !f.starts_with("02 Ideas/") && !f.starts_with("04 Memories/")),
        "{r}"
    );
    // Byte for byte what a fresh export of the same ledger gives.
    let fresh = Scratch::new();
    export(&db, &fresh.0);
    assert_eq!(tree(&dir.0), tree(&fresh.0));
    assert!(tree(&dir.0)["01 Daily/2026-04-16.md"].contains("vendor site down"));
    assert_eq!(export(&db, &dir.0)["written"], 0);
}

#[test]
fn an_export_stopped_half_way_leaves_a_valid_vault_and_the_next_one_completes_it() {
    let db = TestDb::new();
    db.client().batch_execute(LEDGER).unwrap();
    let dir = Scratch::new();
    // A folder where an agent's note must go: writing it fails after the notes before it.
    let blocker = dir.0.join("06 Agents/research.md");
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    let out = db.cli(&["vault", "export", dir.0.to_str().unwrap()]);
    assert_ne!(out.code, 0);
    let partial = tree(&dir.0);
    assert!(
        partial.keys().any(|k| k.starts_with("02 Ideas/")),
        "earlier notes were written"
    );
    assert!(
        partial.keys().all(|k| !k.contains(".tmp-")),
        "no half-written file"
    );
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join(".agentbus-vault.json")).unwrap())
            .unwrap();
    assert!(
        manifest["files"].as_object().unwrap().len() >= partial.len(),
        "every written file is owned"
    );
    std::fs::remove_dir_all(&blocker).unwrap();
    let r = export(&db, &dir.0);
    assert!(r["written"].as_u64().unwrap() >= 1);
    let files = tree(&dir.0);
    assert!(files.contains_key("06 Agents/research.md"));
    check_links_and_front_matter(&files);
    assert_eq!(export(&db, &dir.0)["written"], 0);
}

#[test]
fn notes_dropped_in_the_inbox_become_candidates_through_the_same_rules() {
    let db = TestDb::new();
    let dir = Scratch::new();
    let inbox = dir.0.join("00 Inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(
        inbox.join("pricing idea.md"),
        "---\ntype: idea\nauthor: Ann Smith\ntheme: pricing\n---\n# Offer a yearly plan\n\nThree customers asked.\n",
    )
    .unwrap();
    std::fs::write(
        inbox.join("onboarding.md"),
        "---\ntype: opportunity\nauthor: ann\ntheme: onboarding\nwhy_now: churn in week one doubled\nimpact: 4\nconfidence: 3\nurgency: 3\nreversibility: high\nnext_step: interview five churned users\n---\n# Fix week-one onboarding\n",
    )
    .unwrap();
    std::fs::write(
        inbox.join("lesson.md"),
        "---\ntype: memory\nauthor: bob\nkind: lesson\nscope: global\nsubject_key: releases\nconfidence: 4\n---\n# Release on Tuesdays\n\nFriday releases caused two incidents.\n",
    )
    .unwrap();
    std::fs::write(inbox.join("broken.md"), "# no front matter, no type\n").unwrap();

    let r = export(&db, &dir.0);
    let by_file: BTreeMap<String, Value> = r["ingested"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["file"].as_str().unwrap().to_string(), i.clone()))
        .collect();
    assert_eq!(by_file["pricing idea.md"]["became"], "idea");
    assert_eq!(by_file["onboarding.md"]["became"], "opportunity");
    assert_eq!(by_file["lesson.md"]["became"], "memory_candidate");
    assert!(by_file["broken.md"]["error"]
        .as_str()
        .unwrap()
        .contains("type"));

    let author: String = db.one("select source_agent from ideas");
    assert_eq!(author, "human:ann-smith");
    let candidate: String =
        db.one("select status::text || ' ' || source_agent from memory_candidates");
    assert_eq!(
        candidate, "new human:bob",
        "a candidate for the curators, not a memory"
    );
    let memories: i64 = db.one("select count(*) from memories");
    assert_eq!(memories, 0);

    // Filed notes moved to Processed/ with a link that resolves; the broken one stays.
    let files = tree(&dir.0);
    let processed = &files["00 Inbox/Processed/pricing idea.md"];
    assert!(
        processed.contains("Filed by agentbus as idea: [["),
        "{processed}"
    );
    assert!(!inbox.join("pricing idea.md").exists());
    assert!(inbox.join("broken.md").exists());
    assert!(files["00 Inbox/broken.error.md"].contains("the front matter needs `type`"));
    check_links_and_front_matter(&files);

    // Fixed, it is filed on the next export and its error note goes.
    std::fs::write(
        inbox.join("broken.md"),
        "---\ntype: idea\n---\n# Fixed now\n",
    )
    .unwrap();
    let again = export(&db, &dir.0);
    assert_eq!(again["ingested"][0]["became"], "idea");
    assert!(!inbox.join("broken.error.md").exists());
    // Over budget the note stays, with the budget's words beside it.
    db.client()
        .batch_execute("insert into proactive_budgets (namespace, agent_id, max_ideas_per_day) values ('default', 'human:carl', 0)")
        .unwrap();
    std::fs::write(
        inbox.join("carl.md"),
        "---\ntype: idea\nauthor: carl\n---\n# One more\n",
    )
    .unwrap();
    export(&db, &dir.0);
    assert!(std::fs::read_to_string(inbox.join("carl.error.md"))
        .unwrap()
        .contains("budget"));
}

#[test]
fn watch_exports_again_after_a_change() {
    use std::io::BufRead;
    let db = TestDb::new();
    db.client().batch_execute(LEDGER).unwrap();
    let dir = Scratch::new();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agentbus"))
        .args([
            "vault",
            "export",
            dir.0.to_str().unwrap(),
            "--watch",
            "--format",
            "json",
        ])
        .env("AGENTBUS_DATABASE_URL", &db.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
        {
            if let Ok(v) = serde_json::from_str(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    let wait = std::time::Duration::from_secs(30);
    let first = rx.recv_timeout(wait).expect("a first export");
    assert!(first["written"].as_u64().unwrap() > 0);
    db.cli(&[
        "create-idea",
        "--source-agent",
        "research",
        "--theme",
        "t",
        "--title",
        "Watched idea",
        "--body",
        "b",
    ])
    .ok();
    let second = rx.recv_timeout(wait).expect("an export after the change");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        written(&second)
            .iter()
            .any(|w| w.contains("idea-watched-idea")),
        "{second}"
    );
}
