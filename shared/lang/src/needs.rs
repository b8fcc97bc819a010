//! The needs graph of a workflow: its cycles, and whether one step needs another
//! directly or through others. Steps are numbered by their place in the file.
//!
//! A search per reference made a long chain whose steps all read the first one
//! quadratic. Instead one depth-first walk, started from the steps nothing needs (so a
//! chain is a single path of it), numbers the steps in the order they finish. Then a
//! step needs:
//! - every step finished inside its own part of the walk (a range of numbers);
//! - no step that reaches a number below the lowest it reaches, or that finished after
//!   it (only when the needs have no cycle, as then a step finishes after all it needs);
//! - otherwise whatever a search, cut short by both rules, finds.
//!
//! Chains, fan-outs and fan-ins are answered by the first two rules alone. The walks
//! keep their own stacks rather than recurse, so a long chain costs no call depth.

use std::collections::HashSet;

/// The needs of every step, with what the walk learnt about them.
#[derive(Debug)]
pub(crate) struct Needs {
    /// The steps each step needs, by number; none needs itself.
    needs: Vec<Vec<usize>>,
    /// The order in which the walk finished each step.
    finished: Vec<usize>,
    /// The lowest `finished` of the steps under each one in the walk's tree (itself
    /// included): that subtree holds exactly the numbers from it to its own.
    subtree: Vec<usize>,
    /// The lowest `finished` of every step each one reaches (itself included).
    lowest: Vec<usize>,
    /// Whether no step needs itself through others.
    acyclic: bool,
}

impl Needs {
    /// The graph of `needs`, the numbers of the steps each step needs.
    pub(crate) fn new(needs: Vec<Vec<usize>>) -> Needs {
        let n = needs.len();
        let mut needed = vec![false; n];
        for &m in needs.iter().flatten() {
            needed[m] = true;
        }
        let mut graph = Needs {
            finished: vec![0; n],
            subtree: vec![0; n],
            lowest: vec![0; n],
            acyclic: true,
            needs,
        };
        let mut seen = vec![false; n];
        let mut on_path = vec![false; n];
        let mut count = 0;
        // The steps nothing needs first; the others only when on a cycle.
        let roots = (0..n).filter(|&i| !needed[i]).chain(0..n);
        for root in roots {
            if seen[root] {
                continue;
            }
            seen[root] = true;
            on_path[root] = true;
            graph.subtree[root] = count;
            let mut path = vec![(root, 0)];
            while let Some((step, next)) = path.last_mut() {
                let step = *step;
                if let Some(&m) = graph.needs[step].get(*next) {
                    *next += 1;
                    if !seen[m] {
                        seen[m] = true;
                        on_path[m] = true;
                        graph.subtree[m] = count;
                        path.push((m, 0));
                    } else if on_path[m] {
                        graph.acyclic = false;
                    }
                    continue;
                }
                graph.finished[step] = count;
                count += 1;
                // On a cycle a step's `lowest` can be read before it is final; it is
                // only relied on when there is no cycle.
                graph.lowest[step] = graph.needs[step]
                    .iter()
                    .map(|&m| graph.lowest[m])
                    .fold(graph.finished[step], usize::min);
                on_path[step] = false;
                path.pop();
            }
        }
        graph
    }

    /// Whether step `from` needs step `to`, directly or through others.
    pub(crate) fn reaches(&self, from: usize, to: usize) -> bool {
        let below =
            |s: usize| self.subtree[s] <= self.finished[to] && self.finished[to] < self.finished[s];
        let may_reach = |s: usize| {
            !self.acyclic
                || (self.lowest[s] <= self.lowest[to] && self.finished[to] < self.finished[s])
        };
        if below(from) {
            return true;
        }
        if !may_reach(from) {
            return false;
        }
        let mut seen = HashSet::new();
        let mut todo = vec![from];
        while let Some(s) = todo.pop() {
            for &m in &self.needs[s] {
                if m == to || below(m) {
                    return true;
                }
                if may_reach(m) && seen.insert(m) {
                    todo.push(m);
                }
            }
        }
        false
    }

