//! Where labels come from: class names given per file, a label taken from each FASTA header,
//! or a table's label column; and the stable class order.

use std::collections::HashMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::error::DataError;

/// How a label is read from a FASTA/FASTQ header line (the whole line after `>`/`@`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderLabelRule {
    /// A regex with exactly one capture group; the group is the label.
    Regex(String),
    /// `>some header|LABEL`: the text after the last `|`.
    PipeSuffix,
}

impl HeaderLabelRule {
    /// Reads the command-line form: a lone `|` means the `header|label` suffix convention,
    /// anything else is a regex.
    pub fn from_cli(text: &str) -> Self {
        if text == "|" {
            HeaderLabelRule::PipeSuffix
        } else {
            HeaderLabelRule::Regex(text.to_string())
        }
    }

    pub fn describe(&self) -> String {
        match self {
            HeaderLabelRule::Regex(pattern) => format!("the label regex `{pattern}`"),
            HeaderLabelRule::PipeSuffix => "the `header|label` convention".to_string(),
        }
    }
}

/// Compiles a user's regex; `option` names the command-line option in messages.
pub(crate) fn compile_regex(option: &'static str, pattern: &str) -> Result<Regex, DataError> {
    Regex::new(pattern).map_err(|err| DataError::BadRegex {
        option,
        pattern: pattern.to_string(),
        reason: err.to_string(),
    })
}

/// A [`HeaderLabelRule`] ready to apply.
#[derive(Debug, Clone)]
pub(crate) enum HeaderLabeller {
    Regex(Regex),
    PipeSuffix,
}

impl HeaderLabeller {
    pub(crate) fn new(rule: &HeaderLabelRule) -> Result<Self, DataError> {
        match rule {
            HeaderLabelRule::PipeSuffix => Ok(HeaderLabeller::PipeSuffix),
            HeaderLabelRule::Regex(pattern) => {
                let regex = compile_regex("--labels-from-header", pattern)?;
                // captures_len counts the implicit whole-match group.
                let groups = regex.captures_len() - 1;
                if groups != 1 {
                    return Err(DataError::RegexGroupCount {
                        option: "--labels-from-header",
                        pattern: pattern.clone(),
                        groups,
                    });
                }
                Ok(HeaderLabeller::Regex(regex))
            }
        }
    }

    /// The label in `header`, or why there is none.
    pub(crate) fn label<'h>(&self, header: &'h str) -> Result<&'h str, &'static str> {
        let label = match self {
            HeaderLabeller::PipeSuffix => match header.rfind('|') {
                Some(pos) => header[pos + 1..].trim(),
                None => return Err("has no `|LABEL` suffix"),
            },
            HeaderLabeller::Regex(regex) => match regex.captures(header) {
                None => return Err("does not match the label regex"),
                Some(caps) => match caps.get(1) {
                    Some(group) => group.as_str().trim(),
                    None => return Err("matches the label regex but its group captured nothing"),
                },
            },
        };
        if label.is_empty() {
            Err("has an empty label")
        } else {
            Ok(label)
        }
    }
}

/// Class names in order of first appearance, with their indices.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClassRegistry {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl ClassRegistry {
    /// The index of `name`, adding it at the end the first time it is seen.
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        if let Some(&index) = self.index.get(name) {
            return index;
        }
        let index = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), index);
        index
    }

    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// When every class name is an integer (table labels such as "0"/"1"), the classes are put
    /// in numeric order so that class index = label value, as the DNABERT scripts expect.
    /// Returns the new order as `old index -> new index`, or `None` when nothing changes.
    pub(crate) fn numeric_order(&self) -> Option<Vec<u32>> {
        let values: Option<Vec<i64>> = self.names.iter().map(|n| n.parse::<i64>().ok()).collect();
        let values = values?;
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by_key(|&i| values[i]);
        if order.iter().enumerate().all(|(new, &old)| new == old) {
            return None;
        }
        let mut remap = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            remap[old] = new as u32;
        }
        Some(remap)
    }

    /// Applies a remapping from [`Self::numeric_order`].
    pub(crate) fn reorder(&mut self, remap: &[u32]) {
        let mut names = vec![String::new(); self.names.len()];
        for (old, name) in self.names.drain(..).enumerate() {
            names[remap[old] as usize] = name;
        }
        self.index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        self.names = names;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_needs_exactly_one_group() {
        for (pattern, ok) in [
            ("class=(\\w+)", true),
            ("x", false),
            ("(a)(b)", false),
            ("(?:a)(b)", true),
        ] {
            let result = HeaderLabeller::new(&HeaderLabelRule::Regex(pattern.into()));
            assert_eq!(result.is_ok(), ok, "{pattern}");
        }
        let err = HeaderLabeller::new(&HeaderLabelRule::Regex("(a)(b)".into())).unwrap_err();
        assert!(err.to_string().contains("2 capture groups"), "{err}");
    }

    #[test]
    fn labels_from_regex_and_pipe_suffix() {
        let regex = HeaderLabeller::new(&HeaderLabelRule::Regex("label=(\\w+)".into())).unwrap();
        assert_eq!(regex.label("seq1 label=phage len=5"), Ok("phage"));
        assert!(regex.label("seq1").is_err());
        let pipe = HeaderLabeller::new(&HeaderLabelRule::from_cli("|")).unwrap();
        assert_eq!(pipe.label("chr1:5-10|enhancer"), Ok("enhancer"));
        assert!(pipe.label("chr1:5-10").is_err());
        assert!(pipe.label("chr1:5-10|").is_err());
    }

    #[test]
    fn integer_classes_are_ordered_numerically_others_by_first_appearance() {
        let mut classes = ClassRegistry::default();
        for name in ["1", "0", "1", "2"] {
            classes.intern(name);
        }
        let remap = classes.numeric_order().unwrap();
        assert_eq!(remap, vec![1, 0, 2]);
        classes.reorder(&remap);
        assert_eq!(classes.names(), ["0", "1", "2"]);
        assert_eq!(classes.intern("2"), 2);

        let mut named = ClassRegistry::default();
        named.intern("phage");
        named.intern("bacteria");
        assert_eq!(named.numeric_order(), None);
        assert_eq!(named.names(), ["phage", "bacteria"]);
    }
}
