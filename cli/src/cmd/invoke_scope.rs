//! Which Lambda functions a stack's step dispatcher may invoke, as its IAM policy says,
//! so that `braid deploy --stack` refuses a workflow whose `lambda` step could only
//! fail with `lambda.access_denied` once a run reaches it.
//!
//! The stack's `InvokableFunctionPatterns` output lists the policy's resources (ARN patterns
//! with IAM's `*` and `?` wildcards). A step's `function` is matched as IAM matches the
//! invoke: as the full ARN Lambda authorizes, with the version or alias when one is
//! named, a name or partial ARN completed with the dispatcher's own partition, region
//! and account (where Lambda resolves them).

use std::collections::HashMap;

/// The stack output listing the dispatcher's invokable ARN patterns, comma-separated.
pub const PATTERNS_OUTPUT: &str = "InvokableFunctionPatterns";

/// The stack output naming the dispatcher, whose ARN says where names resolve.
pub const DISPATCHER_OUTPUT: &str = "StepDispatcherFunctionArn";

/// The functions a stack's dispatcher may invoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeScope {
    patterns: Vec<String>,
    /// `arn:PARTITION:lambda:REGION:` of the dispatcher, which completes partial ARNs.
    region_prefix: String,
    /// The dispatcher's account, which completes bare names.
    account: String,
}

impl InvokeScope {
    /// The scope the stack's outputs describe; `None` for a stack without them (made
    /// by an older template, or named by flags alone), which is then not checked here:
    /// the dispatcher's role still refuses at run time.
    pub fn from_outputs(outputs: &HashMap<String, String>) -> Option<InvokeScope> {
        let patterns = outputs.get(PATTERNS_OUTPUT)?;
        let dispatcher = outputs.get(DISPATCHER_OUTPUT)?;
        // arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME
        let parts: Vec<&str> = dispatcher.splitn(7, ':').collect();
        let ["arn", partition, "lambda", region, account, "function", _] = parts[..] else {
            return None;
        };
        Some(InvokeScope {
            patterns: patterns
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect(),
            region_prefix: format!("arn:{partition}:lambda:{region}:"),
            account: account.to_string(),
        })
    }

    /// Whether the dispatcher may invoke `function`, as a `lambda` step names it: a
    /// name, `name:qualifier`, a partial ARN (`ACCOUNT:function:name[:qualifier]`) or
    /// a full ARN.
    pub fn allows(&self, function: &str) -> bool {
        let arn = self.arn(function);
        self.patterns.iter().any(|p| iam_like(p, &arn))
    }

    /// The patterns, for messages.
    pub fn patterns(&self) -> String {
        self.patterns.join(", ")
    }

    /// The ARN Lambda authorizes an invoke of `function` against.
    fn arn(&self, function: &str) -> String {
        if function.starts_with("arn:") {
            return function.to_string();
        }
        match function.split(':').nth(1) {
            Some("function") => format!("{}{function}", self.region_prefix),
            _ => format!("{}{}:function:{function}", self.region_prefix, self.account),
        }
    }
}

/// IAM's `StringLike` on resources: `*` matches any run of characters (`:` and `/`
/// included), `?` any one character, everything else itself, case included.
fn iam_like(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    // Greedy matching with one backtrack point: the last `*` seen, and where the value
    // stood when it was seen. Linear in practice, never exponential.
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, vi));
                pi += 1;
            }
            Some(&c) if c == '?' || c == v[vi] => {
                pi += 1;
                vi += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    pi = sp + 1;
                    vi = sv + 1;
                    star = Some((sp, sv + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISPATCHER: &str =
        "arn:aws:lambda:eu-west-1:111122223333:function:braid-StepDispatcher-AB12";

    fn scope(patterns: &str) -> InvokeScope {
        let outputs = [(PATTERNS_OUTPUT, patterns), (DISPATCHER_OUTPUT, DISPATCHER)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        InvokeScope::from_outputs(&outputs).unwrap()
    }

    const PREFIX: &str = "arn:aws:lambda:eu-west-1:111122223333:function:braid-*";

    #[test]
    fn a_name_is_resolved_in_the_dispatchers_account_and_region() {
        let s = scope(PREFIX);
        assert!(s.allows("braid-example-worker"));
        assert!(!s.allows("orders-price"));
        let other_account = scope("arn:aws:lambda:eu-west-1:999999999999:function:*");
        assert!(!other_account.allows("braid-example-worker"));
    }

    #[test]
    fn a_prefix_pattern_covers_the_functions_aliases_and_versions() {
        let s = scope(PREFIX);
        assert!(s.allows("braid-worker:live"));
        assert!(s.allows("braid-worker:7"));
        assert!(!s.allows("orders:braid-live"));
    }

    #[test]
    fn an_exact_arn_covers_only_the_unqualified_function() {
        let s = scope("arn:aws:lambda:eu-west-1:111122223333:function:orders");
        assert!(s.allows("orders"));
        assert!(!s.allows("orders:live"));
        assert!(!s.allows("orders-old"));
        let with_aliases = scope(
            "arn:aws:lambda:eu-west-1:111122223333:function:orders, \
             arn:aws:lambda:eu-west-1:111122223333:function:orders:*",
        );
        assert!(with_aliases.allows("orders:live"));
    }

    #[test]
    fn full_and_partial_arns_are_matched_as_written() {
        let s = scope(PREFIX);
        assert!(s.allows("arn:aws:lambda:eu-west-1:111122223333:function:braid-a"));
        assert!(!s.allows("arn:aws:lambda:us-east-1:111122223333:function:braid-a"));
        assert!(s.allows("111122223333:function:braid-a"));
        assert!(s.allows("111122223333:function:braid-a:live"));
        assert!(!s.allows("444455556666:function:braid-a"));
    }

    #[test]
    fn question_marks_match_one_character_and_case_counts() {
        let s = scope("arn:aws:lambda:eu-west-1:111122223333:function:job-?");
        assert!(s.allows("job-1"));
        assert!(!s.allows("job-12"));
        assert!(!s.allows("JOB-1"));
    }

    #[test]
    fn a_star_spans_colons_as_iam_does() {
        let s = scope("arn:aws:lambda:*:111122223333:function:*-worker");
        assert!(s.allows("arn:aws:lambda:us-east-1:111122223333:function:a-worker"));
        assert!(s.allows("a:b-worker"));
        assert!(!s.allows("a-worker:live"));
    }

    #[test]
    fn a_stack_without_the_outputs_has_no_scope_to_check() {
        let mut outputs = HashMap::new();
        outputs.insert(PATTERNS_OUTPUT.to_string(), PREFIX.to_string());
        assert_eq!(InvokeScope::from_outputs(&outputs), None);
        outputs.insert(DISPATCHER_OUTPUT.to_string(), "not an arn".to_string());
        assert_eq!(InvokeScope::from_outputs(&outputs), None);
    }

    #[test]
    fn matching_backtracks_over_several_stars() {
        assert!(iam_like("a*b*c", "axxbyybzc"));
        assert!(iam_like("*", ""));
        assert!(!iam_like("a*b", "acbd"));
        assert!(iam_like("a**", "a"));
        assert!(!iam_like("", "a"));
    }
}