    /// Every cycle once, as the steps on it in the order they need each other, first
    /// found first when the steps are visited in the order of the file.
    pub(crate) fn cycles(&self) -> Vec<Vec<usize>> {
        let n = self.needs.len();
        if self.acyclic {
            return Vec::new();
        }
        let mut done = vec![false; n];
        // Where each step stands on the current path, while it is on it.
        let mut at: Vec<Option<usize>> = vec![None; n];
        let mut reported = HashSet::new();
        let mut out = Vec::new();
        for root in 0..n {
            if done[root] {
                continue;
            }
            let mut path = vec![(root, 0)];
            at[root] = Some(0);
            while let Some((step, next)) = path.last_mut() {
                let step = *step;
                if let Some(&m) = self.needs[step].get(*next) {
                    *next += 1;
                    if let Some(i) = at[m] {
                        let cycle: Vec<usize> = path[i..].iter().map(|(s, _)| *s).collect();
                        let mut key = cycle.clone();
                        key.sort_unstable();
                        if reported.insert(key) {
                            out.push(cycle);
                        }
                    } else if !done[m] {
                        at[m] = Some(path.len());
                        path.push((m, 0));
                    }
                    continue;
                }
                done[step] = true;
                at[step] = None;
                path.pop();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Needs;

    /// Whether `from` needs `to`, by a plain search: what `reaches` must agree with.
    fn searched(needs: &[Vec<usize>], from: usize, to: usize) -> bool {
        let mut seen = vec![false; needs.len()];
        let mut todo = needs[from].clone();
        while let Some(s) = todo.pop() {
            if s == to {
                return true;
            }
            if !std::mem::replace(&mut seen[s], true) {
                todo.extend(&needs[s]);
            }
        }
        false
    }

    fn agrees_with_a_search(needs: Vec<Vec<usize>>) {
        let graph = Needs::new(needs.clone());
        for from in 0..needs.len() {
            for to in 0..needs.len() {
                if from != to {
                    assert_eq!(
                        graph.reaches(from, to),
                        searched(&needs, from, to),
                        "{from} -> {to} in {needs:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_chain_reaches_every_earlier_step_and_no_later_one() {
        let chain: Vec<Vec<usize>> = (0..50)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        agrees_with_a_search(chain);
    }

    #[test]
    fn diamonds_fan_outs_and_fan_ins_agree_with_a_search() {
        agrees_with_a_search(vec![vec![], vec![0], vec![0], vec![1, 2], vec![3], vec![0]]);
        agrees_with_a_search(vec![
            vec![1, 2, 3],
            vec![],
            vec![],
            vec![],
            vec![1],
            vec![2, 4],
        ]);
        agrees_with_a_search(vec![vec![5], vec![5], vec![0, 1], vec![2], vec![1], vec![]]);
    }

    #[test]
    fn graphs_with_cycles_agree_with_a_search() {
        agrees_with_a_search(vec![vec![1], vec![2], vec![0], vec![2], vec![]]);
        agrees_with_a_search(vec![vec![1], vec![0], vec![3], vec![2, 4], vec![]]);
    }

    #[test]
    fn every_small_graph_agrees_with_a_search() {
        // Every graph of four steps, cycles included: 2^12 edge sets.
        let edges: Vec<(usize, usize)> = (0..4)
            .flat_map(|a| (0..4).filter(move |b| *b != a).map(move |b| (a, b)))
            .collect();
        for set in 0..(1u32 << edges.len()) {
            let mut needs = vec![Vec::new(); 4];
            for (i, (a, b)) in edges.iter().enumerate() {
                if set & (1 << i) != 0 {
                    needs[*a].push(*b);
                }
            }
            agrees_with_a_search(needs);
        }
    }

    #[test]
    fn each_cycle_is_found_once_from_its_first_step_in_the_file() {
        let graph = Needs::new(vec![vec![2], vec![0], vec![1], vec![4], vec![3], vec![]]);
        assert_eq!(graph.cycles(), [vec![0, 2, 1], vec![3, 4]]);
        assert!(Needs::new(vec![vec![], vec![0]]).cycles().is_empty());
    }
}
