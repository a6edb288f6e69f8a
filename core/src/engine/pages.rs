//! LMDB's page trees, read from the data file with plain reads, never
//! through the memory map. LMDB keeps no checksums and trusts every page
//! it maps: a damaged page (a bad sector, a stray write, a copy gone
//! wrong) can send it, and the process, to any address. This walk checks
//! every page of a tree before LMDB is let near it — the number the page
//! says it has, its kind, its bounds, its nodes in key order, its children
//! and overflow pages — and hands out the entries of the intact leaves,
//! for salvage.
//!
//! Layout of LMDB 0.9 on a 64-bit machine (`mdb.c`): a page starts with a
//! 16-byte header (page number, pad, flags, then the lower and upper
//! bounds of its free space, or an overflow run's page count), followed by
//! 2-byte offsets of its nodes; a node is 8 bytes (data size or child page
//! number in two 16-bit halves, flags, key size), then its key, then (on a
//! leaf) its data, or the number of the overflow page that holds it.
//!
//! The caller holds a read transaction while walking: the pages of any
//! commit that existed when it began are not reused until it ends, so a
//! commit made meanwhile in another process is never mistaken for damage.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Error, Result};

const HEADER: usize = 16;
const NODE_HEADER: usize = 8;
const MAGIC: u32 = 0xBEEF_C0DE;
/// `MDB_meta`, after the page header: the two trees' records start here.
const DBS_AT: usize = HEADER + 24;
/// The length of one `MDB_db` record; its root page number is its last field.
const DB_LEN: usize = 48;
const ROOT_IN_DB: usize = 40;
const TXNID_AT: usize = HEADER + 128;
/// The root of an empty tree.
const NO_PAGE: u64 = u64::MAX;
/// LMDB's cursors hold 32 levels: a deeper tree is not LMDB's.
const MAX_DEPTH: usize = 32;

const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;
/// Flags of LMDB's own bookkeeping that may be left on a written page.
const P_BOOKKEEPING: u16 = 0x10 | 0x4000 | 0x8000;
const F_BIGDATA: u16 = 0x01;
const F_SUBDATA: u16 = 0x02;

/// What a walk hands each entry of an intact leaf: its key, its value and
/// its node's flags.
pub(crate) type EntryFn<'a> = dyn FnMut(&[u8], &[u8], u16) + 'a;

/// A page found damaged: which, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    pub page: u64,
    pub what: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "page {}: {}", self.page, self.what)
    }
}

/// The data file, as its newest intact meta page describes it.
pub(crate) struct PageFile {
    file: File,
    page_size: usize,
    /// Pages the file held when last looked at.
    pages: Cell<u64>,
    /// The root of the main tree, which names every table.
    main_root: u64,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap_or_default())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap_or_default())
}

impl PageFile {
    /// Reads the meta pages of `file`, the data file of the store in `dir`:
    /// the newer of the two that are intact, as LMDB picks it. The file is
    /// the one this process opened, not whatever its path names now: a
    /// file put in its place (another store's, or a FIFO that would make a
    /// read wait for ever) is never walked instead.
    pub fn open(file: File, dir: &Path) -> Result<PageFile> {
        let damaged = |reason: String| Error::DamagedStore { path: dir.to_owned(), reason };
        let mut first = vec![0; 4096];
        let read = file.read_at(&mut first, 0)?;
        first.truncate(read);
        let page_size = meta_page_size(&first).ok_or_else(|| damaged("meta page 0 is not LMDB's".into()))?;
        let mut metas = vec![0; 2 * page_size];
        file.read_exact_at(&mut metas, 0).map_err(|_| damaged("the file ends inside its meta pages".into()))?;
        let (zero, one) = metas.split_at(page_size);
        let newest = match (meta_of(zero, 0), meta_of(one, 1)) {
            (Some(a), Some(b)) => {
                if b.0 > a.0 {
                    b
                } else {
                    a
                }
            }
            (Some(only), None) | (None, Some(only)) => only,
            (None, None) => return Err(damaged("both meta pages are damaged".into())),
        };
        // The length after the meta pages: a commit made meanwhile in
        // another process only makes the file longer.
        let pages = Cell::new(file.metadata()?.len() / page_size as u64);
        Ok(PageFile { file, page_size, pages, main_root: newest.1 })
    }

