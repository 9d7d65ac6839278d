//! A byte trie of prefix paths: walking a request path once yields every unit whose prefix it
//! starts with, so the cost of a lookup follows the path's length, not the number of routes.

#[derive(Default)]
pub struct Trie {
    nodes: Vec<Node>,
}

#[derive(Default)]
struct Node {
    /// Children sorted by byte.
    children: Vec<(u8, u32)>,
    /// Units (by rank) whose prefix ends here.
    units: Vec<u32>,
}

impl Trie {
    pub fn insert(&mut self, key: &[u8], unit: u32) {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut at = 0usize;
        for &b in key {
            let children = &self.nodes[at].children;
            at = match children.binary_search_by_key(&b, |&(c, _)| c) {
                Ok(i) => children[i].1 as usize,
                Err(i) => {
                    let next = self.nodes.len() as u32;
                    self.nodes[at].children.insert(i, (b, next));
                    self.nodes.push(Node::default());
                    next as usize
                }
            };
        }
        self.nodes[at].units.push(unit);
    }

    /// Appends the units of every prefix of `path`.
    pub fn collect(&self, path: &[u8], out: &mut Vec<u32>) {
        let Some(mut node) = self.nodes.first() else { return };
        out.extend_from_slice(&node.units);
        for &b in path {
            match node.children.binary_search_by_key(&b, |&(c, _)| c) {
                Ok(i) => node = &self.nodes[node.children[i].1 as usize],
                Err(_) => return,
            }
            out.extend_from_slice(&node.units);
        }
    }
}
