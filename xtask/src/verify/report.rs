//! The verifier's report: named checks, each passed or failed with a clear message, and the facts
//! gathered on the way (a leaf every check module writes into).

use std::collections::BTreeSet;

/// One check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Stable identifier, e.g. `pe.imports.known`.
    pub id: &'static str,
    pub passed: bool,
    /// What was found (for a failure: what is wrong and what was expected).
    pub detail: String,
}

/// Facts gathered while verifying, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// (module, name) of every import, in table order.
    pub imports: Vec<(String, String)>,
    /// Names the image exports.
    pub exports: Vec<String>,
    pub entry_rva: Option<u32>,
    pub driver_entry_rva: Option<u32>,
    pub sections: usize,
    pub pdb_publics: usize,
    pub pdb_type_records: usize,
}

/// The outcome of verifying one package.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
    pub facts: Facts,
}

impl Report {
    pub(crate) fn check(&mut self, id: &'static str, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            id,
            passed,
            detail: detail.into(),
        });
    }
    pub(crate) fn fail(&mut self, id: &'static str, detail: impl Into<String>) {
        self.check(id, false, detail);
    }
    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }
    /// Ids of the failed checks (sorted, deduplicated).
    pub fn failed_ids(&self) -> BTreeSet<&'static str> {
        self.failures().map(|c| c.id).collect()
    }
    pub fn ok(&self) -> bool {
        self.failures().next().is_none()
    }
    pub fn passed_count(&self) -> usize {
        self.checks.iter().filter(|c| c.passed).count()
    }
    /// Every failure, one per line, for an error message.
    pub fn failure_text(&self) -> String {
        self.failures()
            .map(|c| format!("  [{}] {}", c.id, c.detail))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