    /// The root page of every table that holds entries, by name, as the
    /// main tree records them (LMDB reads that tree to open any table), or
    /// the damage met in it.
    pub fn table_roots(&self) -> std::result::Result<HashMap<Vec<u8>, u64>, Vec<Damage>> {
        let mut roots = HashMap::new();
        let damage = self.walk(self.main_root, true, &mut |key, data, flags| {
            let root = if data.len() >= DB_LEN { u64_at(data, ROOT_IN_DB) } else { NO_PAGE };
            if flags & F_SUBDATA != 0 && root != NO_PAGE {
                roots.insert(key.to_vec(), root);
            }
        });
        if damage.is_empty() { Ok(roots) } else { Err(damage) }
    }

    /// Walks the tree at `root`, handing every entry of an intact leaf to
    /// `entry` (key, value, node flags) in key order, and returns the
    /// damaged pages it skipped (with what lay under them).
    pub fn walk(&self, root: u64, names_tables: bool, entry: &mut EntryFn<'_>) -> Vec<Damage> {
        let mut damage = Vec::new();
        if root == NO_PAGE {
            return damage;
        }
        let mut seen = HashSet::new();
        // Children are pushed last first, so that leaves come in key order.
        let mut stack = vec![(root, 0)];
        let mut page = vec![0; self.page_size];
        while let Some((number, depth)) = stack.pop() {
            let checked = if depth > MAX_DEPTH {
                Err("the tree is deeper than LMDB's 32 levels".to_owned())
            } else if !seen.insert(number) {
                Err("reached twice: the tree has a loop".to_owned())
            } else {
                self.read_page(number, &mut page).and_then(|()| self.check_tree_page(number, &page, names_tables))
            };
            match checked {
                Err(what) => damage.push(Damage { page: number, what }),
                Ok(Tree::Branch(children)) => stack.extend(children.into_iter().rev().map(|child| (child, depth + 1))),
                Ok(Tree::Leaf(nodes)) => {
                    for node in nodes {
                        match self.value_of(&page, &node) {
                            Ok(value) => entry(&page[node.key.clone()], &value, node.flags),
                            Err(found) => damage.push(found),
                        }
                    }
                }
            }
        }
        damage
    }

    /// Whether page `number` lies in the file (looking at its length again
    /// when it seems not to: commits in other processes make it longer).
    fn in_file(&self, number: u64) -> std::result::Result<(), String> {
        if number >= self.pages.get() {
            let len = self.file.metadata().map_err(|err| format!("the file cannot be looked at: {err}"))?.len();
            self.pages.set(len / self.page_size as u64);
        }
        if number < 2 || number >= self.pages.get() {
            return Err(format!("a page number outside the file's {} pages", self.pages.get()));
        }
        Ok(())
    }

    /// Reads page `number` into `page`.
    fn read_page(&self, number: u64, page: &mut [u8]) -> std::result::Result<(), String> {
        self.in_file(number)?;
        let at = number.checked_mul(self.page_size as u64).ok_or("a page number past any file")?;
        self.file.read_exact_at(page, at).map_err(|err| format!("cannot be read: {err}"))
    }

    /// Checks a branch or leaf page: its header and every node's bounds,
    /// keys in ascending order.
    fn check_tree_page(&self, number: u64, page: &[u8], names_tables: bool) -> std::result::Result<Tree, String> {
        if u64_at(page, 0) != number {
            return Err(format!("holds the number {}, not its own", u64_at(page, 0)));
        }
        let flags = u16_at(page, 10) & !P_BOOKKEEPING;
        let (lower, upper) = (usize::from(u16_at(page, 12)), usize::from(u16_at(page, 14)));
        if !(HEADER..=upper).contains(&lower) || upper > self.page_size || !(lower - HEADER).is_multiple_of(2) {
            return Err(format!("free space bounds {lower}..{upper} do not fit the page"));
        }
        let count = (lower - HEADER) / 2;
        let nodes: Vec<Node> = (0..count)
            .map(|i| self.node_at(page, usize::from(u16_at(page, HEADER + 2 * i)), upper))
            .collect::<Result<_, _>>()?;
        for pair in nodes.windows(2) {
            // A branch's first key is empty: it stands for everything below the second.
            if !pair[0].key.is_empty() && page[pair[0].key.clone()] >= page[pair[1].key.clone()] {
                return Err("keys out of order".to_owned());
            }
        }
        match flags {
            P_BRANCH if count > 0 => Ok(Tree::Branch(nodes.iter().map(Node::child).collect())),
            P_LEAF => {
                let allowed = if names_tables { F_BIGDATA | F_SUBDATA } else { F_BIGDATA };
                match nodes.iter().find(|node| node.flags & !allowed != 0) {
                    Some(node) => Err(format!("a node with flags {:#x}", node.flags)),
                    None => Ok(Tree::Leaf(nodes)),
                }
            }
            other => Err(format!("not a tree page (flags {other:#x}, {count} nodes)")),
        }
    }

    /// The node at `at` of a page whose nodes start at `upper`.
    fn node_at(&self, page: &[u8], at: usize, upper: usize) -> std::result::Result<Node, String> {
        if at < upper || at + NODE_HEADER > self.page_size {
            return Err(format!("a node at {at}, outside the page's nodes"));
        }
        let (lo, hi) = (u64::from(u16_at(page, at)), u64::from(u16_at(page, at + 2)));
        let flags = u16_at(page, at + 4);
        let key_start = at + NODE_HEADER;
        let key = key_start..key_start + usize::from(u16_at(page, at + 6));
        if key.end > self.page_size {
            return Err(format!("a key of {} bytes runs past the page", key.len()));
        }
        Ok(Node { low: lo | hi << 16, flags, key })
    }

    /// A leaf node's value: on the page, or on the overflow pages it names.
    fn value_of(&self, page: &[u8], node: &Node) -> std::result::Result<Vec<u8>, Damage> {
        let size = usize::try_from(node.low).unwrap_or(usize::MAX);
        let at = node.key.end;
        if node.flags & F_BIGDATA == 0 {
            return match page.get(at..at.saturating_add(size)) {
                Some(value) => Ok(value.to_vec()),
                None => {
                    Err(Damage { page: u64_at(page, 0), what: format!("a value of {size} bytes runs past the page") })
                }
            };
        }
        let overflow = page.get(at..at + 8).map_or(0, |bytes| u64_at(bytes, 0));
        self.overflow_value(overflow, size).map_err(|what| Damage { page: overflow, what })
    }

    /// A value of `size` bytes kept on the overflow run starting at `first`.
    fn overflow_value(&self, first: u64, size: usize) -> std::result::Result<Vec<u8>, String> {
        let mut head = vec![0; HEADER];
        self.in_file(first)?;
        let at = first * self.page_size as u64;
        self.file.read_exact_at(&mut head, at).map_err(|err| format!("cannot be read: {err}"))?;
        let run = u64::from(u32_at(&head, 12));
        if u64_at(&head, 0) != first || u16_at(&head, 10) & !P_BOOKKEEPING != P_OVERFLOW {
            return Err("not the overflow page its leaf names".to_owned());
        }
        let room = run.saturating_mul(self.page_size as u64).saturating_sub(HEADER as u64);
        let last = first.saturating_add(run).saturating_sub(1);
        if run == 0 || self.in_file(last).is_err() || size as u64 > room {
            return Err(format!("an overflow run of {run} pages cannot hold {size} bytes here"));
        }
        let mut value = vec![0; size];
        self.file.read_exact_at(&mut value, at + HEADER as u64).map_err(|err| format!("cannot be read: {err}"))?;
        Ok(value)
    }
}

/// What a tree page holds.
enum Tree {
    Branch(Vec<u64>),
    Leaf(Vec<Node>),
}

/// A node of a page: the low 32 bits of its data size (leaf) or child
/// page number (branch), its flags, and where its key lies in the page.
struct Node {
    low: u64,
    flags: u16,
    key: std::ops::Range<usize>,
}

impl Node {
    /// A branch node's child: its flags hold the page number's top 16 bits.
    fn child(&self) -> u64 {
        self.low | u64::from(self.flags) << 32
    }
}

/// The page size a first meta page records, if it is LMDB's.
fn meta_page_size(first: &[u8]) -> Option<usize> {
    if first.len() < TXNID_AT + 8 || u32_at(first, HEADER) != MAGIC {
        return None;
    }
    let size = usize::try_from(u32_at(first, DBS_AT)).ok()?;
    (size.is_power_of_two() && (512..=65536).contains(&size)).then_some(size)
}

/// (transaction id, main tree root) of meta page `number`, if intact.
fn meta_of(page: &[u8], number: u64) -> Option<(u64, u64)> {
    let intact = u64_at(page, 0) == number && u32_at(page, HEADER) == MAGIC && u32_at(page, HEADER + 4) == 1;
    intact.then(|| (u64_at(page, TXNID_AT), u64_at(page, DBS_AT + DB_LEN + ROOT_IN_DB)))
}
